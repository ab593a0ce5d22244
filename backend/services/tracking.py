"""Experiment tracking with SwanLab: where training runs log (local mode under `DATA_DIR/swanlab`, the SwanLab cloud,
or nowhere: `swanlab_settings`), and the SwanLab dashboard (`swanlab watch LOGDIR --host H --port P`) as a process the
portal starts, watches and stops.

The dashboard serves its API at absolute `/api/v1` paths, so it gets a port of its own rather than a sub-path of the
portal; it sends no frame-blocking headers, so the job page can embed it."""

from __future__ import annotations

import atexit
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlmodel import Session

from backend import db
from backend.config import get_settings
from backend.errors import Conflict, Forbidden, Invalid
from backend.models.tracking import SwanLabMode
from backend.models.user import Role, User
from backend.services import audit, swanlab_settings

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds for the dashboard to answer HTTP after it was started
STOP_TIMEOUT = 10.0
PROJECT = "llm-portal"  # the SwanLab project every run belongs to

_lock = threading.Lock()
_process: subprocess.Popen[bytes] | None = None


@dataclass
class DashboardStatus:
    running: bool
    url: str
    mode: str
    log_dir: str
    pid: int | None = None


def log_dir() -> Path:
    """Where every run's SwanLab files go, and what the dashboard shows."""
    return get_settings().data_dir / "swanlab"


def dashboard_url() -> str:
    settings = get_settings()
    if settings.swanlab_url:
        return settings.swanlab_url.rstrip("/")
    return f"http://{settings.swanlab_host}:{settings.swanlab_port}"


@dataclass(frozen=True)
class CloudLogin:
    """What the training worker logs in to the SwanLab cloud with (`swanlab.login`), in its own memory: never on a
    command line, in the callback's arguments or in a log."""

    host: str
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class RunOptions:
    """How a training run is tracked: `callback`, the keyword arguments of `SwanLabCallback` (empty when tracking is
    off), and for the cloud, the login to make before the run starts."""

    mode: SwanLabMode
    callback: dict[str, object]
    login: CloudLogin | None = None

    def __bool__(self) -> bool:
        return bool(self.callback)


def run_options(session: Session, *, name: str, description: str | None = None,
                mode: SwanLabMode | None = None) -> RunOptions:
    """How a training run logs, from the saved settings (`mode` overrides them: a worker whose cloud login failed
    falls back to local). The local files go under DATA_DIR/swanlab in both local and cloud mode."""
    settings = swanlab_settings.load(session)
    mode = mode or settings.mode
    if mode == SwanLabMode.disabled:
        return RunOptions(mode=mode, callback={})
    login = None
    if mode == SwanLabMode.cloud:
        key = swanlab_settings.api_key(session)
        if key is None:
            raise Invalid("Cloud mode needs a SwanLab API key")
        login = CloudLogin(host=settings.cloud_host, api_key=key)
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return RunOptions(mode=mode, login=login, callback={
        "mode": mode.value, "log_dir": str(folder), "project": PROJECT, "experiment_name": name,
        "description": description})


def cloud_link_file(output_dir: str) -> Path:
    """Where the worker notes the address of a job's run in the SwanLab cloud (in the job's `output_dir`)."""
    return get_settings().data_dir / output_dir / "swanlab-run.txt"


def cloud_run_url(output_dir: str) -> str | None:
    """The address of a job's run in the SwanLab cloud, once its worker started it there."""
    path = cloud_link_file(output_dir)
    if not path.is_file():
        return None
    url = path.read_text(encoding="utf-8").strip()
    return url if url.startswith(("https://", "http://")) else None


def _command(folder: Path, host: str, port: int) -> list[str]:
    # The console script sits next to the interpreter in a virtual environment; `python -m swanlab` elsewhere.
    script = Path(sys.executable).parent / "swanlab"
    found = str(script) if script.exists() else shutil.which("swanlab")
    base = [found] if found else [sys.executable, "-m", "swanlab"]
    return [*base, "watch", str(folder), "--host", host, "--port", str(port)]


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code < 500
    except httpx.HTTPError:
        return False


def status(session: Session | None = None) -> DashboardStatus:
    """The dashboard now, and the tracking mode (read with a session of its own when none is given)."""
    if session is None:
        with db.session_scope() as own:
            return status(own)
    process = _process
    running = process is not None and process.poll() is None
    return DashboardStatus(running=running, url=dashboard_url(), mode=swanlab_settings.current_mode(session).value,
                           log_dir=str(log_dir()), pid=process.pid if running and process is not None else None)


def start(session: Session) -> DashboardStatus:
    """Start the dashboard and wait until it answers HTTP; starting it while it runs is harmless. Only in local mode:
    the dashboard shows the runs under DATA_DIR."""
    global _process
    current = swanlab_settings.current_mode(session)
    if current == SwanLabMode.disabled:
        raise Invalid("SwanLab tracking is disabled")
    if current == SwanLabMode.cloud:
        raise Invalid("SwanLab is in cloud mode: runs are on the SwanLab server, not in the local dashboard")
    settings = get_settings()
    host, port = settings.swanlab_host, settings.swanlab_port
    with _lock:
        if _process is not None and _process.poll() is None:
            return status(session)
        if _port_taken(host, port):
            raise Conflict("Port {port} is already in use: set SWANLAB_PORT to a free one", port=port)
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        logfile = (settings.data_dir / "swanlab-dashboard.log").open("ab")
        _process = subprocess.Popen(_command(folder, host, port), stdout=logfile, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        logfile.close()
        process = _process
    probe = f"http://{host if host not in ('0.0.0.0', '') else '127.0.0.1'}:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Conflict("The SwanLab dashboard exited at start (code {code}); see swanlab-dashboard.log in the "
                           "data directory", code=process.returncode)
        if _answers(probe):
            log.info("SwanLab dashboard %d serving %s on %s", process.pid, log_dir(), probe)
            return status(session)
        time.sleep(0.2)
    stop()
    raise Conflict("The SwanLab dashboard did not answer within {seconds} s", seconds=int(START_TIMEOUT))


def stop() -> None:
    """Stop the dashboard if the portal started it."""
    global _process
    with _lock:
        process, _process = _process, None
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("SwanLab dashboard %d stopped", process.pid)


def _admin(user: User) -> None:
    if user.role != Role.admin:
        raise Forbidden("Only an administrator may do this")


def read_dashboard(session: Session, *, user: User) -> DashboardStatus:
    _admin(user)
    return status(session)


def start_dashboard(session: Session, *, user: User, ip: str | None = None) -> DashboardStatus:
    """An admin starts the dashboard (audited); returns once it answers."""
    _admin(user)
    result = start(session)
    audit.record(session, action="swanlab.start", user=user, target=result.url, ip=ip)
    session.commit()
    return result


def stop_dashboard(session: Session, *, user: User, ip: str | None = None) -> DashboardStatus:
    _admin(user)
    was_running = status(session).running
    stop()
    result = status(session)
    if was_running:
        audit.record(session, action="swanlab.stop", user=user, target=result.url, ip=ip)
        session.commit()
    return result


atexit.register(stop)  # never leave the dashboard behind the portal
