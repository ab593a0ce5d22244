"""The training queue's dispatcher: an APScheduler `AsyncIOScheduler` inside the portal's event loop.

Every `TRAINING_POLL_SECONDS` (and at once when a job is queued) it reconciles the running jobs with their worker
processes, then gives each free device slot the next queued job and starts `python -m jobs.worker JOB_ID` for it,
stdout and stderr appended to the job's `train.log`. Workers run in sessions of their own: a portal that stops or
restarts leaves them running, and finds them again on start (or resumes their jobs when they are gone).

One scheduler per deployment (`TRAINING_SCHEDULER=false` on the other instances): APScheduler 3 does not share a job
store between processes, and one dispatcher keeps the device slots honest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from backend.config import get_settings
from backend.db import session_scope
from backend.models.training import JobStatus, TrainingJob
from backend.services import deployments, devices, training

log = logging.getLogger(__name__)

QUEUE_JOB_ID = "training-queue"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

_scheduler: AsyncIOScheduler | None = None
_processes: dict[int, subprocess.Popen[bytes]] = {}  # job id → the worker this portal started


# --- worker processes ---------------------------------------------------------------------------------------------


def worker_command(job_id: int) -> list[str]:
    return [sys.executable, "-m", "jobs.worker", str(job_id)]


def launch_worker(job: TrainingJob) -> subprocess.Popen[bytes]:
    """Start the worker of a claimed job on its device, output appended to the job's log."""
    settings = get_settings()
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", DATA_DIR=str(settings.data_dir), DATABASE_URL=settings.effective_database_url,
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    device = job.device or devices.CPU
    env["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:") if device.startswith("cuda:") else ""
    path = training.log_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as output:
        output.write(f"==== run on {device} (attempt {job.attempts + 1}) ====\n".encode())
        output.flush()
        process = subprocess.Popen(worker_command(job.id), stdout=output, stderr=subprocess.STDOUT,  # type: ignore[arg-type]
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    _processes[job.id] = process  # type: ignore[index]
    log.info("training job %s started on %s (pid %d)", job.id, device, process.pid)
    return process


def _is_worker_of(pid: int, job_id: int) -> bool:
    """Whether `pid` is a live worker of `job_id` (a reused pid belongs to something else)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "jobs.worker" in command and str(job_id) in command


def worker_alive(job: TrainingJob) -> bool:
    process = _processes.get(job.id)  # type: ignore[arg-type]
    if process is not None:
        return process.poll() is None
    return job.pid is not None and _is_worker_of(job.pid, job.id)  # type: ignore[arg-type]


def exit_reason(job: TrainingJob) -> str:
    process = _processes.get(job.id)  # type: ignore[arg-type]
    if process is None or process.returncode is None:
        return "its process is gone: the portal restarted or the worker was killed"
    code = process.returncode
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by signal {name}"
    return f"exit code {code}"


def _forget_finished() -> None:
    for job_id, process in list(_processes.items()):
        if process.poll() is not None:
            del _processes[job_id]


# --- the queue ----------------------------------------------------------------------------------------------------


def reconcile_now() -> list[int]:
    """Requeue (or fail) running jobs whose worker is gone; returns their ids."""
    with session_scope() as session:
        changed = training.reconcile(session, alive=worker_alive, reason=exit_reason)
        ids = [job.id for job in changed]
    for job_id in ids:
        _processes.pop(job_id, None)  # type: ignore[arg-type]
    return ids  # type: ignore[return-value]


def dispatch_queued_jobs() -> list[int]:
    """Give every free device slot the next queued job that may start; returns the ids started."""
    started = []
    with session_scope() as session:
        if not training.queue_order(session):
            return []  # nothing waits: no need to look for devices
        busy = {job.device for job in training.running_jobs(session)}
        for device in devices.training_slots():
            if device in busy:
                continue
            job = training.claim_next_job(session, device=device)
            if job is None:
                continue
            try:
                process = launch_worker(job)
            except OSError as error:
                training.finish_job(session, job_id=job.id, status=JobStatus.failed,  # type: ignore[arg-type]
                                    error=f"The worker could not be started: {error}")
                continue
            training.set_pid(session, job_id=job.id, pid=process.pid)  # type: ignore[arg-type]
            started.append(job.id)
    return started  # type: ignore[return-value]


def run_queue_once() -> list[int]:
    """One look at the queue: reconcile, then dispatch. Returns the ids of the jobs started."""
    reconcile_now()
    started = dispatch_queued_jobs()
    _forget_finished()
    return started


async def tick() -> None:
    """The scheduled job: the queue's work is blocking (database, process start), so it runs in a thread."""
    try:
        await asyncio.to_thread(run_queue_once)
    except Exception:  # the next tick tries again; a broken tick must not stop the queue
        log.exception("training queue tick failed")


async def deployments_tick() -> None:
    try:
        await asyncio.to_thread(deployments.watch)
    except Exception:  # the next tick tries again
        log.exception("deployments tick failed")


def poke() -> None:
    """Look at the queue now (a job was queued), from any thread."""
    scheduler = _scheduler
    if scheduler is not None and scheduler.running:
        scheduler.modify_job(QUEUE_JOB_ID, next_run_time=datetime.now(UTC))


def start() -> AsyncIOScheduler | None:
    """Start the dispatcher in the running event loop (the portal's start-up). The first tick reconciles what a
    previous portal left running."""
    global _scheduler
    settings = get_settings()
    if not settings.training_scheduler or _scheduler is not None:
        return _scheduler
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(tick, "interval", seconds=settings.training_poll_seconds, id=QUEUE_JOB_ID,
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    # Admin console (issue 10): the system monitor's sample a minute; the function lives in backend/services/monitor.py.
    scheduler.add_job("backend.services.monitor:sample_job", "interval", seconds=settings.monitor_sample_seconds,
                      id="system-monitor", next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    # Deployed models (issue 8): servers adopted or restarted at the first look, then followed to running or failed.
    scheduler.add_job(deployments_tick, "interval", seconds=settings.training_poll_seconds, id="deployments",
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    scheduler.start()
    training.on_queue_changed(poke)
    _scheduler = scheduler
    return scheduler


def stop() -> None:
    """Stop dispatching (the portal's shutdown). Running workers carry on; the next start finds them. Model servers
    this portal started stop; the next start brings them back."""
    global _scheduler
    if _scheduler is not None and _scheduler.running:
        _scheduler.shutdown(wait=False)
    _scheduler = None
    deployments.stop_servers()  # started again by the next portal (they stay `running` in the database)
