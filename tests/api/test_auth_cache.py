"""The credential cache (`backend/services/bearer_cache.py`): a cached access or API token stops working on the very
next call once it is revoked, its user disabled, demoted, deleted or given a new password, or it expires."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from backend.config import reset_settings
from backend.db import session_scope
from backend.models.auth import ApiToken, AuthSession
from backend.models.base import utcnow
from backend.models.user import User
from backend.security import tokens
from backend.services import auth, bearer_cache
from tests.conftest import TEST_PASSWORD, bearer, login, register, signed_in_with_models
from tests.fakes import reply

MODEL = "acme/fake-chat"


@pytest.fixture(autouse=True)
def long_cache(isolated_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A minute, far longer than any test: what these tests see is invalidation, never an entry that ran out."""
    monkeypatch.setenv("AUTH_CACHE_SECONDS", "60")
    reset_settings()


@pytest.fixture
def root(client: TestClient, openai_upstream: Any) -> dict[str, str]:
    openai_upstream.script.set(reply("ok"))
    return signed_in_with_models(client, openai_upstream, "root")


@pytest.fixture
def bob(client: TestClient, root: dict[str, str]) -> dict[str, Any]:
    """bob's id, sign-in (access and refresh token) and a personal API token."""
    user = register(client, "bob")
    pair = login(client, "bob")
    created = client.post("/api/v1/auth/tokens", json={"name": "script"}, headers=bearer(pair["access_token"])).json()
    return {"id": user["id"], **pair, "token": created["token"], "token_id": created["id"]}


