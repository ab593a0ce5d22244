"""What a fake LLM server answers: behaviours, the per-model script, and the record of received requests.

    server.script.set(reply("Hello", reasoning="Let me think"))          # every model, every request
    server.script.set(error(401, "bad key"), model="gpt-broken")         # only this model
    server.script.queue(cut_after(3))                                    # the next request only, then the above
    server.script.set(fail_times(2, status=429, then=reply("ok")))      # 2 × 429, then "ok"
    server.script.set(lambda req: reply(text=req.json["messages"][-1]["content"]))  # computed per request
    cut_after(2, text="…") / hang_after(2) / error_after(2, 529)   # 2 chunks, then drop / stall / in-stream error

Lookup order for a request's `model`: one-shot queue for that model, one-shot queue for any model, the behaviour set
for that model, the behaviour set for any model, and finally `reply()` with the default text.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

DEFAULT_TEXT = "Hello! This is a fake reply."
DEFAULT_USAGE = (10, 20)


@dataclass
class Reply:
    """A normal answer, optionally streamed slowly or broken off.

    `text` and `reasoning` are split into chunks of `chunk_size` characters unless `chunks` / `reasoning_chunks`
    give them explicitly. At most one of `cut_after`, `hang_after`, `error_after` is set: after that many chunks
    (reasoning and text chunks together) the stream is dropped (no final event), stalls until the server stops,
    or gets the provider's in-stream error event."""

    text: str = DEFAULT_TEXT
    reasoning: str | None = None
    chunks: list[str] | None = None
    reasoning_chunks: list[str] | None = None
    delay: float = 0.0
    first_token_delay: float = 0.0
    usage: tuple[int, int] = DEFAULT_USAGE
    reasoning_field: str = "reasoning_content"  # OpenAI-compatible: "reasoning_content" (DeepSeek) or "reasoning"
    finish_reason: Literal["stop", "length"] = "stop"
    chunk_size: int = 4
    cut_after: int | None = None
    hang_after: int | None = None
    error_after: int | None = None
    stream_error: Error | None = None  # the error sent after `error_after` chunks

    def text_parts(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return split(self.text, self.chunk_size)

    def reasoning_parts(self) -> list[str]:
        if self.reasoning_chunks is not None:
            return list(self.reasoning_chunks)
        return split(self.reasoning or "", self.chunk_size)

    @property
    def full_text(self) -> str:
        return "".join(self.text_parts())

    @property
    def full_reasoning(self) -> str | None:
        parts = self.reasoning_parts()
        return "".join(parts) if parts or self.reasoning is not None else None

    @property
    def break_point(self) -> int | None:
        for n in (self.cut_after, self.hang_after, self.error_after):
            if n is not None:
                return n
        return None


@dataclass
class Error:
    """An HTTP error before any token, in the provider's error format.

    For 429 and 503 `retry_after` (seconds) defaults to 0.05 and is sent as `retry-after` (whole seconds, rounded up,
    at least 1) and `retry-after-ms`; the openai and anthropic SDKs prefer the latter, so their retries are quick."""

    status: int
    message: str | None = None
    type: str | None = None  # provider error type; derived from the status when None
    code: str | None = None  # OpenAI `error.code`; derived from the status when None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        retry_after = self.retry_after
        if retry_after is None and self.status in (429, 503, 529):
            retry_after = 0.05
        if retry_after is not None:
            headers.setdefault("retry-after", str(max(1, math.ceil(retry_after))))
            headers.setdefault("retry-after-ms", str(round(retry_after * 1000)))
        return headers


@dataclass
class FailTimes:
    """The first `n` requests that reach it get `error`; later ones get `then`."""

    n: int
    error: Error
    then: Behaviour
    calls: int = 0

    def pick(self) -> Behaviour:
        self.calls += 1
        return self.error if self.calls <= self.n else self.then


Behaviour = Reply | Error | FailTimes | Callable[["RecordedRequest"], Any]


# -- helpers


def split(text: str, size: int = 4) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def reply(
    text: str = DEFAULT_TEXT,
    *,
    reasoning: str | None = None,
    chunks: list[str] | None = None,
    reasoning_chunks: list[str] | None = None,
    delay: float = 0.0,
    first_token_delay: float = 0.0,
    usage: tuple[int, int] = DEFAULT_USAGE,
    reasoning_field: str = "reasoning_content",
    finish_reason: Literal["stop", "length"] = "stop",
    chunk_size: int = 4,
) -> Reply:
    """A normal answer. With `chunks` the text is exactly those chunks (`text` is then ignored)."""
    return Reply(
        text="".join(chunks) if chunks is not None else text,
        reasoning=reasoning,
        chunks=chunks,
        reasoning_chunks=reasoning_chunks,
        delay=delay,
        first_token_delay=first_token_delay,
        usage=usage,
        reasoning_field=reasoning_field,
        finish_reason=finish_reason,
        chunk_size=chunk_size,
    )


def error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> Error:
    """An HTTP error answered before any token (e.g. 401, 429, 500, 400)."""
    return Error(status, message, type, code, retry_after, dict(headers or {}))


def fail_times(
    n: int,
    status: int = 429,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    then: Behaviour | None = None,
) -> FailTimes:
    """The first `n` requests fail with `status`, then `then` (default: `reply()`) answers."""
    return FailTimes(n, error(status, message, retry_after=retry_after), then if then is not None else reply())


def cut_after(n_chunks: int, base: Reply | None = None, **reply_kw: Any) -> Reply:
    """Stream `n_chunks` chunks, then drop the connection without the final events."""
    return replace(base or reply(**reply_kw), cut_after=n_chunks)


def hang_after(n_chunks: int, base: Reply | None = None, **reply_kw: Any) -> Reply:
    """Stream `n_chunks` chunks, then stall until the server stops (for read-timeout tests)."""
    return replace(base or reply(**reply_kw), hang_after=n_chunks)


def error_after(
    n_chunks: int,
    status: int = 500,
    message: str | None = None,
    *,
    type: str | None = None,
    base: Reply | None = None,
    **reply_kw: Any,
) -> Reply:
    """Stream `n_chunks` chunks, then the provider's in-stream error event (the HTTP status stays 200)."""
    return replace(base or reply(**reply_kw), error_after=n_chunks, stream_error=error(status, message, type=type))


# -- requests and the script


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # the parsed JSON body, or None

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None


class Script:
    """Per-model behaviours; thread-safe (tests configure it while the server thread reads it)."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self._lock = threading.RLock()
        self._default: Behaviour = default if default is not None else reply()
        self._by_model: dict[str, Behaviour] = {}
        self._queues: defaultdict[str | None, deque[Behaviour]] = defaultdict(deque)

    def set(self, behaviour: Behaviour, model: str | None = None) -> Script:
        """Answer every request (for `model`, or for any model when None) with `behaviour`."""
        with self._lock:
            if model is None:
                self._default = behaviour
            else:
                self._by_model[model] = behaviour
        return self

    def queue(self, *behaviours: Behaviour, model: str | None = None) -> Script:
        """Answer the next requests (for `model`, or any model) with these, once each, before the set behaviour."""
        with self._lock:
            self._queues[model].extend(behaviours)
        return self

    def clear(self) -> None:
        with self._lock:
            self._default = reply()
            self._by_model.clear()
            self._queues.clear()

    def resolve(self, request: RecordedRequest) -> Reply | Error:
        model = request.model
        keys: list[str | None] = []
        if model is not None:
            keys.append(model)
            if model.endswith(":latest"):  # Ollama: "llama3" and "llama3:latest" are one model
                keys.append(model.removesuffix(":latest"))
            elif ":" not in model:
                keys.append(model + ":latest")
        with self._lock:
            behaviour: Behaviour | None = None
            for key in [*keys, None]:
                if self._queues.get(key):
                    behaviour = self._queues[key].popleft()
                    break
            if behaviour is None:
                behaviour = next((self._by_model[k] for k in keys if k in self._by_model), self._default)
            for _ in range(10):
                if isinstance(behaviour, FailTimes):
                    behaviour = behaviour.pick()
                elif isinstance(behaviour, Reply | Error):
                    return behaviour
                elif callable(behaviour):
                    behaviour = behaviour(request)
                else:
                    break
        raise TypeError(f"not a behaviour: {behaviour!r}")
