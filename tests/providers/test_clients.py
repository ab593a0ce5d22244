"""The provider clients against real HTTP servers speaking each wire protocol (tests/fakes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.providers.base import (
    AuthenticationFailed,
    BadRequest,
    BaseClient,
    ChatRequest,
    ConnectionFailed,
    Finish,
    NotFound,
    ProviderConfig,
    RateLimited,
    ReasoningDelta,
    Reclassify,
    StreamEvent,
    TextDelta,
    Timeout,
    UpstreamUnavailable,
    Usage,
)
from backend.providers.registry import make_client
from tests.fakes import cut_after, error, error_after, fail_times, hang_after, reply


def config(server: Any, *, api_key: str | None = "test-key", **kw: Any) -> ProviderConfig:
    base_url = server.base_url if hasattr(server, "base_url") else server.url
    return ProviderConfig(name="upstream", base_url=base_url, api_key=api_key, **kw)


@pytest.fixture
async def clients() -> AsyncIterator[list[BaseClient]]:
    """Clients made in a test are closed in that test's loop."""
    made: list[BaseClient] = []
    yield made
    for client in made:
        await client.aclose()


def client_for(kind: str, server: Any, made: list[BaseClient], **kw: Any) -> BaseClient:
    client = make_client(kind, config(server, **kw))
    client.retry_base_delay = 0.01  # type: ignore[misc]
    made.append(client)
    return client


async def collect(client: BaseClient, **request: Any) -> tuple[str, str, list[StreamEvent]]:
    """(answer, reasoning, events) with corrections applied as a chat bubble would."""
    request.setdefault("messages", [{"role": "user", "content": "Hi"}])
    events = []
    answer, reasoning = "", ""
    async for event in client.stream_chat(ChatRequest(**request)):
        events.append(event)
        if isinstance(event, TextDelta):
            answer += event.text
        elif isinstance(event, ReasoningDelta):
            reasoning += event.text
        elif isinstance(event, Reclassify) and event.to == "reasoning":
            answer, reasoning = "", event.text + reasoning
        elif isinstance(event, Reclassify):
            reasoning, answer = "", event.text + answer
    return answer, reasoning, events


# --- OpenAI-compatible ----------------------------------------------------------------------------------------


async def test_openai_streams_reasoning_content_text_and_usage(openai_upstream, clients) -> None:
    openai_upstream.script.set(reply("The answer is 4.", reasoning="2 and 2 make 4.", usage=(12, 5)))
    client = client_for("openai", openai_upstream, clients)
    answer, reasoning, events = await collect(client, model="fake-chat", temperature=0.3, max_tokens=50)
    assert (answer, reasoning) == ("The answer is 4.", "2 and 2 make 4.")
    assert Usage(12, 5) in events and events[-1] == Finish("stop")
    sent = openai_upstream.last_request
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["temperature"] == 0.3 and sent.json["max_tokens"] == 50


async def test_openai_reasoning_field_of_openrouter_and_vllm(openai_upstream, clients) -> None:
    openai_upstream.script.set(reply("Yes.", reasoning="Let me see.", reasoning_field="reasoning"))
    answer, reasoning, _ = await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert (answer, reasoning) == ("Yes.", "Let me see.")


async def test_think_tags_split_across_chunks_leave_as_reasoning(openai_upstream, clients) -> None:
    chunks = ["<th", "ink>\nI should gre", "et.</thi", "nk>\n\nHel", "lo!"]
    openai_upstream.script.set(reply("".join(chunks), chunks=chunks))
    answer, reasoning, events = await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert (answer, reasoning) == ("Hello!", "I should greet.")
    assert all("<think>" not in e.text and "</think>" not in e.text for e in events if isinstance(e, TextDelta))


async def test_a_reasoning_model_streams_reasoning_until_a_lone_close_tag(openai_upstream, clients) -> None:
    chunks = ["Okay, the user", " says hi.", "</think>", "\n\nHi there!"]
    openai_upstream.script.set(reply("".join(chunks), chunks=chunks))
    answer, reasoning, events = await collect(client_for("openai", openai_upstream, clients), model="fake-r1",
                                              reasoning=True)
    assert (answer, reasoning) == ("Hi there!", "Okay, the user says hi.")
    assert not any(isinstance(e, Reclassify) for e in events)  # reasoning from the first token, no correction


async def test_a_lone_close_tag_corrects_an_ordinary_model(openai_upstream, clients) -> None:
    chunks = ["Okay, the user", " says hi.", "</think>", "\n\nHi there!"]
    openai_upstream.script.set(reply("".join(chunks), chunks=chunks))
    answer, reasoning, events = await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert (answer, reasoning) == ("Hi there!", "Okay, the user says hi.")
    assert Reclassify("Okay, the user says hi.", to="reasoning") in events