def gateway(client: TestClient, token: str) -> int:
    response = client.post("/v1/chat/completions", headers=bearer(token),
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    return response.status_code


def me(client: TestClient, token: str) -> int:
    return client.get("/api/v1/users/me", headers=bearer(token)).status_code


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the database resolutions of credentials (a call answered from the cache makes none)."""
    calls: list[str] = []
    api_token_user, session_user = auth._api_token_user, auth._session_user

    def counted_api_token_user(*args: Any, **kwargs: Any) -> Any:
        calls.append("api")
        return api_token_user(*args, **kwargs)

    def counted_session_user(*args: Any, **kwargs: Any) -> Any:
        calls.append("access")
        return session_user(*args, **kwargs)

    monkeypatch.setattr(auth, "_api_token_user", counted_api_token_user)
    monkeypatch.setattr(auth, "_session_user", counted_session_user)
    return calls


def test_a_cached_credential_skips_the_database(client, bob, resolutions) -> None:
    bearer_cache.invalidate()  # bob's access token was used (and kept) to create his API token
    for _ in range(3):
        assert gateway(client, bob["token"]) == 200
        assert me(client, bob["access_token"]) == 200
    assert resolutions == ["api", "access"]


def test_the_cache_keys_are_not_the_tokens(client, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    keys = [key for _, key in bearer_cache.cache._entries]
    assert keys
    for secret in (bob["token"], bob["access_token"]):
        assert secret.encode() not in keys
        assert hashlib.sha256(secret.encode()).digest() not in keys
        assert tokens.hash_token(secret).encode() not in keys


def test_zero_seconds_turns_the_cache_off(client, bob, resolutions, monkeypatch) -> None:
    monkeypatch.setenv("AUTH_CACHE_SECONDS", "0")
    reset_settings()
    for _ in range(2):
        assert gateway(client, bob["token"]) == 200
    assert resolutions == ["api", "api"]


def test_a_revoked_api_token_is_refused_on_the_next_gateway_call(client, bob, resolutions) -> None:
    assert gateway(client, bob["token"]) == 200
    assert gateway(client, bob["token"]) == 200  # from the cache
    revoked = client.delete(f"/api/v1/auth/tokens/{bob['token_id']}", headers=bearer(bob["access_token"]))
    assert revoked.status_code == 204
    assert gateway(client, bob["token"]) == 401
    assert resolutions.count("api") == 2


def test_a_disabled_user_is_refused_on_the_next_gateway_call(client, root, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    assert gateway(client, bob["access_token"]) == 200
    disabled = client.patch(f"/api/v1/admin/users/{bob['id']}", json={"disabled": True}, headers=root)
    assert disabled.status_code == 200
    assert gateway(client, bob["token"]) == 401
    assert gateway(client, bob["access_token"]) == 401
    # Enabled again: the API token works again at once (sign-in sessions stay ended).
    assert client.patch(f"/api/v1/admin/users/{bob['id']}", json={"disabled": False}, headers=root).status_code == 200
    assert gateway(client, bob["token"]) == 200
    assert gateway(client, bob["access_token"]) == 401


def test_a_cached_access_token_past_its_expiry_is_refused(client, bob, resolutions, monkeypatch) -> None:
    assert gateway(client, bob["access_token"]) == 200
    assert resolutions == []  # from the cache (the fixture's call kept it)
    later = time.time() + bob["expires_in"] + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the clock the cache and the JWT check read
    assert gateway(client, bob["access_token"]) == 401
    assert me(client, bob["access_token"]) == 401


def test_a_cached_access_token_of_an_ended_session_is_refused(client, bob, monkeypatch) -> None:
    """The sign-in session may end before the access token does: the cache keeps the earlier of the two."""
    with session_scope() as session:
        auth_session = session.exec(select(AuthSession).where(AuthSession.user_id == bob["id"])).one()
        ends = auth_session.expires_at.timestamp()
    assert me(client, bob["access_token"]) == 200
    monkeypatch.setattr(time, "time", lambda: ends + 1)
    assert bearer_cache.cache.get(bob["access_token"]) is None


def test_logout_ends_the_cached_access_token(client, bob) -> None:
    assert me(client, bob["access_token"]) == 200
    assert client.post("/api/v1/auth/logout", headers=bearer(bob["access_token"])).status_code == 204
    assert me(client, bob["access_token"]) == 401
    assert me(client, bob["token"]) == 200  # API tokens are not sign-ins


def test_a_role_change_applies_on_the_next_call(client, root, bob) -> None:
    assert client.get("/api/v1/admin/users", headers=bearer(bob["token"])).status_code == 403
    promoted = client.patch(f"/api/v1/admin/users/{bob['id']}", json={"role": "admin"}, headers=root)
    assert promoted.status_code == 200
    assert client.get("/api/v1/admin/users", headers=bearer(bob["token"])).status_code == 200
    assert client.get("/api/v1/admin/users", headers=bearer(bob["access_token"])).status_code == 200
    assert client.patch(f"/api/v1/admin/users/{bob['id']}", json={"role": "user"}, headers=root).status_code == 200
    assert client.get("/api/v1/admin/users", headers=bearer(bob["token"])).status_code == 403
    assert client.get("/api/v1/admin/users", headers=bearer(bob["access_token"])).status_code == 403


def test_a_password_change_ends_the_other_sessions_at_once(client, bob) -> None:
    other = login(client, "bob")["access_token"]
    assert me(client, other) == 200
    changed = client.post("/api/v1/users/me/password", headers=bearer(bob["access_token"]),
                          json={"current_password": TEST_PASSWORD, "new_password": "a new password 2"})
    assert changed.status_code == 204
    assert me(client, other) == 401
    assert me(client, bob["access_token"]) == 200  # the session that changed it stays
    # The cached user of the kept session has the new password: the old one no longer changes it again.
    again = client.post("/api/v1/users/me/password", headers=bearer(bob["access_token"]),
                        json={"current_password": TEST_PASSWORD, "new_password": "a third password 3"})
    assert again.status_code == 400


def test_a_password_reset_by_an_admin_ends_the_cached_sessions(client, root, bob) -> None:
    assert me(client, bob["access_token"]) == 200
    reset = client.patch(f"/api/v1/admin/users/{bob['id']}", json={"password": "reset password 1"}, headers=root)
    assert reset.status_code == 200
    assert me(client, bob["access_token"]) == 401


def test_a_deleted_user_is_refused_on_the_next_call(client, root, bob) -> None:
    assert gateway(client, bob["token"]) == 200
    assert me(client, bob["access_token"]) == 200
    assert client.delete(f"/api/v1/admin/users/{bob['id']}", headers=root).status_code == 204
    assert gateway(client, bob["token"]) == 401
    assert me(client, bob["access_token"]) == 401


def test_a_reused_refresh_token_ends_the_cached_access_token(client, bob) -> None:
    assert me(client, bob["access_token"]) == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]}).status_code == 200
    assert me(client, bob["access_token"]) == 200  # a rotation ends nothing
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert reused.status_code == 401
    assert me(client, bob["access_token"]) == 401


def test_a_change_made_elsewhere_through_the_orm_also_clears_the_cache(client, bob) -> None:
    """The safety net: code that revokes or disables without calling `invalidate` (a page, a later feature)."""
    assert gateway(client, bob["token"]) == 200
    assert me(client, bob["access_token"]) == 200
    with session_scope() as session:
        api_token = session.get(ApiToken, bob["token_id"])
        assert api_token is not None
        api_token.revoked_at = utcnow()
        session.add(api_token)
        session.commit()
    assert gateway(client, bob["token"]) == 401
    assert me(client, bob["access_token"]) == 200
    with session_scope() as session:
        user = session.get(User, bob["id"])
        assert user is not None
        user.disabled = True
        session.add(user)
        session.commit()
    assert me(client, bob["access_token"]) == 401


def test_bookkeeping_writes_do_not_clear_the_cache(client, bob) -> None:
    assert me(client, bob["access_token"]) == 200
    generation = bearer_cache.cache.generation
    login(client, "bob")  # writes last_login_at and a new sign-in session
    with session_scope() as session:
        api_token = session.get(ApiToken, bob["token_id"])
        assert api_token is not None
        api_token.last_used_at = utcnow()
        session.add(api_token)
        session.commit()
    assert bearer_cache.cache.generation == generation


def test_a_resolution_that_raced_with_a_revocation_is_not_kept(client, bob) -> None:
    """What a request read before a revocation's commit must not be cached after it."""
    with session_scope() as session:
        generation = bearer_cache.cache.generation
        user, _ = auth._api_token_user(session, bob["token"])
        bearer_cache.invalidate()  # the revocation commits while the request is still on its way
        bearer_cache.cache.put(bob["token"], generation=generation, user=user, session_id=None,
                               token_id=bob["token_id"], expires_at=None)
    assert bearer_cache.cache.get(bob["token"]) is None


def test_the_cached_user_is_a_fresh_detached_copy(client, bob) -> None:
    assert me(client, bob["access_token"]) == 200
    first = auth.cached_principal(bob["access_token"])
    second = auth.cached_principal(bob["access_token"])
    assert first is not None and second is not None
    assert first.user is not second.user and first.user.username == second.user.username == "bob"
    # A service may still save it, as it saved the user a closed session had loaded.
    changed = client.patch("/api/v1/users/me", json={"language": "zh"}, headers=bearer(bob["access_token"]))
    assert changed.status_code == 200 and changed.json()["language"] == "zh"
    assert client.get("/api/v1/users/me", headers=bearer(bob["access_token"])).json()["language"] == "zh"
    with session_scope() as session:
        assert session.exec(select(User).where(User.username == "bob")).one().language == "zh"
