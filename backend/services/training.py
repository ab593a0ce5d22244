"""Training jobs: parameters and presets, base-model checks, the memory estimate, the queue and its state, metrics,
logs, cancel and resume, and the reconciliation of jobs whose worker is gone.

A job waits in the database (`queued`) until `jobs.scheduler` finds a free device slot, claims it (`claim_next_job`)
and starts `python -m jobs.worker JOB_ID`, which writes the job's progress, metrics and checkpoints back here.
Nothing here starts processes or imports torch: the portal stays light, and the same functions serve the pages, the
REST API, the scheduler and the worker.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from backend.config import get_settings
from backend.errors import Conflict, Invalid, NotFound
from backend.i18n import N_
from backend.models.base import utcnow
from backend.models.dataset import DatasetVersion
from backend.models.training import (
    ACTIVE,
    METHODS,
    CheckpointPublic,
    JobStatus,
    MetricPublic,
    TrainingCheckpoint,
    TrainingJob,
    TrainingJobCreate,
    TrainingJobPublic,
    TrainingMetric,
)
from backend.models.user import Role, User
from backend.services import audit, datasets, devices

log = logging.getLogger(__name__)

LOG_FILE = "train.log"
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
LOG_TAIL_BYTES = 64 * 1024

# --- parameters ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    help: str = ""  # a message id: what it does, for the wizard


PARAMS: dict[str, Param] = {
    "max_steps": Param(int, 0, 0, 1_000_000, N_("Optimizer steps to train; 0 lets the number of epochs decide.")),
    "epochs": Param(float, 3.0, 0.01, 100, N_("How many times the training rows are seen.")),
    "learning_rate": Param(float, 2e-4, 1e-8, 1.0, N_(
        "Step size of the optimizer. LoRA likes about 1e-4 to 3e-4, a full fine-tune about 1e-5.")),
    "batch_size": Param(int, 4, 1, 1024, N_(
        "Rows per step on the device. With packing a row holds up to max_length tokens of several samples.")),
    "grad_accum": Param(int, 4, 1, 1024, N_(
        "Steps whose gradients add up before the optimizer moves: a larger effective batch without more memory.")),
    "max_length": Param(int, 2048, 16, 131072, N_("Tokens per sample (longer ones are cut) and per packed row.")),
    "lora_rank": Param(int, 16, 1, 1024, N_("Rank of the LoRA matrices: larger learns more, costs more memory.")),
    "lora_alpha": Param(float, 32.0, 0.01, 4096, N_("LoRA scaling; usually twice the rank.")),
    "lora_dropout": Param(float, 0.05, 0.0, 0.9, N_("Dropout on the LoRA path, against overfitting small datasets.")),
    "target_modules": Param(list, None, help=N_(
        "Layers that get adapters, e.g. q_proj, v_proj; empty means every linear layer.")),
    "warmup_ratio": Param(float, 0.03, 0.0, 0.99, N_("Share of the steps over which the learning rate rises from 0.")),
    "scheduler": Param(str, "cosine", help=N_("How the learning rate falls: linear, cosine, constant or "
                                              "constant_with_warmup.")),
    "seed": Param(int, 42, 0, 2**31 - 1, N_("Seed of the shuffling and initialisation: the same seed, the same run.")),
    "save_steps": Param(int, 100, 1, 1_000_000, N_(
        "A checkpoint (and an evaluation) every this many steps: what a resume continues from.")),
    "save_total_limit": Param(int, 3, 1, 100, N_("Checkpoints kept; older ones are deleted.")),
    "eval_ratio": Param(float, None, 0.0, 0.5, N_(
        "Share of the rows held out to measure eval loss; empty uses the dataset version's own split.")),
    "packing": Param(bool, True, help=N_(
        "Pack several samples into each row without padding (each sample still sees only itself): much faster.")),
    "logging_steps": Param(int, 10, 1, 100_000, N_("Metrics are recorded every this many steps.")),
    "gradient_checkpointing": Param(bool, False, help=N_(
        "Recompute activations in the backward pass: far less memory, about a third slower.")),
}
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"full": {"learning_rate": 1e-5}}

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"max_steps": 60, "learning_rate": 3e-4, "lora_rank": 8, "lora_alpha": 16, "save_steps": 20,
              "logging_steps": 1},
    "balanced": {},
    "thorough": {"epochs": 5, "learning_rate": 1e-4, "lora_rank": 64, "lora_alpha": 128, "warmup_ratio": 0.05,
                 "save_steps": 200},
}
PRESET_LABELS = {"quick": N_("Quick try"), "balanced": N_("Balanced"), "thorough": N_("Thorough")}
PRESET_HELP = {
    "quick": N_("60 steps with a small adapter: checks that data and model work before a long run."),
    "balanced": N_("The defaults: three epochs of LoRA rank 16, a good first real run."),
    "thorough": N_("Five epochs with a large adapter and a gentle learning rate, for the final model."),
}


def default_params(method: str = "lora") -> dict[str, Any]:
    return {name: spec.default for name, spec in PARAMS.items()} | METHOD_DEFAULTS.get(method, {})


def _coerce(name: str, spec: Param, value: Any) -> Any:
    if value is None:
        return spec.default
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise Invalid("{name} must be true or false", name=name)
        return value
    if spec.kind is list:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise Invalid("{name} must be a list of layer names", name=name)
        return value or None
    if spec.kind is str:
        if name == "scheduler" and value not in SCHEDULERS:
            raise Invalid("scheduler must be one of {known}", known=", ".join(SCHEDULERS))
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("{name} must be a number", name=name)
    number: float = value
    if spec.kind is int:
        if float(value) != int(value):
            raise Invalid("{name} must be a whole number", name=name)
        number = int(value)
    else:
        number = float(value)
    if not math.isfinite(number) or (spec.low is not None and number < spec.low) or (
            spec.high is not None and number > spec.high):
        raise Invalid("{name} must be between {low} and {high}", name=name, low=spec.low, high=spec.high)
    return number


def clean_params(params: dict[str, Any] | None, *, method: str = "lora") -> dict[str, Any]:
    """Every parameter, checked, with the defaults for what was not given."""
    params = params or {}
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise Invalid("Unknown parameters: {names}; known are {known}", names=", ".join(sorted(unknown)),
                      known=", ".join(PARAMS))
    cleaned = default_params(method)
    for name, value in params.items():
        cleaned[name] = _coerce(name, PARAMS[name], value)
    return cleaned


# --- base models --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseModelInfo:
    path: str
    model_type: str
    parameters: int
    hidden_size: int
    layers: int
    vocab_size: int
    chat_template: bool
    dtype: str


def resolve_base_model(name: str) -> Path:
    """A local model directory, or the snapshot of a model id in the local Hugging Face cache (never downloaded)."""
    name = name.strip()
    if not name:
        raise Invalid("Choose a base model: a local directory or a model id in the Hugging Face cache")
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise Invalid("{path} has no config.json: not a model directory", path=name)
        return local.resolve()
    if local.is_absolute() or name.startswith((".", "~")):
        raise Invalid("No model directory at {path}", path=name)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError):
        raise Invalid("{name} is neither a model directory nor in the local Hugging Face cache (nothing is "
                      "downloaded: fetch it first, e.g. hf download {name})", name=name) from None


@lru_cache(maxsize=32)
def _inspect(path: str, mtime: float) -> BaseModelInfo:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise Invalid("The model's config does not load: {error}", error=str(error)[:300]) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        raise Invalid("The model's tokenizer does not load: {error}", error=str(error)[:300]) from None
    try:
        with torch.device("meta"):  # the shapes, without memory or time
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as error:
        raise Invalid("Not a causal language model that transformers can train: {error}",
                      error=str(error)[:300]) from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return BaseModelInfo(
        path=path, model_type=str(config.model_type),
        parameters=sum(p.numel() for p in model.parameters()),
        hidden_size=int(getattr(text, "hidden_size", 0) or 0),
        layers=int(getattr(text, "num_hidden_layers", 0) or 0),
        vocab_size=int(getattr(text, "vocab_size", 0) or 0),
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
        dtype=str(getattr(config, "dtype", None) or "float32").removeprefix("torch."),
    )


def inspect_base_model(name: str) -> BaseModelInfo:
    """Check that a base model's config and tokenizer load, and what it is (slow the first time: imports torch)."""
    path = resolve_base_model(name)
    return _inspect(str(path), (path / "config.json").stat().st_mtime)


