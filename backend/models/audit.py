"""The audit log: who did what, to what, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None, index=True)
    username: str | None = Field(default=None, max_length=64)  # kept when the user is deleted
    action: str = Field(index=True, max_length=64)
    target: str | None = Field(default=None, max_length=255)
    ip: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditEventPublic(SQLModel):
    time: datetime
    user: str | None
    action: str
    target: str | None
    ip: str | None
    detail: dict[str, Any]
