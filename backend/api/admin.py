"""`/api/v1/admin/*`: what administrators alone may do."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import AdminUser, ClientIp, SessionDep
from backend.models.user import UserPublic, UserUpdate
from backend.services import users

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/users")
def list_users(_admin: AdminUser, session: SessionDep, q: str | None = None) -> dict[str, list[UserPublic]]:
    return {"data": [UserPublic.model_validate(u) for u in users.list_users(session, search=q)]}


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, admin: AdminUser, session: SessionDep, ip: ClientIp) -> UserPublic:
    return UserPublic.model_validate(users.update_user(session, actor=admin, user_id=user_id, changes=body, ip=ip))
