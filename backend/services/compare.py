"""Comparisons: one prompt sent to several models at once, each answer streamed in its own column.

Every column is a `LiveAnswer` written by a task of its own, so a slow or failing model never holds up the others,
and each can be stopped alone. Blind runs hide the two models' names until the user votes; the votes of everyone
make the leaderboard. Batches run a list of prompts against the same models, a limited number of calls at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import random
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from backend.db import session_scope
from backend.errors import Conflict, DomainError, Invalid, NotFound
from backend.i18n import N_, gettext
from backend.models.base import utcnow
from backend.models.compare import (
    BatchPublic,
    CompareBatch,
    CompareRequest,
    CompareResult,
    CompareResultPublic,
    CompareRun,
    CompareRunPublic,
    CompareRunSummary,
    CompareVote,
    ModelAverages,
)
from backend.models.provider import Provider, ProviderModel
from backend.models.user import Role, User
from backend.providers.base import ProviderError
from backend.services import audit, inference, limits, providers, ratings
from backend.services.answers import LiveAnswer
from backend.services.chat import clean_params
from backend.services.prompt_lists import PromptLine

log = logging.getLogger(__name__)

MIN_MODELS, MAX_MODELS = 2, 4
BLIND_LABELS = ("Model A", "Model B")
BATCH_UNEXPECTED = N_("An unexpected error stopped the batch ({kind}); the log has the details")


@dataclass(kw_only=True)
class Column(LiveAnswer):
    """One model's answer in a comparison."""

    run_id: int
    result_id: int
    position: int


@dataclass
class Comparison:
    run_id: int
    blind: bool
    columns: list[Column]
    watcher: asyncio.Task[None] | None = None  # forgets the comparison once every column is written

    async def wait(self) -> None:
        await asyncio.gather(*(c.task for c in self.columns if c.task is not None), return_exceptions=True)

    @property
    def finished(self) -> bool:
        return all(c.finished for c in self.columns)


_running: dict[int, Comparison] = {}  # run id → the comparison still being written


def running(run_id: int) -> Comparison | None:
    return _running.get(run_id)


# --- starting ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    run_id: int
    columns: list[tuple[int, providers.ResolvedModel]]  # result id, model
    messages: list[dict[str, str]]
    params: dict[str, Any]


def _check_models(models: Sequence[str], *, least: int = MIN_MODELS) -> list[str]:
    chosen = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if not least <= len(chosen) <= MAX_MODELS:
        raise Invalid("Choose {least} to {most} different models", least=least, most=MAX_MODELS)
    return chosen


def _prepare(session: Session, *, user: User, data: CompareRequest, batch_id: int | None = None,
             least: int = MIN_MODELS) -> _Prepared:
    """Check and store a run. A comparison is one request against the user's rate; a prompt of a batch is not (the
    batch was counted as one when it started), but every call of either uses tokens of the daily quota."""
    prompt = data.prompt.strip()
    if not prompt:
        raise Invalid("A prompt cannot be empty")
    models = _check_models(data.models, least=least)
    if data.blind and len(models) != 2:
        raise Invalid("A blind comparison takes exactly two models")
    params = clean_params(data.params)
    resolved = [providers.resolve_model(session, model_ref=m) for m in models]
    if batch_id is None:
        limits.check(session, user=user, kind="compare")  # 429 past the user's rate or daily token quota
    else:
        limits.check_quota(session, user=user)
    if data.blind:
        random.shuffle(resolved)  # which side a model lands on must tell nothing
    run = CompareRun(user_id=user.id, batch_id=batch_id, prompt=prompt, system_prompt=(data.system or "").strip()  # type: ignore[arg-type]
                     or None, params=params, blind=data.blind)
    session.add(run)
    session.flush()
    results = [CompareResult(run_id=run.id, position=i, model=r.public.id) for i, r in enumerate(resolved)]  # type: ignore[arg-type]
    session.add_all(results)
    session.commit()
    messages = ([{"role": "system", "content": run.system_prompt}] if run.system_prompt else []) + [
        {"role": "user", "content": prompt}]
    return _Prepared(run_id=run.id, columns=[(r.id, m) for r, m in zip(results, resolved, strict=True)],  # type: ignore[arg-type,misc]
                     messages=messages, params=params)


