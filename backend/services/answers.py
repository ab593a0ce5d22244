"""An answer being written by a model, live: its text and reasoning so far, its timings, and whoever listens.

Chat (one answer per message) and compare (one per column) both stream through a `LiveAnswer`: a task of its own
consumes the model's stream, and any number of listeners (a page, an SSE response) follow it from its first event,
however late they arrive. A listener that leaves stops listening, not the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.providers.base import ProviderError, ReasoningDelta, Reclassify, StreamEvent, TextDelta
from backend.services.inference import CallMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerEvent:
    kind: Literal["text", "reasoning", "reclassify", "done", "error"]
    text: str = ""
    to: str | None = None  # for "reclassify": "reasoning" or "answer"
    message: Any = None  # for "done" and "error": what was stored (chat: the message; compare: the result)


@dataclass(kw_only=True)
class LiveAnswer:
    model: str
    answer: str = ""
    reasoning: str = ""
    status: str = "streaming"  # then done, error or cancelled
    error: str | None = None
    metrics: CallMetrics = field(default_factory=CallMetrics)
    chunks: int = 0  # pieces of answer or reasoning received: a live estimate of the tokens until usage arrives
    started: float = field(default_factory=time.monotonic)
    reasoning_started: float | None = None
    reasoning_ended: float | None = None  # the answer began: "thought for N s"
    task: asyncio.Task[None] | None = None
    _log: list[AnswerEvent] = field(default_factory=list)
    _listeners: list[asyncio.Queue[AnswerEvent]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self._log) and self._log[-1].kind in ("done", "error")

    def publish(self, event: AnswerEvent) -> None:
        self._timed(event.kind, event.to)
        self._log.append(event)
        for queue in self._listeners:
            queue.put_nowait(event)

    async def events(self) -> AsyncIterator[AnswerEvent]:
        """Every event of this answer, from its first (a listener may arrive late), to `done` or `error`."""
        queue: asyncio.Queue[AnswerEvent] = asyncio.Queue()
        for event in self._log:
            queue.put_nowait(event)
        self._listeners.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.kind in ("done", "error"):
                    return
        finally:
            self._listeners.remove(queue)

    def take(self, event: StreamEvent) -> None:
        """One event of the model's stream: add it to the answer or the reasoning, and tell the listeners."""
        if isinstance(event, TextDelta):
            self.answer += event.text
            self.chunks += 1
            self.publish(AnswerEvent("text", event.text))
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
            self.chunks += 1
            self.publish(AnswerEvent("reasoning", event.text))
        elif isinstance(event, Reclassify):
            if event.to == "reasoning":  # a lone </think>: the answer so far was reasoning
                self.answer, self.reasoning = "", event.text + self.reasoning
            else:
                self.reasoning, self.answer = "", event.text + self.answer
            self.publish(AnswerEvent("reclassify", event.text, to=event.to))

    async def consume(self, stream: AsyncIterator[StreamEvent], *,
                      checkpoint: Callable[[], Awaitable[object]] | None = None, every: float = 2.0) -> None:
        """Take the whole stream, calling `checkpoint` (a save) every `every` seconds. Ends with `status` done, error
        (with `error` for the user) or cancelled; never raises, so what arrived is always there to keep."""
        last = time.monotonic()
        try:
            async for event in stream:
                self.take(event)
                if checkpoint is not None and time.monotonic() - last > every:
                    last = time.monotonic()
                    await checkpoint()
            self.status = "done"
        except ProviderError as failure:
            self.status, self.error = "error", failure.translated()
        except asyncio.CancelledError:
            self.status = "cancelled"
        except Exception as failure:  # keep what arrived whatever happened; the log has the rest
            log.exception("an answer of %s failed", self.model)
            self.status, self.error = "error", str(failure)
        finally:
            if self.reasoning_started is not None and self.reasoning_ended is None:
                self.reasoning_ended = time.monotonic()

    def finish(self, stored: Any = None) -> None:
        """The last event, whatever happened: listeners must never wait for an end that does not come."""
        self.publish(AnswerEvent("error" if self.status == "error" else "done", self.error or "", message=stored))

    def reasoning_ms(self) -> int | None:
        """How long the model has reasoned (so far, while it still does)."""
        if self.reasoning_started is None:
            return None
        return round(((self.reasoning_ended or time.monotonic()) - self.reasoning_started) * 1000)

    def _timed(self, kind: str, to: str | None = None) -> None:
        now = time.monotonic()
        if kind == "reasoning" and self.reasoning_started is None:
            self.reasoning_started = now
        elif kind == "text" and self.reasoning_started is not None and self.reasoning_ended is None:
            self.reasoning_ended = now
        elif kind == "reclassify" and to == "reasoning":  # what looked like the answer was reasoning
            self.reasoning_started, self.reasoning_ended = self.reasoning_started or self.started, None
        elif kind == "reclassify":
            self.reasoning_started = self.reasoning_ended = None

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
