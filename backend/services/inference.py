"""Calling a model: the request from a model's defaults, a cached client per provider, timing and usage.

Chat, compare and the gateway all stream through `stream_completion`, so every call is timed and recorded the
same way.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from backend.db import session_scope
from backend.models.provider import UsageRecord
from backend.providers.base import (
    BaseClient,
    ChatRequest,
    Finish,
    ProviderConfig,
    ProviderError,
    ReasoningDelta,
    Reclassify,
    StreamEvent,
    TextDelta,
    Usage,
)
from backend.providers.registry import make_client
from backend.services.providers import ResolvedModel

log = logging.getLogger(__name__)

_CLIENT_CACHE_SIZE = 64
# (event loop, kind, config) → client: connections are reused between calls, which keeps the time to the
# first token down; a changed key or URL is a different config, hence a new client. A client belongs to the loop it
# was made on (its connections do), so the loop is kept (weakly) with it and checked: a loop's id may be reused.
_clients: OrderedDict[tuple[int, str, ProviderConfig],
                      tuple[weakref.ref[asyncio.AbstractEventLoop], BaseClient]] = OrderedDict()
_closing: set[asyncio.Task[None]] = set()


def client_for(kind: str, config: ProviderConfig) -> BaseClient:
    loop = asyncio.get_running_loop()
    key = (id(loop), kind, config)
    entry = _clients.get(key)
    if entry is not None and entry[0]() is loop:
        _clients.move_to_end(key)
        return entry[1]
    if entry is not None:  # the client of an ended loop whose id this one reuses
        _abandon(entry[1])
    client = make_client(kind, config)
    _clients[key] = (weakref.ref(loop), client)
    _clients.move_to_end(key)
    while len(_clients) > _CLIENT_CACHE_SIZE:
        _, (owner, old) = _clients.popitem(last=False)
        if owner() is loop:
            task = loop.create_task(old.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        else:  # the client of another loop cannot be closed from here; its loop has most likely ended
            _abandon(old)
    return client


def _abandon(client: BaseClient) -> None:
    """Let go of a client whose event loop is gone: its connections belong to that loop and cannot be closed from
    another. Its HTTP client is marked closed, so that the SDK's finalizer does not schedule a close on whatever loop
    runs when it is collected (that close fails with "Event loop is closed", logged as an error by that loop); the
    sockets close when their objects are collected."""
    http = getattr(getattr(client, "_client", None), "_client", None)
    state = getattr(http, "_state", None)
    if state is not None and hasattr(type(state), "CLOSED"):
        http._state = type(state).CLOSED  # type: ignore[union-attr]


async def close_clients() -> None:
    """Close the clients made on the running event loop (at shutdown): their connections belong to it, and a client
    left open would try to close itself later on whatever loop then runs."""
    loop = asyncio.get_running_loop()
    for key, (owner, client) in list(_clients.items()):
        if owner() is loop:
            del _clients[key]
            try:
                await client.aclose()
            except Exception:  # closing is best effort; a failure here must not stop the shutdown
                log.exception("could not close the client for %s", key[2].name)


def build_request(
    resolved: ResolvedModel,
    messages: list[dict[str, str]],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
) -> ChatRequest:
    """A request for `resolved`, with the admin's default parameters where the caller sets none."""
    defaults = resolved.public.default_params
    return ChatRequest(
        model=resolved.public.model_id,
        messages=messages,
        temperature=temperature if temperature is not None else defaults.get("temperature"),
        top_p=top_p if top_p is not None else defaults.get("top_p"),
        max_tokens=max_tokens if max_tokens is not None else defaults.get("max_tokens"),
        reasoning="reasoning" in resolved.public.capabilities,
    )