# --- memory estimate ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float  # bytes
    trainable_parameters: int
    gradients_and_optimizer: float
    activations: float
    total: float


def estimate_memory(info: BaseModelInfo, *, method: str, params: dict[str, Any], cuda: bool = True
                    ) -> MemoryEstimate:
    """A rough peak of device memory: weights, gradients and AdamW states of what trains, and activations of one
    micro-batch. Good to about ±30 %: enough to pick a method and batch size, not to promise a fit."""
    params = clean_params(params, method=method) if set(params) != set(PARAMS) else params
    compute_bytes = 2 if cuda else 4  # bf16 on a GPU, fp32 on a CPU
    hidden, layers = max(info.hidden_size, 1), max(info.layers, 1)
    if method == "full":
        trainable = info.parameters
        weights: float = info.parameters * 4  # fp32 master weights
        states = trainable * (4 + 8)  # gradients, AdamW's two moments
    else:
        # LoRA on every linear layer of a transformer block: about 7 matrices of hidden × hidden-ish shapes.
        per_layer = 7 * int(params["lora_rank"]) * (hidden + hidden * 2)
        trainable = per_layer * layers
        weights = info.parameters * (0.55 if method == "qlora" else compute_bytes)
        states = trainable * (4 + 4 + 8)  # fp32 adapter weights, gradients, AdamW moments
    tokens = int(params["batch_size"]) * int(params["max_length"])
    per_token_layer = 2 * hidden * (4 if params.get("gradient_checkpointing") else 18)
    activations = tokens * layers * per_token_layer * (compute_bytes / 2)
    activations += tokens * max(info.vocab_size, 1) * 4 * 2  # logits and their gradient in fp32
    overhead = 0.5 * 2**30 if cuda else 0  # CUDA context and allocator slack
    total = weights + states + activations + overhead
    return MemoryEstimate(weights=weights, trainable_parameters=trainable, gradients_and_optimizer=states,
                          activations=activations, total=total)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise Invalid("Unknown method {method}: use lora, qlora or full", method=method)
    if method == "qlora" and (reason := devices.qlora_unavailable_reason()):
        raise Invalid(reason)


