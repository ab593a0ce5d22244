"""Providers and models through the REST API, against a fake OpenAI-compatible upstream."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend import db
from backend.config import get_settings
from backend.models import AuditEvent, Provider
from backend.security.crypto import decrypt_secret
from tests.conftest import bearer, login, register
from tests.fakes import reply

SECRET = "sk-test-key-that-must-not-leak"


def admin_token(client: TestClient) -> str:
    register(client, "admin")
    return login(client, "admin")["access_token"]


def user_token(client: TestClient) -> str:
    register(client, "bob")
    return login(client, "bob")["access_token"]


def add_provider(client: TestClient, token: str, upstream, name: str = "acme", api_key: str | None = "test-key"):
    body = {"name": name, "kind": "openai", "base_url": upstream.base_url}
    if api_key is not None:
        body["api_key"] = api_key
    response = client.post("/api/v1/providers", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def test_create_from_a_preset_and_the_key_never_comes_back(client: TestClient) -> None:
    token = admin_token(client)
    response = client.post("/api/v1/providers", headers=bearer(token),
                           json={"name": "deepseek", "kind": "", "preset": "deepseek", "api_key": SECRET})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["kind"] == "openai" and created["base_url"] == "https://api.deepseek.com/v1"
    assert created["has_api_key"] is True and created["api_key_hint"] == "sk-…leak"
    for answer in (response, client.get("/api/v1/providers", headers=bearer(token)),
                   client.get(f"/api/v1/providers/{created['id']}", headers=bearer(token))):
        assert SECRET not in answer.text
    with Session(db.get_engine()) as session:
        stored = session.exec(select(Provider)).one()
    assert stored.api_key_encrypted and SECRET not in stored.api_key_encrypted
    assert decrypt_secret(stored.api_key_encrypted, secret_key=get_settings().effective_secret_key) == SECRET


def test_provider_input_is_validated(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    cases = [
        ({"name": "has/slash", "kind": "openai", "base_url": "http://x"}, 400, "provider name"),
        ({"name": "ok", "kind": "openai", "base_url": "ftp://x"}, 400, "http://"),
        ({"name": "ok", "kind": "mystery", "base_url": "http://x"}, 400, "Unknown provider kind"),
        ({"name": "ok", "kind": "openai", "base_url": "http://x", "timeout_seconds": -1}, 422, "timeout"),
    ]
    for body, status, fragment in cases:
        response = client.post("/api/v1/providers", json=body, headers=bearer(token))
        assert response.status_code == status, (body, response.text)
        assert fragment in response.json()["detail"]
    add_provider(client, token, openai_upstream)
    duplicate = client.post("/api/v1/providers", headers=bearer(token),
                            json={"name": "ACME", "kind": "openai", "base_url": "http://x"})
    assert duplicate.status_code == 409


def test_only_admins_manage_providers(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    bob = user_token(client)
    pid = provider["id"]
    for method, path in [("GET", "/api/v1/providers"), ("POST", "/api/v1/providers"),
                         ("GET", f"/api/v1/providers/{pid}"), ("PATCH", f"/api/v1/providers/{pid}"),
                         ("DELETE", f"/api/v1/providers/{pid}"), ("POST", f"/api/v1/providers/{pid}/test"),
                         ("POST", f"/api/v1/providers/{pid}/sync"), ("PATCH", "/api/v1/models/acme/fake-chat")]:
        assert client.request(method, path, json={}, headers=bearer(bob)).status_code == 403, path
        assert client.request(method, path, json={}).status_code == 401, path


def test_connection_test_reports_latency_or_the_reason(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    good = add_provider(client, token, openai_upstream)
    bad = add_provider(client, token, openai_upstream, name="badkey", api_key="wrong")
    ok = client.post(f"/api/v1/providers/{good['id']}/test", headers=bearer(token)).json()
    assert ok["ok"] is True and ok["latency_ms"] >= 0 and "error" not in ok
    failed = client.post(f"/api/v1/providers/{bad['id']}/test", headers=bearer(token)).json()
    assert failed["ok"] is False and "refused the API key" in failed["error"]
    listed = {p["name"]: p for p in client.get("/api/v1/providers", headers=bearer(token)).json()["data"]}
    assert listed["acme"]["last_test_ok"] is True and listed["badkey"]["last_test_ok"] is False
    assert client.post("/api/v1/providers/999/test", headers=bearer(token)).status_code == 404


def test_sync_enable_rename_and_what_users_see(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    synced = client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    assert synced.status_code == 200
    models = {m["id"]: m for m in synced.json()["models"]}
    assert set(models) == {"acme/fake-chat", "acme/fake-r1", "acme/slow-model"}
    assert "reasoning" in models["acme/fake-r1"]["capabilities"]  # guessed from the name

    bob = user_token(client)
    assert len(client.get("/api/v1/models", headers=bearer(bob)).json()["data"]) == 3
    off = client.patch("/api/v1/models/acme/slow-model", json={"enabled": False}, headers=bearer(token))
    assert off.status_code == 200 and off.json()["enabled"] is False
    renamed = client.patch("/api/v1/models/acme/fake-chat", headers=bearer(token), json={
        "display_name": "House chat", "capabilities": ["tools"], "context_length": 8192,
        "default_params": {"temperature": 0.2}})
    assert renamed.status_code == 200, renamed.text
    seen = {m["id"]: m for m in client.get("/api/v1/models", headers=bearer(bob)).json()["data"]}
    assert set(seen) == {"acme/fake-chat", "acme/fake-r1"}
    assert seen["acme/fake-chat"]["name"] == "House chat"
    assert seen["acme/fake-chat"]["default_params"] == {"temperature": 0.2}
    # admins can ask for everything; users asking for everything still get the enabled ones
    assert len(client.get("/api/v1/models?all=true", headers=bearer(token)).json()["data"]) == 3
    assert len(client.get("/api/v1/models?all=true", headers=bearer(bob)).json()["data"]) == 2

    # a re-sync keeps what the admin set
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    again = {m["id"]: m for m in client.get("/api/v1/models?all=true", headers=bearer(token)).json()["data"]}
    assert again["acme/slow-model"]["enabled"] is False and again["acme/fake-chat"]["name"] == "House chat"


def test_a_model_gone_upstream_is_no_longer_offered(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    openai_upstream.models = ["fake-chat"]
    try:
        client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    finally:
        openai_upstream.models = ["fake-chat", "fake-r1", "slow-model"]
    assert [m["id"] for m in client.get("/api/v1/models", headers=bearer(token)).json()["data"]] == ["acme/fake-chat"]


def test_model_updates_are_validated(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    for body, fragment in [({"capabilities": ["telepathy"]}, "Unknown capabilities"),
                           ({"default_params": {"temperature": 9}}, "temperature must be"),
                           ({"default_params": {"seed": 1}}, "Unknown parameters")]:
        response = client.patch("/api/v1/models/acme/fake-chat", json=body, headers=bearer(token))
        assert response.status_code == 400 and fragment in response.json()["detail"]
    assert client.patch("/api/v1/models/acme/nope", json={}, headers=bearer(token)).status_code == 404


def test_sync_failure_is_a_clear_error(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream, api_key="wrong")
    response = client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    assert response.status_code == 502
    assert "refused the API key" in response.json()["detail"]


def test_update_key_rename_and_delete(client: TestClient, openai_upstream) -> None:
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    pid = provider["id"]
    client.post(f"/api/v1/providers/{pid}/sync", headers=bearer(token))
    renamed = client.patch(f"/api/v1/providers/{pid}", json={"name": "acme2", "timeout_seconds": 5,
                                                             "api_key": SECRET}, headers=bearer(token)).json()
    assert renamed["name"] == "acme2" and renamed["api_key_hint"] == "sk-…leak" and renamed["timeout_seconds"] == 5
    assert client.get("/api/v1/models", headers=bearer(token)).json()["data"][0]["id"].startswith("acme2/")
    removed = client.patch(f"/api/v1/providers/{pid}", json={"api_key": ""}, headers=bearer(token)).json()
    assert removed["has_api_key"] is False and removed["api_key_hint"] is None
    assert client.delete(f"/api/v1/providers/{pid}", headers=bearer(token)).status_code == 204
    assert client.get("/api/v1/models", headers=bearer(token)).json()["data"] == []
    assert client.get(f"/api/v1/providers/{pid}", headers=bearer(token)).status_code == 404
    with Session(db.get_engine()) as session:
        events = session.exec(select(AuditEvent)).all()
    for action in ("provider.create", "provider.sync", "provider.update", "provider.delete"):
        assert action in [e.action for e in events]
    assert all(SECRET not in str(e.detail) for e in events)  # the audit log shows the hint only


def test_presets_are_listed(client: TestClient) -> None:
    token = admin_token(client)
    presets = {p["key"]: p for p in client.get("/api/v1/providers/presets", headers=bearer(token)).json()["data"]}
    for key in ("openai", "anthropic", "deepseek", "qwen", "glm", "moonshot", "siliconflow", "openrouter", "vllm",
                "lmstudio", "ollama"):
        assert key in presets
    assert presets["anthropic"]["kind"] == "anthropic" and presets["ollama"]["needs_api_key"] is False


def test_model_update_is_audited(client: TestClient, openai_upstream) -> None:
    openai_upstream.script.set(reply("hi"))
    token = admin_token(client)
    provider = add_provider(client, token, openai_upstream)
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=bearer(token))
    client.patch("/api/v1/models/acme/fake-chat", json={"enabled": False}, headers=bearer(token))
    with Session(db.get_engine()) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "model.update")).all()
    assert events and events[0].target == "model:acme/fake-chat"
