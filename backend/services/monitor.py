"""The system monitor: CPU, memory, disk, GPUs (NVML), the portal's and training workers' memory; a sample a minute
kept 24 hours (APScheduler, `sample_job`); alerts when a sample crosses a threshold admins set (an audit event
`system.alert`, a JSON POST to their webhook, and a banner on admins' pages while it lasts)."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import psutil
from sqlmodel import Session, col, delete, select

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Invalid
from backend.models.admin import AdminSettings, Alert, SystemSample
from backend.models.base import utcnow
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import User
from backend.services import audit, settings_store, users

log = logging.getLogger(__name__)

KEEP = timedelta(hours=24)
WEBHOOK_TIMEOUT_SECONDS = 5.0
METRICS = ("cpu", "memory", "disk", "gpu_memory")

psutil.cpu_percent(interval=None)  # the first reading is meaningless: take it now, so the next one counts

_nvml_lock = threading.Lock()
_nvml_ready: bool | None = None


# --- reading the machine ------------------------------------------------------------------------------------------


def _nvml() -> Any | None:
    """pynvml, initialised once; None where there is no NVIDIA driver (or no nvidia-ml-py)."""
    global _nvml_ready
    with _nvml_lock:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return None
        if _nvml_ready is None:
            try:
                pynvml.nvmlInit()
                _nvml_ready = True
            except pynvml.NVMLError:
                _nvml_ready = False
        return pynvml if _nvml_ready else None


def gpus() -> list[dict[str, Any]]:
    """Per GPU: utilisation %, memory used and total (bytes), temperature °C; [] when there is none."""
    nvml = _nvml()
    if nvml is None:
        return []
    found = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                utilization = None
            try:
                temperature = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            except nvml.NVMLError:
                temperature = None
            found.append({
                "index": index, "name": name.decode() if isinstance(name, bytes) else str(name),
                "utilization_percent": utilization, "memory_used": int(memory.used), "memory_total": int(memory.total),
                "memory_percent": round(100.0 * memory.used / memory.total, 1) if memory.total else 0.0,
                "temperature_c": temperature,
            })
    except nvml.NVMLError as error:  # a driver that went away: report what was read
        log.warning("NVML failed: %s", error)
    return found


def _rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children (a training worker's data loaders)."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return int(total)


def workers(session: Session) -> list[dict[str, Any]]:
    """Memory of each running training job's worker process (its `pid`)."""
    running = session.exec(select(TrainingJob).where(TrainingJob.status == JobStatus.running,
                                                     col(TrainingJob.pid).is_not(None))).all()
    found = []
    for job in running:
        try:
            rss = _rss(psutil.Process(job.pid))  # type: ignore[arg-type]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            rss = None
        found.append({"job_id": job.id, "job_name": job.name, "pid": job.pid, "rss": rss})
    return found


