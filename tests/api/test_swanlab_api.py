"""`/api/v1/admin/swanlab`: an admin starts a real `swanlab watch` on the portal's log directory, it answers HTTP,
and stops it; a plain user is refused; a port already taken is a 409. The settings: mode, cloud host and a write-only
API key (never returned, never in the audit log), and the connection test against a fake SwanLab server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.config import reset_settings
from backend.services import tracking
from tests.conftest import bearer, login, register
from tests.fakes.swanlab_server import FakeSwanLab, start_swanlab

KEY = "sk-swanlab-api-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dashboard_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    port = free_port()
    monkeypatch.setenv("SWANLAB_PORT", str(port))
    monkeypatch.setenv("SWANLAB_HOST", "127.0.0.1")
    reset_settings()
    yield port
    tracking.stop()  # never leave a dashboard behind


@pytest.fixture
def root(client: TestClient) -> dict[str, str]:
    register(client, "root")  # the first account is the admin
    return bearer(login(client, "root")["access_token"])


@pytest.fixture
def bob(client: TestClient, root: dict[str, str]) -> dict[str, str]:
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


def test_an_admin_starts_and_stops_the_dashboard(client: TestClient, root: dict[str, str],
                                                 dashboard_port: int) -> None:
    url = f"http://127.0.0.1:{dashboard_port}"
    assert client.get("/api/v1/admin/swanlab", headers=root).json() == {
        "running": False, "url": url, "mode": "local", "log_dir": str(tracking.log_dir()),
        "cloud_host": "https://api.swanlab.cn", "web_host": "https://swanlab.cn", "key_set": False}

    started = client.post("/api/v1/admin/swanlab/start", headers=root)
    assert started.status_code == 200, started.text
    assert started.json()["running"] is True
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert tracking.log_dir().is_dir()  # what it shows: the portal's runs
    assert client.post("/api/v1/admin/swanlab/start", headers=root).json()["running"] is True  # harmless again

    stopped = client.post("/api/v1/admin/swanlab/stop", headers=root)
    assert stopped.status_code == 200 and stopped.json()["running"] is False
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/", timeout=2)
    actions = [e["action"] for e in client.get("/api/v1/admin/audit", headers=root).json()["data"]]
    assert "swanlab.start" in actions and "swanlab.stop" in actions


def test_a_plain_user_is_refused(client: TestClient, bob: dict[str, str], dashboard_port: int) -> None:
    for method, path in (("GET", ""), ("POST", "/start"), ("POST", "/stop"), ("PATCH", ""), ("POST", "/test")):
        assert client.request(method, f"/api/v1/admin/swanlab{path}", headers=bob, json={}).status_code == 403
    assert client.get("/api/v1/admin/swanlab").status_code == 401
    assert not tracking.status().running


def test_a_taken_port_or_disabled_tracking_is_refused(client: TestClient, root: dict[str, str],
                                                      dashboard_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", dashboard_port))
        taken.listen()
        response = client.post("/api/v1/admin/swanlab/start", headers=root)
        assert response.status_code == 409 and str(dashboard_port) in response.json()["detail"]
    monkeypatch.setenv("SWANLAB_MODE", "disabled")
    reset_settings()
    assert client.get("/api/v1/admin/swanlab", headers=root).json()["mode"] == "disabled"
    assert client.post("/api/v1/admin/swanlab/start", headers=root).status_code == 400


@pytest.fixture
def fake_cloud() -> Iterator[FakeSwanLab]:
    with start_swanlab(api_key=KEY, username="ada") as server:
        yield server


def test_an_admin_switches_to_the_cloud_with_a_write_only_key(client: TestClient, root: dict[str, str],
                                                              fake_cloud: FakeSwanLab) -> None:
    refused = client.patch("/api/v1/admin/swanlab", headers=root, json={"mode": "cloud"})
    assert refused.status_code == 400 and "API key" in refused.json()["detail"]
    saved = client.patch("/api/v1/admin/swanlab", headers=root,
                         json={"mode": "cloud", "cloud_host": fake_cloud.url + "/login", "api_key": KEY})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert (body["mode"], body["cloud_host"], body["web_host"], body["key_set"]) == (
        "cloud", fake_cloud.url, fake_cloud.url, True)
    assert KEY not in saved.text and KEY not in client.get("/api/v1/admin/swanlab", headers=root).text

    tested = client.post("/api/v1/admin/swanlab/test", headers=root)  # the saved host and key
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert (result["ok"], result["username"], result["host"], result["error"]) == (True, "ada", fake_cloud.url, None)
    assert result["latency_ms"] >= 0
    assert fake_cloud.logins[-1].headers["authorization"] == KEY

    wrong = client.post("/api/v1/admin/swanlab/test", headers={**root, "Accept-Language": "zh-CN"},
                        json={"api_key": "sk-wrong"}).json()
    assert wrong["ok"] is False and "拒绝" in wrong["error"] and fake_cloud.url in wrong["error"]
    assert client.post("/api/v1/admin/swanlab/start", headers=root).status_code == 400  # no local dashboard

    audit = client.get("/api/v1/admin/audit", headers=root).json()["data"]
    updates = [e for e in audit if e["action"] == "swanlab.update"]
    assert updates and updates[0]["detail"]["api_key"] == "set"
    assert [e["detail"]["ok"] for e in audit if e["action"] == "swanlab.test"] == [False, True]  # newest first
    assert KEY not in str(audit)

    cleared = client.patch("/api/v1/admin/swanlab", headers=root, json={"mode": "local", "api_key": ""}).json()
    assert (cleared["mode"], cleared["key_set"]) == ("local", False)
    missing = client.post("/api/v1/admin/swanlab/test", headers=root)
    assert missing.status_code == 400 and "no SwanLab API key" in missing.json()["detail"]


def test_bad_settings_are_refused(client: TestClient, root: dict[str, str]) -> None:
    for body in ({"mode": "sometimes"}, {"cloud_host": "ftp://swanlab.example.com"}, {"cloud_host": "http://"},
                 {"api_key": "x" * 501}):
        response = client.patch("/api/v1/admin/swanlab", headers=root, json=body)
        assert response.status_code in (400, 422), (body, response.text)
        assert "x" * 50 not in response.text  # a key that is too long is not echoed
    unreachable = client.post("/api/v1/admin/swanlab/test", headers=root,
                              json={"cloud_host": f"http://127.0.0.1:{free_port()}", "api_key": KEY}).json()
    assert unreachable["ok"] is False and unreachable["error"].startswith("Cannot reach http://127.0.0.1:")