async def test_a_reasoning_model_that_never_closes_was_answering(openai_upstream, clients) -> None:
    openai_upstream.script.set(reply("Just an answer."))
    answer, reasoning, events = await collect(client_for("openai", openai_upstream, clients), model="fake-r1",
                                              reasoning=True)
    assert (answer, reasoning) == ("Just an answer.", "")
    assert Reclassify("Just an answer.", to="answer") in events


async def test_an_unclosed_think_block_cut_by_the_length_limit_stays_reasoning(openai_upstream, clients) -> None:
    openai_upstream.script.set(reply("<think>still thinking about", finish_reason="length"))
    answer, reasoning, events = await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert (answer, reasoning) == ("", "still thinking about")
    assert events[-1] == Finish("length")


async def test_openai_lists_models(openai_upstream, clients) -> None:
    models = await client_for("openai", openai_upstream, clients).list_models()
    assert [m.id for m in models] == ["fake-chat", "fake-r1", "slow-model"]


async def test_a_wrong_key_is_named_as_such(openai_upstream, clients) -> None:
    client = client_for("openai", openai_upstream, clients, api_key="wrong")
    with pytest.raises(AuthenticationFailed) as raised:
        await collect(client, model="fake-chat")
    assert "refused the API key" in str(raised.value)
    result = await client.test()
    assert not result.ok and "refused the API key" in (result.error or "")


async def test_429_before_the_first_token_is_retried(openai_upstream, clients) -> None:
    openai_upstream.script.set(fail_times(2, status=429, retry_after=0.01, then=reply("finally")))
    answer, _, _ = await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert answer == "finally"
    assert len(openai_upstream.chat_requests) == 3


async def test_429_that_persists_is_reported_after_the_retries(openai_upstream, clients) -> None:
    openai_upstream.script.set(error(429, "slow down", retry_after=0.01))
    client = client_for("openai", openai_upstream, clients, max_retries=1)
    with pytest.raises(RateLimited) as raised:
        await collect(client, model="fake-chat")
    assert "rate limiting" in str(raised.value)
    assert len(openai_upstream.chat_requests) == 2


async def test_a_server_error_is_not_retried_and_says_what_to_do(openai_upstream, clients) -> None:
    openai_upstream.script.set(error(500, "boom"))
    with pytest.raises(UpstreamUnavailable) as raised:
        await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert "internal error (HTTP 500)" in str(raised.value) and "try again later" in str(raised.value)
    assert len(openai_upstream.chat_requests) == 1


async def test_a_bad_request_carries_the_upstream_reason(openai_upstream, clients) -> None:
    openai_upstream.script.set(error(400, "max_tokens is too large"))
    with pytest.raises(BadRequest) as raised:
        await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert "max_tokens is too large" in str(raised.value)


async def test_a_stream_cut_midway_is_an_error_and_never_retried(openai_upstream, clients) -> None:
    openai_upstream.script.set(cut_after(3, text="one two three four five six"))
    received: list[str] = []
    with pytest.raises(UpstreamUnavailable) as raised:
        async with asyncio.timeout(10):
            async for event in client_for("openai", openai_upstream, clients).stream_chat(
                    ChatRequest(model="fake-chat", messages=[{"role": "user", "content": "Hi"}])):
                if isinstance(event, TextDelta):
                    received.append(event.text)
    assert "broke off" in str(raised.value)
    assert received  # what came before the cut was delivered
    assert len(openai_upstream.chat_requests) == 1


async def test_an_error_event_mid_stream_is_reported(openai_upstream, clients) -> None:
    openai_upstream.script.set(error_after(2, status=500, message="model crashed"))
    with pytest.raises(UpstreamUnavailable) as raised:
        await collect(client_for("openai", openai_upstream, clients), model="fake-chat")
    assert "model crashed" in str(raised.value)


