"""`/api/v1/admin/*`: what administrators alone may do (everyone else gets 403 on every endpoint).

- Users: `GET /admin/users?q=`, `POST /admin/users {username, password, role}`,
  `PATCH /admin/users/{id} {role?, disabled?, password?, rate_limit_per_minute?, daily_token_quota?}` (a limit set
  to null falls back to the default; 0 means no limit), `DELETE /admin/users/{id}` (their conversations, comparisons,
  datasets, uploads, prompts, training jobs and tokens go with them; usage and audit rows stay),
  `GET /admin/users/{id}/limits` (their limits and what is left of today's tokens).
- Usage: `GET /admin/usage?by=user|model&since=&until=&format=json|csv`,
  `GET /admin/usage/daily?by=user|model&top=&since=&until=` (without `by`: everyone's).
- System: `GET /admin/system` (now), `GET /admin/system/history?hours=` (a sample a minute, 24 hours),
  `GET /admin/alerts` (what is over a threshold now), `POST /admin/alerts/webhook-test {url?}`.
- Audit: `GET /admin/audit?user=&action=&since=&until=&q=&limit=&offset=&format=json|csv` (paged, with `total`).
- Settings: `GET /admin/settings`, `PATCH /admin/settings` (registration, default role, default limits, alert
  thresholds and webhook).

Every change is recorded in the audit log, and so are exports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel

from backend.api.deps import AdminUser, ClientIp, SessionDep, require_admin
from backend.models.admin import (
    AdminSettings,
    AdminSettingsUpdate,
    AdminUserCreate,
    Alert,
    QuotaStatus,
    SystemSample,
    UsageRow,
)
from backend.models.audit import AuditEventPublic
from backend.models.user import UserPublic, UserUpdate
from backend.services import limits, monitor, reports, settings_store, users

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

Format = Literal["json", "csv"]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _csv(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- users --------------------------------------------------------------------------------------------------------


@router.get("/users")
def list_users(_admin: AdminUser, session: SessionDep, q: str | None = None) -> dict[str, list[UserPublic]]:
    """Every account, by name; `q` keeps those whose name contains it."""
    return {"data": [UserPublic.model_validate(u) for u in users.list_users(session, search=q)]}


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: AdminUserCreate, admin: AdminUser, session: SessionDep, ip: ClientIp) -> UserPublic:
    """Create an account (whether or not registration is open)."""
    return UserPublic.model_validate(users.create_user(session, actor=admin, username=body.username,
                                                       password=body.password, role=body.role, ip=ip))


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, admin: AdminUser, session: SessionDep, ip: ClientIp) -> UserPublic:
    """Role, disabled (signed out everywhere at once), password (likewise), limits (null: the default)."""
    return UserPublic.model_validate(users.update_user(session, actor=admin, user_id=user_id, changes=body, ip=ip))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: int, admin: AdminUser, session: SessionDep, ip: ClientIp) -> Response:
    """Delete an account with everything it owns; 409 for yourself, the last admin, or while a job of theirs runs."""
    users.delete_user(session, actor=admin, user_id=user_id, ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}/limits", response_model=QuotaStatus)
def user_limits(user_id: int, _admin: AdminUser, session: SessionDep) -> QuotaStatus:
    """A user's effective limits (their overrides or the defaults) and today's token use."""
    return limits.quota_status(session, user=users.get_user(session, user_id=user_id))


# --- usage --------------------------------------------------------------------------------------------------------


@router.get("/usage", response_model=None)
def usage(admin: AdminUser, session: SessionDep, ip: ClientIp, by: Literal["user", "model"] = "user",
          since: datetime | None = None, until: datetime | None = None, format: Format = "json",
          ) -> dict[str, list[UsageRow]] | Response:
    """Requests, input and output tokens, errors and average latency (ms) per user or model over a period
    (chat, compare and gateway calls alike). `format=csv` downloads it."""
    if format == "csv":
        return _csv(reports.export_usage(session, actor=admin, by=by, since=_utc(since), until=_utc(until), ip=ip),
                    f"usage-by-{by}.csv")
    return {"data": reports.usage(session, by=by, since=_utc(since), until=_utc(until))}


@router.get("/usage/daily")
def usage_daily(_admin: AdminUser, session: SessionDep, by: Literal["user", "model"] | None = None,
                top: int = Query(reports.DAILY_KEYS, ge=1, le=100), since: datetime | None = None,
                until: datetime | None = None) -> dict[str, list[reports.UsageDayRow]]:
    """The same per UTC day, oldest first: everyone's (`key` null), or with `by` a row a day for each of the `top`
    users or models with the most requests in the period (busiest first), then the rest's keyed `(others)`."""
    return {"data": reports.usage_by_day(session, by=by, top=top, since=_utc(since), until=_utc(until))}


