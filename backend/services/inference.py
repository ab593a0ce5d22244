"""Calling a model: the request from a model's defaults, a cached client per provider, timing and usage.

Chat, compare and the gateway all stream through `stream_completion`, so every call is timed and recorded the
same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
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
# first token down; a changed key or URL is a different config, hence a new client.
_clients: OrderedDict[tuple[int, str, ProviderConfig], BaseClient] = OrderedDict()


def client_for(kind: str, config: ProviderConfig) -> BaseClient:
    key = (id(asyncio.get_running_loop()), kind, config)
    client = _clients.get(key)
    if client is None:
        client = make_client(kind, config)
        _clients[key] = client
        while len(_clients) > _CLIENT_CACHE_SIZE:
            _, old = _clients.popitem(last=False)
            asyncio.get_running_loop().create_task(old.aclose())
    else:
        _clients.move_to_end(key)
    return client


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
        # Written in a worker thread: the answer is delivered already, the loop has other streams to serve.
        _record_later(user_id=user_id, model=resolved.public.id, source=source, metrics=metrics, status=status,
                      error=error_text)


_TOKENS = (TextDelta, ReasoningDelta, Reclassify)
_pending: set[asyncio.Future[None]] = set()


def _record_later(**usage: Any) -> None:
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(record_usage, **usage))
    _pending.add(future)
    future.add_done_callback(_pending.discard)


async def flush_usage() -> None:
    """Wait for usage rows still being written (tests, shutdown)."""
    if _pending:
        await asyncio.gather(*list(_pending))


def record_usage(
    *, user_id: int | None, model: str, source: str, metrics: CallMetrics, status: str, error: str | None
) -> None:
    # One small insert: cheaper to do here than to hand to a thread, and it must not be lost.
    try:
        with session_scope() as session:
            session.add(UsageRecord(
                user_id=user_id, model=model, source=source, input_tokens=metrics.input_tokens,
                output_tokens=metrics.output_tokens, ttft_ms=metrics.ttft_ms, total_ms=metrics.total_ms,
                status=status, error=(error or "")[:500] or None,
            ))
            session.commit()
    except Exception:  # a usage row must never turn a delivered answer into a failure
        log.exception("could not record usage for %s", model)
