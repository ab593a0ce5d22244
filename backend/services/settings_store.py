"""Settings that admins change at run time (registration, default role, limits, alerts), kept in `app_setting`.

A key that was never saved takes its value from the environment (`backend.config`). Reads are cached for a few
seconds per database, so that hot paths (the gateway's limits) do not query for them; a change clears the cache
here at once and reaches other instances within `CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from backend.config import get_settings
from backend.models.admin import AdminSettings, AdminSettingsUpdate, AppSetting
from backend.models.base import utcnow
from backend.models.user import Role, User
from backend.services import audit

CACHE_SECONDS = 5.0

_lock = threading.Lock()
# database url → (expires, settings, the environment's settings they were built on: tests change those)
_cache: dict[str, tuple[float, AdminSettings, object]] = {}
_listeners: list[Callable[[], None]] = []


def defaults() -> AdminSettings:
    settings = get_settings()
    try:
        role = Role(settings.default_role)
    except ValueError:
        role = Role.user
    return AdminSettings(allow_registration=settings.allow_registration, default_role=role,
                         rate_limit_per_minute=settings.default_rate_limit_per_minute,
                         daily_token_quota=settings.default_daily_token_quota)


def _key() -> str:
    return get_settings().effective_database_url


def cached() -> AdminSettings | None:
    """The settings when read within the last few seconds; None when they must be read again."""
    entry = _cache.get(_key())
    if entry is None or entry[0] < time.monotonic() or entry[2] is not get_settings():
        return None
    return entry[1]


def load(session: Session) -> AdminSettings:
    found = cached()
    if found is not None:
        return found
    values: dict[str, Any] = defaults().model_dump()
    for row in session.exec(select(AppSetting)).all():
        if row.key in values and row.value is not None:
            values[row.key] = row.value
    result = AdminSettings.model_validate(values)
    with _lock:
        _cache[_key()] = (time.monotonic() + CACHE_SECONDS, result, get_settings())
    return result


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener` whenever an admin saves settings (caches built on them)."""
    _listeners.append(listener)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
    for listener in _listeners:
        listener()


def mask_url(url: str | None) -> str:
    """What the audit log keeps of a webhook address: its scheme and host. The rest often is a secret (a Slack or
    Teams hook's path, a token in the query), and the log is read and exported by every administrator."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/…" if parts.scheme and host else "…"


SECRET_URL_KEYS = {"alert_webhook_url"}


def update(session: Session, *, actor: User, changes: AdminSettingsUpdate, ip: str | None = None) -> AdminSettings:
    """An admin saves settings; the change is audited (a webhook address masked: it often carries a secret)."""
    from backend.services.users import require_admin  # users needs this module (through auth and limits) first

    actor = require_admin(session, actor)
    current = load(session)
    data = changes.model_dump(exclude_unset=True, exclude_none=True)
    detail: dict[str, Any] = {}
    for key, value in data.items():
        before = getattr(current, key)
        if value == before:
            continue
        row = session.get(AppSetting, key) or AppSetting(key=key, value=None)
        row.value = value.value if isinstance(value, Role) else value
        row.updated_at = utcnow()
        session.add(row)
        if key in SECRET_URL_KEYS:
            detail[key] = {"from": mask_url(before), "to": mask_url(row.value)}
        else:
            detail[key] = {"from": before.value if isinstance(before, Role) else before, "to": row.value}
    if detail:
        audit.record(session, action="settings.update", user=actor, target="settings", ip=ip, detail=detail)
        session.commit()
    clear_cache()
    return load(session)