def estimate(*, base_model: str, method: str, params: dict[str, Any] | None) -> tuple[BaseModelInfo, MemoryEstimate]:
    """Check a base model and estimate what a job with these settings needs (the wizard's memory estimate)."""
    if method not in METHODS:
        raise Invalid("Unknown method {method}: use lora, qlora or full", method=method)
    cleaned = clean_params(params, method=method)
    info = inspect_base_model(base_model)
    cuda = devices.cuda_device_count() > 0 or method == "qlora"
    return info, estimate_memory(info, method=method, params=cleaned, cuda=cuda)


# --- jobs ---------------------------------------------------------------------------------------------------------

_queue_listeners: list[Callable[[], None]] = []


def on_queue_changed(listener: Callable[[], None]) -> None:
    """The scheduler asks to be told when a job is queued, so that it need not wait for its next look."""
    if listener not in _queue_listeners:
        _queue_listeners.append(listener)


def _queue_changed() -> None:
    for listener in list(_queue_listeners):
        try:
            listener()
        except Exception:  # the job is queued either way; the scheduler's next look finds it
            log.exception("queue listener failed")


def job_dir(job: TrainingJob) -> Path:
    return get_settings().data_dir / job.output_dir


def log_path(job: TrainingJob) -> Path:
    return job_dir(job) / LOG_FILE