@dataclass
class CallMetrics:
    """What one call measured, filled in while it streams."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None

    @property
    def ttft_ms(self) -> int | None:
        return None if self.first_token_at is None else round((self.first_token_at - self.started) * 1000)

    @property
    def total_ms(self) -> int | None:
        return None if self.finished_at is None else round((self.finished_at - self.started) * 1000)

    @property
    def tokens_per_s(self) -> float | None:
        if self.first_token_at is None or self.finished_at is None or not self.output_tokens:
            return None
        seconds = self.finished_at - self.first_token_at
        return round(self.output_tokens / seconds, 1) if seconds > 0 else None


async def stream_completion(
    resolved: ResolvedModel, request: ChatRequest, *, user_id: int | None, source: str,
    metrics: CallMetrics | None = None,
) -> AsyncIterator[StreamEvent]:
    """Stream from the model; however the stream ends (finished, failed, cancelled), its usage is recorded."""
    metrics = metrics or CallMetrics()
    status, error_text = "ok", None
    client = client_for(resolved.kind, resolved.config)
    try:
        async for event in client.stream_chat(request):
            if metrics.first_token_at is None and isinstance(event, _TOKENS):
                metrics.first_token_at = time.perf_counter()
            elif isinstance(event, Usage):
                metrics.input_tokens, metrics.output_tokens = event.input_tokens, event.output_tokens
            elif isinstance(event, Finish):
                metrics.finish_reason = event.reason
            yield event
    except ProviderError as error:
        status, error_text = "error", str(error)
        raise
    except (asyncio.CancelledError, GeneratorExit):
        status = "cancelled"
        raise
    finally:
        metrics.finished_at = time.perf_counter()
        # Written by the usage writer's thread: the answer is delivered already, the loop has other streams to serve.
        _record_later(user_id=user_id, model=resolved.public.id, source=source, metrics=metrics, status=status,
                      error=error_text)


_TOKENS = (TextDelta, ReasoningDelta, Reclassify)


class _UsageWriter:
    """Usage rows are written by one thread of their own, each time all that have come meanwhile in one
    transaction: fifty answers that end together cost one commit, not fifty (and no thread hop each)."""

    def __init__(self) -> None:
        self.rows: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.waiting = 0  # rows queued or being written
        self.thread: threading.Thread | None = None

    def put(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.waiting += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
                self.thread.start()
        self.rows.put(row)

    def _run(self) -> None:
        while True:
            batch = [self.rows.get()]
            while True:
                try:
                    batch.append(self.rows.get_nowait())
                except queue.Empty:
                    break
            try:
                record_usage_rows(batch)
            finally:
                with self.lock:
                    self.waiting -= len(batch)
                    if not self.waiting:
                        self.idle.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        with self.lock:
            return self.idle.wait_for(lambda: not self.waiting, timeout)


_writer = _UsageWriter()
atexit.register(_writer.wait, 10)  # rows of answers that ended just before shutdown


def _record_later(**usage: Any) -> None:
    _writer.put(usage)


async def flush_usage() -> None:
    """Wait for usage rows still being written (tests, shutdown)."""
    if _writer.waiting:
        await asyncio.get_running_loop().run_in_executor(None, _writer.wait)


def record_usage(
    *, user_id: int | None, model: str, source: str, metrics: CallMetrics, status: str, error: str | None
) -> None:
    record_usage_rows([{"user_id": user_id, "model": model, "source": source, "metrics": metrics,
                        "status": status, "error": error}])


def _usage_record(*, user_id: int | None, model: str, source: str, metrics: CallMetrics, status: str,
                  error: str | None) -> UsageRecord:
    return UsageRecord(
        user_id=user_id, model=model, source=source, input_tokens=metrics.input_tokens,
        output_tokens=metrics.output_tokens, ttft_ms=metrics.ttft_ms, total_ms=metrics.total_ms,
        status=status, error=(error or "")[:500] or None,
    )


def record_usage_rows(rows: list[dict[str, Any]]) -> None:
    """Insert usage rows in one transaction; should that fail, one by one, so that one bad row loses no other."""
    try:
        with session_scope() as session:
            session.add_all([_usage_record(**row) for row in rows])
            session.commit()
        return
    except Exception:
        if len(rows) == 1:  # a usage row must never turn a delivered answer into a failure
            log.exception("could not record usage for %s", rows[0]["model"])
            return
    for row in rows:
        record_usage_rows([row])