async def test_a_stalled_stream_times_out_instead_of_hanging(openai_upstream, clients) -> None:
    openai_upstream.script.set(hang_after(1))
    client = client_for("openai", openai_upstream, clients, timeout=0.5)
    with pytest.raises(Timeout) as raised:
        async with asyncio.timeout(10):
            await collect(client, model="fake-chat")
    assert "did not answer within" in str(raised.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_host_is_retried_then_named(clients) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    client = make_client("openai", ProviderConfig(name="gone", base_url=url, max_retries=1))
    client.retry_base_delay = 0.01  # type: ignore[misc]
    clients.append(client)
    with pytest.raises(ConnectionFailed) as raised:
        await collect(client, model="x")
    assert f"Cannot reach gone at {url}" in str(raised.value)
    result = await client.test()
    assert not result.ok and "Cannot reach gone" in (result.error or "")


async def test_tls_to_a_plain_http_server_is_a_tls_failure(openai_upstream, clients) -> None:
    url = openai_upstream.base_url.replace("http://", "https://")
    client = make_client("openai", ProviderConfig(name="tls", base_url=url, max_retries=0))
    clients.append(client)
    result = await client.test()
    assert not result.ok and "TLS" in (result.error or "")


async def test_the_wrong_kind_of_server_is_reported(anthropic_upstream, clients) -> None:
    # an OpenAI client pointed at an Anthropic server: the paths do not exist there
    client = make_client("openai", ProviderConfig(name="mixed", base_url=anthropic_upstream.url + "/v2",
                                                  api_key="test-key"))
    clients.append(client)
    result = await client.test()
    assert not result.ok
    assert "does not know this model or path" in (result.error or "")


async def test_connection_test_reports_latency(openai_upstream, clients) -> None:
    result = await client_for("openai", openai_upstream, clients).test()
    assert result.ok and result.latency_ms >= 0 and result.models == 3


async def test_a_stream_that_ends_without_finishing_is_an_error(openai_upstream, clients) -> None:
    openai_upstream.script.set(lambda request: reply("partial", finish_reason=None))  # no finish_reason, [DONE]
    with pytest.raises(UpstreamUnavailable):
        await collect(client_for("openai", openai_upstream, clients), model="fake-chat")


# --- Anthropic ------------------------------------------------------------------------------------------------


async def test_anthropic_streams_thinking_as_reasoning(anthropic_upstream, clients) -> None:
    anthropic_upstream.script.set(reply("Four.", reasoning="Two plus two.", usage=(9, 3)))
    client = client_for("anthropic", anthropic_upstream, clients)
    answer, reasoning, events = await collect(client, model="claude-fake", reasoning=True, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    assert (answer, reasoning) == ("Four.", "Two plus two.")
    assert Usage(9, 3) in events and events[-1] == Finish("stop")
    sent = anthropic_upstream.last_request.json
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": "2+2?"}]
    assert sent["thinking"]["type"] == "enabled"


async def test_anthropic_without_thinking_sends_sampling_parameters(anthropic_upstream, clients) -> None:
    anthropic_upstream.script.set(reply("Hi."))
    answer, reasoning, _ = await collect(client_for("anthropic", anthropic_upstream, clients), model="claude-fake",
                                         temperature=0.2)
    assert (answer, reasoning) == ("Hi.", "")
    sent = anthropic_upstream.last_request.json
    assert sent["temperature"] == 0.2 and "thinking" not in sent and sent["max_tokens"] > 0


async def test_anthropic_errors_and_models(anthropic_upstream, clients) -> None:
    assert [m.id for m in await client_for("anthropic", anthropic_upstream, clients).list_models()] == [
        "claude-fake"]
    with pytest.raises(AuthenticationFailed):
        await collect(client_for("anthropic", anthropic_upstream, clients, api_key="bad"), model="claude-fake")
    anthropic_upstream.script.set(cut_after(2))
    with pytest.raises(UpstreamUnavailable):
        await collect(client_for("anthropic", anthropic_upstream, clients), model="claude-fake")


# --- Ollama ---------------------------------------------------------------------------------------------------


async def test_ollama_thinking_and_usage(ollama_upstream, clients) -> None:
    ollama_upstream.script.set(reply("Paris.", reasoning="The capital of France.", usage=(20, 2)))
    client = client_for("ollama", ollama_upstream, clients, api_key=None)
    answer, reasoning, events = await collect(client, model="qwen-think", reasoning=True, temperature=0.1)
    assert (answer, reasoning) == ("Paris.", "The capital of France.")
    assert Usage(20, 2) in events
    sent = ollama_upstream.last_request.json
    assert sent["think"] is True and sent["options"]["temperature"] == 0.1


async def test_ollama_inline_think_tags_are_reasoning(ollama_upstream, clients) -> None:
    ollama_upstream.script.set(reply("Paris.", reasoning="The capital of France."))
    answer, reasoning, _ = await collect(client_for("ollama", ollama_upstream, clients, api_key=None),
                                         model="llama-fake")
    assert (answer, reasoning) == ("Paris.", "The capital of France.")
    assert "think" not in ollama_upstream.last_request.json


async def test_ollama_models_and_unknown_model(ollama_upstream, clients) -> None:
    client = client_for("ollama", ollama_upstream, clients, api_key=None)
    assert [m.id for m in await client.list_models()] == ["llama-fake", "qwen-think"]
    ollama_upstream.script.set(error(404, "model 'nope' not found"))
    with pytest.raises(NotFound):
        await collect(client, model="nope")
