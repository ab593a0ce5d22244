"""`/api/v1/admin/swanlab`: the SwanLab dashboard (`swanlab watch`) as a process the portal manages; admins only."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlmodel import SQLModel

from backend.api.deps import AdminUser, ClientIp, SessionDep, require_admin
from backend.services import tracking

router = APIRouter(prefix="/admin/swanlab", tags=["admin"], dependencies=[Depends(require_admin)])


class SwanLabStatus(SQLModel):
    running: bool
    url: str
    mode: str
    log_dir: str


def _public(status: tracking.DashboardStatus) -> SwanLabStatus:
    return SwanLabStatus(running=status.running, url=status.url, mode=status.mode, log_dir=status.log_dir)


@router.get("", response_model=SwanLabStatus)
def read_status(user: AdminUser, session: SessionDep) -> SwanLabStatus:
    """Whether the dashboard runs, the address a browser reaches it at, and the tracking mode (local or disabled)."""
    return _public(tracking.read_dashboard(session, user=user))


@router.post("/start", response_model=SwanLabStatus)
def start(user: AdminUser, session: SessionDep, ip: ClientIp) -> SwanLabStatus:
    """Start the dashboard on SWANLAB_HOST:SWANLAB_PORT; answers once it serves (409 when the port is taken or it
    does not come up)."""
    return _public(tracking.start_dashboard(session, user=user, ip=ip))


@router.post("/stop", response_model=SwanLabStatus)
def stop(user: AdminUser, session: SessionDep, ip: ClientIp) -> SwanLabStatus:
    """Stop the dashboard the portal started (nothing happens when it is not running)."""
    return _public(tracking.stop_dashboard(session, user=user, ip=ip))