def _prepare_in_session(**kwargs: Any) -> _Prepared:
    with session_scope() as session:
        return _prepare(session, **kwargs)


def _never_started(prepared: _Prepared) -> None:
    with session_scope() as session:
        for result_id, _model in prepared.columns:
            result = session.get(CompareResult, result_id)
            if result is not None and result.status == "streaming":
                result.status = "cancelled"
                session.add(result)
        session.commit()


async def start_compare(*, user: User, data: CompareRequest, batch_id: int | None = None,
                        limit: asyncio.Semaphore | None = None, least: int = MIN_MODELS) -> Comparison:
    """Store the run and call every model at once; returns at once with the live columns."""
    preparing = asyncio.ensure_future(run_in_threadpool(_prepare_in_session, user=user, data=data,
                                                        batch_id=batch_id, least=least))
    try:
        prepared = await asyncio.shield(preparing)
    except asyncio.CancelledError:
        # Cancelled (a batch stopping) while the thread stores the run: let it finish, so that the run's rows are
        # in before whoever cancelled looks for what is left running, then end them as never started.
        with contextlib.suppress(Exception):
            prepared = await preparing
            await asyncio.shield(run_in_threadpool(_never_started, prepared))
        raise
    comparison = Comparison(run_id=prepared.run_id, blind=data.blind, columns=[])
    loop = asyncio.get_running_loop()
    for position, (result_id, resolved) in enumerate(prepared.columns):
        column = Column(model=resolved.public.id, run_id=prepared.run_id, result_id=result_id, position=position)
        request = inference.build_request(resolved, prepared.messages, temperature=prepared.params.get("temperature"),
                                          top_p=prepared.params.get("top_p"),
                                          max_tokens=prepared.params.get("max_tokens"))
        column.task = loop.create_task(_write(column, resolved, request, user_id=user.id, limit=limit))
        comparison.columns.append(column)
    _running[comparison.run_id] = comparison
    comparison.watcher = loop.create_task(_forget_when_done(comparison))
    return comparison


async def _write(column: Column, resolved: providers.ResolvedModel, request: Any, *, user_id: int | None,
                 limit: asyncio.Semaphore | None) -> None:
    try:
        if limit is not None:
            async with limit:
                await _stream(column, resolved, request, user_id=user_id)
        else:
            await _stream(column, resolved, request, user_id=user_id)
    except asyncio.CancelledError:  # stopped while waiting for its turn
        column.status = "cancelled"
    stored = None
    try:
        stored = await asyncio.shield(run_in_threadpool(_save_result, column))
    except (Exception, asyncio.CancelledError):
        log.exception("could not save the comparison result %s", column.result_id)
    column.finish(stored)


async def _stream(column: Column, resolved: providers.ResolvedModel, request: Any, *, user_id: int | None) -> None:
    column.metrics = inference.CallMetrics()  # timed from the call, not from the wait for a free slot
    stream = inference.stream_completion(resolved, request, user_id=user_id, source="compare", metrics=column.metrics)
    await column.consume(stream)


async def _forget_when_done(comparison: Comparison) -> None:
    await comparison.wait()
    await asyncio.sleep(0)  # the columns' last events are out
    _running.pop(comparison.run_id, None)


def _save_result(column: Column) -> CompareResultPublic | None:
    with session_scope() as session:
        result = session.get(CompareResult, column.result_id)
        if result is None:  # deleted meanwhile
            return None
        metrics = column.metrics
        result.text, result.reasoning = column.answer, column.reasoning or None
        result.status, result.error = column.status, (column.error or "")[:1000] or None
        result.ttft_ms, result.total_ms, result.reasoning_ms = metrics.ttft_ms, metrics.total_ms, column.reasoning_ms()
        if metrics.output_tokens or metrics.input_tokens:
            result.input_tokens, result.output_tokens = metrics.input_tokens, metrics.output_tokens
        session.add(result)
        session.commit()
        run = session.get(CompareRun, result.run_id)
        hide = bool(run and run.blind)
        return result_public(result, hide=hide, names=_display_names(session, [result.model]) if hide else None)


async def compare(*, user: User, data: CompareRequest) -> CompareRunPublic:
    """Call the models at once and return when every one has answered (or failed)."""
    comparison = await start_compare(user=user, data=data)
    await comparison.wait()
    return await run_in_threadpool(_read, user, comparison.run_id)


