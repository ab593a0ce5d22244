"""Training runs in this process on a tiny model: LoRA learns and writes its adapter (and the merge), checkpoints
rotate, eval loss is measured, a stop leaves a checkpoint and a resume continues exactly where it stopped, and a
full fine-tune writes whole weights."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlmodel import select
from transformers import TrainerCallback

from backend import db
from backend.config import get_settings
from backend.models.training import JobStatus, TrainingJob, TrainingMetric
from backend.models.user import User
from backend.services import training
from jobs.recipes.train import checkpoints_of
from jobs.worker import run_job
from tests.training.conftest import new_job


def job_row(job_id: int) -> TrainingJob:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def metric_rows(job_id: int) -> list[TrainingMetric]:
    with db.session_scope() as session:
        query = select(TrainingMetric).where(TrainingMetric.job_id == job_id).order_by(TrainingMetric.step)
        return list(session.exec(query).all())


class StopDuring(TrainerCallback):
    """Asks for a stop while step N runs, as a cancel arriving then would: the run ends after step N."""

    def __init__(self, step: int, stop: threading.Event) -> None:
        self.step, self.stop = step, stop

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step + 1 >= self.step:
            self.stop.set()


def test_a_lora_run_lowers_the_loss_and_writes_its_adapter(tiny_model: Path, owner: User, dataset_id: int) -> None:
    job_id = new_job(owner, dataset_id, tiny_model, max_steps=30, learning_rate=5e-2, save_steps=10,
                     save_total_limit=2, eval_ratio=0.25)
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        job.merge = True  # type: ignore[union-attr]
        session.commit()
    assert run_job(job_id) == JobStatus.succeeded
    job = job_row(job_id)
    assert (job.status, job.step, job.total_steps, job.error) == (JobStatus.succeeded, 30, 30, None)

    rows = metric_rows(job_id)
    losses = [r.loss for r in rows if r.loss is not None]
    assert [r.step for r in rows if r.loss is not None] == list(range(1, 31))  # a row per logging step
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0, losses
    assert all(r.learning_rate is not None and r.grad_norm is not None for r in rows if r.loss is not None)
    assert [r.step for r in rows if r.eval_loss is not None] == [10, 20, 30]

    data_dir = get_settings().data_dir
    adapter = data_dir / job.output_path  # type: ignore[operator]
    assert job.output_path == f"training/{job_id}/adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert (data_dir / job.merged_path / "config.json").exists()  # type: ignore[operator]
    # Checkpoints every save_steps, only the last two kept, and the database says the same as the disk.
    on_disk = [step for step, _ in checkpoints_of(training.job_dir(job))]
    assert on_disk == [20, 30]
    with db.session_scope() as session:
        assert [c.step for c in training.read_job(session, user=owner, job_id=job_id).checkpoints] == [20, 30]


def test_a_stopped_run_resumes_where_it_stopped(tiny_model: Path, owner: User, dataset_id: int) -> None:
    params = {"max_steps": 8, "save_steps": 100, "lora_dropout": 0.0}
    straight = new_job(owner, dataset_id, tiny_model, **params)
    assert run_job(straight) == JobStatus.succeeded

    interrupted = new_job(owner, dataset_id, tiny_model, **params)
    stop = threading.Event()
    assert run_job(interrupted, stop=stop, callbacks=[StopDuring(3, stop)]) == JobStatus.cancelled
    job = job_row(interrupted)
    assert job.step == 3 and job.output_path is None
    assert [step for step, _ in checkpoints_of(training.job_dir(job))] == [3]  # the final checkpoint of a stop

    with db.session_scope() as session:
        training.resume_job(session, user=owner, job_id=interrupted)
    assert run_job(interrupted) == JobStatus.succeeded
    assert job_row(interrupted).step == 8
    # Steps 4 to 8 are those of the uninterrupted run: same optimizer state, learning-rate schedule and data order.
    before = {r.step: r for r in metric_rows(straight)}
    after = {r.step: r for r in metric_rows(interrupted)}
    assert sorted(after) == list(range(1, 9))
    for step in range(4, 9):
        assert abs(after[step].loss - before[step].loss) < 1e-4, step  # type: ignore[operator]
        assert abs(after[step].learning_rate - before[step].learning_rate) < 1e-9  # type: ignore[operator]


def test_a_full_fine_tune_writes_whole_weights(tiny_model: Path, owner: User, dataset_id: int) -> None:
    job_id = new_job(owner, dataset_id, tiny_model, max_steps=3, learning_rate=1e-3, packing=False)
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        job.method = "full"  # type: ignore[union-attr]
        session.commit()
    assert run_job(job_id) == JobStatus.succeeded
    output = get_settings().data_dir / job_row(job_id).output_path  # type: ignore[operator]
    assert output.name == "model" and (output / "model.safetensors").exists()
    assert (output / "tokenizer_config.json").exists()
