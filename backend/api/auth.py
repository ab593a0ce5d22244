"""`/api/v1/auth/*` and `/api/v1/users/me` (with `/limits`: your quota, as the profile shows it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from backend.api.deps import ClientIp, CurrentUser, PrincipalDep, SessionDep
from backend.config import get_settings
from backend.models.admin import QuotaStatus
from backend.models.auth import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic, RefreshRequest, TokenPair
from backend.models.user import Credentials, PasswordChange, ProfileUpdate, UserPublic
from backend.services import auth, limits, users

router = APIRouter(tags=["auth"])

REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_PATH = "/api/v1/auth"


def _set_refresh_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=get_settings().refresh_token_days * 86400,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def register(body: Credentials, session: SessionDep, ip: ClientIp) -> UserPublic:
    user = auth.register(session, username=body.username, password=body.password, ip=ip)
    return UserPublic.model_validate(user)


@router.post("/auth/login", response_model=TokenPair)
def login(body: Credentials, request: Request, response: Response, session: SessionDep, ip: ClientIp) -> TokenPair:
    pair = auth.login(
        session, username=body.username, password=body.password, ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    _set_refresh_cookie(request, response, pair.refresh_token)
    return pair


@router.post("/auth/refresh", response_model=TokenPair)
def refresh(request: Request, response: Response, session: SessionDep, ip: ClientIp,
            body: RefreshRequest | None = None) -> TokenPair:
    token = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE, "")
    pair = auth.refresh(session, refresh_token=token, ip=ip)
    _set_refresh_cookie(request, response, pair.refresh_token)
    return pair


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: PrincipalDep, session: SessionDep, ip: ClientIp) -> Response:
    auth.logout(session, principal=principal, ip=ip)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    return response


@router.get("/users/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/users/me/limits", response_model=QuotaStatus)
def my_limits(user: CurrentUser, session: SessionDep) -> QuotaStatus:
    """Your request rate a minute and daily token quota (0: none), the tokens used today and left, and when the
    day resets (UTC midnight): what the profile page shows."""
    return limits.quota_status(session, user=user)


@router.patch("/users/me", response_model=UserPublic)
def update_me(body: ProfileUpdate, user: CurrentUser, session: SessionDep) -> UserPublic:
    if body.language is not None:
        user = users.set_language(session, user=user, language=body.language)
    return UserPublic.model_validate(user)


@router.post("/users/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, principal: PrincipalDep, session: SessionDep, ip: ClientIp) -> None:
    auth.change_password(
        session, user=principal.user, current_password=body.current_password, new_password=body.new_password,
        keep_session=principal.session_id, ip=ip,
    )


@router.post("/auth/tokens", status_code=status.HTTP_201_CREATED, response_model=ApiTokenCreated)
def create_token(body: ApiTokenCreate, user: CurrentUser, session: SessionDep, ip: ClientIp) -> ApiTokenCreated:
    return auth.create_api_token(session, user=user, name=body.name, ip=ip)


@router.get("/auth/tokens")
def list_tokens(user: CurrentUser, session: SessionDep) -> dict[str, list[ApiTokenPublic]]:
    return {"data": [ApiTokenPublic.model_validate(t) for t in auth.list_api_tokens(session, user=user)]}


@router.delete("/auth/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> None:
    auth.revoke_api_token(session, user=user, token_id=token_id, ip=ip)
