"""The provider interface: one `BaseClient` per provider kind, streaming `StreamEvent`s, raising `ProviderError`s.

Subclasses implement `_list_models` and `_stream` (the raw events of one attempt). The base class adds what every
provider needs the same way: retries with backoff before the first token (never after), the incremental
`<think>` parser over the text, a stream that ends without finishing turned into an error, and `test()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from backend.i18n import N_, gettext
from backend.providers.reasoning import ThinkTagParser

log = logging.getLogger(__name__)


# --- what goes in -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    base_url: str
    api_key: str | None = None
    timeout: float = 60.0  # seconds to connect, and between two pieces of a stream
    max_retries: int = 2  # before the first token only
    headers: tuple[tuple[str, str], ...] = ()  # extra HTTP headers (a tuple keeps the config hashable)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": "..."}]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    reasoning: bool = False  # the model's capabilities say "reasoning": its text starts as reasoning
    extra: Mapping[str, Any] = field(default_factory=dict)  # provider-specific body fields


# --- what comes out ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str | None = None
    context_length: int | None = None
    owned_by: str | None = None


@dataclass(frozen=True)
class TestResult:
    ok: bool
    latency_ms: int
    error: str | None = None
    models: int | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class Reclassify:
    """Text already streamed belongs to the other side after all: `to="reasoning"` when a lone `</think>`
    arrived after answer text; `to="answer"` when a reasoning model's stream ended without ever closing its
    implicit reasoning (it was answering all along). Consumers move `text` from one side to the other."""

    text: str
    to: Literal["reasoning", "answer"]


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Finish:
    reason: str


StreamEvent = TextDelta | ReasoningDelta | Reclassify | Usage | Finish


# --- what goes wrong --------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A failure with a message fit to show a user (an English message id with `{placeholders}`)."""

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "upstream_error"
    status_code: ClassVar[int] = 502

    def __init__(self, message: str, *, detail: str | None = None, **params: object) -> None:
        super().__init__(message.format(**params) if params else message)
        self.message = message
        self.params = params
        self.detail = detail  # the upstream's own words, for logs and admins

    def translated(self, language: str | None = None) -> str:
        return gettext(self.message, language=language, **self.params)


class AuthenticationFailed(ProviderError):
    code = "authentication_failed"
    status_code = 502


class RateLimited(ProviderError):
    retryable = True
    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str | None = None,
                 **params: object) -> None:
        super().__init__(message, detail=detail, **params)
        self.retry_after = retry_after


class UpstreamUnavailable(ProviderError):
    code = "upstream_unavailable"
    status_code = 502


class ConnectionFailed(UpstreamUnavailable):
    """Nothing was sent or received: safe to try again."""

    retryable = True


class Timeout(ProviderError):
    code = "timeout"
    status_code = 504


class BadRequest(ProviderError):
    code = "bad_request"
    status_code = 400


class NotFound(BadRequest):
    code = "model_not_found"
    status_code = 404


STREAM_CUT = N_("The connection to {provider} broke off before the answer was complete; what arrived is kept")


# --- the client -------------------------------------------------------------------------------------------------


class BaseClient(ABC):
    kind: ClassVar[str]
    label: ClassVar[str]
    needs_api_key: ClassVar[bool] = True
    retry_base_delay: ClassVar[float] = 0.5

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    async def _list_models(self) -> list[ModelInfo]: ...

    @abstractmethod
    def _stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """One attempt: raw events, text still carrying any `<think>` tags; raises `ProviderError`s."""

    async def aclose(self) -> None:  # noqa: B027  (optional for subclasses)
        """Release connections."""

    async def list_models(self) -> list[ModelInfo]:
        models = await self._with_retries(self._list_models)
        return sorted(models, key=lambda m: m.id)

    async def test(self) -> TestResult:
        """Default: list the models under a short timeout."""
        started = time.perf_counter()
        try:
            models = await asyncio.wait_for(self._list_models(), timeout=min(self.config.timeout, 15.0))
        except TimeoutError:
            error: ProviderError = Timeout(N_("{provider} did not answer within {seconds} s"),
                                           provider=self.config.name, seconds=int(min(self.config.timeout, 15.0)))
            return TestResult(ok=False, latency_ms=_ms_since(started), error=str(error))
        except ProviderError as failure:
            return TestResult(ok=False, latency_ms=_ms_since(started), error=str(failure))
        return TestResult(ok=True, latency_ms=_ms_since(started), models=len(models))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer. Retried (with backoff) only while nothing has arrived; ends with `Finish`, or raises."""
        parser = ThinkTagParser(starts_in_reasoning=request.reasoning)
        # Reasoning by capability alone (no tag yet): kept to hand back to the answer if it never closes.
        implicit: list[str] | None = [] if request.reasoning else None
        finish: Finish | None = None
        attempt = 0
        while True:
            started = False
            try:
                async for event in self._stream(request):
                    started = True
                    if isinstance(event, TextDelta):
                        for piece in parser.feed(event.text):
                            if implicit is not None and not (piece.kind == "reasoning" and parser.in_reasoning):
                                implicit = None  # the implicit reasoning closed with </think>
                            elif implicit is not None:
                                implicit.append(piece.text)
                            yield _piece_event(piece)
                    elif isinstance(event, ReasoningDelta):
                        if implicit == []:  # native reasoning first: the text that follows is the answer
                            implicit = None
                            parser = ThinkTagParser(starts_in_reasoning=False)
                        yield event
                    elif isinstance(event, Finish):
                        finish = event  # after the parser's last pieces
                    else:
                        yield event
                break
            except ProviderError as error:
                if started or not error.retryable or attempt >= self.config.max_retries:
                    raise
                attempt += 1
                log.info("retrying %s after %s (attempt %d)", self.config.name, error, attempt)
                await asyncio.sleep(self._backoff(attempt, error))
        for piece in parser.finish():
            if implicit is not None and piece.kind == "reasoning":
                implicit.append(piece.text)
            yield _piece_event(piece)
        if finish is None:
            raise UpstreamUnavailable(STREAM_CUT, provider=self.config.name)
        if implicit and finish.reason == "stop" and parser.in_reasoning:
            # A "reasoning" model that finished normally without ever closing its reasoning was answering.
            yield Reclassify("".join(implicit), to="answer")
        yield finish

    async def _with_retries(self, call: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as error:
                if not error.retryable or attempt >= self.config.max_retries:
                    raise
                attempt += 1
                await asyncio.sleep(self._backoff(attempt, error))

    def _backoff(self, attempt: int, error: ProviderError) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, 30.0)
        return self.retry_base_delay * (2 ** (attempt - 1)) * (0.5 + random.random())


def _piece_event(piece: Any) -> StreamEvent:
    if piece.kind == "text":
        return TextDelta(piece.text)
    if piece.kind == "reasoning":
        return ReasoningDelta(piece.text)
    return Reclassify(piece.text, to="reasoning")


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
