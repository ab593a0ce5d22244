"""The queue's dispatching without real workers: a job scheduled for later waits, a second job waits while the only
slot is busy, a QLoRA job waits for a GPU slot, the device slots come from the GPUs found or `TRAINING_DEVICES`,
and a job whose worker is gone is requeued, failed or cancelled with an audit event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from backend import db
from backend.config import reset_settings
from backend.models.audit import AuditEvent
from backend.models.base import utcnow
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import User
from backend.services import devices, training
from jobs import scheduler
from tests.training.conftest import new_job


class FakeProcess:
    pid = 4_000_000  # no such process

    def poll(self) -> int | None:
        return None


@pytest.fixture
def one_cpu_slot(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """TRAINING_DEVICES=cpu and a launcher that starts nothing: yields the ids it was asked to start."""
    monkeypatch.setenv("TRAINING_DEVICES", "cpu")
    reset_settings()
    launched: list[int] = []

    def launch(job: TrainingJob) -> Any:
        launched.append(job.id)  # type: ignore[arg-type]
        return FakeProcess()

    monkeypatch.setattr(scheduler, "launch_worker", launch)
    yield launched
    reset_settings()


def job_row(job_id: int) -> TrainingJob:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def set_fields(job_id: int, **values: Any) -> None:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)
        session.commit()


def test_a_job_for_later_waits_and_a_second_job_waits_for_the_busy_slot(
        tiny_model: Path, owner: User, dataset_id: int, one_cpu_slot: list[int]) -> None:
    later = new_job(owner, dataset_id, tiny_model)
    set_fields(later, start_after=utcnow() + timedelta(hours=1))
    assert scheduler.dispatch_queued_jobs() == []  # its time has not come
    assert job_row(later).status == JobStatus.queued and one_cpu_slot == []

    first, second = new_job(owner, dataset_id, tiny_model), new_job(owner, dataset_id, tiny_model)
    assert scheduler.dispatch_queued_jobs() == [first]
    assert (job_row(first).status, job_row(first).device, job_row(first).pid) == (JobStatus.running, "cpu",
                                                                                  FakeProcess.pid)
    assert scheduler.dispatch_queued_jobs() == []  # the only slot is busy: the second job waits
    with db.session_scope() as session:
        assert [j.id for j in training.queue_order(session)] == [second, later]
        training.finish_job(session, job_id=first, status=JobStatus.succeeded, step=5)
    assert scheduler.dispatch_queued_jobs() == [second]  # the slot is free again

    set_fields(second, status=JobStatus.succeeded)
    set_fields(later, start_after=utcnow() - timedelta(seconds=1))
    assert scheduler.dispatch_queued_jobs() == [later]  # its time came
    assert one_cpu_slot == [first, second, later]


def test_a_qlora_job_waits_for_a_gpu_slot(tiny_model: Path, owner: User, dataset_id: int) -> None:
    qlora, lora = new_job(owner, dataset_id, tiny_model), new_job(owner, dataset_id, tiny_model)
    set_fields(qlora, method="qlora")  # queued where a GPU was (or on another machine)
    with db.session_scope() as session:
        claimed = training.claim_next_job(session, device="cpu")
        assert claimed is not None and claimed.id == lora  # the CPU slot skips the QLoRA job ahead of it
        assert training.claim_next_job(session, device="cpu") is None
        claimed = training.claim_next_job(session, device="cuda:0")
        assert claimed is not None and (claimed.id, claimed.device) == (qlora, "cuda:0")


def test_device_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    def slots(setting: str, *, gpus: int | None) -> list[str]:
        monkeypatch.setenv("TRAINING_DEVICES", setting)
        reset_settings()
        monkeypatch.setattr(devices, "_nvml_gpu_count", lambda: gpus)
        devices.cuda_device_count.cache_clear()
        return devices.training_slots()

    try:
        assert slots("auto", gpus=2) == ["cuda:0", "cuda:1"]  # one slot per GPU NVML finds
        assert slots("", gpus=1) == ["cuda:0"]
        assert slots("auto", gpus=0) == ["cpu"]  # no GPU: one CPU slot
        assert slots("0,1", gpus=0) == ["cuda:0", "cuda:1"]
        assert slots(" 1 , ", gpus=2) == ["cuda:1"]
        assert slots("none", gpus=2) == []  # this instance dispatches nothing
        assert slots("CPU", gpus=2) == ["cpu"]
    finally:
        devices.cuda_device_count.cache_clear()
        reset_settings()


def test_reconcile_requeues_fails_and_cancels_with_an_audit_event(
        tiny_model: Path, owner: User, dataset_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_MAX_RESTARTS", "1")
    reset_settings()
    requeued, failed, cancelled = (new_job(owner, dataset_id, tiny_model) for _ in range(3))
    for job_id, attempts in ((requeued, 0), (failed, 1), (cancelled, 0)):
        set_fields(job_id, status=JobStatus.running, host=training.this_host(), device="cpu", pid=4_000_000,
                   attempts=attempts, step=7)
    set_fields(cancelled, cancel_requested=True)
    with db.session_scope() as session:
        changed = training.reconcile(session, alive=lambda job: False, reason=lambda job: "killed by signal SIGKILL")
    assert sorted(j.id for j in changed) == sorted([requeued, failed, cancelled])  # type: ignore[type-var]
    assert [job_row(j).status for j in (requeued, failed, cancelled)] == [
        JobStatus.queued, JobStatus.failed, JobStatus.cancelled]
    with db.session_scope() as session:
        events = {e.target: e for e in session.exec(select(AuditEvent)).all() if e.action != "job.create"}
    assert {target: e.action for target, e in events.items()} == {
        f"job:{requeued}": "job.requeued", f"job:{failed}": "job.failed", f"job:{cancelled}": "job.cancelled"}
    assert all(e.user_id is None for e in events.values())  # the portal did it, not a user
    assert events[f"job:{requeued}"].detail == {"name": "tiny", "step": 7, "reason": "killed by signal SIGKILL",
                                                "attempt": 1, "limit": 1}
    assert "TRAINING_MAX_RESTARTS=1" in events[f"job:{failed}"].detail["error"]
    reset_settings()
