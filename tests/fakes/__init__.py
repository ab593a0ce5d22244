"""Fake upstream LLM servers: real HTTP servers on 127.0.0.1 speaking the OpenAI, Anthropic and Ollama protocols.

    from tests.fakes import start_openai, reply, error, fail_times, cut_after, hang_after

    with start_openai(models=["gpt-a", "gpt-b"]) as server:
        server.script.set(reply("Hello", reasoning="Thinking…"), model="gpt-a")
        server.script.set(error(429, "slow down"), model="gpt-b")
        client = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)
        ...
        assert server.last_request.headers["authorization"] == "Bearer test-key"

`start_*` return a started server (a context manager that stops it on exit). See `scenario.py` for the behaviours.
"""

from __future__ import annotations

from typing import Any

from .anthropic_server import FakeAnthropic
from .base import FakeLLMServer, StreamRecord
from .ollama_server import FakeOllama
from .openai_server import FakeOpenAI
from .scenario import (
    DEFAULT_TEXT,
    DEFAULT_USAGE,
    Error,
    FailTimes,
    RecordedRequest,
    Reply,
    Script,
    cut_after,
    error,
    error_after,
    fail_times,
    hang_after,
    reply,
    split,
)
from .server import CutConnection, FakeServer


def start_openai(**kw: Any) -> FakeOpenAI:
    """A started fake OpenAI server. Keywords: api_key ("test-key"; None: no check), models, default, strict_models."""
    return FakeOpenAI(**kw).start()


def start_anthropic(**kw: Any) -> FakeAnthropic:
    """A started fake Anthropic server. Keywords: api_key ("test-key"; None: no check), models, default,
    strict_models."""
    return FakeAnthropic(**kw).start()


def start_ollama(**kw: Any) -> FakeOllama:
    """A started fake Ollama server. Keywords: api_key (None: no check), models, default, strict_models."""
    return FakeOllama(**kw).start()


__all__ = [
    "DEFAULT_TEXT",
    "DEFAULT_USAGE",
    "CutConnection",
    "Error",
    "FailTimes",
    "FakeAnthropic",
    "FakeLLMServer",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "RecordedRequest",
    "Reply",
    "Script",
    "StreamRecord",
    "cut_after",
    "error",
    "error_after",
    "fail_times",
    "hang_after",
    "reply",
    "split",
    "start_anthropic",
    "start_ollama",
    "start_openai",
]