def as_utc(moment: datetime | None) -> datetime | None:
    """A time without a timezone is taken as UTC (as the API and the wizard say)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def create_job(session: Session, *, user: User, data: TrainingJobCreate, ip: str | None = None) -> TrainingJob:
    name = data.name.strip()
    if not name or len(name) > 200:
        raise Invalid("A job needs a name of at most 200 characters")
    check_method(data.method)
    params = clean_params(data.params, method=data.method)
    version = datasets.get_version(session, user=user, dataset_id=data.dataset_id, version=data.dataset_version)
    if not datasets.version_file(version).exists():
        raise Invalid("The rows of dataset version {version} are missing", version=version.version)
    info = inspect_base_model(data.base_model)
    if data.merge and data.method == "full":
        raise Invalid("Only a LoRA or QLoRA adapter can be merged: a full fine-tune is already a whole model")
    job = TrainingJob(
        user_id=user.id,  # type: ignore[arg-type]
        name=name, base_model=data.base_model.strip(), base_model_path=info.path,
        dataset_id=version.dataset_id, dataset_version=version.version, method=data.method, params=params,
        merge=data.merge, start_after=as_utc(data.start_after),
        total_steps=_steps_estimate(version, params),
    )
    session.add(job)
    session.flush()
    job.output_dir = f"training/{job.id}"
    job_dir(job).mkdir(parents=True, exist_ok=True)
    audit.record(session, action="job.create", user=user, target=f"job:{job.id}", ip=ip,
                 detail={"name": name, "method": data.method, "base_model": job.base_model,
                         "dataset_id": job.dataset_id, "dataset_version": job.dataset_version})
    session.commit()
    _queue_changed()
    return job


def _steps_estimate(version: DatasetVersion, params: dict[str, Any]) -> int:
    """Before the worker has tokenized the data: a guess from the row count (packing makes it lower)."""
    if params["max_steps"]:
        return int(params["max_steps"])
    rows = max(version.rows - version.validation_rows, 1)
    return max(1, math.ceil(rows / params["batch_size"] / params["grad_accum"] * params["epochs"]))


def get_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    """Owners (and admins) only; anyone else learns nothing, not even that it exists."""
    job = session.get(TrainingJob, job_id)
    if job is None or (job.user_id != user.id and user.role != Role.admin):
        raise NotFound("No such training job")
    return job


def list_jobs(session: Session, *, user: User, status: str | None = None) -> list[TrainingJob]:
    """The user's jobs (every job for an admin), newest first."""
    query = select(TrainingJob)
    if user.role != Role.admin:
        query = query.where(TrainingJob.user_id == user.id)
    if status:
        if status not in JobStatus.__members__:
            raise Invalid("Unknown status {status}", status=status)
        query = query.where(TrainingJob.status == JobStatus(status))
    return list(session.exec(query.order_by(col(TrainingJob.created_at).desc(), col(TrainingJob.id).desc())).all())


def queue_order(session: Session) -> list[TrainingJob]:
    """Queued jobs in the order they will start: by when they may start (scheduled ones from their time), then id."""
    queued = session.exec(select(TrainingJob).where(TrainingJob.status == JobStatus.queued)).all()
    return sorted(queued, key=lambda j: (j.start_after or j.created_at, j.id or 0))


def eta_seconds(job: TrainingJob, *, now: datetime | None = None) -> float | None:
    """Time left at the pace of the current run (from its first step, so that loading the model does not count)."""
    if job.status != JobStatus.running or job.run_started_at is None or job.total_steps <= 0:
        return None
    done = job.step - job.run_start_step
    if done <= 0:
        return None
    elapsed = ((now or utcnow()) - job.run_started_at).total_seconds()
    return max(0.0, elapsed / done * (job.total_steps - job.step))


def checkpoints(session: Session, job_id: int) -> list[TrainingCheckpoint]:
    query = select(TrainingCheckpoint).where(TrainingCheckpoint.job_id == job_id)
    return list(session.exec(query.order_by(col(TrainingCheckpoint.step))).all())


