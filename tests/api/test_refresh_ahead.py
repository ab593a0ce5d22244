"""Refresh-ahead of the gateway's caches (credentials, model resolutions, limits): an entry used in the second half
of its lifetime is read again in the background, so a steady caller never waits for the database, and a change made
where no invalidation reaches (another instance: here a plain SQL update, which no ORM event sees) is noticed by
that read, still within the entry's lifetime."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from backend import db
from backend.api import gateway as gateway_api
from backend.config import get_settings, reset_settings
from backend.models.auth import ApiToken
from backend.models.base import utcnow
from backend.models.provider import ProviderModel
from backend.models.user import User
from backend.services import bearer_cache, limits, providers, refresh_ahead
from tests.conftest import bearer, login, register, signed_in_with_models
from tests.fakes import reply

MODEL = "acme/fake-chat"


@pytest.fixture(autouse=True)
def long_cache(isolated_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_CACHE_SECONDS", "60")
    reset_settings()


@pytest.fixture
def root(client: TestClient, openai_upstream: Any) -> dict[str, str]:
    openai_upstream.script.set(reply("ok"))
    return signed_in_with_models(client, openai_upstream, "root")


@pytest.fixture
def bob(client: TestClient, root: dict[str, str]) -> dict[str, Any]:
    user = register(client, "bob")
    access = login(client, "bob")["access_token"]
    created = client.post("/api/v1/auth/tokens", json={"name": "script"}, headers=bearer(access)).json()
    return {"id": user["id"], "token": created["token"], "token_id": created["id"]}


def gateway(client: TestClient, token: str) -> int:
    return client.post("/v1/chat/completions", headers=bearer(token),
                       json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).status_code


def eventually(condition: Callable[[], bool]) -> bool:
    """Wait for a background refresh (a worker thread) to have happened."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def sql(statement: Any) -> None:
    """A change as another instance makes it: straight to the database, past this process's ORM events."""
    with db.get_engine().begin() as connection:
        connection.execute(statement)


def age_credential(token: str) -> None:
    entry = bearer_cache.cache.get(token)
    assert entry is not None
    # Due (past half its lifetime), yet far from its end: what the tests wait for cannot be the entry running out.
    bearer_cache.cache._entries[entry.key] = replace(entry, fresh_until=time.monotonic() + entry.lifetime * 0.45)


def age_model(model_ref: str) -> None:
    _, resolved = providers._resolved[model_ref]
    providers._resolved[model_ref] = (time.monotonic() + providers._RESOLVED_TTL * 0.45, resolved)


def limits_key(user_id: int) -> tuple[str, int]:
    return get_settings().effective_database_url, user_id


def age_limits(user_id: int) -> None:
    key = limits_key(user_id)
    limits._cache[key] = (time.monotonic() + limits.CACHE_SECONDS * 0.45, limits._cache[key][1])


def test_due_is_the_second_half_of_a_lifetime() -> None:
    assert not refresh_ahead.due(expires_at=110.0, lifetime=10.0, now=100.0)
    assert not refresh_ahead.due(expires_at=110.0, lifetime=10.0, now=104.9)
    assert refresh_ahead.due(expires_at=110.0, lifetime=10.0, now=105.1)


def test_without_an_event_loop_nothing_runs() -> None:
    ran: list[int] = []
    refresh_ahead.in_background("k", lambda: ran.append(1))
    assert ran == [] and "k" not in refresh_ahead._running