def _read(user: User, run_id: int) -> CompareRunPublic:
    with session_scope() as session:
        return read_run(session, user=user, run_id=run_id)


async def stop(*, user: User, run_id: int, position: int | None = None) -> int:
    """Stop one column (or all): what came is kept. Returns how many were stopped."""
    await run_in_threadpool(_read, user, run_id)  # owners only
    comparison = _running.get(run_id)
    if comparison is None:
        return 0
    stopped = [c for c in comparison.columns if (position is None or c.position == position) and not c.finished]
    for column in stopped:
        column.cancel()
    await asyncio.gather(*(c.task for c in stopped if c.task is not None), return_exceptions=True)
    return len(stopped)


def mark_interrupted(session: Session) -> None:
    """At start-up: columns and batches that were running when the portal stopped are marked so."""
    for result in session.exec(select(CompareResult).where(CompareResult.status == "streaming")).all():
        result.status = "interrupted"
        session.add(result)
    for batch in session.exec(select(CompareBatch).where(CompareBatch.status == "running")).all():
        batch.status, batch.finished_at = "interrupted", utcnow()
        session.add(batch)
    session.commit()


# --- reading ----------------------------------------------------------------------------------------------------


def tokens_per_second(output_tokens: int | None, ttft_ms: int | None, total_ms: int | None) -> float | None:
    if not output_tokens or ttft_ms is None or total_ms is None or total_ms <= ttft_ms:
        return None
    return round(output_tokens / ((total_ms - ttft_ms) / 1000), 1)


def result_public(result: CompareResult, *, hide: bool, names: dict[str, str] | None = None) -> CompareResultPublic:
    """A result as users see it; hidden (a blind run before its vote), its model is "Model A" or "Model B", in its
    error too (a provider's message names the provider, sometimes the model). `names`: display names by model."""
    label = BLIND_LABELS[result.position] if hide else result.model
    error = result.error
    if hide and error:
        error = mask_model(error, model=result.model, label=label, display_name=(names or {}).get(result.model))
    return CompareResultPublic(
        position=result.position, model=label, text=result.text,
        reasoning=result.reasoning, ttft_ms=result.ttft_ms, total_ms=result.total_ms, reasoning_ms=result.reasoning_ms,
        output_tokens=result.output_tokens,
        tokens_per_s=tokens_per_second(result.output_tokens, result.ttft_ms, result.total_ms),
        status=result.status, error=error,
    )


def mask_model(text: str, *, model: str, label: str, display_name: str | None = None) -> str:
    """`text` with every mention of the model (its public id, provider name, model id, display name) as `label`."""
    provider, _, model_id = model.partition("/")
    names = sorted({n for n in (model, model_id, display_name, provider) if n and n.strip()}, key=len, reverse=True)
    if not names:
        return text
    pattern = "|".join(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in names)  # whole names, longest first
    return re.sub(pattern, label, text, flags=re.IGNORECASE)


def _display_names(session: Session, models: Sequence[str]) -> dict[str, str]:
    """Display names of these public model ids, where an admin gave one."""
    names = {}
    for model in models:
        provider, _, model_id = model.partition("/")
        found = session.exec(select(ProviderModel.display_name)
                             .join(Provider, col(Provider.id) == ProviderModel.provider_id)
                             .where(Provider.name == provider, ProviderModel.model_id == model_id)).first()
        if found:
            names[model] = found
    return names


def _get_run(session: Session, *, user: User, run_id: int) -> CompareRun:
    run = session.get(CompareRun, run_id)
    if run is None or (run.user_id != user.id and user.role != Role.admin):
        raise NotFound("No such comparison")
    return run


def _results(session: Session, run_id: int) -> list[CompareResult]:
    query = select(CompareResult).where(CompareResult.run_id == run_id).order_by(col(CompareResult.position))
    return list(session.exec(query).all())


def _vote_of(session: Session, run_id: int) -> CompareVote | None:
    return session.exec(select(CompareVote).where(CompareVote.run_id == run_id)).first()


