"""Per-user request rate and daily token quota on chat, compare and the gateway; usage numbers match the calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.services import inference
from tests.conftest import bearer, login, register, signed_in_with_models
from tests.fakes import error, reply

MODEL = "acme/fake-chat"


@pytest.fixture
def root(client: TestClient, openai_upstream) -> dict[str, str]:
    return signed_in_with_models(client, openai_upstream, "root")


@pytest.fixture
def bob(client: TestClient, root: dict[str, str]) -> dict[str, str]:
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


def bob_id(client: TestClient, root: dict[str, str]) -> int:
    return next(u["id"] for u in client.get("/api/v1/admin/users?q=bob", headers=root).json()["data"])


def gateway(client: TestClient, headers: dict[str, str], model: str = MODEL) -> Any:
    return client.post("/v1/chat/completions", headers=headers,
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def chat(client: TestClient, headers: dict[str, str], conversation_id: int) -> Any:
    with client.stream("POST", f"/api/v1/conversations/{conversation_id}/messages", json={"content": "hi"},
                       headers=headers) as response:
        response.read()
        return response


def conversation(client: TestClient, headers: dict[str, str]) -> int:
    return client.post("/api/v1/conversations", json={"model": MODEL}, headers=headers).json()["id"]


async def test_usage_numbers_match_the_calls_made(client, root, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hello.", usage=(11, 3)))
    for _ in range(3):
        assert gateway(client, bob).status_code == 200
    chat(client, root, conversation(client, root))
    openai_upstream.script.set(error(500, "boom"))
    assert gateway(client, bob).status_code >= 500
    await inference.flush_usage()

    by_user = {r["key"]: r for r in client.get("/api/v1/admin/usage?by=user", headers=root).json()["data"]}
    assert {k: (r["requests"], r["input_tokens"], r["output_tokens"], r["errors"]) for k, r in by_user.items()} == {
        "bob": (4, 33, 9, 1), "root": (1, 11, 3, 0)}
    assert by_user["bob"]["avg_latency_ms"] is not None
    by_model = client.get("/api/v1/admin/usage?by=model", headers=root).json()["data"]
    assert [(r["key"], r["requests"], r["input_tokens"], r["output_tokens"]) for r in by_model] == [
        (MODEL, 5, 44, 12)]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert client.get(f"/api/v1/admin/usage?since={tomorrow}", headers=root).json() == {"data": []}
    today = datetime.now(UTC).date().isoformat()

    def daily(query: str = "") -> list[tuple[Any, ...]]:
        found = client.get(f"/api/v1/admin/usage/daily{query}", headers=root).json()["data"]
        return [(d["day"], d["key"], d["requests"], d["input_tokens"], d["output_tokens"], d["errors"]) for d in found]

    assert daily() == [(today, None, 5, 44, 12, 1)]
    assert daily("?by=user") == [(today, "bob", 4, 33, 9, 1), (today, "root", 1, 11, 3, 0)]
    assert daily("?by=user&top=1") == [(today, "bob", 4, 33, 9, 1), (today, "(others)", 1, 11, 3, 0)]
    assert daily("?by=model") == [(today, MODEL, 5, 44, 12, 1)]
    exported = client.get("/api/v1/admin/usage?by=user&format=csv", headers=root)
    assert exported.text.splitlines()[:2] == ["user,requests,input_tokens,output_tokens,errors,avg_latency_ms",
                                              exported.text.splitlines()[1]]
    assert exported.text.splitlines()[1].startswith("bob,4,33,9,1,")
    assert client.get("/api/v1/admin/usage?by=day", headers=root).status_code == 422


async def test_the_daily_token_quota_on_the_gateway(client, root, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hello.", usage=(60, 40)))
    client.patch(f"/api/v1/admin/users/{bob_id(client, root)}", headers=root, json={"daily_token_quota": 150})
    assert gateway(client, bob).status_code == 200
    await inference.flush_usage()
    assert gateway(client, bob).status_code == 200  # 100 used of 150: allowed, and it may go over
    await inference.flush_usage()
    refused = gateway(client, bob)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    body = refused.json()["error"]
    assert body["type"] == "rate_limit_error"
    assert "Daily token quota of 150 tokens used up (200 used)" in body["message"]
    assert "resets at" in body["message"]
    assert gateway(client, root).status_code == 200  # the others are not limited
    limits = client.get(f"/api/v1/admin/users/{bob_id(client, root)}/limits", headers=root).json()
    assert (limits["used_today"], limits["remaining_today"]) == (200, 0)
    mine = client.get("/api/v1/users/me/limits", headers=bob).json()  # what bob's profile shows him
    assert mine == limits and (mine["daily_token_quota"], mine["rate_limit_per_minute"]) == (150, 0)
    assert datetime.fromisoformat(mine["resets_at"].replace("Z", "+00:00")) == datetime.combine(
        datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    assert client.get("/api/v1/users/me/limits").status_code == 401
    # Raising the quota applies at once: the cache is cleared.
    client.patch(f"/api/v1/admin/users/{bob_id(client, root)}", headers=root, json={"daily_token_quota": 1000})
    assert gateway(client, bob).status_code == 200


async def test_the_request_rate_on_the_gateway_chat_and_compare(client, root, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hello.", usage=(1, 1)))
    client.patch("/api/v1/admin/settings", headers=root, json={"rate_limit_per_minute": 3})
    client.patch(f"/api/v1/admin/users/{bob_id(client, root)}", headers=root,
                 json={"rate_limit_per_minute": 2})
    assert gateway(client, bob).status_code == 200
    chat_id = conversation(client, bob)
    assert chat(client, bob, chat_id).status_code == 200
    refused = chat(client, bob, chat_id)  # the third within a minute: chat and gateway share the rate
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60
    assert "Rate limit of 2 requests a minute reached" in json.loads(refused.read())["detail"]
    refused = gateway(client, bob)
    assert refused.status_code == 429 and "Rate limit of 2" in refused.json()["error"]["message"]
    compare = client.post("/api/v1/compare", headers=bob, json={"prompt": "Hi", "models": [MODEL, "acme/fake-r1"]})
    assert compare.status_code == 429
    # root has the default of 3
    for _ in range(3):
        assert gateway(client, root).status_code == 200
    assert gateway(client, root).status_code == 429
    # an override of 0 means no limit
    client.patch(f"/api/v1/admin/users/{bob_id(client, root)}", headers=root, json={"rate_limit_per_minute": 0})
    assert gateway(client, bob).status_code == 200


async def test_a_quota_refuses_chat_and_compare_too(client, root, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hello.", usage=(5, 5)))
    client.patch("/api/v1/admin/settings", headers=root, json={"daily_token_quota": 10})
    assert gateway(client, bob).status_code == 200
    await inference.flush_usage()
    assert chat(client, bob, conversation(client, bob)).status_code == 429
    compare = client.post("/api/v1/compare", headers=bob, json={"prompt": "Hi", "models": [MODEL, "acme/fake-r1"]})
    assert compare.status_code == 429 and "Daily token quota of 10 tokens" in compare.json()["detail"]