def job_public(session: Session, job: TrainingJob, *, positions: dict[int, int] | None = None,
               owners: dict[int, str] | None = None) -> TrainingJobPublic:
    if positions is None:
        queued = queue_order(session) if job.status == JobStatus.queued else []
        positions = {j.id or 0: n for n, j in enumerate(queued, 1)}
    owner = (owners or {}).get(job.user_id)
    if owner is None:
        found = session.get(User, job.user_id)
        owner = found.username if found else ""
    return TrainingJobPublic(
        id=job.id,  # type: ignore[arg-type]
        name=job.name, owner=owner, base_model=job.base_model, dataset_id=job.dataset_id,
        dataset_version=job.dataset_version, method=job.method, params=dict(job.params), merge=job.merge,
        status=job.status, step=job.step, total_steps=job.total_steps, epoch=job.epoch,
        queue_position=positions.get(job.id) if job.id is not None else None, eta_seconds=eta_seconds(job),
        device=job.device, attempts=job.attempts, cancel_requested=job.cancel_requested,
        checkpoints=[CheckpointPublic(step=c.step, path=c.path, created_at=c.created_at)
                     for c in checkpoints(session, job.id)],  # type: ignore[arg-type]
        output_dir=job.output_dir, output_path=job.output_path, merged_path=job.merged_path, error=job.error,
        start_after=job.start_after, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at,
    )


def list_public(session: Session, *, user: User, status: str | None = None) -> list[TrainingJobPublic]:
    jobs = list_jobs(session, user=user, status=status)
    positions = {j.id or 0: n for n, j in enumerate(queue_order(session), 1)}
    owners = {u.id or 0: u.username for u in session.exec(select(User).where(
        col(User.id).in_({j.user_id for j in jobs}))).all()}
    return [job_public(session, j, positions=positions, owners=owners) for j in jobs]  # type: ignore[arg-type]


def read_job(session: Session, *, user: User, job_id: int) -> TrainingJobPublic:
    return job_public(session, get_job(session, user=user, job_id=job_id))


def metrics(session: Session, *, user: User, job_id: int, since_step: int | None = None) -> list[MetricPublic]:
    """The metrics of every logging step, in step order (`since_step`: only later ones, for live updates)."""
    get_job(session, user=user, job_id=job_id)
    query = select(TrainingMetric).where(TrainingMetric.job_id == job_id)
    if since_step is not None:
        query = query.where(TrainingMetric.step > since_step)
    rows = session.exec(query.order_by(col(TrainingMetric.step), col(TrainingMetric.id))).all()
    return [MetricPublic.model_validate(r, from_attributes=True) for r in rows]


def read_log(session: Session, *, user: User, job_id: int, tail_bytes: int = LOG_TAIL_BYTES) -> str:
    """The end of the job's log (stdout and stderr of its worker runs)."""
    return tail(log_path(get_job(session, user=user, job_id=job_id)), tail_bytes)