def snapshot(session: Session) -> dict[str, Any]:
    """The machine now (`GET /api/v1/admin/system`)."""
    memory = psutil.virtual_memory()
    data_dir = get_settings().data_dir
    disk = psutil.disk_usage(str(data_dir if data_dir.exists() else data_dir.parent))
    return {
        "time": utcnow(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count(),
        "memory": {"total": memory.total, "used": memory.total - memory.available, "available": memory.available,
                   "percent": memory.percent},
        "disk": {"path": str(data_dir), "total": disk.total, "used": disk.used, "free": disk.free,
                 "percent": disk.percent},
        "gpus": gpus(),
        "portal": {"pid": os.getpid(), "rss": _rss(psutil.Process())},
        "workers": workers(session),
    }


# --- alerts -------------------------------------------------------------------------------------------------------


def alerts_of(sample: SystemSample, settings: AdminSettings) -> list[Alert]:
    """What in `sample` is at or above its threshold (0: no alert for that measure)."""
    found = []
    for metric, value, threshold in (("cpu", sample.cpu_percent, settings.alert_cpu_percent),
                                     ("memory", sample.memory_percent, settings.alert_memory_percent),
                                     ("disk", sample.disk_percent, settings.alert_disk_percent)):
        if threshold and value >= threshold:
            found.append(Alert(metric=metric, value=value, threshold=threshold))
    if settings.alert_gpu_memory_percent:
        for gpu in sample.gpus:
            if gpu.get("memory_percent", 0) >= settings.alert_gpu_memory_percent:
                found.append(Alert(metric="gpu_memory", value=gpu["memory_percent"],
                                   threshold=settings.alert_gpu_memory_percent, label=f"GPU {gpu['index']}"))
    return found


def latest(session: Session) -> SystemSample | None:
    return session.exec(select(SystemSample).order_by(col(SystemSample.time).desc()).limit(1)).first()


_banner_cache: dict[str, tuple[float, list[Alert]]] = {}


def active_alerts(session: Session) -> list[Alert]:
    """The alerts of the latest sample, if it is recent (the banner on admins' pages; cached a few seconds)."""
    key = get_settings().effective_database_url
    entry = _banner_cache.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    sample = latest(session)
    stale = sample is None or utcnow() - sample.time > timedelta(seconds=3 * get_settings().monitor_sample_seconds)
    found = [] if stale else alerts_of(sample, settings_store.load(session))  # type: ignore[arg-type]
    _banner_cache[key] = (time.monotonic() + 5.0, found)
    return found


# A threshold an admin just changed shows (or hides) the banner on the next page, not five seconds later.
settings_store.on_change(_banner_cache.clear)


def send_webhook(url: str, payload: dict[str, Any]) -> bool:
    """POST `payload` as JSON; a failure is logged (an alert must not stop the monitor)."""
    try:
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPError as error:
        log.warning("alert webhook %s failed: %s", settings_store.mask_url(url), error)
        return False
    return True


def _alert_payload(alerts: list[Alert], sample: SystemSample) -> dict[str, Any]:
    return {"event": "system.alert", "time": sample.time.isoformat(),
            "alerts": [a.model_dump() for a in alerts],
            "sample": {"cpu_percent": sample.cpu_percent, "memory_percent": sample.memory_percent,
                       "disk_percent": sample.disk_percent, "gpus": sample.gpus}}


def _raise_new_alerts(session: Session, sample: SystemSample, before: SystemSample | None) -> list[Alert]:
    """Alerts that this sample starts (not those already raised by the previous one)."""
    settings = settings_store.load(session)
    now = alerts_of(sample, settings)
    earlier = {(a.metric, a.label) for a in alerts_of(before, settings)} if before is not None else set()
    new = [a for a in now if (a.metric, a.label) not in earlier]
    if not new:
        return []
    audit.record(session, action="system.alert", username="system", target="system",
                 detail={"alerts": [a.model_dump() for a in new]})
    session.commit()
    if settings.alert_webhook_url:
        send_webhook(settings.alert_webhook_url, _alert_payload(new, sample))
    return new


# --- sampling -----------------------------------------------------------------------------------------------------


def take_sample(session: Session) -> tuple[SystemSample, list[Alert]]:
    """Store a sample, forget those older than 24 hours, raise the alerts it starts."""
    now = snapshot(session)
    before = latest(session)
    sample = SystemSample(
        time=now["time"], cpu_percent=now["cpu_percent"], memory_percent=now["memory"]["percent"],
        memory_used=now["memory"]["used"], memory_total=now["memory"]["total"], disk_percent=now["disk"]["percent"],
        disk_used=now["disk"]["used"], disk_total=now["disk"]["total"], portal_rss=now["portal"]["rss"],
        gpus=now["gpus"], workers=now["workers"],
    )
    session.add(sample)
    session.exec(delete(SystemSample).where(col(SystemSample.time) < now["time"] - KEEP))  # type: ignore[call-overload]
    session.commit()
    session.refresh(sample)
    _banner_cache.clear()
    return sample, _raise_new_alerts(session, sample, before)


def sample_job() -> None:
    """The scheduler's periodic job (in its thread pool)."""
    with session_scope() as session:
        take_sample(session)


def history(session: Session, *, hours: int = 24) -> list[SystemSample]:
    since = utcnow() - timedelta(hours=hours)
    return list(session.exec(select(SystemSample).where(col(SystemSample.time) >= since)
                             .order_by(col(SystemSample.time))).all())


def try_webhook(session: Session, *, actor: User, url: str | None = None, ip: str | None = None) -> bool:
    """An admin sends a sample alert to `url` (or the saved webhook) to see it arrive; audited as
    `system.webhook_test` with the address masked. True when it answered 2xx."""
    actor = users.require_admin(session, actor)
    target = (url or "").strip() or settings_store.load(session).alert_webhook_url
    if not target.startswith(("http://", "https://")):
        raise Invalid("Set a webhook address (http:// or https://) first")
    ok = send_webhook(target, {"event": "system.alert.test", "time": utcnow().isoformat(), "alerts": []})
    audit.record(session, action="system.webhook_test", user=actor, target=settings_store.mask_url(target), ip=ip,
                 detail={"ok": ok})
    session.commit()
    return ok