async def test_one_refresh_per_key_at_a_time() -> None:
    release = threading.Event()
    ran: list[str] = []

    def slow() -> None:
        ran.append("slow")
        release.wait(5)

    async def until(condition: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the loop runs: the refresh starts from it
        return condition()

    refresh_ahead.in_background("key", slow)
    refresh_ahead.in_background("key", lambda: ran.append("second"))
    assert await until(lambda: ran == ["slow"])
    release.set()
    assert await until(lambda: "key" not in refresh_ahead._running)
    assert ran == ["slow"]
    refresh_ahead.in_background("key", lambda: ran.append("third"))  # the key is free again
    assert await until(lambda: ran == ["slow", "third"])


def test_a_steady_caller_keeps_its_credential_fresh(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    age_credential(bob["token"])
    assert gateway(client, bob["token"]) == 200  # from the cache, and a refresh starts
    assert eventually(lambda: (e := bearer_cache.cache.get(bob["token"])) is not None
                      and e.fresh_until - time.monotonic() > e.lifetime / 2)


def test_a_token_revoked_elsewhere_leaves_the_cache_at_the_refresh(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    sql(update(ApiToken).where(ApiToken.id == bob["token_id"]).values(revoked_at=utcnow()))  # type: ignore[arg-type]
    assert gateway(client, bob["token"]) == 200  # the documented window: this instance has not heard of it
    age_credential(bob["token"])
    assert gateway(client, bob["token"]) == 200  # still within the lifetime; the refresh reads the revocation
    assert eventually(lambda: bearer_cache.cache.get(bob["token"]) is None)
    assert gateway(client, bob["token"]) == 401


def test_a_user_disabled_elsewhere_leaves_the_cache_at_the_refresh(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    sql(update(User).where(User.id == bob["id"]).values(disabled=True))  # type: ignore[arg-type]
    age_credential(bob["token"])
    assert gateway(client, bob["token"]) == 200
    assert eventually(lambda: bearer_cache.cache.get(bob["token"]) is None)
    assert gateway(client, bob["token"]) == 401


def test_a_model_disabled_elsewhere_leaves_the_cache_at_the_refresh(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    assert providers.resolved_from_cache(MODEL) is not None
    sql(update(ProviderModel).where(ProviderModel.model_id == "fake-chat").values(enabled=False))  # type: ignore[arg-type]
    age_model(MODEL)
    assert gateway(client, bob["token"]) == 200
    assert eventually(lambda: MODEL not in providers._resolved)
    assert gateway(client, bob["token"]) == 404


def test_a_steady_caller_keeps_its_model_resolution(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    age_model(MODEL)
    assert gateway(client, bob["token"]) == 200
    assert eventually(lambda: providers._resolved[MODEL][0] - time.monotonic() > providers._RESOLVED_TTL / 2)


def test_limits_changed_elsewhere_arrive_with_the_refresh(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    sql(update(User).where(User.id == bob["id"]).values(rate_limit_per_minute=1))  # type: ignore[arg-type]
    age_limits(bob["id"])
    assert gateway(client, bob["token"]) == 200  # counted under the cached limits (none), and a refresh starts
    assert eventually(lambda: limits._cache[limits_key(bob["id"])][1].rate_per_minute == 1)
    assert gateway(client, bob["token"]) == 200  # the first of the new minute's one
    assert gateway(client, bob["token"]) == 429


def test_a_refresh_read_before_a_change_is_not_kept(client, bob, monkeypatch) -> None:
    """A refresh that read the old model list and stores after an admin's change must not bring the old back."""
    assert gateway(client, bob["token"]) == 200
    original = providers._find_model

    def find_then_change(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        providers.forget_resolved()  # the change commits while the refresh is between its read and its store
        return found

    monkeypatch.setattr(providers, "_find_model", find_then_change)
    providers._refresh_resolved(MODEL)
    assert MODEL not in providers._resolved


async def test_a_long_answer_keeps_its_callers_entries_fresh(client, bob) -> None:
    """A script's next call finds its entries fresh however long the answer before it took."""
    assert gateway(client, bob["token"]) == 200
    age_credential(bob["token"])
    age_model(MODEL)
    age_limits(bob["id"])
    fresh = gateway_api._KeepFresh(token=bob["token"], model=MODEL, user_id=bob["id"])
    fresh.next = 0.0  # a second of the answer has gone by
    fresh.tick()

    def renewed() -> bool:
        now = time.monotonic()
        credential = bearer_cache.cache.get(bob["token"])
        return (credential is not None and credential.fresh_until - now > credential.lifetime / 2
                and providers._resolved[MODEL][0] - now > providers._RESOLVED_TTL / 2
                and limits._cache[limits_key(bob["id"])][0] - now > limits.CACHE_SECONDS / 2)

    deadline = time.monotonic() + 10
    while not renewed() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the refreshes start from this loop
    assert renewed()


def test_keeping_fresh_looks_once_a_second(monkeypatch) -> None:
    looked: list[str] = []
    monkeypatch.setattr(gateway_api.auth, "keep_credential_fresh", lambda token: looked.append(token))
    fresh = gateway_api._KeepFresh(token="t", model=MODEL, user_id=1)
    fresh.tick()
    assert looked == []  # not before a second
    fresh.next = 0.0
    fresh.tick()
    fresh.tick()
    assert looked == ["t"]
