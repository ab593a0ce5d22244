"""Deploying a fine-tuned model: a real `transformers serve` on CPU for a tiny model built here, reached as
`local/<job name>` through the models list and the OpenAI-compatible gateway; undeploy; privacy; a portal restart;
a server that cannot start. (SQLite only: each case starts real model servers, which take seconds.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from backend.config import get_settings, reset_settings
from backend.db import session_scope
from backend.models import AuditEvent, Deployment, TrainingJob, User
from backend.services import deployments
from tests.conftest import bearer, login, register
from tests.training.tiny import build_model, finished_job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

START_TIMEOUT = 120.0  # seconds for a tiny model's server to come up on a busy CI machine


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    headers = {}
    for name in ("root", "alice", "bob"):
        register(client, name)
        headers[name] = bearer(login(client, name)["access_token"])
    return headers


@pytest.fixture(autouse=True)
def no_servers_left() -> Any:
    yield
    deployments.stop_servers()


def job_of(username: str, base: Path, **options: Any) -> int:
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        return finished_job(session, user=user, base=base, **options)


def wait_for(client: TestClient, headers: dict[str, str], deployment_id: int, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = client.get(f"/api/v1/deployments/{deployment_id}", headers=headers).json()
        if found["status"] in statuses or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def chat(client: TestClient, headers: dict[str, str], model: str, **extra: Any) -> Any:
    return client.post("/v1/chat/completions", headers=headers, json={
        "model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 6, **extra})


def test_a_deployed_adapter_answers_through_the_gateway_until_it_is_undeployed(client, people, tiny_model) -> None:
    alice, bob = people["alice"], people["bob"]
    job_id = job_of("alice", tiny_model)
    response = client.post(f"/api/v1/training/jobs/{job_id}/deploy", headers=alice)
    assert response.status_code == 202, response.text
    started = response.json()
    assert (started["status"], started["model"], started["job_name"]) == ("starting", "local/support-bot-v1",
                                                                        "Support bot v1")
    models = client.get("/api/v1/models", headers=alice).json()["data"]
    assert "local/support-bot-v1" not in [m["id"] for m in models]  # not before it answers

    running = wait_for(client, alice, started["id"], "running", "failed")
    assert running["status"] == "running", running
    assert running["url"].startswith("http://127.0.0.1:") and running["url"].endswith("/v1")
    with session_scope() as session:  # the adapter was merged into its base, and the merge is kept
        job = session.get(TrainingJob, job_id)
        assert job is not None and job.merged_path == f"training/{job_id}/merged"
    assert (get_settings().data_dir / f"training/{job_id}/merged/config.json").is_file()

    models = client.get("/api/v1/models", headers=bob).json()["data"]  # every user may chat with it
    listed = next(m for m in models if m["id"] == "local/support-bot-v1")
    assert listed["name"] == "Support bot v1" and listed["context_length"] == 512

    answer = chat(client, bob, "local/support-bot-v1")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "local/support-bot-v1" and body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 6
    streamed = chat(client, alice, "local/support-bot-v1", stream=True, stream_options={"include_usage": True})
    chunks = [orjson.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert chunks[-1]["usage"]["completion_tokens"] == 6

    # Private to the owner (and admins): bob sees none and cannot stop it; a deployed job is not deleted.
    assert client.get("/api/v1/deployments", headers=bob).json() == {"data": []}
    assert client.delete(f"/api/v1/deployments/{started['id']}", headers=bob).status_code == 404
    assert [d["id"] for d in client.get("/api/v1/deployments", headers=people["root"]).json()["data"]] == [
        started["id"]]
    refused = client.delete(f"/api/v1/training/jobs/{job_id}", headers=alice)
    assert refused.status_code == 409 and "undeploy it first" in refused.json()["detail"]
    again = client.post(f"/api/v1/training/jobs/{job_id}/deploy", headers=alice)
    assert again.status_code == 202 and again.json()["id"] == started["id"]  # one deployment a job

    with session_scope() as session:
        pid = session.get(Deployment, started["id"]).pid  # type: ignore[union-attr]
    stopped = client.delete(f"/api/v1/deployments/{started['id']}", headers=alice)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped" and stopped.json()["url"] is None
    assert not deployments.psutil.pid_exists(pid) or deployments.psutil.Process(pid).status() == "zombie"
    assert "local/support-bot-v1" not in [m["id"] for m in client.get("/api/v1/models", headers=bob).json()["data"]]
    gone = chat(client, bob, "local/support-bot-v1")
    assert gone.status_code == 404 and "No model local/support-bot-v1" in gone.json()["error"]["message"]
    listed = client.get("/api/v1/deployments", headers=alice).json()["data"]
    assert [(d["id"], d["status"]) for d in listed] == [(started["id"], "stopped")]
    with session_scope() as session:
        actions = [e.action for e in session.exec(select(AuditEvent).where(
            AuditEvent.target == f"job:{job_id}")).all()]
    assert actions.count("job.deploy") == 1 and actions.count("job.undeploy") == 1

    assert client.delete(f"/api/v1/training/jobs/{job_id}", headers=alice).status_code == 204  # now it may go
    assert client.get("/api/v1/deployments", headers=alice).json() == {"data": []}


def test_deployments_come_back_after_a_portal_restart(client, people, tiny_model) -> None:
    alice = people["alice"]
    job_id = job_of("alice", tiny_model, name="full model", method="full")
    started = client.post(f"/api/v1/training/jobs/{job_id}/deploy", headers=alice).json()
    assert wait_for(client, alice, started["id"], "running", "failed")["status"] == "running"
    with session_scope() as session:
        first_pid = session.get(Deployment, started["id"]).pid  # type: ignore[union-attr]

    # A clean shutdown stops the server but keeps it deployed: the next start brings it back on a new process.
    deployments.stop_servers()
    assert not deployments.psutil.pid_exists(first_pid) or deployments.psutil.Process(first_pid).status() == "zombie"
    with session_scope() as session:
        assert session.get(Deployment, started["id"]).status == "running"  # type: ignore[union-attr]
        assert deployments.adopt_or_restart(session) == [started["id"]]
    back = wait_for(client, alice, started["id"], "running", "failed")
    assert back["status"] == "running" and back["model"] == "local/full-model"
    assert chat(client, alice, "local/full-model").status_code == 200

    # The portal died (what it knew of its processes is gone): the next one adopts the server that still runs.
    with session_scope() as session:
        pid = session.get(Deployment, started["id"]).pid  # type: ignore[union-attr]
    deployments._processes.clear()
    with session_scope() as session:
        assert deployments.adopt_or_restart(session) == []
        assert session.get(Deployment, started["id"]).pid == pid  # type: ignore[union-attr]
    assert client.get(f"/api/v1/deployments/{started['id']}", headers=alice).json()["status"] == "running"
    assert chat(client, alice, "local/full-model").status_code == 200
    assert client.delete(f"/api/v1/deployments/{started['id']}", headers=alice).json()["status"] == "stopped"
    assert not deployments.psutil.pid_exists(pid) or deployments.psutil.Process(pid).status() == "zombie"


def test_limits_and_a_server_that_cannot_start(client, people, tiny_model, monkeypatch) -> None:
    alice = people["alice"]
    queued = job_of("alice", tiny_model, name="not finished")
    with session_scope() as session:
        job = session.get(TrainingJob, queued)
        job.status = "running"  # type: ignore[union-attr,assignment]
        session.add(job)
        session.commit()
    refused = client.post(f"/api/v1/training/jobs/{queued}/deploy", headers=alice)
    assert refused.status_code == 409 and "Only a job that succeeded can be deployed" in refused.text
    assert client.post(f"/api/v1/training/jobs/{queued}/deploy", headers=people["bob"]).status_code == 404

    broken = job_of("alice", tiny_model, name="broken", method="full")
    with session_scope() as session:
        job = session.get(TrainingJob, broken)
        (get_settings().data_dir / job.output_path / "config.json").write_text(  # type: ignore[union-attr,operator]
            '{"model_type": "no-such-architecture"}')
    started = client.post(f"/api/v1/training/jobs/{broken}/deploy", headers=alice).json()
    failed = wait_for(client, alice, started["id"], "running", "failed")
    assert failed["status"] == "failed" and "The model server did not start" in failed["error"]
    assert "no-such-architecture" in failed["error"]  # the reason, from the server's log

    monkeypatch.setenv("DEPLOY_MAX", "1")
    reset_settings()
    first = job_of("alice", tiny_model, name="first")
    second = job_of("alice", tiny_model, name="second")
    assert client.post(f"/api/v1/training/jobs/{first}/deploy", headers=alice).status_code == 202
    over = client.post(f"/api/v1/training/jobs/{second}/deploy", headers=alice)
    assert over.status_code == 409 and "DEPLOY_MAX" in over.json()["detail"]
    with session_scope() as session:
        deployment = session.exec(select(Deployment).where(Deployment.job_id == first)).one()
    assert client.delete(f"/api/v1/deployments/{deployment.id}", headers=alice).json()["status"] == "stopped"


def test_the_local_provider_is_kept_by_the_portal(client, people) -> None:
    root = people["root"]
    made = client.post("/api/v1/providers", headers=root, json={"name": "local", "kind": "openai",
                                                                "base_url": "http://127.0.0.1:9/v1"})
    assert made.status_code == 400 and "kept for deployed fine-tuned models" in made.json()["detail"]
    with session_scope() as session:
        provider = deployments.local_provider(session)
        session.commit()
        provider_id = provider.id
    for method, path, body in (("PATCH", "", {"base_url": "http://example.test/v1"}), ("DELETE", "", None),
                               ("POST", "/sync", None), ("POST", "/test", None)):
        response = client.request(method, f"/api/v1/providers/{provider_id}{path}", headers=root, json=body)
        assert response.status_code == 400, (method, path, response.text)
        assert "deploy and undeploy them on the Training page" in response.json()["detail"]
    assert client.patch(f"/api/v1/providers/{provider_id}", headers=root, json={"enabled": False}).status_code == 200