# --- system -------------------------------------------------------------------------------------------------------


@router.get("/system")
def system(_admin: AdminUser, session: SessionDep) -> dict[str, Any]:
    """CPU, memory, disk (of `DATA_DIR`), per GPU utilisation, memory and temperature (`gpus` is empty without
    one), the portal's memory and each running training worker's (bytes), and the alerts now."""
    return {**monitor.snapshot(session), "alerts": monitor.active_alerts(session)}


@router.get("/system/history")
def system_history(_admin: AdminUser, session: SessionDep, hours: int = Query(24, ge=1, le=24)
                   ) -> dict[str, list[SystemSample]]:
    """The samples of the last `hours` (one a minute, oldest first)."""
    return {"data": monitor.history(session, hours=hours)}


@router.get("/alerts")
def alerts(_admin: AdminUser, session: SessionDep) -> dict[str, list[Alert]]:
    """What the latest sample has over its threshold."""
    return {"data": monitor.active_alerts(session)}


class WebhookTest(BaseModel):
    url: str | None = None


@router.post("/alerts/webhook-test")
def webhook_test(body: WebhookTest, admin: AdminUser, session: SessionDep, ip: ClientIp) -> dict[str, bool]:
    """POST a test alert to `url` (or the saved webhook); `ok` says whether it answered 2xx."""
    return {"ok": monitor.try_webhook(session, actor=admin, url=body.url, ip=ip)}


# --- audit --------------------------------------------------------------------------------------------------------


@router.get("/audit", response_model=None)
def audit_log(
    admin: AdminUser, session: SessionDep, ip: ClientIp, user: str | None = None, action: str | None = None,
    since: datetime | None = None, until: datetime | None = None, q: str | None = None,
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0), format: Format = "json",
) -> dict[str, Any] | Response:
    """Newest first: `user` exactly, `action` by prefix (`auth.`), `q` anywhere in user, action, target, address or
    detail. `{"data": [...], "total": n}`; `format=csv` downloads every match (up to 100 000)."""
    filters: dict[str, Any] = {"user": user, "action": action, "since": _utc(since), "until": _utc(until), "q": q}
    if format == "csv":
        return _csv(reports.export_audit(session, actor=admin, ip=ip, **filters), "audit.csv")
    total, page = reports.audit_events(session, **filters, limit=limit, offset=offset)
    data: list[AuditEventPublic] = page
    return {"data": data, "total": total}


# --- settings -----------------------------------------------------------------------------------------------------


@router.get("/settings", response_model=AdminSettings)
def get_settings(_admin: AdminUser, session: SessionDep) -> AdminSettings:
    """Registration, default role, default limits (0: none), alert thresholds (0: off) and webhook."""
    return settings_store.load(session)


@router.patch("/settings", response_model=AdminSettings)
def update_settings(body: AdminSettingsUpdate, admin: AdminUser, session: SessionDep, ip: ClientIp) -> AdminSettings:
    """Change any of them; limits apply within seconds on every instance."""
    return settings_store.update(session, actor=admin, changes=body, ip=ip)
