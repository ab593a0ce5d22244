"""The auth REST API, on SQLite and (when TEST_DATABASE_URL answers) PostgreSQL."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend import db
from backend.config import get_settings, reset_settings
from backend.models import ApiToken, AuditEvent, RefreshToken, User
from backend.security.tokens import create_access_token
from tests.conftest import TEST_PASSWORD, bearer, login, register


def audit_actions() -> list[str]:
    with Session(db.get_engine()) as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


def test_health_needs_no_auth(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_lists_the_auth_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout",
                 "/api/v1/users/me", "/api/v1/auth/tokens", "/api/v1/auth/tokens/{token_id}"):
        assert path in paths


# --- register -------------------------------------------------------------------------------------------------


def test_first_user_is_admin_and_later_ones_are_users(client: TestClient) -> None:
    first = register(client, "alice")
    second = register(client, "bob")
    assert first["role"] == "admin"
    assert second["role"] == "user"
    assert "password_hash" not in first and "password" not in first
    assert audit_actions() == ["auth.register", "auth.register"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"username": "alice", "password": "short"}, 400, "at least 8 characters"),
        ({"username": "a", "password": TEST_PASSWORD}, 400, "3 to 64"),
        ({"username": "bad name!", "password": TEST_PASSWORD}, 400, "3 to 64"),
        ({"username": "alice"}, 422, "password"),
        ({}, 422, "username"),
    ],
)
def test_register_rejects_bad_input_with_a_clear_message(
    client: TestClient, body: dict, status: int, fragment: str
) -> None:
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
    assert fragment in response.json()["detail"]


def test_register_a_taken_username_is_a_conflict(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/api/v1/auth/register", json={"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]


def test_closed_registration_still_admits_the_first_user(client: TestClient, monkeypatch) -> None:
    monkeypatch.setenv("ALLOW_REGISTRATION", "false")
    reset_settings()
    assert register(client, "founder")["role"] == "admin"
    response = client.post("/api/v1/auth/register", json={"username": "late", "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "closed" in response.json()["detail"]


def test_messages_follow_accept_language(client: TestClient) -> None:
    response = client.post("/api/v1/auth/register", json={"username": "alice", "password": "short"},
                           headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code == 400
    assert "8" in response.json()["detail"]
    assert "characters" not in response.json()["detail"]


# --- login ----------------------------------------------------------------------------------------------------


def test_login_returns_tokens_and_an_httponly_refresh_cookie(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    cookie = response.headers["set-cookie"]
    assert f"refresh_token={body['refresh_token']}" in cookie
    assert "HttpOnly" in cookie and "Max-Age=604800" in cookie and "SameSite=strict" in cookie
    me = client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["role"] == "admin"
    assert "auth.login" in audit_actions()


def test_login_with_a_wrong_password_is_401_and_audited(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong password"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Wrong username or password"}
    unknown = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong password"})
    assert unknown.json() == response.json()  # no hint whether the user exists
    assert audit_actions().count("auth.login_failed") == 2


def test_five_failures_for_a_username_lock_it_with_retry_after(client: TestClient) -> None:
    register(client, "alice")
    for _ in range(5):
        assert client.post("/api/v1/auth/login", json={"username": "alice", "password": "nope nope"}).status_code == 401
    locked = client.post("/api/v1/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    assert locked.status_code == 429
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert f"{retry_after} s" in locked.json()["detail"]


def test_five_failures_from_an_address_lock_that_address(client: TestClient) -> None:
    register(client, "alice")
    for i in range(5):
        client.post("/api/v1/auth/login", json={"username": f"guess{i}", "password": "nope nope"})
    # another username from the same address is refused too
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_with_redis_the_lock_is_kept_in_redis(client: TestClient, redis_url: str, monkeypatch) -> None:
    import redis

    from backend.services import auth

    store = redis.Redis.from_url(redis_url)
    for key in store.scan_iter("llmportal:fail:*"):
        store.delete(key)
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_settings()
    auth.login_limiter.cache_clear()
    try:
        register(client, "alice")
        for _ in range(5):
            client.post("/api/v1/auth/login", json={"username": "alice", "password": "nope nope"})
        assert store.zcard("llmportal:fail:user:alice") == 5
        response = client.post("/api/v1/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
        assert response.status_code == 429
    finally:
        for key in store.scan_iter("llmportal:fail:*"):
            store.delete(key)


def test_login_bad_body_is_422(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", content="not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


# --- refresh --------------------------------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(client: TestClient) -> None:
    register(client, "alice")
    first = login(client, "alice")
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/users/me", headers=bearer(second["access_token"])).status_code == 200


def test_refresh_from_the_cookie(client: TestClient) -> None:
    register(client, "alice")
    login(client, "alice")  # the client keeps the cookie
    response = client.post("/api/v1/auth/refresh")
    assert response.status_code == 200
    assert response.json()["refresh_token"] == client.cookies.get("refresh_token")


def test_a_replayed_refresh_token_revokes_its_whole_family(client: TestClient) -> None:
    register(client, "alice")
    first = login(client, "alice")
    other_sign_in = login(client, "alice")
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()

    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    # the legitimate holder's newer tokens are dead too
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(second["access_token"])).status_code == 401
    # another sign-in of the same user is a different family and still works
    assert client.get("/api/v1/users/me", headers=bearer(other_sign_in["access_token"])).status_code == 200
    assert "auth.refresh_reuse" in audit_actions()


def test_refresh_with_nothing_or_garbage_is_401(client: TestClient) -> None:
    assert client.post("/api/v1/auth/refresh").status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "garbage"}).status_code == 401


def test_refresh_tokens_are_stored_hashed(client: TestClient) -> None:
    register(client, "alice")
    pair = login(client, "alice")
    with Session(db.get_engine()) as session:
        stored = session.exec(select(RefreshToken)).all()
    assert stored
    assert all(pair["refresh_token"] not in row.token_hash for row in stored)


# --- logout ---------------------------------------------------------------------------------------------------


def test_logout_ends_the_access_and_refresh_tokens(client: TestClient) -> None:
    register(client, "alice")
    pair = login(client, "alice")
    response = client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert "auth.logout" in audit_actions()


def test_logout_needs_a_token(client: TestClient) -> None:
    response = client.post("/api/v1/auth/logout")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- access tokens --------------------------------------------------------------------------------------------


def test_me_without_a_token_is_401_json(client: TestClient) -> None:
    response = client.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "Sign in" in response.json()["detail"]


def test_a_tampered_access_token_is_refused(client: TestClient) -> None:
    register(client, "alice")
    register(client, "mallory")
    token = login(client, "mallory")["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"  # pretend to be alice, the admin
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = client.get("/api/v1/users/me", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401


def test_an_unsigned_alg_none_token_is_refused(client: TestClient) -> None:
    register(client, "alice")
    token = login(client, "alice")["access_token"]
    payload = token.split(".")[1]
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert client.get("/api/v1/users/me", headers=bearer(f"{none_header}.{payload}.")).status_code == 401


def test_an_expired_access_token_is_refused(client: TestClient) -> None:
    register(client, "alice")
    pair = login(client, "alice")
    me = client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).json()
    # a correctly signed token for the same live session, but already expired
    from backend.security.tokens import decode_access_token

    session_id = decode_access_token(pair["access_token"], secret_key=get_settings().effective_secret_key).session_id
    expired = create_access_token(secret_key=get_settings().effective_secret_key, user_id=me["id"],
                                  session_id=session_id, ttl_seconds=-10)
    response = client.get("/api/v1/users/me", headers=bearer(expired))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_signed_with_another_key_is_refused(client: TestClient) -> None:
    register(client, "alice")
    pair = login(client, "alice")
    from backend.security.tokens import decode_access_token

    claims = decode_access_token(pair["access_token"], secret_key=get_settings().effective_secret_key)
    foreign = create_access_token(secret_key="another key", user_id=claims.user_id, session_id=claims.session_id,
                                  ttl_seconds=60)
    assert client.get("/api/v1/users/me", headers=bearer(foreign)).status_code == 401


# --- personal API tokens --------------------------------------------------------------------------------------


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(client: TestClient) -> None:
    register(client, "alice")
    access = login(client, "alice")["access_token"]
    created = client.post("/api/v1/auth/tokens", json={"name": "notebook"}, headers=bearer(access))
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("lpt_")

    listed = client.get("/api/v1/auth/tokens", headers=bearer(access)).json()["data"]
    assert [t["name"] for t in listed] == ["notebook"]
    assert "token" not in listed[0] and token not in json.dumps(listed)
    with Session(db.get_engine()) as session:
        assert all(token not in row.token_hash for row in session.exec(select(ApiToken)).all())

    me = client.get("/api/v1/users/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["username"] == "alice"

    token_id = created.json()["id"]
    assert client.delete(f"/api/v1/auth/tokens/{token_id}", headers=bearer(access)).status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/auth/tokens", headers=bearer(access)).json()["data"] == []
    assert {"token.create", "token.revoke"} <= set(audit_actions())


def test_tokens_of_another_user_cannot_be_revoked(client: TestClient) -> None:
    register(client, "alice")
    register(client, "bob")
    alice = login(client, "alice")["access_token"]
    bob = login(client, "bob")["access_token"]
    token_id = client.post("/api/v1/auth/tokens", json={"name": "a"}, headers=bearer(alice)).json()["id"]
    assert client.delete(f"/api/v1/auth/tokens/{token_id}", headers=bearer(bob)).status_code == 404
    assert client.get("/api/v1/auth/tokens", headers=bearer(bob)).json()["data"] == []


def test_token_endpoints_need_auth_and_a_name(client: TestClient) -> None:
    assert client.post("/api/v1/auth/tokens", json={"name": "x"}).status_code == 401
    assert client.get("/api/v1/auth/tokens").status_code == 401
    register(client, "alice")
    access = login(client, "alice")["access_token"]
    response = client.post("/api/v1/auth/tokens", json={"name": "  "}, headers=bearer(access))
    assert response.status_code == 400


# --- disabling, admin rights ----------------------------------------------------------------------------------


def test_disabling_a_user_ends_their_tokens_at_once(client: TestClient) -> None:
    register(client, "admin")
    bob = register(client, "bob")
    admin = login(client, "admin")["access_token"]
    pair = login(client, "bob")
    api_token = client.post("/api/v1/auth/tokens", json={"name": "t"}, headers=bearer(pair["access_token"]))
    api_token = api_token.json()["token"]

    response = client.patch(f"/api/v1/admin/users/{bob['id']}", json={"disabled": True}, headers=bearer(admin))
    assert response.status_code == 200 and response.json()["disabled"] is True

    assert client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(api_token)).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    relogin = client.post("/api/v1/auth/login", json={"username": "bob", "password": TEST_PASSWORD})
    assert relogin.status_code == 403
    assert "disabled" in relogin.json()["detail"]
    assert "user.update" in audit_actions()


def test_a_user_may_not_use_admin_endpoints(client: TestClient) -> None:
    admin = register(client, "admin")
    register(client, "bob")
    bob = login(client, "bob")["access_token"]
    assert client.get("/api/v1/admin/users", headers=bearer(bob)).status_code == 403
    patch = client.patch(f"/api/v1/admin/users/{admin['id']}", json={"disabled": True}, headers=bearer(bob))
    assert patch.status_code == 403
    assert client.get("/api/v1/admin/users").status_code == 401


def test_the_last_admin_cannot_be_demoted_or_disabled(client: TestClient) -> None:
    admin = register(client, "admin")
    access = login(client, "admin")["access_token"]
    for change in ({"role": "user"}, {"disabled": True}):
        response = client.patch(f"/api/v1/admin/users/{admin['id']}", json=change, headers=bearer(access))
        assert response.status_code == 409
    assert client.patch("/api/v1/admin/users/999", json={"role": "user"}, headers=bearer(access)).status_code == 404
    bad = client.patch(f"/api/v1/admin/users/{admin['id']}", json={"role": "emperor"}, headers=bearer(access))
    assert bad.status_code == 422


def test_admin_lists_and_searches_users(client: TestClient) -> None:
    register(client, "admin")
    register(client, "bob")
    access = login(client, "admin")["access_token"]
    names = [u["username"] for u in client.get("/api/v1/admin/users", headers=bearer(access)).json()["data"]]
    assert names == ["admin", "bob"]
    found = client.get("/api/v1/admin/users?q=bo", headers=bearer(access)).json()["data"]
    assert [u["username"] for u in found] == ["bob"]


# --- profile --------------------------------------------------------------------------------------------------


def test_change_password_keeps_this_session_and_ends_the_others(client: TestClient) -> None:
    register(client, "alice")
    here = login(client, "alice")
    elsewhere = login(client, "alice")
    wrong = client.post("/api/v1/users/me/password", headers=bearer(here["access_token"]),
                        json={"current_password": "not it at all", "new_password": "a brand new one"})
    assert wrong.status_code == 400
    response = client.post("/api/v1/users/me/password", headers=bearer(here["access_token"]),
                           json={"current_password": TEST_PASSWORD, "new_password": "a brand new one"})
    assert response.status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(here["access_token"])).status_code == 200
    assert client.get("/api/v1/users/me", headers=bearer(elsewhere["access_token"])).status_code == 401
    assert login(client, "alice", "a brand new one")["access_token"]


def test_language_preference(client: TestClient) -> None:
    register(client, "alice")
    access = login(client, "alice")["access_token"]
    response = client.patch("/api/v1/users/me", json={"language": "zh"}, headers=bearer(access))
    assert response.status_code == 200 and response.json()["language"] == "zh"
    assert client.patch("/api/v1/users/me", json={"language": "xx"}, headers=bearer(access)).status_code == 422


def test_passwords_are_argon2_hashes(client: TestClient) -> None:
    register(client, "alice")
    with Session(db.get_engine()) as session:
        user = session.exec(select(User)).one()
    assert user.password_hash.startswith("$argon2id$")
    assert TEST_PASSWORD not in user.password_hash


def test_access_token_lifetime_is_fifteen_minutes(client: TestClient) -> None:
    register(client, "alice")
    access = login(client, "alice")["access_token"]
    from backend.security.tokens import decode_access_token

    claims = decode_access_token(access, secret_key=get_settings().effective_secret_key)
    assert abs(claims.expires_at - (time.time() + 900)) < 30


def test_unknown_api_paths_and_crashes_answer_json(api_app, client: TestClient) -> None:
    assert client.get("/api/v1/no-such-thing").json() == {"detail": "Not Found"}

    @api_app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(api_app, raise_server_exceptions=False) as crashing:
        response = crashing.get("/api/v1/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.json() == {"detail": "Internal error; the administrator can find it in the log"}
