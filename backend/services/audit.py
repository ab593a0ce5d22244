"""The audit service: every module records its actions here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from backend.models.audit import AuditEvent, AuditEventPublic
from backend.models.user import User


def record(
    session: Session,
    *,
    action: str,
    user: User | None = None,
    username: str | None = None,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to `session`; it is written with the caller's commit."""
    event = AuditEvent(
        action=action,
        user_id=user.id if user else None,
        username=user.username if user else username,
        target=target,
        ip=ip,
        detail=detail or {},
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    user: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEventPublic]:
    query = select(AuditEvent).order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc())
    if user:
        query = query.where(AuditEvent.username == user)
    if action:
        query = query.where(col(AuditEvent.action).startswith(action))
    if since:
        query = query.where(AuditEvent.time >= since)
    events = session.exec(query.offset(offset).limit(limit)).all()
    return [
        AuditEventPublic(time=e.time, user=e.username, action=e.action, target=e.target, ip=e.ip, detail=e.detail)
        for e in events
    ]
