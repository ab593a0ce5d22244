"""`/api/v1/admin/*`: users, settings, audit, system; a plain user is refused every endpoint."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from backend.db import session_scope
from backend.errors import Forbidden
from backend.models import Conversation, Dataset, Prompt, TrainingJob, UsageRecord, User
from backend.models.admin import AdminSettingsUpdate, SystemSample
from backend.models.prompt import PromptVersion
from backend.models.user import Role, UserUpdate
from backend.services import monitor, reports, settings_store, users
from tests.conftest import TEST_PASSWORD, bearer, login, register

ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/admin/users", None), ("POST", "/api/v1/admin/users", {"username": "x1", "password": "x" * 10}),
    ("PATCH", "/api/v1/admin/users/1", {"disabled": True}), ("DELETE", "/api/v1/admin/users/1", None),
    ("GET", "/api/v1/admin/users/1/limits", None), ("GET", "/api/v1/admin/usage", None),
    ("GET", "/api/v1/admin/usage?format=csv", None), ("GET", "/api/v1/admin/usage/daily", None),
    ("GET", "/api/v1/admin/system", None), ("GET", "/api/v1/admin/system/history", None),
    ("GET", "/api/v1/admin/alerts", None), ("POST", "/api/v1/admin/alerts/webhook-test", {}),
    ("GET", "/api/v1/admin/audit", None), ("GET", "/api/v1/admin/audit?format=csv", None),
    ("GET", "/api/v1/admin/settings", None), ("PATCH", "/api/v1/admin/settings", {"allow_registration": False}),
]


@pytest.fixture
def root(client: TestClient) -> dict[str, str]:
    register(client, "root")
    return bearer(login(client, "root")["access_token"])


@pytest.fixture
def bob(client: TestClient, root: dict[str, str]) -> dict[str, str]:
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


def user_id(client: TestClient, root: dict[str, str], name: str) -> int:
    listed = client.get("/api/v1/admin/users", headers=root).json()["data"]
    return next(u["id"] for u in listed if u["username"] == name)


def test_a_plain_user_is_refused_every_admin_endpoint(client, root, bob) -> None:
    for method, path, body in ADMIN_ENDPOINTS:
        response = client.request(method, path, headers=bob, json=body)
        assert response.status_code == 403, (method, path, response.text)
    assert client.get("/api/v1/admin/users").status_code == 401


def test_create_list_search_and_delete_a_user(client, root) -> None:
    created = client.post("/api/v1/admin/users", headers=root,
                          json={"username": "carol", "password": TEST_PASSWORD, "role": "admin"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "admin" and created.json()["rate_limit_per_minute"] is None
    login(client, "carol")
    assert [u["username"] for u in client.get("/api/v1/admin/users?q=car", headers=root).json()["data"]] == ["carol"]
    assert client.post("/api/v1/admin/users", headers=root,
                       json={"username": "carol", "password": TEST_PASSWORD}).status_code == 409
    assert client.post("/api/v1/admin/users", headers=root, json={"username": "dave", "password": "short"}
                       ).status_code == 400
    assert client.post("/api/v1/admin/users", headers=root, json={"username": "dave"}).status_code == 422
    assert client.delete(f"/api/v1/admin/users/{created.json()['id']}", headers=root).status_code == 204
    assert client.get("/api/v1/admin/users?q=car", headers=root).json()["data"] == []
    assert client.post("/api/v1/auth/login", json={"username": "carol", "password": TEST_PASSWORD}).status_code == 401
    actions = [e["action"] for e in client.get("/api/v1/admin/audit", headers=root).json()["data"]]
    assert "user.create" in actions and "user.delete" in actions


def test_deleting_yourself_or_a_missing_user_is_refused(client, root) -> None:
    me = user_id(client, root, "root")
    assert client.delete(f"/api/v1/admin/users/{me}", headers=root).status_code == 409
    assert client.delete("/api/v1/admin/users/999", headers=root).status_code == 404


def test_deleting_a_user_deletes_what_they_own_by_the_foreign_keys(client, root, bob) -> None:
    bob_id = user_id(client, root, "bob")
    with session_scope() as session:
        conversation = Conversation(user_id=bob_id, title="mine")
        prompt = Prompt(user_id=bob_id, name="p")
        dataset = Dataset(user_id=bob_id, name="d", format="openai")
        session.add_all([conversation, prompt, dataset])
        session.flush()
        session.add(TrainingJob(user_id=bob_id, name="j", base_model="m", method="lora", dataset_id=dataset.id,
                                status="succeeded"))
        session.add(PromptVersion(prompt_id=prompt.id, version=1, messages=[], author_id=bob_id))
        session.commit()
    assert client.delete(f"/api/v1/admin/users/{bob_id}", headers=root).status_code == 204
    with session_scope() as session:
        for table in (Conversation, Prompt, PromptVersion, Dataset, TrainingJob):
            assert session.exec(select(func.count()).select_from(table)).one() == 0, table
        assert session.get(User, bob_id) is None
    assert client.get("/api/v1/users/me", headers=bob).status_code == 401  # his token died with him


def test_a_running_job_blocks_deleting_its_owner(client, root, bob) -> None:
    bob_id = user_id(client, root, "bob")
    with session_scope() as session:
        session.add(TrainingJob(user_id=bob_id, name="j", base_model="m", method="lora", status="running"))
        session.commit()
    response = client.delete(f"/api/v1/admin/users/{bob_id}", headers=root)
    assert response.status_code == 409 and "training job" in response.json()["detail"]


def test_disabling_invalidates_the_access_token_at_once(client, root, bob) -> None:
    assert client.get("/api/v1/users/me", headers=bob).status_code == 200
    bob_id = user_id(client, root, "bob")
    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"disabled": True}).status_code == 200
    assert client.get("/api/v1/users/me", headers=bob).status_code == 401


def test_role_enabling_and_password_reset_apply_at_once(client, root, bob) -> None:
    bob_id = user_id(client, root, "bob")
    assert client.get("/api/v1/admin/users", headers=bob).status_code == 403
    promoted = client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert client.get("/api/v1/admin/users", headers=bob).status_code == 200  # the same token, at once
    client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"role": "user"})
    assert client.get("/api/v1/admin/users", headers=bob).status_code == 403

    client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"disabled": True})
    assert client.post("/api/v1/auth/login", json={"username": "bob", "password": TEST_PASSWORD}).status_code == 403
    enabled = client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"disabled": False})
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    bob = bearer(login(client, "bob")["access_token"])

    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"password": "short"}).status_code == 400
    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"password": "brand new pass 1"}
                        ).status_code == 200
    assert client.get("/api/v1/users/me", headers=bob).status_code == 401  # his sessions ended
    assert client.post("/api/v1/auth/login", json={"username": "bob", "password": TEST_PASSWORD}).status_code == 401
    login(client, "bob", "brand new pass 1")

    updates = client.get("/api/v1/admin/audit?action=user.update", headers=root).json()
    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"role": "user"}).status_code == 200
    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={}).status_code == 200
    assert client.get("/api/v1/admin/audit?action=user.update", headers=root).json() == updates  # nothing changed
    assert [e["detail"] for e in updates["data"]][::-1] == [
        {"role": {"from": "user", "to": "admin"}}, {"role": {"from": "admin", "to": "user"}}, {"disabled": True},
        {"disabled": False}, {"password": "reset"}]


def test_the_services_refuse_an_admin_demoted_or_disabled_since(client, root, bob) -> None:
    """What an admin page opened before the change holds: the user as they were (the page test checks the page)."""
    bob_id, root_id = user_id(client, root, "bob"), user_id(client, root, "root")
    client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"role": "admin"})
    with session_scope() as session:
        stale = session.get(User, bob_id)
        session.expunge(stale)
    for change in ({"role": "user"}, {"role": "admin", "disabled": True}):
        client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json=change)
        with session_scope() as session:
            attempts = [
                lambda: users.create_user(session, actor=stale, username="mallory", password=TEST_PASSWORD),
                lambda: users.update_user(session, actor=stale, user_id=bob_id, changes=UserUpdate(role=Role.admin,
                                                                                                   disabled=False)),
                lambda: users.delete_user(session, actor=stale, user_id=root_id),
                lambda: settings_store.update(session, actor=stale,
                                              changes=AdminSettingsUpdate(allow_registration=False)),
                lambda: reports.export_audit(session, actor=stale),
                lambda: reports.export_usage(session, actor=stale, by="user"),
                lambda: monitor.try_webhook(session, actor=stale, url="http://127.0.0.1:9/hook"),
            ]
            for attempt in attempts:
                with pytest.raises(Forbidden):
                    attempt()
    listed = client.get("/api/v1/admin/users", headers=root).json()["data"]
    assert [(u["username"], u["role"], u["disabled"]) for u in listed] == [("bob", "admin", True),
                                                                          ("root", "admin", False)]
    assert client.get("/api/v1/admin/settings", headers=root).json()["allow_registration"] is True


def test_limit_overrides_are_set_and_cleared(client, root, bob) -> None:
    bob_id = user_id(client, root, "bob")
    changed = client.patch(f"/api/v1/admin/users/{bob_id}", headers=root,
                           json={"rate_limit_per_minute": 5, "daily_token_quota": 1000})
    assert changed.status_code == 200
    assert (changed.json()["rate_limit_per_minute"], changed.json()["daily_token_quota"]) == (5, 1000)
    limits = client.get(f"/api/v1/admin/users/{bob_id}/limits", headers=root).json()
    assert (limits["rate_limit_per_minute"], limits["daily_token_quota"], limits["remaining_today"]) == (5, 1000, 1000)
    cleared = client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"daily_token_quota": None}).json()
    assert (cleared["rate_limit_per_minute"], cleared["daily_token_quota"]) == (5, None)
    assert client.patch(f"/api/v1/admin/users/{bob_id}", headers=root, json={"daily_token_quota": -1}
                        ).status_code == 422
    event = client.get("/api/v1/admin/audit?action=user.update", headers=root).json()["data"][0]
    assert event["detail"]["daily_token_quota"] == {"from": 1000, "to": None}


def test_usage_periods_and_daily_series_by_user_and_model(client, root, bob) -> None:
    ids = {"root": user_id(client, root, "root"), "bob": user_id(client, root, "bob")}
    now = datetime.now(UTC)
    days = [(now - timedelta(days=n)).date().isoformat() for n in (3, 0)]
    calls = [  # (days ago, user, model, input, output, ms, status)
        (3, "bob", "m/a", 1, 2, 100, "ok"), (3, "root", "m/b", 10, 0, 300, "error"),
        (3, "root", "m/c", 4, 4, None, "ok"),
        (0, "bob", "m/a", 5, 5, 10, "ok"), (0, "bob", "m/b", 1, 1, 30, "ok"), (0, "root", "m/c", 2, 0, 50, "ok"),
    ]
    with session_scope() as session:
        session.add_all([UsageRecord(user_id=ids[user], model=model, source="gateway", input_tokens=i, output_tokens=o,
                                     total_ms=ms, status=status, time=now - timedelta(days=ago))
                         for ago, user, model, i, o, ms, status in calls])
        session.commit()

    def iso(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    yesterday = iso(now - timedelta(days=1))
    old = client.get(f"/api/v1/admin/usage?by=model&until={yesterday}", headers=root).json()["data"]
    assert [(r["key"], r["requests"], r["errors"], r["avg_latency_ms"]) for r in old] == [
        ("m/a", 1, 0, 100.0), ("m/b", 1, 1, 300.0), ("m/c", 1, 0, None)]
    recent = client.get(f"/api/v1/admin/usage?by=user&since={yesterday}", headers=root).json()["data"]
    assert [(r["key"], r["requests"], r["input_tokens"], r["avg_latency_ms"]) for r in recent] == [
        ("bob", 2, 6, 20.0), ("root", 1, 2, 50.0)]

    def daily(query: str) -> list[tuple[Any, ...]]:
        found = client.get(f"/api/v1/admin/usage/daily?{query}", headers=root).json()["data"]
        return [(d["day"], d["key"], d["requests"], d["input_tokens"] + d["output_tokens"], d["errors"],
                 d["avg_latency_ms"]) for d in found]

    assert daily("") == [(days[0], None, 3, 21, 1, 200.0), (days[1], None, 3, 14, 0, 30.0)]
    assert daily(f"until={yesterday}") == [(days[0], None, 3, 21, 1, 200.0)]
    assert daily(f"since={yesterday}&by=user") == [(days[1], "bob", 2, 12, 0, 20.0), (days[1], "root", 1, 2, 0, 50.0)]
    # m/a and m/c have 2 calls each, m/b too: the top 2 by name on a tie; the rest summed, latency averaged per call
    assert daily("by=model&top=2") == [
        (days[0], "m/a", 1, 3, 0, 100.0), (days[1], "m/a", 1, 10, 0, 10.0),
        (days[0], "m/b", 1, 10, 1, 300.0), (days[1], "m/b", 1, 2, 0, 30.0),
        (days[0], "(others)", 1, 8, 0, None), (days[1], "(others)", 1, 2, 0, 50.0)]
    assert daily("by=model&top=1") == [
        (days[0], "m/a", 1, 3, 0, 100.0), (days[1], "m/a", 1, 10, 0, 10.0),
        (days[0], "(others)", 2, 18, 1, 300.0), (days[1], "(others)", 2, 4, 0, 40.0)]
    for bad in ("by=day", "top=0", "since=soon"):
        assert client.get(f"/api/v1/admin/usage/daily?{bad}", headers=root).status_code == 422, bad


def test_settings_close_registration_and_set_the_default_role(client, root) -> None:
    assert client.get("/api/v1/admin/settings", headers=root).json()["allow_registration"] is True
    saved = client.patch("/api/v1/admin/settings", headers=root, json={"default_role": "admin"})
    assert saved.status_code == 200 and saved.json()["default_role"] == "admin"
    assert register(client, "erin")["role"] == "admin"
    client.patch("/api/v1/admin/settings", headers=root, json={"allow_registration": False})
    response = client.post("/api/v1/auth/register", json={"username": "frank", "password": TEST_PASSWORD})
    assert response.status_code == 403
    for bad in ({"alert_cpu_percent": 120}, {"alert_webhook_url": "ftp://x"}, {"default_role": "god"},
                {"rate_limit_per_minute": -1}):
        assert client.patch("/api/v1/admin/settings", headers=root, json=bad).status_code == 422, bad
    assert client.get("/api/v1/admin/audit?action=settings.", headers=root).json()["total"] == 2


def test_audit_filters_paging_and_csv(client, root, bob) -> None:
    client.post("/api/v1/auth/login", json={"username": "bob", "password": "wrong password"})
    everything = client.get("/api/v1/admin/audit?limit=2", headers=root).json()
    assert len(everything["data"]) == 2 and everything["total"] >= 5
    second = client.get("/api/v1/admin/audit?limit=2&offset=2", headers=root).json()["data"]
    assert second[0] != everything["data"][0]
    by_bob = client.get("/api/v1/admin/audit?user=bob", headers=root).json()
    assert by_bob["total"] >= 2 and {e["user"] for e in by_bob["data"]} == {"bob"}
    failed = client.get("/api/v1/admin/audit?action=auth.login_failed", headers=root).json()["data"]
    assert [e["user"] for e in failed] == ["bob"]
    assert client.get("/api/v1/admin/audit?q=login_fail", headers=root).json()["total"] == 1
    assert client.get("/api/v1/admin/audit?since=2999-01-01T00:00:00Z", headers=root).json() == {"data": [],
                                                                                                  "total": 0}
    assert client.get("/api/v1/admin/audit?limit=0", headers=root).status_code == 422
    assert client.get("/api/v1/admin/audit?since=yesterday", headers=root).status_code == 422
    exported = client.get("/api/v1/admin/audit?format=csv&user=bob", headers=root)
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0] == "time,user,action,target,ip,detail" and all(",bob," in line for line in lines[1:])
    assert client.get("/api/v1/admin/audit?action=audit.export", headers=root).json()["total"] == 1


def test_system_now_and_history(client, root) -> None:
    now = client.get("/api/v1/admin/system", headers=root).json()
    assert 0 <= now["cpu_percent"] <= 100 and now["memory"]["total"] > 0 and now["disk"]["total"] > 0
    assert isinstance(now["gpus"], list) and now["portal"]["rss"] > 0 and now["workers"] == []
    worker = subprocess.Popen(["sleep", "30"])  # a training job's worker process, as far as the monitor can tell
    try:
        with session_scope() as session:
            job = TrainingJob(user_id=user_id(client, root, "root"), name="tune", base_model="m", method="lora",
                              status="running", pid=worker.pid)
            session.add_all([job, TrainingJob(user_id=job.user_id, name="done", base_model="m", method="lora",
                                              status="succeeded", pid=1)])
            session.add(SystemSample(time=datetime.now(UTC) - timedelta(hours=25), cpu_percent=99))
            session.commit()
            job_id = job.id
        workers = client.get("/api/v1/admin/system", headers=root).json()["workers"]
        assert [(w["job_id"], w["job_name"], w["pid"]) for w in workers] == [(job_id, "tune", worker.pid)]
        assert workers[0]["rss"] > 0
        with session_scope() as session:
            sample, _ = monitor.take_sample(session)
            assert sample.workers[0]["pid"] == worker.pid
    finally:
        worker.kill()
        worker.wait()
    assert client.get("/api/v1/admin/system", headers=root).json()["workers"][0]["rss"] is None  # gone meanwhile
    history = client.get("/api/v1/admin/system/history?hours=24", headers=root).json()["data"]
    assert len(history) == 1 and history[0]["memory_total"] > 0  # the sample of 25 hours ago was deleted
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(SystemSample)).one() == 1
    assert client.get("/api/v1/admin/system/history?hours=48", headers=root).status_code == 422


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_an_alert_is_audited_posted_to_the_webhook_and_listed(client, root, webhook) -> None:
    webhook += "/T0/s3cret?token=s3cret"  # as hooks go: the address is the credential
    client.patch("/api/v1/admin/settings", headers=root,
                 json={"alert_memory_percent": 0.1, "alert_disk_percent": 0.1, "alert_webhook_url": webhook})
    with session_scope() as session:
        _, raised = monitor.take_sample(session)
        assert {a.metric for a in raised} == {"memory", "disk"}
        _, again = monitor.take_sample(session)
        assert again == []  # still over: raised once, not every minute
    assert [p["event"] for p in _Hook.received] == ["system.alert"]
    assert {a["metric"] for a in _Hook.received[0]["alerts"]} == {"memory", "disk"}
    assert client.get("/api/v1/admin/audit?action=system.alert", headers=root).json()["total"] == 1
    assert {a["metric"] for a in client.get("/api/v1/admin/alerts", headers=root).json()["data"]} == {"memory", "disk"}
    assert client.post("/api/v1/admin/alerts/webhook-test", headers=root, json={}).json() == {"ok": True}
    assert _Hook.received[-1]["event"] == "system.alert.test"
    masked = webhook.split("/hook")[0] + "/…"
    tested = client.get("/api/v1/admin/audit?action=system.webhook_test", headers=root).json()["data"]
    assert [(e["user"], e["target"], e["detail"]) for e in tested] == [("root", masked, {"ok": True})]
    saved = client.get("/api/v1/admin/audit?action=settings.update", headers=root).json()["data"][0]["detail"]
    assert saved["alert_webhook_url"] == {"from": "", "to": masked}
    assert "s3cret" not in client.get("/api/v1/admin/audit?format=csv", headers=root).text


def test_a_webhook_test_without_an_address_is_refused(client, root) -> None:
    assert client.post("/api/v1/admin/alerts/webhook-test", headers=root, json={}).status_code == 400
    assert client.post("/api/v1/admin/alerts/webhook-test", headers=root,
                       json={"url": "http://127.0.0.1:9/nothing"}).json() == {"ok": False}