def tail(path: Path, size: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        length = file.tell()
        file.seek(max(0, length - size))
        data = file.read()
    if length > size:  # start at a whole line
        data = data.split(b"\n", 1)[-1]
    return data.decode("utf-8", errors="replace")


def append_log(job: TrainingJob, line: str) -> None:
    """A line from the portal in the job's log (why it was requeued or failed), beside the worker's output."""
    path = log_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(f"[portal {utcnow():%Y-%m-%d %H:%M:%S}] {line}\n")


def cancel_job(session: Session, *, user: User, job_id: int, ip: str | None = None) -> TrainingJob:
    """A queued job is cancelled at once; a running one is asked to stop, and does after its next step and a final
    checkpoint (its worker sets `cancelled`)."""
    job = get_job(session, user=user, job_id=job_id)
    if job.status not in ACTIVE:
        raise Conflict("Job {name} has already ended ({status})", name=job.name, status=job.status.value)
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
    else:
        job.cancel_requested = True
    job.updated_at = utcnow()
    session.add(job)
    audit.record(session, action="job.cancel", user=user, target=f"job:{job.id}", ip=ip, detail={"name": job.name})
    session.commit()
    return job


def resume_job(session: Session, *, user: User, job_id: int, ip: str | None = None) -> TrainingJob:
    """Queue a failed or cancelled job again; its worker continues from the latest checkpoint (steps, optimizer,
    learning-rate schedule and data order), or starts over when there is none."""
    job = get_job(session, user=user, job_id=job_id)
    if job.status not in (JobStatus.failed, JobStatus.cancelled):
        raise Conflict("Only a failed or cancelled job can be resumed; {name} is {status}", name=job.name,
                       status=job.status.value)
    if job.dataset_id is None:
        raise Conflict("The dataset of {name} has been deleted", name=job.name)
    job.status = JobStatus.queued
    job.resume = True
    job.cancel_requested = False
    job.attempts = 0
    job.error = None
    job.finished_at = None
    job.start_after = None
    job.updated_at = utcnow()
    session.add(job)
    audit.record(session, action="job.resume", user=user, target=f"job:{job.id}", ip=ip,
                 detail={"name": job.name, "step": job.step})
    session.commit()
    append_log(job, f"resume requested by {user.username}")
    _queue_changed()
    return job


# Called with a job about to be deleted (by itself or with its owner): refuse with a DomainError, or delete what
# hangs on it. Deployments register theirs.
BEFORE_DELETE: list[Callable[[Session, TrainingJob], None]] = []


def delete_job(session: Session, *, user: User, job_id: int, ip: str | None = None) -> None:
    """A job that has ended, with its files (checkpoints, adapter, log)."""
    job = get_job(session, user=user, job_id=job_id)
    if job.status in ACTIVE:
        raise Conflict("Job {name} is {status}: cancel it first", name=job.name, status=job.status.value)
    for check in BEFORE_DELETE:
        check(session, job)
    folder = job_dir(job)
    audit.record(session, action="job.delete", user=user, target=f"job:{job.id}", ip=ip, detail={"name": job.name})
    for table in (TrainingMetric, TrainingCheckpoint):
        for row in session.exec(select(table).where(table.job_id == job.id)).all():  # type: ignore[attr-defined]
            session.delete(row)
    session.delete(job)
    session.commit()
    if job.output_dir and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def jobs_using_dataset(session: Session, dataset_id: int) -> int:
    """How many jobs wait for or train on the dataset (it must not be deleted while any does)."""
    query = select(func.count()).select_from(TrainingJob).where(
        TrainingJob.dataset_id == dataset_id, col(TrainingJob.status).in_(list(ACTIVE)))
    return int(session.exec(query).one())


# --- the scheduler's side -----------------------------------------------------------------------------------------


def this_host() -> str:
    return socket.gethostname()


def running_jobs(session: Session) -> list[TrainingJob]:
    return list(session.exec(select(TrainingJob).where(TrainingJob.status == JobStatus.running)).all())


def claim_next_job(session: Session, *, device: str) -> TrainingJob | None:
    """Take the first queued job that may start now for `device`: marked running there, in one conditional update
    so that a job is never claimed twice."""
    now = utcnow()
    for job in queue_order(session):
        if job.start_after is not None and job.start_after > now:
            continue
        if job.method == "qlora" and not device.startswith("cuda"):
            continue  # waits for a GPU slot
        claimed = session.exec(update(TrainingJob).where(  # type: ignore[call-overload]
            col(TrainingJob.id) == job.id, col(TrainingJob.status) == JobStatus.queued).values(
            status=JobStatus.running, device=device, host=this_host(), pid=None, updated_at=now,
            started_at=job.started_at or now, run_started_at=None))
        session.commit()
        if claimed.rowcount == 1:
            session.refresh(job)
            return job
    return None


def set_pid(session: Session, *, job_id: int, pid: int) -> None:
    session.exec(update(TrainingJob).where(col(TrainingJob.id) == job_id).values(pid=pid))  # type: ignore[call-overload]
    session.commit()


def reconcile(session: Session, *, alive: Callable[[TrainingJob], bool],
              reason: Callable[[TrainingJob], str] | None = None) -> list[TrainingJob]:
    """Running jobs of this host whose worker is gone (killed, crashed, or the portal restarted and it died with the
    machine) are queued again to resume from their latest checkpoint, up to `TRAINING_MAX_RESTARTS` times; then
    they fail with the reason. A job that was being cancelled is simply cancelled. Returns the jobs it changed."""
    limit = get_settings().training_max_restarts
    changed = []
    for job in running_jobs(session):
        if job.host not in (None, this_host()) or alive(job):
            continue
        why = reason(job) if reason else "its process is gone"
        now = utcnow()
        detail: dict[str, Any]
        if job.cancel_requested:
            job.status = JobStatus.cancelled
            job.finished_at = now
            append_log(job, f"the worker ended while stopping ({why}): cancelled")
            action, detail = "job.cancelled", {"reason": why}
        elif job.attempts < limit:
            job.status = JobStatus.queued
            job.resume = True
            job.attempts += 1
            append_log(job, f"the worker stopped unexpectedly ({why}) at step {job.step}; resuming from the latest "
                            f"checkpoint (restart {job.attempts} of {limit})")
            action, detail = "job.requeued", {"reason": why, "attempt": job.attempts, "limit": limit}
        else:
            job.status = JobStatus.failed
            job.finished_at = now
            job.error = (f"The worker stopped unexpectedly ({why}) and was restarted {job.attempts} times, "
                         f"the limit (TRAINING_MAX_RESTARTS={limit})")
            append_log(job, job.error)
            action, detail = "job.failed", {"error": job.error}
        # The portal acts here, not a user: no actor, as for the worker's own ends (finish_job).
        audit.record(session, action=action, target=f"job:{job.id}",
                     detail={"name": job.name, "step": job.step, **detail})
        job.pid = None
        job.device = None
        job.updated_at = now
        session.add(job)
        changed.append(job)
    session.commit()
    if any(j.status == JobStatus.queued for j in changed):
        _queue_changed()
    return changed


# --- the worker's side --------------------------------------------------------------------------------------------


def start_run(session: Session, *, job_id: int, pid: int, step: int, total_steps: int) -> None:
    """The worker has loaded everything and is at `step`: the ETA counts from here."""
    session.exec(update(TrainingJob).where(col(TrainingJob.id) == job_id).values(  # type: ignore[call-overload]
        pid=pid, step=step, run_start_step=step, run_started_at=utcnow(), total_steps=total_steps,
        updated_at=utcnow()))
    session.commit()


def record_progress(session: Session, *, job_id: int, step: int, epoch: float, total_steps: int) -> bool:
    """The worker's step; returns whether it is asked to stop."""
    session.exec(update(TrainingJob).where(col(TrainingJob.id) == job_id).values(  # type: ignore[call-overload]
        step=step, epoch=epoch, total_steps=total_steps, updated_at=utcnow()))
    session.commit()
    return bool(session.exec(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id)).one())


