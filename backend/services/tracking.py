"""Experiment tracking with SwanLab: where training runs log (local mode, under `DATA_DIR/swanlab`), and the
SwanLab dashboard (`swanlab watch LOGDIR --host H --port P`) as a process the portal starts, watches and stops.

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
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlmodel import Session

from backend.config import get_settings
from backend.errors import Conflict, Forbidden, Invalid
from backend.models.user import Role, User
from backend.services import audit

log = logging.getLogger(__name__)

MODES = ("local", "disabled")
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


def mode() -> str:
    value = get_settings().swanlab_mode.strip().lower()
    return value if value in MODES else "local"


def log_dir() -> Path:
    """Where every run's SwanLab files go, and what the dashboard shows."""
    return get_settings().data_dir / "swanlab"


def dashboard_url() -> str:
    settings = get_settings()
    if settings.swanlab_url:
        return settings.swanlab_url.rstrip("/")
    return f"http://{settings.swanlab_host}:{settings.swanlab_port}"


def run_options(*, name: str, description: str | None = None) -> dict[str, object]:
    """The arguments of `SwanLabCallback` for a training run, or an empty dict when tracking is off."""
    if mode() == "disabled":
        return {}
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return {"mode": "local", "log_dir": str(folder), "project": PROJECT, "experiment_name": name,
            "description": description}


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


def status() -> DashboardStatus:
    process = _process
    running = process is not None and process.poll() is None
    return DashboardStatus(running=running, url=dashboard_url(), mode=mode(), log_dir=str(log_dir()),
                           pid=process.pid if running and process is not None else None)


def start() -> DashboardStatus:
    """Start the dashboard and wait until it answers HTTP; starting it while it runs is harmless."""
    global _process
    if mode() == "disabled":
        raise Invalid("SwanLab is disabled (SWANLAB_MODE=disabled)")
    settings = get_settings()
    host, port = settings.swanlab_host, settings.swanlab_port
    with _lock:
        if _process is not None and _process.poll() is None:
            return status()
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
            return status()
        time.sleep(0.2)
    stop()
    raise Conflict("The SwanLab dashboard did not answer within {seconds} s", seconds=int(START_TIMEOUT))


def stop() -> DashboardStatus:
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
    return status()


def _admin(user: User) -> None:
    if user.role != Role.admin:
        raise Forbidden("Only an administrator may do this")


def read_dashboard(session: Session, *, user: User) -> DashboardStatus:
    _admin(user)
    return status()


def start_dashboard(session: Session, *, user: User, ip: str | None = None) -> DashboardStatus:
    """An admin starts the dashboard (audited); returns once it answers."""
    _admin(user)
    result = start()
    audit.record(session, action="swanlab.start", user=user, target=result.url, ip=ip)
    session.commit()
    return result


def stop_dashboard(session: Session, *, user: User, ip: str | None = None) -> DashboardStatus:
    _admin(user)
    was_running = status().running
    result = stop()
    if was_running:
        audit.record(session, action="swanlab.stop", user=user, target=result.url, ip=ip)
        session.commit()
    return result


atexit.register(stop)  # never leave the dashboard behind the portal