def read_run(session: Session, *, user: User, run_id: int) -> CompareRunPublic:
    """A run with its results; in a blind run the models are "Model A" and "Model B" until it is voted on."""
    run = _get_run(session, user=user, run_id=run_id)
    vote = _vote_of(session, run_id) if run.blind else None
    hide = run.blind and vote is None
    stored = _results(session, run_id)
    names = _display_names(session, [r.model for r in stored if r.error]) if hide else None
    results = [result_public(r, hide=hide, names=names) for r in stored]
    return CompareRunPublic(id=run_id, prompt=run.prompt, models=[r.model for r in results], blind=run.blind,
                            vote=vote.outcome if vote else None, created_at=run.created_at, system=run.system_prompt,
                            params=dict(run.params), results=results)


def list_runs(session: Session, *, user: User, limit: int = 100) -> list[CompareRunSummary]:
    """The user's comparisons (not the prompts of batches), newest first."""
    runs = session.exec(select(CompareRun).where(CompareRun.user_id == user.id, col(CompareRun.batch_id).is_(None))
                        .order_by(col(CompareRun.id).desc()).limit(limit)).all()
    ids = [r.id for r in runs]
    results: dict[int, list[str]] = {}
    for result in session.exec(select(CompareResult).where(col(CompareResult.run_id).in_(ids))
                               .order_by(col(CompareResult.position))).all():
        results.setdefault(result.run_id, []).append(result.model)
    votes = {v.run_id: v.outcome for v in session.exec(select(CompareVote).where(col(CompareVote.run_id).in_(ids)))}
    summaries = []
    for run in runs:
        hide = run.blind and run.id not in votes
        models = list(BLIND_LABELS) if hide else results.get(run.id, [])  # type: ignore[arg-type]
        summaries.append(CompareRunSummary(id=run.id, prompt=run.prompt, models=models, blind=run.blind,  # type: ignore[arg-type]
                                           vote=votes.get(run.id), created_at=run.created_at))  # type: ignore[arg-type]
    return summaries


# --- votes and the leaderboard ----------------------------------------------------------------------------------


def vote(session: Session, *, user: User, run_id: int, outcome: str, ip: str | None = None) -> CompareRunPublic:
    """The user's verdict on a blind run, which reveals the models. One vote per run, once both answers are in."""
    if outcome not in ("a", "b", "tie", "both_bad"):
        raise Invalid("A vote is one of a, b, tie, both_bad")
    run = _get_run(session, user=user, run_id=run_id)
    if run.user_id != user.id:
        raise NotFound("No such comparison")
    if not run.blind:
        raise Invalid("Only blind comparisons are voted on")
    if _vote_of(session, run_id) is not None:
        raise Conflict("This comparison has been voted on already")
    results = _results(session, run_id)
    if len(results) != 2 or any(r.status == "streaming" for r in results):
        raise Conflict("Wait until both answers are complete")
    session.add(CompareVote(run_id=run_id, user_id=user.id, model_a=results[0].model,  # type: ignore[arg-type]
                            model_b=results[1].model, outcome=outcome))
    audit.record(session, action="compare.vote", user=user, target=f"comparison:{run_id}", ip=ip,
                 detail={"outcome": outcome})
    session.commit()
    return read_run(session, user=user, run_id=run_id)


def leaderboard(session: Session) -> list[ratings.Rating]:
    """Every user's blind votes, as ratings with confidence intervals."""
    votes = [ratings.PairVote(v.model_a, v.model_b, v.outcome)  # type: ignore[arg-type]
             for v in session.exec(select(CompareVote).order_by(col(CompareVote.id))).all()]
    return ratings.leaderboard(votes)


# --- batches ----------------------------------------------------------------------------------------------------


@dataclass
class BatchJob:
    batch_id: int
    total: int
    done: int = 0
    status: str = "running"
    error: str | None = None  # why a batch that failed stopped
    task: asyncio.Task[None] | None = None
    comparisons: list[Comparison] = field(default_factory=list)


_batches: dict[int, BatchJob] = {}


def running_batch(batch_id: int) -> BatchJob | None:
    return _batches.get(batch_id)


def _create_batch(*, user: User, models: list[str], prompts: list[PromptLine], system: str | None,
                  params: dict[str, Any], concurrency: int) -> int:
    with session_scope() as session:
        for model in models:
            providers.resolve_model(session, model_ref=model)  # unknown models are refused before anything runs
        limits.check(session, user=user, kind="compare")  # the whole batch is one request against the rate
        batch = CompareBatch(user_id=user.id, models=models, system_prompt=system, params=params,  # type: ignore[arg-type]
                             concurrency=concurrency, total=len(prompts))
        session.add(batch)
        session.flush()
        audit.record(session, action="compare.batch", user=user, target=f"batch:{batch.id}",
                     detail={"models": models, "prompts": len(prompts)})
        session.commit()
        return batch.id  # type: ignore[return-value]


