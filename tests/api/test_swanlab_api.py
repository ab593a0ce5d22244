"""`/api/v1/admin/swanlab`: an admin starts a real `swanlab watch` on the portal's log directory, it answers HTTP,
and stops it; a plain user is refused; a port already taken is a 409."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.config import reset_settings
from backend.services import tracking
from tests.conftest import bearer, login, register


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
        "running": False, "url": url, "mode": "local", "log_dir": str(tracking.log_dir())}

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
    for method, path in (("GET", ""), ("POST", "/start"), ("POST", "/stop")):
        assert client.request(method, f"/api/v1/admin/swanlab{path}", headers=bob).status_code == 403
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
