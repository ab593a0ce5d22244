"""`/api/v1/compare`: several models on one prompt, blind votes, the leaderboard, batches."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from backend.api.deps import ClientIp, CurrentUser, SessionDep
from backend.db import session_scope
from backend.errors import Invalid
from backend.models.compare import (
    BatchPublic,
    BatchRequest,
    CompareRequest,
    CompareRunPublic,
    CompareRunSummary,
    VoteRequest,
)
from backend.models.user import User
from backend.services import compare, prompt_lists

router = APIRouter(prefix="/compare", tags=["compare"])

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@router.post("", response_model=CompareRunPublic)
async def run_comparison(body: CompareRequest, user: CurrentUser) -> CompareRunPublic:
    """Calls the models concurrently and answers when all have finished (or failed: `error` in that result)."""
    return await compare.compare(user=user, data=body)


@router.get("")
def list_comparisons(user: CurrentUser, session: SessionDep) -> dict[str, list[CompareRunSummary]]:
    return {"data": compare.list_runs(session, user=user)}


@router.get("/leaderboard")
def leaderboard(_user: CurrentUser, session: SessionDep) -> dict[str, list[dict[str, Any]]]:
    """Models ranked by everyone's blind votes (Bradley–Terry, with 95 % bootstrap intervals)."""
    return {"data": [vars(r) for r in compare.leaderboard(session)]}


@router.post("/batches", status_code=status.HTTP_201_CREATED, response_model=BatchPublic)
async def start_batch(body: BatchRequest, user: CurrentUser) -> BatchPublic:
    """Runs `prompts` (or the prompts parsed from `text`, each with its own system prompt where the file gives one)
    against `models` in the background."""
    prompts: list[str] | list[prompt_lists.PromptLine] | None = body.prompts
    if prompts is None:
        lines, errors = prompt_lists.parse_prompts(body.text or "", filename=body.filename)
        if errors:
            first = errors[0]
            raise Invalid("Line {line}: {reason}", line=first.line, reason=first.text())
        prompts = lines
    job = await compare.start_batch(user=user, models=body.models, prompts=prompts, system=body.system,
                                    params=body.params, concurrency=body.concurrency)
    return await run_in_threadpool(_read_batch, user, job.batch_id)


def _read_batch(user: User, batch_id: int) -> BatchPublic:
    with session_scope() as session:
        return compare.read_batch(session, user=user, batch_id=batch_id)


@router.get("/batches")
def list_batches(user: CurrentUser, session: SessionDep) -> dict[str, list[BatchPublic]]:
    return {"data": compare.list_batches(session, user=user)}


@router.get("/batches/{batch_id}", response_model=BatchPublic)
def read_batch(batch_id: int, user: CurrentUser, session: SessionDep) -> BatchPublic:
    return compare.read_batch(session, user=user, batch_id=batch_id)


@router.post("/batches/{batch_id}/cancel")
def cancel_batch(batch_id: int, user: CurrentUser, session: SessionDep) -> dict[str, bool]:
    return {"cancelled": compare.cancel_batch(session, user=user, batch_id=batch_id)}


@router.get("/batches/{batch_id}/export")
def export_batch(batch_id: int, user: CurrentUser, session: SessionDep,
                 format: Literal["csv", "json"] = "csv") -> Response:
    filename, body = compare.export_batch(session, user=user, batch_id=batch_id, format=format)
    return _download(filename, body, format)


@router.get("/{run_id}", response_model=CompareRunPublic)
def read_comparison(run_id: int, user: CurrentUser, session: SessionDep) -> CompareRunPublic:
    return compare.read_run(session, user=user, run_id=run_id)


@router.post("/{run_id}/vote", response_model=CompareRunPublic)
def vote(run_id: int, body: VoteRequest, user: CurrentUser, session: SessionDep, ip: ClientIp) -> CompareRunPublic:
    """The verdict on a blind comparison (a: the first is better, b: the second, tie, both_bad); reveals the models."""
    return compare.vote(session, user=user, run_id=run_id, outcome=body.outcome, ip=ip)


@router.post("/{run_id}/stop")
async def stop(run_id: int, user: CurrentUser, position: int | None = None) -> dict[str, int]:
    """Stop one column (`position`) or all; what came is kept."""
    return {"stopped": await compare.stop(user=user, run_id=run_id, position=position)}


@router.get("/{run_id}/export")
def export_comparison(run_id: int, user: CurrentUser, session: SessionDep,
                      format: Literal["csv", "json"] = "csv") -> Response:
    filename, body = compare.export_run(session, user=user, run_id=run_id, format=format)
    return _download(filename, body, format)


def _download(filename: str, body: str, format: str) -> Response:
    return Response(body, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