def _prompt_lines(prompts: Sequence[str | PromptLine]) -> list[PromptLine]:
    lines = [p if isinstance(p, PromptLine) else PromptLine(i + 1, p) for i, p in enumerate(prompts) if p]
    return [PromptLine(line.line, line.prompt.strip(), (line.system or "").strip() or None) for line in lines
            if line.prompt and line.prompt.strip()]


async def start_batch(*, user: User, models: Sequence[str], prompts: Sequence[str | PromptLine],
                      system: str | None = None, params: dict[str, Any] | None = None,
                      concurrency: int = 4) -> BatchJob:
    """Run every prompt against every model, at most `concurrency` calls at once, in the background. A prompt given
    as a `PromptLine` with a system prompt of its own is sent with it instead of `system`."""
    chosen = _check_models(models, least=1)
    lines = _prompt_lines(prompts)
    if not lines:
        raise Invalid("The batch has no prompts")
    if not 1 <= concurrency <= 16:
        raise Invalid("Concurrency is between {low} and {high}", low=1, high=16)
    params = clean_params(params)
    system = (system or "").strip() or None
    batch_id = await run_in_threadpool(_create_batch, user=user, models=chosen, prompts=lines, system=system,
                                       params=params, concurrency=concurrency)
    job = BatchJob(batch_id=batch_id, total=len(lines))
    _batches[batch_id] = job
    job.task = asyncio.get_running_loop().create_task(
        _run_batch(job, user=user, models=chosen, prompts=lines, system=system, params=params,
                   concurrency=concurrency))
    return job


async def _run_batch(job: BatchJob, *, user: User, models: list[str], prompts: list[PromptLine],
                     system: str | None, params: dict[str, Any], concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)  # calls in flight, shared by every column of every prompt
    prompts_in_flight = asyncio.Semaphore(concurrency)  # a prompt is stored only when its calls can soon start

    async def one(line: PromptLine) -> None:
        async with prompts_in_flight:
            await answer(line)

    async def answer(line: PromptLine) -> None:
        data = CompareRequest(prompt=line.prompt, models=models, system=line.system or system, params=params)
        comparison = await start_compare(user=user, data=data, batch_id=job.batch_id, limit=limit, least=1)
        job.comparisons.append(comparison)
        await comparison.wait()
        job.done += 1

    try:
        # Prompts are taken in order, a few at a time; `limit` (shared by every column) bounds the calls in flight.
        # A prompt that cannot start (the daily quota used up, a model gone) stops the others: the group cancels them.
        async with asyncio.TaskGroup() as group:
            for line in prompts:
                group.create_task(one(line))
        job.status = "done"
    except asyncio.CancelledError:
        job.status = "cancelled"
    except Exception as failure:
        job.status, job.error = "failed", _why(failure, job.batch_id)
    finally:
        await asyncio.shield(_stop_columns(job))
        await asyncio.shield(run_in_threadpool(_finish_batch, job))
        _batches.pop(job.batch_id, None)


def _why(failure: BaseException, batch_id: int) -> str:
    """What to tell the user about a batch's failure: the first cause, as the service or provider worded it."""
    while isinstance(failure, BaseExceptionGroup) and failure.exceptions:
        failure = failure.exceptions[0]
    if isinstance(failure, DomainError | ProviderError):
        return failure.translated()
    log.error("batch %s failed", batch_id, exc_info=failure)
    return gettext(BATCH_UNEXPECTED, kind=type(failure).__name__)


async def _stop_columns(job: BatchJob) -> None:
    """Every column of the batch still running is cancelled, and written, before the batch is."""
    columns = [c for comparison in job.comparisons for c in comparison.columns if not c.finished]
    for column in columns:
        column.cancel()
    await asyncio.gather(*(c.task for c in columns if c.task is not None), return_exceptions=True)


def _finish_batch(job: BatchJob) -> None:
    with session_scope() as session:
        batch = session.get(CompareBatch, job.batch_id)
        if batch is not None:
            batch.done, batch.status, batch.finished_at = job.done, job.status, utcnow()
            batch.error = (job.error or "")[:1000] or None
            session.add(batch)
            session.commit()


