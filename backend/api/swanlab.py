"""`/api/v1/admin/swanlab`: SwanLab tracking, admins only. Where training runs log (`local`: under DATA_DIR, shown by
the dashboard; `cloud`: a SwanLab server with an API key, stored encrypted and never returned; `disabled`), a
connection test of the cloud key, and the dashboard (`swanlab watch`) as a process the portal manages."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlmodel import SQLModel

from backend.api.deps import AdminUser, ClientIp, SessionDep, require_admin
from backend.i18n import request_language
from backend.models.tracking import SwanLabConnectionTest, SwanLabSettingsUpdate
from backend.services import swanlab_settings, tracking

router = APIRouter(prefix="/admin/swanlab", tags=["admin"], dependencies=[Depends(require_admin)])


class SwanLabStatus(SQLModel):
    running: bool
    url: str
    mode: str
    log_dir: str
    cloud_host: str
    web_host: str
    key_set: bool


class SwanLabTestResult(SQLModel):
    ok: bool
    latency_ms: int
    host: str
    username: str | None = None
    error: str | None = None


def _public(status: tracking.DashboardStatus, settings: swanlab_settings.SwanLabSettings) -> SwanLabStatus:
    return SwanLabStatus(running=status.running, url=status.url, mode=settings.mode.value, log_dir=status.log_dir,
                         cloud_host=settings.cloud_host, web_host=settings.web_host, key_set=settings.key_set)


def _status(session: SessionDep, status: tracking.DashboardStatus) -> SwanLabStatus:
    return _public(status, swanlab_settings.load(session))


@router.get("", response_model=SwanLabStatus)
def read_status(user: AdminUser, session: SessionDep) -> SwanLabStatus:
    """The tracking mode (local, cloud or disabled), the cloud host and whether a cloud API key is saved (the key
    itself never leaves), whether the dashboard runs and the address a browser reaches it at."""
    return _status(session, tracking.read_dashboard(session, user=user))


@router.patch("", response_model=SwanLabStatus)
def update_settings(body: SwanLabSettingsUpdate, user: AdminUser, session: SessionDep, ip: ClientIp) -> SwanLabStatus:
    """Change `mode`, `cloud_host` (empty: SwanLab's public cloud) or `api_key` (write-only; empty removes it). Cloud
    mode needs a key. Audited as `swanlab.update`, without the key."""
    swanlab_settings.update(session, user=user, changes=body, ip=ip)
    return _status(session, tracking.read_dashboard(session, user=user))


@router.post("/test", response_model=SwanLabTestResult)
async def test_connection(user: AdminUser, session: SessionDep, ip: ClientIp,
                          body: SwanLabConnectionTest | None = None) -> SwanLabTestResult:
    """Log in to the SwanLab server as the SDK does, with the given `cloud_host` / `api_key` or else the saved ones:
    `{ok, latency_ms, host, username?, error?}` (a failed login is `ok: false`, not an error status)."""
    result = await swanlab_settings.test_connection(session, user=user, candidate=body, ip=ip)
    return SwanLabTestResult(ok=result.ok, latency_ms=result.latency_ms, host=result.host, username=result.username,
                             error=result.error(request_language.get()))


@router.post("/start", response_model=SwanLabStatus)
def start(user: AdminUser, session: SessionDep, ip: ClientIp) -> SwanLabStatus:
    """Start the dashboard on SWANLAB_HOST:SWANLAB_PORT (local mode only); answers once it serves (409 when the port
    is taken or it does not come up)."""
    return _status(session, tracking.start_dashboard(session, user=user, ip=ip))


@router.post("/stop", response_model=SwanLabStatus)
def stop(user: AdminUser, session: SessionDep, ip: ClientIp) -> SwanLabStatus:
    """Stop the dashboard the portal started (nothing happens when it is not running)."""
    return _status(session, tracking.stop_dashboard(session, user=user, ip=ip))
