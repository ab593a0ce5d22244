"""The fake LLM servers, driven by the real SDKs (openai, anthropic, ollama) over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import ollama
import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.fakes import (
    FakeAnthropic,
    FakeOllama,
    FakeOpenAI,
    FakeServer,
    cut_after,
    error,
    error_after,
    fail_times,
    hang_after,
    reply,
    start_anthropic,
    start_ollama,
    start_openai,
)

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with start_openai(models=["gpt-a", "gpt-b"]) as server:
        yield server


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropic]:
    with start_anthropic(models=["claude-a", "claude-b", "claude-c"]) as server:
        yield server


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[FakeOllama]:
    with start_ollama(models=["llama3:8b", "qwen3:4b"]) as server:
        yield server


@pytest.fixture
def oai(openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    openai_server.reset()
    openai_server.api_key = "test-key"
    yield openai_server
    openai_server.reset()


@pytest.fixture
def ant(anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    anthropic_server.reset()
    anthropic_server.api_key = "test-key"
    yield anthropic_server
    anthropic_server.reset()


@pytest.fixture
def oll(ollama_server: FakeOllama) -> Iterator[FakeOllama]:
    ollama_server.reset()
    yield ollama_server
    ollama_server.reset()


class Clients:
    """Makes SDK clients and closes them in the test's own event loop (else they leak 'Event loop is closed')."""

    def __init__(self) -> None:
        self.made: list[Any] = []

    def openai(self, server: FakeOpenAI, **kw: Any) -> openai.AsyncOpenAI:
        kw.setdefault("api_key", "test-key")
        return self._keep(openai.AsyncOpenAI(base_url=server.url + "/v1", **kw))

    def anthropic(self, server: FakeAnthropic, **kw: Any) -> anthropic.AsyncAnthropic:
        kw.setdefault("api_key", "test-key")
        return self._keep(anthropic.AsyncAnthropic(base_url=server.url, **kw))

    def ollama(self, server: FakeOllama, **kw: Any) -> ollama.AsyncClient:
        return self._keep(ollama.AsyncClient(host=server.url, **kw))

    def _keep(self, client: Any) -> Any:
        self.made.append(client)
        return client


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    for client in made.made:
        await client.close()