def cancel_batch(session: Session, *, user: User, batch_id: int) -> bool:
    _get_batch(session, user=user, batch_id=batch_id)
    job = _batches.get(batch_id)
    if job is None or job.task is None:
        return False
    job.task.cancel()
    return True


def _get_batch(session: Session, *, user: User, batch_id: int) -> CompareBatch:
    batch = session.get(CompareBatch, batch_id)
    if batch is None or (batch.user_id != user.id and user.role != Role.admin):
        raise NotFound("No such batch")
    return batch


def _batch_rows(session: Session, batch_id: int) -> list[tuple[CompareRun, CompareResult]]:
    query = (select(CompareRun, CompareResult).join(CompareResult, col(CompareResult.run_id) == CompareRun.id)
             .where(CompareRun.batch_id == batch_id).order_by(col(CompareRun.id), col(CompareResult.position)))
    return list(session.exec(query).all())  # type: ignore[arg-type]


def _mean(values: Iterable[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 1) if present else None


def averages(results: Sequence[CompareResult], models: Sequence[str]) -> list[ModelAverages]:
    """Per model: answers, errors, and the mean of each metric over the answers that completed."""
    table = []
    for model in models:
        mine = [r for r in results if r.model == model]
        ok = [r for r in mine if r.status == "done"]
        table.append(ModelAverages(
            model=model, answers=len(ok), errors=sum(r.status == "error" for r in mine),
            ttft_ms=_mean(r.ttft_ms for r in ok), total_ms=_mean(r.total_ms for r in ok),
            output_tokens=_mean(r.output_tokens for r in ok),
            tokens_per_s=_mean(tokens_per_second(r.output_tokens, r.ttft_ms, r.total_ms) for r in ok),
        ))
    return table


def read_batch(session: Session, *, user: User, batch_id: int) -> BatchPublic:
    batch = _get_batch(session, user=user, batch_id=batch_id)
    job = _batches.get(batch_id)
    results = [result for _, result in _batch_rows(session, batch_id)]
    return BatchPublic(id=batch_id, models=list(batch.models), status=job.status if job else batch.status,
                       total=batch.total, done=job.done if job else batch.done, concurrency=batch.concurrency,
                       created_at=batch.created_at, finished_at=batch.finished_at,
                       error=(job.error if job else None) or batch.error, averages=averages(results, batch.models))


def list_batches(session: Session, *, user: User, limit: int = 50) -> list[BatchPublic]:
    batches = session.exec(select(CompareBatch).where(CompareBatch.user_id == user.id)
                           .order_by(col(CompareBatch.id).desc()).limit(limit)).all()
    return [read_batch(session, user=user, batch_id=b.id) for b in batches]  # type: ignore[arg-type]


# --- export -----------------------------------------------------------------------------------------------------

EXPORT_FIELDS = ["prompt", "model", "text", "reasoning", "ttft_ms", "total_ms", "output_tokens", "tokens_per_s",
                 "status", "error"]


def _export(rows: list[dict[str, Any]], *, name: str, format: str) -> tuple[str, str]:
    if format == "json":
        return f"{name}.json", json.dumps(rows, ensure_ascii=False, indent=2)
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return f"{name}.csv", out.getvalue()
    raise Invalid("Unknown export format {format}: use csv or json", format=format)


def _row(prompt: str, result: CompareResultPublic) -> dict[str, Any]:
    return {"prompt": prompt, **result.model_dump(include=set(EXPORT_FIELDS))}


def export_run(session: Session, *, user: User, run_id: int, format: str) -> tuple[str, str]:
    """A comparison as CSV or JSON: one row per model. `(filename, content)`."""
    run = read_run(session, user=user, run_id=run_id)
    return _export([_row(run.prompt, r) for r in run.results], name=f"comparison-{run_id}", format=format)


def export_batch(session: Session, *, user: User, batch_id: int, format: str) -> tuple[str, str]:
    """Every answer of a batch, one row per prompt and model."""
    _get_batch(session, user=user, batch_id=batch_id)
    rows = [_row(run.prompt, result_public(result, hide=False)) for run, result in _batch_rows(session, batch_id)]
    return _export(rows, name=f"batch-{batch_id}", format=format)
