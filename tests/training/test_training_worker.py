"""Workers as their own processes under the scheduler: a worker killed with SIGKILL is resumed from its checkpoint,
a cancel stops it after a final checkpoint, a restarted portal reconciles what was running, and a job whose worker
keeps dying fails with the reason once the restart limit is reached."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from backend import db
from backend.config import reset_settings
from backend.models.audit import AuditEvent
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import User
from backend.services import training
from jobs import scheduler
from jobs.recipes.train import checkpoints_of
from tests.training.conftest import new_job

WAIT = 180.0  # generous: a worker imports torch and transformers on 2 cores


@pytest.fixture
def cpu_slot(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRAINING_DEVICES", "cpu")
    monkeypatch.setenv("TRAINING_MAX_RESTARTS", "1")
    reset_settings()
    yield
    for process in scheduler._processes.values():  # never leave a worker behind
        if process.poll() is None:
            process.kill()
            process.wait()
    scheduler._processes.clear()


def job_row(job_id: int) -> TrainingJob:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def wait_for(what: Callable[[TrainingJob], bool], job_id: int, description: str) -> TrainingJob:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = job_row(job_id)
        if what(job):
            return job
        time.sleep(0.05)
    log = training.log_path(job_row(job_id))
    raise AssertionError(f"job never {description}: {job_row(job_id)}\n{log.read_text() if log.exists() else ''}")


def checkpoint_steps(job_id: int) -> list[int]:
    with db.session_scope() as session:
        return [c.step for c in training.checkpoints(session, job_id)]


def test_a_killed_worker_is_resumed_from_its_checkpoint_and_a_cancel_leaves_one(
        tiny_model: Path, owner: User, dataset_id: int, cpu_slot: None) -> None:
    job_id = new_job(owner, dataset_id, tiny_model, max_steps=400, save_steps=5, save_total_limit=2)
    assert scheduler.run_queue_once() == [job_id]
    first = wait_for(lambda j: j.pid is not None and bool(checkpoint_steps(j.id)), job_id, "saved a checkpoint")
    assert first.status == JobStatus.running and first.device == "cpu"
    os.kill(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
    scheduler._processes[job_id].wait()
    # What the resume starts from is the latest complete checkpoint on disk: the kill may land after a checkpoint was
    # written but before the database heard of it.
    saved = max(step for step, _ in checkpoints_of(training.job_dir(first)))
    assert saved >= max(checkpoint_steps(job_id))

    # The next look at the queue finds the worker gone, queues the job to resume, and starts it again at once.
    assert scheduler.run_queue_once() == [job_id]
    job = job_row(job_id)
    assert (job.status, job.attempts, job.resume) == (JobStatus.running, 1, True)
    log = training.log_path(job).read_text()
    assert "killed by signal SIGKILL" in log and "restart 1 of 1" in log

    # The second run starts from the checkpoint step, not from 0.
    resumed = wait_for(lambda j: j.run_started_at is not None and j.step > saved, job_id, "continued")
    assert resumed.run_start_step == saved

    with db.session_scope() as session:
        training.cancel_job(session, user=owner, job_id=job_id)
    cancelled = wait_for(lambda j: j.status != JobStatus.running, job_id, "stopped")
    assert cancelled.status == JobStatus.cancelled and cancelled.step < 400
    assert cancelled.step in checkpoint_steps(job_id)  # stopped after a final checkpoint at its step
    assert "resuming from checkpoint" in training.log_path(job).read_text()
    scheduler._processes[job_id].wait()
    assert scheduler._processes[job_id].returncode == 0
    with db.session_scope() as session:
        actions = {e.action for e in session.exec(select(AuditEvent)).all()}
    assert {"job.create", "job.cancel", "job.cancelled"} <= actions


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _running(job_id: int, *, attempts: int) -> None:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        job.status, job.pid, job.host, job.device, job.attempts = (
            JobStatus.running, _dead_pid(), training.this_host(), "cpu", attempts)
        job.step = 7
        session.commit()


def test_a_restarted_portal_resumes_jobs_whose_worker_is_gone(
        tiny_model: Path, owner: User, dataset_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_DEVICES", "none")  # reconcile only: nothing is started
    reset_settings()
    job_id = new_job(owner, dataset_id, tiny_model)
    _running(job_id, attempts=0)
    assert scheduler.run_queue_once() == []  # what the portal's first tick after a start does
    job = job_row(job_id)
    assert (job.status, job.resume, job.attempts, job.pid) == (JobStatus.queued, True, 1, None)
    assert "portal restarted or the worker was killed" in training.log_path(job).read_text()


def test_a_job_whose_worker_keeps_dying_fails_with_the_reason(
        tiny_model: Path, owner: User, dataset_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_DEVICES", "none")
    monkeypatch.setenv("TRAINING_MAX_RESTARTS", "2")
    reset_settings()
    job_id = new_job(owner, dataset_id, tiny_model)
    _running(job_id, attempts=2)
    scheduler.run_queue_once()
    job = job_row(job_id)
    assert job.status == JobStatus.failed and job.finished_at is not None
    assert "stopped unexpectedly" in job.error and "TRAINING_MAX_RESTARTS=2" in job.error  # type: ignore[operator]


def test_a_live_worker_of_another_job_is_not_taken_for_this_one(
        tiny_model: Path, owner: User, dataset_id: int) -> None:
    job_id = new_job(owner, dataset_id, tiny_model)
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        job.pid = os.getpid()  # alive, but pytest, not a worker of this job (a reused pid)
        assert not scheduler.worker_alive(job)