async def collect_openai(client: openai.AsyncOpenAI, model: str = "gpt-a", **kw: Any) -> dict[str, Any]:
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **kw)
    text, reasoning, usage, finish = [], [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            extra = delta.model_extra or {}
            if extra.get("reasoning_content") or extra.get("reasoning"):
                reasoning.append(extra.get("reasoning_content") or extra.get("reasoning"))
            finish = choice.finish_reason or finish
    return {"text": text, "reasoning": reasoning, "usage": usage, "finish": finish}


# -- the server helper


def test_fake_server_starts_on_a_free_port_and_stops() -> None:
    app = Starlette(routes=[Route("/ping", lambda request: PlainTextResponse("pong"))])
    with FakeServer(app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/ping").text == "pong"
        port = server.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with server:  # starts again on the same port
        assert server.port == port
        assert httpx.get(server.url + "/ping").text == "pong"


def test_unknown_paths_are_recorded_with_a_provider_404(oai: FakeOpenAI) -> None:
    response = httpx.post(oai.url + "/v1/v1/chat/completions", json={"model": "gpt-a"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/v1/chat/completions)"
    assert oai.last_request.path == "/v1/v1/chat/completions"
    assert oai.chat_requests == []


async def test_stop_is_prompt_while_a_stream_hangs(clients: Clients) -> None:
    server = start_openai()
    server.script.set(hang_after(1))
    client = clients.openai(server, max_retries=0)
    stream = await client.chat.completions.create(model="gpt-a", messages=MESSAGES, stream=True)
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert first.choices[0].delta.role == "assistant"
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert time.monotonic() - started < 2
    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(_drain(stream), 5)
    assert not server.running


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


# -- OpenAI


async def test_openai_stream_reasoning_text_usage(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(reply("Hello there, world", reasoning="Let me think", usage=(7, 9)))
    got = await collect_openai(clients.openai(oai), stream_options={"include_usage": True})
    assert "".join(got["text"]) == "Hello there, world"
    assert len(got["text"]) > 1
    assert "".join(got["reasoning"]) == "Let me think"
    assert got["finish"] == "stop"
    assert (got["usage"].prompt_tokens, got["usage"].completion_tokens, got["usage"].total_tokens) == (7, 9, 16)
    (sent,) = oai.chat_requests
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["model"] == "gpt-a"
    assert sent.json["messages"] == MESSAGES
    assert sent.json["stream_options"] == {"include_usage": True}


async def test_openai_reasoning_field_and_explicit_chunks(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(reply(chunks=["Hel", "lo"], reasoning_chunks=["a", "b"], reasoning_field="reasoning"))
    got = await collect_openai(clients.openai(oai))
    assert got["text"] == ["Hel", "lo"]
    assert got["reasoning"] == ["a", "b"]
    assert got["usage"] is None  # no include_usage, no usage chunk


async def test_openai_non_streaming(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(reply("Plain answer", reasoning="why", usage=(3, 4)))
    completion = await clients.openai(oai).chat.completions.create(model="gpt-b", messages=MESSAGES)
    message = completion.choices[0].message
    assert message.content == "Plain answer"
    assert getattr(message, "reasoning_content", None) == "why"
    assert completion.usage is not None and completion.usage.total_tokens == 7
    assert completion.model == "gpt-b"
    assert "stream" not in oai.last_request.json


async def test_openai_models(oai: FakeOpenAI, clients: Clients) -> None:
    ids = [m.id async for m in clients.openai(oai).models.list()]
    assert ids == ["gpt-a", "gpt-b"]
    model = await clients.openai(oai).models.retrieve("gpt-b")
    assert model.owned_by == "fake"
    with pytest.raises(openai.NotFoundError):
        await clients.openai(oai, max_retries=0).models.retrieve("nope")


async def test_openai_wrong_key_and_no_auth(oai: FakeOpenAI, clients: Clients) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await collect_openai(clients.openai(oai, api_key="wrong", max_retries=0))
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    oai.api_key = None
    got = await collect_openai(clients.openai(oai, api_key="anything"))
    assert got["text"]


async def test_openai_rate_limited_then_ok(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(fail_times(2, status=429, then=reply("finally")))
    started = time.monotonic()
    got = await collect_openai(clients.openai(oai, max_retries=2))
    assert "".join(got["text"]) == "finally"
    assert time.monotonic() - started < 3
    assert [r.headers.get("x-stainless-retry-count") for r in oai.chat_requests] == ["0", "1", "2"]


async def test_openai_errors(oai: FakeOpenAI, clients: Clients) -> None:
    client = clients.openai(oai, max_retries=0)
    oai.script.set(error(429, "slow down", retry_after=7))
    with pytest.raises(openai.RateLimitError) as rate:
        await collect_openai(client)
    assert rate.value.response.headers["retry-after"] == "7"
    assert rate.value.body == {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    oai.script.set(error(500))
    with pytest.raises(openai.InternalServerError):
        await collect_openai(client)
    oai.script.set(error(400, "bad messages"))
    with pytest.raises(openai.BadRequestError, match="bad messages"):
        await client.chat.completions.create(model="gpt-a", messages=MESSAGES)


async def test_openai_cut_mid_stream_raises(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(cut_after(2, text="A long answer that never ends"))
    seen: list[str] = []

    async def run() -> None:
        stream = await clients.openai(oai, max_retries=0).chat.completions.create(
            model="gpt-a", messages=MESSAGES, stream=True
        )
        async for chunk in stream:
            seen.extend(c.delta.content for c in chunk.choices if c.delta.content)

    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(run(), 10)
    assert seen == ["A lo", "ng a"]


async def test_openai_cut_non_streaming_raises(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(cut_after(0))
    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(
            clients.openai(oai, max_retries=0).chat.completions.create(model="m", messages=MESSAGES), 10
        )


async def test_openai_hang_hits_read_timeout(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(hang_after(1))
    client = clients.openai(oai, max_retries=0, timeout=httpx2.Timeout(0.3, connect=2))
    with pytest.raises(openai.APITimeoutError):
        await asyncio.wait_for(collect_openai(client), 10)


async def test_openai_error_in_stream(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(error_after(1, 500, "model crashed"))
    with pytest.raises(openai.APIError, match="model crashed"):
        await asyncio.wait_for(collect_openai(clients.openai(oai, max_retries=0)), 10)


async def test_openai_models_behave_differently_at_once(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(reply("from A", delay=0.02), model="gpt-a")
    oai.script.set(reply("from B"), model="gpt-b")
    oai.script.set(error(401, "not yours"), model="gpt-x")
    client = clients.openai(oai, max_retries=0)
    a, b = await asyncio.gather(collect_openai(client, "gpt-a"), collect_openai(client, "gpt-b"))
    assert "".join(a["text"]) == "from A"
    assert "".join(b["text"]) == "from B"
    with pytest.raises(openai.AuthenticationError):
        await collect_openai(client, "gpt-x")


async def test_queue_echo_and_delays(oai: FakeOpenAI, clients: Clients) -> None:
    oai.script.set(lambda req: reply("echo: " + req.json["messages"][-1]["content"]))
    oai.script.queue(reply("once", first_token_delay=0.3))
    client = clients.openai(oai)
    started = time.monotonic()
    assert "".join((await collect_openai(client))["text"]) == "once"
    assert time.monotonic() - started >= 0.3
    assert "".join((await collect_openai(client))["text"]) == "echo: Hi"


# -- Anthropic


async def test_anthropic_stream_thinking_text_usage(ant: FakeAnthropic, clients: Clients) -> None:
    ant.script.set(reply("Hello from Claude", reasoning="Pondering", usage=(11, 22)))
    client = clients.anthropic(ant)
    kinds: list[str] = []
    thinking, text = [], []
    stream = await client.messages.create(model="claude-a", max_tokens=100, messages=MESSAGES, stream=True)
    async for event in stream:
        kinds.append(event.type)
        if event.type == "content_block_delta":
            if event.delta.type == "thinking_delta":
                thinking.append(event.delta.thinking)
            elif event.delta.type == "text_delta":
                text.append(event.delta.text)
    assert "".join(thinking) == "Pondering"
    assert "".join(text) == "Hello from Claude"
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    sent = ant.last_request
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == "Bearer test-key"  # anthropic 2.x sends api_key as Bearer
    assert sent.headers["anthropic-version"]
    assert sent.json["max_tokens"] == 100

    async with client.messages.stream(model="claude-a", max_tokens=100, messages=MESSAGES) as helper:
        streamed = [t async for t in helper.text_stream]
        final = await helper.get_final_message()
    assert "".join(streamed) == "Hello from Claude"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Pondering" and final.content[0].signature
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 22)
    assert final.stop_reason == "end_turn"


async def test_anthropic_non_streaming_and_x_api_key(ant: FakeAnthropic, clients: Clients) -> None:
    ant.script.set(reply("Plain", reasoning="r", finish_reason="length"))
    message = await clients.anthropic(ant).messages.create(model="claude-b", max_tokens=10, messages=MESSAGES)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "Plain"
    assert message.stop_reason == "max_tokens"
    raw = httpx.post(
        ant.url + "/v1/messages",
        headers={"x-api-key": "test-key", "anthropic-version": "2023-06-01"},
        json={"model": "claude-a", "max_tokens": 5, "messages": MESSAGES},
    )
    assert raw.status_code == 200 and raw.json()["type"] == "message"
    missing = httpx.post(ant.url + "/v1/messages", headers={"x-api-key": "test-key"}, json={})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error"


async def test_anthropic_models_paginate(ant: FakeAnthropic, clients: Clients) -> None:
    models = [m async for m in clients.anthropic(ant).models.list(limit=2)]
    assert [m.id for m in models] == ["claude-a", "claude-b", "claude-c"]
    assert models[0].display_name == "Claude A"
    assert models[0].created_at.year == 2025
    assert [r.query.get("after_id") for r in ant.requests] == [None, "claude-b"]


async def test_anthropic_auth_and_errors(ant: FakeAnthropic, clients: Clients) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await clients.anthropic(ant, api_key="wrong", max_retries=0).messages.create(
            model="claude-a", max_tokens=10, messages=MESSAGES
        )
    assert caught.value.body["error"]["type"] == "authentication_error"
    ant.script.set(fail_times(1, status=529))
    message = await clients.anthropic(ant, max_retries=1).messages.create(
        model="claude-a", max_tokens=10, messages=MESSAGES
    )
    assert message.content[0].text
    ant.script.set(error(429))
    with pytest.raises(anthropic.RateLimitError) as rate:
        await clients.anthropic(ant, max_retries=0).messages.create(model="claude-a", max_tokens=10, messages=MESSAGES)
    assert rate.value.body["error"]["type"] == "rate_limit_error"
    assert rate.value.response.headers["retry-after"] == "1"


async def test_anthropic_cut_and_stream_error(ant: FakeAnthropic, clients: Clients) -> None:
    client = clients.anthropic(ant, max_retries=0)

    async def run() -> list[str]:
        out: list[str] = []
        async with client.messages.stream(model="claude-a", max_tokens=10, messages=MESSAGES) as stream:
            async for text in stream.text_stream:
                out.append(text)
        return out

    ant.script.set(cut_after(1))
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        await asyncio.wait_for(run(), 10)
    ant.script.set(error_after(1, 529))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await asyncio.wait_for(run(), 10)
    assert caught.value.body["error"]["type"] == "overloaded_error"


# -- Ollama


async def test_ollama_stream_thinking(oll: FakeOllama, clients: Clients) -> None:
    oll.script.set(reply("Hi from llama", reasoning="Hmm", usage=(5, 6)))
    client = clients.ollama(oll)
    thinking, content, last = [], [], None
    async for part in await client.chat(model="qwen3:4b", messages=MESSAGES, stream=True, think=True):
        if part.message.thinking:
            thinking.append(part.message.thinking)
        if part.message.content:
            content.append(part.message.content)
        last = part
    assert "".join(thinking) == "Hmm"
    assert "".join(content) == "Hi from llama"
    assert last is not None and last.done and last.done_reason == "stop"
    assert (last.prompt_eval_count, last.eval_count) == (5, 6)
    assert oll.last_request.json["think"] is True
    assert oll.last_request.headers["user-agent"].startswith("ollama-python")


async def test_ollama_inline_think_and_non_stream(oll: FakeOllama, clients: Clients) -> None:
    oll.script.set(reply("Answer", reasoning="Hmm"))
    client = clients.ollama(oll)
    parts = [p.message.content async for p in await client.chat(model="llama3:8b", messages=MESSAGES, stream=True)]
    assert "".join(parts) == "<think>Hmm</think>\n\nAnswer"
    response = await client.chat(model="llama3:8b", messages=MESSAGES, think=True)
    assert response.message.content == "Answer" and response.message.thinking == "Hmm"
    assert oll.last_request.json["stream"] is False
    raw = httpx.post(oll.url + "/api/chat", json={"model": "llama3", "messages": MESSAGES})  # no "stream": streams
    assert raw.headers["content-type"] == "application/x-ndjson"
    assert len(raw.text.splitlines()) > 2


async def test_ollama_list_and_errors(oll: FakeOllama, clients: Clients) -> None:
    client = clients.ollama(oll)
    listing = await client.list()
    assert [m.model for m in listing.models] == ["llama3:8b", "qwen3:4b"]
    assert listing.models[0].details is not None and listing.models[0].details.family == "llama"
    oll.script.set(error(404, "model 'x' not found"), model="x")
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(model="x", messages=MESSAGES)
    assert caught.value.status_code == 404 and caught.value.error == "model 'x' not found"
    oll.script.set(error_after(1, 500, "runner crashed"))
    with pytest.raises(ollama.ResponseError, match="runner crashed"):
        async for _ in await client.chat(model="llama3:8b", messages=MESSAGES, stream=True):
            pass


async def test_ollama_cut_and_hang(oll: FakeOllama, clients: Clients) -> None:
    client = clients.ollama(oll, timeout=httpx.Timeout(0.3, connect=2))
    oll.script.set(cut_after(1))

    async def run() -> None:
        async for _ in await client.chat(model="llama3:8b", messages=MESSAGES, stream=True):
            pass

    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(run(), 10)
    oll.script.set(hang_after(1))
    with pytest.raises(httpx.ReadTimeout):
        await asyncio.wait_for(run(), 10)
