"""Shared column helpers. SQLModel stores `datetime` fields as aware UTC (`UTCDateTime`) on every database."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
