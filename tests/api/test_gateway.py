"""The OpenAI-compatible gateway, used by the real openai SDK over HTTP, in front of a fake upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend import db
from backend.models import UsageRecord
from tests.conftest import bearer, login, register
from tests.fakes import FakeServer, cut_after, error, reply


@pytest.fixture
def portal(api_app: FastAPI) -> Iterator[FakeServer]:
    """The portal's API served over real HTTP, so that the SDK talks to it as to OpenAI."""
    with FakeServer(api_app) as server:
        yield server


@pytest.fixture
def setup(client: TestClient, openai_upstream) -> dict[str, Any]:
    register(client, "admin")
    admin = login(client, "admin")["access_token"]
    provider = client.post("/api/v1/providers", headers=bearer(admin), json={
        "name": "acme", "kind": "openai", "base_url": openai_upstream.base_url, "api_key": "test-key",
        "max_retries": 0}).json()
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(admin))
    register(client, "bob")
    bob = login(client, "bob")["access_token"]
    api_token = client.post("/api/v1/auth/tokens", json={"name": "sdk"}, headers=bearer(bob)).json()["token"]
    return {"admin": admin, "bob_access": bob, "bob_token": api_token, "provider": provider}


@pytest.fixture
async def sdk(portal: FakeServer, setup: dict[str, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=portal.url + "/v1", api_key=setup["bob_token"], max_retries=0)
    yield client
    await client.close()


def usage_rows(at_least: int = 1) -> list[UsageRecord]:
    """The usage rows, once at least `at_least` are written (the gateway writes them off the event loop)."""
    deadline = time.monotonic() + 5
    while True:
        with Session(db.get_engine()) as session:
            rows = list(session.exec(select(UsageRecord).order_by(UsageRecord.id)).all())
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


async def test_models_list_through_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    ids = [model.id async for model in sdk.models.list()]
    assert ids == ["acme/fake-chat", "acme/fake-r1", "acme/slow-model"]


async def test_streaming_with_reasoning_and_usage(sdk: openai.AsyncOpenAI, openai_upstream) -> None:
    openai_upstream.script.set(reply("It is 4.", reasoning="2+2=4", usage=(11, 4)))
    stream = await sdk.chat.completions.create(
        model="acme/fake-chat", messages=[{"role": "user", "content": "2+2?"}], stream=True,
        stream_options={"include_usage": True})
    text, reasoning, usage, finish = "", "", None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    assert (text, reasoning, finish) == ("It is 4.", "2+2=4", "stop")
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (11, 4)
    assert openai_upstream.last_request.json["model"] == "fake-chat"  # the provider prefix is the portal's
    row = usage_rows()[-1]
    assert (row.model, row.source, row.status, row.input_tokens, row.output_tokens) == (
        "acme/fake-chat", "gateway", "ok", 11, 4)
    assert row.ttft_ms is not None and row.total_ms is not None and row.user_id is not None


async def test_without_include_usage_there_is_no_usage_chunk(sdk: openai.AsyncOpenAI, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hi"))
    stream = await sdk.chat.completions.create(model="acme/fake-chat", messages=[{"role": "user", "content": "x"}],
                                               stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks) and all(chunk.choices for chunk in chunks)


async def test_non_streaming_answer(sdk: openai.AsyncOpenAI, openai_upstream) -> None:
    chunks = ["<think>hmm", "</think>", "Hello!"]
    openai_upstream.script.set(reply("".join(chunks), chunks=chunks, usage=(3, 2)))
    completion = await sdk.chat.completions.create(model="acme/fake-chat", messages=[
        {"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}], temperature=0.5)
    message = completion.choices[0].message
    assert message.content == "Hello!"
    assert (message.model_extra or {}).get("reasoning_content") == "hmm"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    sent = openai_upstream.last_request.json
    assert sent["temperature"] == 0.5 and sent["messages"][0] == {"role": "system", "content": "Be nice."}


async def test_an_access_token_works_too(portal: FakeServer, setup: dict[str, Any], openai_upstream) -> None:
    openai_upstream.script.set(reply("yes"))
    async with openai.AsyncOpenAI(base_url=portal.url + "/v1", api_key=setup["bob_access"], max_retries=0) as sdk:
        completion = await sdk.chat.completions.create(model="acme/fake-chat",
                                                       messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "yes"


async def test_errors_are_openai_errors(portal: FakeServer, sdk: openai.AsyncOpenAI, openai_upstream) -> None:
    async with openai.AsyncOpenAI(base_url=portal.url + "/v1", api_key="lpt_not-a-token", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError) as unauthenticated:
            await stranger.models.list()
    assert unauthenticated.value.body["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk.chat.completions.create(model="acme/nope", messages=[{"role": "user", "content": "x"}])
    assert "acme/nope" in unknown.value.message
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model="acme/fake-chat", messages=[{"role": "robot", "content": "x"}])

    openai_upstream.script.set(error(429, "slow down", retry_after=0.01))
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.chat.completions.create(model="acme/fake-chat", messages=[{"role": "user", "content": "x"}],
                                          stream=True)
    assert "rate limiting" in limited.value.message
    assert usage_rows()[-1].status == "error"


async def test_an_upstream_key_problem_is_a_gateway_error(client, portal, setup, sdk, openai_upstream) -> None:
    client.patch(f"/api/v1/providers/{setup['provider']['id']}", json={"api_key": "wrong"},
                 headers=bearer(setup["admin"]))
    with pytest.raises(openai.APIStatusError) as raised:
        await sdk.chat.completions.create(model="acme/fake-chat", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 502
    assert "refused the API key" in raised.value.message


async def test_a_cut_upstream_stream_ends_with_an_error_after_what_came(sdk: openai.AsyncOpenAI,
                                                                        openai_upstream) -> None:
    openai_upstream.script.set(cut_after(2, text="one two three four"))
    stream = await sdk.chat.completions.create(model="acme/fake-chat", messages=[{"role": "user", "content": "x"}],
                                               stream=True)
    text = ""
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
    assert text and "broke off" in raised.value.message
    assert usage_rows()[-1].status == "error"


def test_bad_bodies_get_openai_error_json(client: TestClient, setup: dict[str, Any]) -> None:
    headers = bearer(setup["bob_token"])
    for body in ({"messages": [{"role": "user", "content": "x"}]}, {"model": "acme/fake-chat"},
                 {"model": "acme/fake-chat", "messages": [{"role": "user", "content": 3}]},
                 {"model": "acme/fake-chat", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}):
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/v1/chat/completions", content=b"{", headers=headers).json()["error"]["message"]
    assert client.get("/v1/models").json()["error"]["type"] == "authentication_error"


def test_a_disabled_model_is_not_served(client: TestClient, setup: dict[str, Any]) -> None:
    client.patch("/api/v1/models/acme/fake-chat", json={"enabled": False}, headers=bearer(setup["admin"]))
    response = client.post("/v1/chat/completions", headers=bearer(setup["bob_token"]),
                           json={"model": "acme/fake-chat", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    listed = [m["id"] for m in client.get("/v1/models", headers=bearer(setup["bob_token"])).json()["data"]]
    assert "acme/fake-chat" not in listed


def test_model_defaults_apply_when_the_caller_sets_none(client: TestClient, setup, openai_upstream) -> None:
    openai_upstream.script.set(reply("ok"))
    client.patch("/api/v1/models/acme/fake-chat", json={"default_params": {"temperature": 0.1, "max_tokens": 64}},
                 headers=bearer(setup["admin"]))
    client.post("/v1/chat/completions", headers=bearer(setup["bob_token"]),
                json={"model": "acme/fake-chat", "messages": [{"role": "user", "content": "x"}]})
    assert openai_upstream.last_request.json["temperature"] == 0.1
    assert openai_upstream.last_request.json["max_tokens"] == 64
