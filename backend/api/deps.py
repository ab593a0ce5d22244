"""FastAPI dependencies: the database session, who is calling, and what they may do."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from backend.db import get_session, session_scope
from backend.errors import Forbidden, Unauthorized
from backend.models.user import Role, User
from backend.services.auth import Principal, resolve_bearer

SessionDep = Annotated[Session, Depends(get_session)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Sign in first: send an access token or API token as 'Authorization: Bearer …'")
    return token.strip()


def current_principal(request: Request) -> Principal:
    # A session of its own, closed at once: a streaming answer must not hold a database connection for minutes.
    with session_scope() as session:
        return resolve_bearer(session, token=bearer_token(request))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def current_user(principal: PrincipalDep) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


def require_admin(user: CurrentUser) -> User:
    if user.role != Role.admin:
        raise Forbidden("Only administrators may do this")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
ClientIp = Annotated[str | None, Depends(client_ip)]
