"""FastAPI dependencies: the database session, who is calling, and what they may do."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.db import get_session, session_scope
from backend.errors import Forbidden, Unauthorized
from backend.models.user import Role, User
from backend.services.auth import Principal, cached_principal, resolve_bearer

SessionDep = Annotated[Session, Depends(get_session)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Sign in first: send an access token or API token as 'Authorization: Bearer …'")
    return token.strip()


def _resolve(token: str) -> Principal:
    # A session of its own, closed at once: a streaming answer must not hold a database connection for minutes.
    with session_scope() as session:
        return resolve_bearer(session, token=token)


async def current_principal(request: Request) -> Principal:
    """Who is calling. Async, so that a credential in the cache costs no thread hop (FastAPI runs a plain `def`
    dependency in its thread pool); the database is read in a thread only when the cache does not know it."""
    token = bearer_token(request)
    if (cached := cached_principal(token)) is not None:
        return cached
    return await run_in_threadpool(_resolve, token)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: PrincipalDep) -> User:  # async: no thread hop for an attribute
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


async def require_admin(user: CurrentUser) -> User:
    if user.role != Role.admin:
        raise Forbidden("Only administrators may do this")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
ClientIp = Annotated[str | None, Depends(client_ip)]
