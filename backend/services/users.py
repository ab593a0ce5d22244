"""Users as admins and their owners manage them."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from backend.errors import Conflict, NotFound
from backend.models.base import utcnow
from backend.models.user import Language, Role, User, UserUpdate
from backend.security import passwords
from backend.services import audit
from backend.services.auth import revoke_all_sessions, validate_password


def list_users(session: Session, *, search: str | None = None) -> list[User]:
    query = select(User).order_by(col(User.username))
    if search:
        query = query.where(col(User.username).icontains(search.strip()))
    return list(session.exec(query).all())


def get_user(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    return user


def _active_admins(session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.admin, col(User.disabled).is_(False))
    return session.exec(query).one()


def update_user(session: Session, *, actor: User, user_id: int, changes: UserUpdate, ip: str | None = None) -> User:
    """An admin changes role, disabled state or password. Disabling ends every session and open page at once."""
    user = get_user(session, user_id=user_id)
    data = changes.model_dump(exclude_unset=True, exclude_none=True)
    loses_admin = user.role == Role.admin and not user.disabled and (
        data.get("role", Role.admin) != Role.admin or data.get("disabled", False)
    )
    if loses_admin and _active_admins(session) <= 1:
        raise Conflict("At least one active administrator must remain")
    detail: dict[str, object] = {}
    if "role" in data and data["role"] != user.role:
        detail["role"] = {"from": user.role, "to": data["role"]}
        user.role = data["role"]
    if "disabled" in data and data["disabled"] != user.disabled:
        detail["disabled"] = data["disabled"]
        user.disabled = data["disabled"]
    if "password" in data:
        user.password_hash = passwords.hash_password(validate_password(data["password"]))
        detail["password"] = "reset"
    user.updated_at = utcnow()
    session.add(user)
    audit.record(session, action="user.update", user=actor, target=f"user:{user.id} {user.username}", ip=ip,
                 detail=detail)
    session.commit()
    if detail.get("disabled") is True or "password" in detail:
        revoke_all_sessions(session, user_id=user.id, reason="disabled" if user.disabled else "password_reset")  # type: ignore[arg-type]
    return user


def set_language(session: Session, *, user: User, language: Language) -> User:
    user.language = language
    user.updated_at = utcnow()
    session.add(user)
    session.commit()
    return user