def record_metric(session: Session, *, job_id: int, step: int, values: dict[str, float | None]) -> None:
    """One logging step's metrics; an evaluation at the same step joins its row."""
    row = session.exec(select(TrainingMetric).where(TrainingMetric.job_id == job_id,
                                                    TrainingMetric.step == step)).first()
    if row is None:
        row = TrainingMetric(job_id=job_id, step=step)
    for key, value in values.items():
        if value is not None:
            setattr(row, key, value)
    session.add(row)
    session.commit()


def record_checkpoints(session: Session, *, job: TrainingJob, found: list[tuple[int, Path]]) -> None:
    """The checkpoints on disk now (older ones were rotated away)."""
    base = get_settings().data_dir
    existing = {c.step: c for c in checkpoints(session, job.id)}  # type: ignore[arg-type]
    steps = {step for step, _ in found}
    for step, row in existing.items():
        if step not in steps:
            session.delete(row)
    for step, path in found:
        if step not in existing:
            relative = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
            session.add(TrainingCheckpoint(job_id=job.id, step=step, path=relative))  # type: ignore[arg-type]
    session.commit()


def finish_job(session: Session, *, job_id: int, status: JobStatus, step: int | None = None,
               output: Path | None = None, merged: Path | None = None, error: str | None = None) -> None:
    job = session.get(TrainingJob, job_id)
    if job is None:
        return
    base = get_settings().data_dir
    job.status = status
    job.finished_at = utcnow()
    job.updated_at = job.finished_at
    job.cancel_requested = False
    job.resume = False
    if step is not None:
        job.step = step
    if output is not None:
        job.output_path = str(output.relative_to(base))
    if merged is not None:
        job.merged_path = str(merged.relative_to(base))
    job.error = error[:4000] if error else None
    audit.record(session, action=f"job.{status.value}", target=f"job:{job.id}",
                 detail={"name": job.name, "step": job.step, **({"error": job.error} if job.error else {})})
    session.add(job)
    session.commit()


# Deleting a dataset is refused while a job waits for or trains on it.
if jobs_using_dataset not in datasets.IN_USE_CHECKS:
    datasets.IN_USE_CHECKS.append(jobs_using_dataset)
