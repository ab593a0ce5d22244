"""Training jobs through the REST API: create (with the base model checked at once), list with queue positions,
read, metrics, logs, cancel, resume, delete, options and the memory estimate; privacy between users; bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from backend.db import session_scope
from backend.models import AuditEvent, User
from backend.services import devices, training
from tests.conftest import bearer, login, register
from tests.training.tiny import build_model, chat_rows, write_dataset


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    """An admin (the first account), alice and bob, each with their bearer header."""
    headers = {}
    for name in ("root", "alice", "bob"):
        register(client, name)
        headers[name] = bearer(login(client, name)["access_token"])
    return headers


def dataset_of(username: str) -> int:
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        return write_dataset(session, user=user, rows=chat_rows()).dataset_id


def job_body(model: Path, dataset_id: int, **extra: Any) -> dict[str, Any]:
    return {"name": "first run", "base_model": str(model), "dataset_id": dataset_id, "method": "lora",
            "params": {"max_steps": 5, "save_steps": 2}, **extra}


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/training/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_job_is_queued_listed_and_read(client, people, tiny_model) -> None:
    dataset = dataset_of("alice")
    job = create(client, people["alice"], job_body(tiny_model, dataset))
    assert (job["status"], job["step"], job["total_steps"], job["queue_position"]) == ("queued", 0, 5, 1)
    assert job["checkpoints"] == [] and job["error"] is None and job["output_dir"] == f"training/{job['id']}"
    assert job["params"]["max_steps"] == 5 and job["params"]["packing"] is True  # defaults filled in
    assert job["params"]["learning_rate"] == 2e-4 and job["owner"] == "alice"
    # A start time without a timezone is taken as UTC (it was a 500).
    second = create(client, people["alice"], job_body(tiny_model, dataset, name="second",
                                                      start_after="2099-01-01T02:00:00"))
    assert second["queue_position"] == 2
    assert datetime.fromisoformat(second["start_after"]) == datetime(2099, 1, 1, 2, tzinfo=UTC)

    listed = client.get("/api/v1/training/jobs", headers=people["alice"]).json()["data"]
    assert [(j["name"], j["queue_position"]) for j in listed] == [("second", 2), ("first run", 1)]
    assert client.get("/api/v1/training/jobs?status=running", headers=people["alice"]).json() == {"data": []}
    read = client.get(f"/api/v1/training/jobs/{job['id']}", headers=people["alice"]).json()
    assert read["name"] == "first run" and read["dataset_version"] == 1
    with session_scope() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "job.create")).first()
    assert event is not None and event.username == "alice" and event.target == f"job:{job['id']}"


def test_bad_jobs_are_refused_with_the_reason(client, people, tiny_model, tmp_path) -> None:
    dataset = dataset_of("alice")
    alice = people["alice"]
    cases = [
        (job_body(tiny_model, dataset, method="dpo"), 400, "Unknown method dpo"),
        (job_body(tiny_model, dataset, params={"lr": 1}), 400, "Unknown parameters: lr"),
        (job_body(tiny_model, dataset, params={"learning_rate": 5}), 400, "learning_rate must be between"),
        (job_body(tiny_model, dataset, params={"batch_size": 1.5}), 400, "batch_size must be a whole number"),
        (job_body(tiny_model, dataset, params={"scheduler": "sawtooth"}), 400, "scheduler must be one of"),
        (job_body(tiny_model, dataset, name=" "), 400, "A job needs a name"),
        (job_body(tmp_path, dataset), 400, "has no config.json"),
        (job_body(tiny_model, dataset, base_model="nobody/no-such-model"), 400, "nor in the local Hugging Face cache"),
        (job_body(tiny_model, dataset, method="full", merge=True), 400, "Only a LoRA or QLoRA adapter can be merged"),
        (job_body(tiny_model, dataset, dataset_version=9), 404, "has no version 9"),
        (job_body(tiny_model, 999), 404, "No such dataset"),
    ]
    for body, code, message in cases:
        response = client.post("/api/v1/training/jobs", json=body, headers=alice)
        assert response.status_code == code, (body, response.text)
        assert message in response.json()["detail"], response.text
    assert client.post("/api/v1/training/jobs", json={"name": "x"}, headers=alice).status_code == 422
    assert client.get("/api/v1/training/jobs").status_code == 401


def test_qlora_without_cuda_is_refused_with_its_reason(client, people, tiny_model, monkeypatch) -> None:
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)  # what this machine has does not matter
    response = client.post("/api/v1/training/jobs", json=job_body(tiny_model, dataset_of("alice"), method="qlora"),
                           headers=people["alice"])
    assert response.status_code == 400
    assert response.json()["detail"] == ("QLoRA needs a CUDA GPU and this machine has none: choose LoRA or full "
                                         "fine-tuning")
    chinese = client.post("/api/v1/training/jobs", json=job_body(tiny_model, dataset_of("alice"), method="qlora"),
                          headers={**people["alice"], "Accept-Language": "zh-CN"})
    assert "QLoRA 需要 CUDA GPU" in chinese.json()["detail"]

    # A GPU but no bitsandbytes: refused for that reason.
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(devices, "bitsandbytes_installed", lambda: False)
    response = client.post("/api/v1/training/jobs", json=job_body(tiny_model, dataset_of("alice"), method="qlora"),
                           headers=people["alice"])
    assert response.status_code == 400
    assert response.json()["detail"] == ("QLoRA needs the bitsandbytes package, which is not installed: pip install "
                                         "bitsandbytes")
    options = client.get("/api/v1/training/options", headers=people["alice"]).json()
    assert "bitsandbytes" in options["qlora_unavailable"]

    # Both there: the job is queued.
    monkeypatch.setattr(devices, "bitsandbytes_installed", lambda: True)
    job = create(client, people["alice"], job_body(tiny_model, dataset_of("alice"), method="qlora"))
    assert (job["method"], job["status"]) == ("qlora", "queued")
    assert client.get("/api/v1/training/options", headers=people["alice"]).json()["qlora_unavailable"] is None


def test_jobs_are_private_to_their_owner_and_admins(client, people, tiny_model) -> None:
    job = create(client, people["alice"], job_body(tiny_model, dataset_of("alice")))
    path = f"/api/v1/training/jobs/{job['id']}"
    # Bob may neither see nor touch it, nor train on alice's dataset.
    assert client.get("/api/v1/training/jobs", headers=people["bob"]).json() == {"data": []}
    for method, suffix in (("get", ""), ("get", "/metrics"), ("get", "/logs"), ("post", "/cancel"),
                           ("post", "/resume"), ("delete", "")):
        response = client.request(method.upper(), path + suffix, headers=people["bob"])
        assert response.status_code == 404, (method, suffix, response.text)
    refused = client.post("/api/v1/training/jobs", json=job_body(tiny_model, job["dataset_id"]), headers=people["bob"])
    assert refused.status_code == 404
    # The admin sees every job.
    assert [j["owner"] for j in client.get("/api/v1/training/jobs", headers=people["root"]).json()["data"]] == ["alice"]
    assert client.get(path, headers=people["root"]).status_code == 200


def test_cancel_resume_and_delete(client, people, tiny_model) -> None:
    alice = people["alice"]
    job = create(client, alice, job_body(tiny_model, dataset_of("alice")))
    path = f"/api/v1/training/jobs/{job['id']}"
    assert client.delete(path, headers=alice).status_code == 409  # still queued
    assert client.post(f"{path}/resume", headers=alice).status_code == 409  # nothing to resume
    cancelled = client.post(f"{path}/cancel", headers=alice).json()
    assert cancelled["status"] == "cancelled" and cancelled["queue_position"] is None
    again = client.post(f"{path}/cancel", headers=alice)
    assert again.status_code == 409 and "already ended" in again.json()["detail"]
    resumed = client.post(f"{path}/resume", headers=alice).json()
    assert (resumed["status"], resumed["queue_position"]) == ("queued", 1)
    client.post(f"{path}/cancel", headers=alice)
    assert client.delete(path, headers=alice).status_code == 204
    assert client.get(path, headers=alice).status_code == 404
    assert not (training.job_dir(training.TrainingJob(output_dir=job["output_dir"]))).exists()
    with session_scope() as session:
        actions = [e.action for e in session.exec(select(AuditEvent).where(
            AuditEvent.action.startswith("job."))).all()]  # type: ignore[attr-defined]
    assert actions == ["job.create", "job.cancel", "job.resume", "job.cancel", "job.delete"]


def test_metrics_and_logs(client, people, tiny_model) -> None:
    alice = people["alice"]
    job = create(client, alice, job_body(tiny_model, dataset_of("alice")))
    with session_scope() as session:
        for step in (1, 2, 3):
            training.record_metric(session, job_id=job["id"], step=step,
                                   values={"loss": 3.0 - step / 2, "learning_rate": 1e-4, "grad_norm": 0.5,
                                           "tokens_per_s": 1000.0, "epoch": step / 3})
        training.record_metric(session, job_id=job["id"], step=2, values={"eval_loss": 2.5})
        training.append_log(session.get(training.TrainingJob, job["id"]), "hello from the portal")
    path = f"/api/v1/training/jobs/{job['id']}"
    data = client.get(f"{path}/metrics", headers=alice).json()["data"]
    assert [(m["step"], m["loss"], m["eval_loss"]) for m in data] == [(1, 2.5, None), (2, 2.0, 2.5), (3, 1.5, None)]
    assert set(data[0]) >= {"step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "eval_loss", "epoch"}
    assert [m["step"] for m in client.get(f"{path}/metrics?since_step=2", headers=alice).json()["data"]] == [3]
    logs = client.get(f"{path}/logs", headers=alice)
    assert logs.status_code == 200 and "hello from the portal" in logs.text
    assert logs.headers["content-type"].startswith("text/plain")
    assert client.get(f"{path}/logs?tail=0", headers=alice).status_code == 422


def test_a_dataset_in_use_cannot_be_deleted(client, people, tiny_model) -> None:
    dataset = dataset_of("alice")
    job = create(client, people["alice"], job_body(tiny_model, dataset))
    with session_scope() as session:
        assert training.jobs_using_dataset(session, dataset) == 1
    assert client.delete(f"/api/v1/datasets/{dataset}", headers=people["alice"]).status_code == 409
    client.post(f"/api/v1/training/jobs/{job['id']}/cancel", headers=people["alice"])
    assert client.delete(f"/api/v1/datasets/{dataset}", headers=people["alice"]).status_code == 204
    kept = client.get(f"/api/v1/training/jobs/{job['id']}", headers=people["alice"]).json()
    assert kept["dataset_id"] is None  # the job keeps its history


def test_options_and_memory_estimate(client, people, tiny_model, monkeypatch) -> None:
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    alice = people["alice"]
    options = client.get("/api/v1/training/options", headers=alice).json()
    assert options["methods"] == ["lora", "qlora", "full"] and options["qlora_unavailable"]
    assert options["params"]["packing"]["default"] is True and options["params"]["lora_rank"]["help"]
    assert set(options["presets"]) == {"quick", "balanced", "thorough"}
    estimate = client.post("/api/v1/training/estimate", json={"base_model": str(tiny_model), "method": "lora"},
                           headers=alice).json()
    assert estimate["model"]["model_type"] == "qwen2" and estimate["model"]["chat_template"] is True
    assert 10_000 < estimate["model"]["parameters"] < 100_000
    memory = estimate["memory"]
    assert memory["total"] > memory["weights"] > 0 and memory["trainable_parameters"] > 0
    full = client.post("/api/v1/training/estimate", json={"base_model": str(tiny_model), "method": "full"},
                       headers=alice).json()["memory"]
    assert full["trainable_parameters"] == estimate["model"]["parameters"]
    bad = client.post("/api/v1/training/estimate", json={"base_model": str(tiny_model), "method": "nope"},
                      headers=alice)
    assert bad.status_code == 400
    assert client.get("/api/v1/training/options").status_code == 401
