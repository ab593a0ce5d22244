"""Training jobs, their metrics per logging step, and their checkpoints."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

METHODS = ("lora", "qlora", "full")


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = (JobStatus.queued, JobStatus.running)
FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class TrainingJob(SQLModel, table=True):
    """A fine-tuning run. Its files (checkpoints, the final adapter or weights, `train.log`) are under
    `DATA_DIR/<output_dir>`; the worker process that runs it (`python -m jobs.worker ID`) writes its progress here."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    base_model: str = Field(max_length=500)  # as the user gave it: a local directory or a Hugging Face model id
    base_model_path: str = Field(default="", max_length=1000)  # the directory it resolved to
    # The dataset may be deleted once no job waits for or runs on it; the job keeps its history.
    dataset_id: int | None = Field(default=None, foreign_key="dataset.id", index=True, ondelete="SET NULL")
    dataset_version: int = 0
    method: str = Field(max_length=16)  # lora, qlora, full
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    merge: bool = False  # merge a LoRA adapter into its base after training

    status: JobStatus = Field(default=JobStatus.queued, max_length=16, index=True)
    start_after: datetime | None = None  # queued, but not dispatched before this time
    resume: bool = False  # the next run continues from the latest checkpoint
    cancel_requested: bool = False
    attempts: int = 0  # automatic resumes after the worker died
    device: str | None = Field(default=None, max_length=32)  # "cpu", "cuda:0", ... while running
    pid: int | None = None
    host: str | None = Field(default=None, max_length=255)

    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    output_dir: str = Field(default="", max_length=500)  # relative to DATA_DIR
    output_path: str | None = Field(default=None, max_length=500)  # the final adapter or model, relative to DATA_DIR
    merged_path: str | None = Field(default=None, max_length=500)
    error: str | None = Field(default=None, sa_column=Column(Text))

    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None  # of the first run
    run_started_at: datetime | None = None  # of the current run (and the step it started at, for the ETA)
    run_start_step: int = 0
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class TrainingMetric(SQLModel, table=True):
    __table_args__ = (Index("ix_trainingmetric_job_step", "job_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="trainingjob.id", ondelete="CASCADE")
    step: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    eval_loss: float | None = None
    time: datetime = Field(default_factory=utcnow)


class TrainingCheckpoint(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="trainingjob.id", index=True, ondelete="CASCADE")
    step: int
    path: str = Field(max_length=500)  # relative to DATA_DIR
    created_at: datetime = Field(default_factory=utcnow)


# --- what the API takes and returns -------------------------------------------------------------------------------


class TrainingJobCreate(SQLModel):
    name: str
    base_model: str
    dataset_id: int
    dataset_version: int | None = None  # the latest when not given
    method: str = "lora"
    params: dict[str, Any] | None = None
    merge: bool = False
    start_after: datetime | None = None


class CheckpointPublic(SQLModel):
    step: int
    path: str
    created_at: datetime


class TrainingJobPublic(SQLModel):
    id: int
    name: str
    owner: str
    base_model: str
    dataset_id: int | None
    dataset_version: int
    method: str
    params: dict[str, Any]
    merge: bool
    status: JobStatus
    step: int
    total_steps: int
    epoch: float
    queue_position: int | None = None  # 1 is next, while queued
    eta_seconds: float | None = None  # while running
    device: str | None
    attempts: int
    cancel_requested: bool
    checkpoints: list[CheckpointPublic]
    output_dir: str
    output_path: str | None
    merged_path: str | None
    error: str | None
    start_after: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class MetricPublic(SQLModel):
    step: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    eval_loss: float | None = None
    time: datetime
