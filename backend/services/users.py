"""Users as admins and their owners manage them."""

from __future__ import annotations

import shutil

from sqlmodel import Session, col, func, select

from backend.errors import Conflict, Forbidden, NotFound
from backend.models.base import utcnow
from backend.models.dataset import Dataset
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import Language, Role, User, UserUpdate
from backend.security import passwords
from backend.services import audit, bearer_cache, datasets, events, limits, training
from backend.services.auth import revoke_all_sessions, validate_password, validate_username

LIMIT_FIELDS = ("rate_limit_per_minute", "daily_token_quota")


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


def require_admin(session: Session, actor: User) -> User:
    """`actor` as the database has them now, if still an active administrator. Every admin action checks this:
    a page opened (or a credential cached) before a demotion or a disabling must not keep powers the account lost."""
    current = session.get(User, actor.id, populate_existing=True) if actor.id is not None else None
    if current is None or current.role != Role.admin or current.disabled:
        raise Forbidden("Only administrators may do this")
    return current


def _active_admins(session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.admin, col(User.disabled).is_(False))
    return session.exec(query).one()


def update_user(session: Session, *, actor: User, user_id: int, changes: UserUpdate, ip: str | None = None) -> User:
    """An admin changes role, disabled state, password or limits. Disabling ends every session and open page at
    once. A limit set to a number overrides the default (0: none); set to null, the default applies again. A role
    change reloads the user's open pages (their menu and what they may open change with it). Nothing changed: nothing
    is recorded."""
    actor = require_admin(session, actor)
    user = get_user(session, user_id=user_id)
    data = changes.model_dump(exclude_unset=True, exclude_none=True)
    limit_changes = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if k in LIMIT_FIELDS}
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
    for name, value in limit_changes.items():
        if getattr(user, name) != value:
            detail[name] = {"from": getattr(user, name), "to": value}
            setattr(user, name, value)
    if not detail:
        return user
    user.updated_at = utcnow()
    session.add(user)
    audit.record(session, action="user.update", user=actor, target=f"user:{user.id} {user.username}", ip=ip,
                 detail=detail)
    session.commit()
    bearer_cache.invalidate()  # a role, a disabled state, a password: cached credentials carry the old ones
    if detail.get("disabled") is True or "password" in detail:
        revoke_all_sessions(session, user_id=user.id, reason="disabled" if user.disabled else "password_reset")  # type: ignore[arg-type]
    elif "role" in detail:
        events.user_role_changed(user.id)  # type: ignore[arg-type]
    if limit_changes:
        limits.clear_cache(user.id)
    return user


def create_user(session: Session, *, actor: User, username: str, password: str, role: Role = Role.user,
                ip: str | None = None) -> User:
    """An admin creates an account (registration may be closed)."""
    actor = require_admin(session, actor)
    username = validate_username(username)
    validate_password(password)
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict("The username {username} is taken", username=username)
    user = User(username=username, password_hash=passwords.hash_password(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, action="user.create", user=actor, target=f"user:{user.id} {user.username}", ip=ip,
                 detail={"role": role.value})
    session.commit()
    return user


def delete_user(session: Session, *, actor: User, user_id: int, ip: str | None = None) -> None:
    """Delete an account and what it owns. The foreign keys' ON DELETE CASCADE delete its conversations (with
    their messages), comparisons, votes and batches, datasets (with versions) and uploads, prompts (with versions),
    training jobs (with metrics and checkpoints), sign-in sessions and API tokens; their files go here too.
    Usage records and audit events stay (they name no foreign key), so that statistics keep adding up.
    Refused for yourself, for the last active administrator, and while one of their training jobs runs."""
    actor = require_admin(session, actor)
    user = get_user(session, user_id=user_id)
    if user.id == actor.id:
        raise Conflict("You cannot delete your own account")
    if user.role == Role.admin and not user.disabled and _active_admins(session) <= 1:
        raise Conflict("At least one active administrator must remain")
    jobs = session.exec(select(TrainingJob).where(TrainingJob.user_id == user.id)).all()
    if any(job.status in (JobStatus.queued, JobStatus.running) for job in jobs):
        raise Conflict("{name} has a queued or running training job; cancel it first", name=user.username)
    for job in jobs:
        for check in training.BEFORE_DELETE:
            check(session, job)
    job_dirs = [training.job_dir(job) for job in jobs]
    dataset_ids = session.exec(select(Dataset.id).where(Dataset.user_id == user.id)).all()
    revoke_all_sessions(session, user_id=user.id, reason="deleted")  # type: ignore[arg-type]  # open pages go
    audit.record(session, action="user.delete", user=actor, target=f"user:{user.id} {user.username}", ip=ip,
                 detail={"datasets": len(dataset_ids), "training_jobs": len(jobs)})
    session.delete(user)
    session.commit()
    bearer_cache.invalidate()
    for path in [*(datasets.datasets_dir() / str(i) for i in dataset_ids), *job_dirs]:
        shutil.rmtree(path, ignore_errors=True)
    limits.clear_cache(user_id)


def set_language(session: Session, *, user: User, language: Language) -> User:
    user.language = language
    user.updated_at = utcnow()
    session.add(user)
    session.commit()
    bearer_cache.invalidate()  # the user a cached credential gives callers has the old language
    return user
