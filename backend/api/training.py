"""`/api/v1/training`: fine-tuning jobs in a queue, their metrics, logs, cancel and resume."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import PlainTextResponse
from sqlmodel import SQLModel

from backend.api.deps import ClientIp, CurrentUser, SessionDep
from backend.models.training import METHODS, MetricPublic, TrainingJobCreate, TrainingJobPublic
from backend.services import devices, training

router = APIRouter(prefix="/training", tags=["training"])


class EstimateRequest(SQLModel):
    base_model: str
    method: str = "lora"
    params: dict[str, Any] | None = None


@router.get("/jobs")
def list_jobs(user: CurrentUser, session: SessionDep, status: str | None = None) -> dict[str, list[TrainingJobPublic]]:
    """Your jobs (every job for an admin), newest first, with the queue position of those waiting."""
    return {"data": training.list_public(session, user=user, status=status)}


@router.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=TrainingJobPublic)
def create_job(body: TrainingJobCreate, user: CurrentUser, session: SessionDep, ip: ClientIp) -> TrainingJobPublic:
    """Queue a job. The base model (a local directory or a model id in the local Hugging Face cache) is checked at
    once: its config and tokenizer must load. `start_after` (ISO 8601) keeps it queued until then; a time without a
    timezone is taken as UTC."""
    job = training.create_job(session, user=user, data=body, ip=ip)
    return training.job_public(session, job)


@router.get("/jobs/{job_id}", response_model=TrainingJobPublic)
def get_job(job_id: int, user: CurrentUser, session: SessionDep) -> TrainingJobPublic:
    return training.read_job(session, user=user, job_id=job_id)


@router.get("/jobs/{job_id}/metrics")
def get_metrics(job_id: int, user: CurrentUser, session: SessionDep,
                since_step: int | None = None) -> dict[str, list[MetricPublic]]:
    """A row per logging step: loss, learning rate, grad norm, tokens/s, epoch, and eval loss where evaluated."""
    return {"data": training.metrics(session, user=user, job_id=job_id, since_step=since_step)}


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
def get_logs(job_id: int, user: CurrentUser, session: SessionDep,
             tail: int = Query(default=training.LOG_TAIL_BYTES, ge=1, le=10 * 2**20)) -> str:
    """The end of the job's log: the output of its worker runs and the portal's notes (`tail` bytes)."""
    return training.read_log(session, user=user, job_id=job_id, tail_bytes=tail)


@router.post("/jobs/{job_id}/cancel", response_model=TrainingJobPublic)
def cancel_job(job_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> TrainingJobPublic:
    """A queued job is cancelled at once; a running one stops after its current step and a final checkpoint."""
    return training.job_public(session, training.cancel_job(session, user=user, job_id=job_id, ip=ip))


@router.post("/jobs/{job_id}/resume", response_model=TrainingJobPublic)
def resume_job(job_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> TrainingJobPublic:
    """Queue a failed or cancelled job again; it continues from its latest checkpoint."""
    return training.job_public(session, training.resume_job(session, user=user, job_id=job_id, ip=ip))


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> Response:
    """A job that has ended, with its checkpoints, output and log."""
    training.delete_job(session, user=user, job_id=job_id, ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/options")
def options(user: CurrentUser) -> dict[str, Any]:
    """What the wizard offers: methods (and why QLoRA is unavailable here), parameters with their defaults and
    explanations, presets, and the device slots of the queue."""
    return {
        "methods": list(METHODS),
        "qlora_unavailable": devices.qlora_unavailable_reason(),
        "params": {name: {"default": spec.default, "min": spec.low, "max": spec.high, "help": spec.help}
                   for name, spec in training.PARAMS.items()},
        "presets": training.PRESETS,
        "devices": devices.training_slots(),
    }


@router.post("/estimate")
def estimate(body: EstimateRequest, user: CurrentUser) -> dict[str, Any]:
    """Check a base model (config and tokenizer load) and estimate the device memory a job would need."""
    info, memory = training.estimate(base_model=body.base_model, method=body.method, params=body.params)
    return {"model": info.__dict__, "memory": memory.__dict__}
