"""Datasets through the API: tus uploads (interrupted and resumed), validation with line numbers, versions,
preview, download, sharing and ownership, limits."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col, select

from backend.db import session_scope
from backend.models import AuditEvent, DatasetVersion
from backend.services import datasets
from tests.conftest import bearer, login, register

TUS = {"Tus-Resumable": "1.0.0"}
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def good_rows(n: int) -> bytes:
    return jsonl([{"instruction": f"Question {i}", "output": f"Answer {i}"} for i in range(n)])


def audit_events(prefix: str = "dataset.") -> list[tuple[str, str | None, dict]]:
    """(action, target, detail) of the audit events whose action starts with `prefix`, oldest first."""
    with session_scope() as session:
        events = session.exec(select(AuditEvent).where(col(AuditEvent.action).startswith(prefix))
                              .order_by(col(AuditEvent.id))).all()
        return [(e.action, e.target, dict(e.detail or {})) for e in events]


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    register(client, "alice")
    return bearer(login(client, "alice")["access_token"])


@pytest.fixture
def bob(client: TestClient, alice) -> dict[str, str]:
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


def create_upload(client: TestClient, headers: dict[str, str], data: bytes, filename: str = "data.jsonl") -> str:
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    response = client.post("/api/v1/uploads", headers={**headers, **TUS, "Upload-Length": str(len(data)),
                                                       "Upload-Metadata": meta})
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0" and response.headers["Upload-Offset"] == "0"
    return response.headers["Location"].rsplit("/", 1)[1]


def patch(client: TestClient, headers: dict[str, str], upload_id: str, offset: int, data: bytes):
    return client.patch(f"/api/v1/uploads/{upload_id}", content=data, headers={
        **headers, **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})


def upload(client: TestClient, headers: dict[str, str], data: bytes, filename: str = "data.jsonl") -> str:
    upload_id = create_upload(client, headers, data, filename)
    assert patch(client, headers, upload_id, 0, data).status_code == 204
    return upload_id


@pytest.fixture
def live_api(api_app: FastAPI) -> Iterator[str]:
    """The same API app behind a real HTTP server, for a connection that really drops."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def test_an_upload_cut_half_way_resumes_from_the_servers_offset(client, alice, live_api) -> None:
    data = good_rows(20_000)  # about 0.8 MB
    upload_id = create_upload(client, alice, data)
    half = len(data) // 2
    host, port = live_api.split(":")
    with socket.create_connection((host, int(port))) as sock:  # a PATCH whose connection drops mid-body
        head = (f"PATCH /api/v1/uploads/{upload_id} HTTP/1.1\r\nHost: {live_api}\r\n"
                f"Authorization: {alice['Authorization']}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n")
        sock.sendall(head.encode() + data[:half])
        time.sleep(0.3)  # the server has written what came
    for _ in range(200):  # the server notices the disconnect and records the offset (slowly on a busy machine)
        have = int(client.head(f"/api/v1/uploads/{upload_id}", headers={**alice, **TUS}).headers["Upload-Offset"])
        if have == half:
            break
        time.sleep(0.05)
    assert have == half
    assert patch(client, alice, upload_id, 0, data).status_code == 409  # not from the start: from the offset
    response = patch(client, alice, upload_id, have, data[have:])
    assert response.status_code == 204 and response.headers["Upload-Offset"] == str(len(data))

    created = client.post("/api/v1/datasets", headers=alice, json={"name": "resumed", "upload_id": upload_id})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["version"], body["format"], body["rows"], body["errors"]) == (
        "resumed", 1, "alpaca", 20_000, [])
    assert client.head(f"/api/v1/uploads/{upload_id}", headers={**alice, **TUS}).status_code == 404  # used up


def test_tus_protocol_details(client, alice, settings) -> None:
    options = client.options("/api/v1/uploads")
    assert options.status_code == 204 and options.headers["Tus-Version"] == "1.0.0"
    assert "creation" in options.headers["Tus-Extension"] and "termination" in options.headers["Tus-Extension"]
    assert client.post("/api/v1/uploads", headers={**alice, "Upload-Length": "10"}).status_code == 412
    upload_id = create_upload(client, alice, b"0123456789")
    response = client.patch(f"/api/v1/uploads/{upload_id}", content=b"01", headers={
        **alice, **TUS, "Upload-Offset": "0", "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert patch(client, alice, upload_id, 0, b"0123456789ABC").status_code == 400  # beyond Upload-Length
    assert client.delete(f"/api/v1/uploads/{upload_id}", headers={**alice, **TUS}).status_code == 204
    assert client.head(f"/api/v1/uploads/{upload_id}", headers={**alice, **TUS}).status_code == 404
    settings.max_upload_mb = 1
    response = client.post("/api/v1/uploads", headers={**alice, **TUS, "Upload-Length": str(2 * 1024 * 1024)})
    assert response.status_code == 413 and "at most" not in response.json()["detail"]
    assert "the largest upload accepted is 1 MB" in response.json()["detail"]
    assert client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10"}).status_code == 401


def test_each_patch_pushes_the_expiry_back(client, alice, monkeypatch) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import parsedate_to_datetime

    from backend.models.dataset import Upload
    from backend.services import uploads

    def expiry_in_db(upload_id: str) -> datetime:
        with session_scope() as session:
            moment = session.get(Upload, upload_id).expires_at
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def set_expiry(upload_id: str, moment: datetime) -> None:
        with session_scope() as session:
            upload = session.get(Upload, upload_id)
            upload.expires_at = moment
            session.add(upload)
            session.commit()

    working, forgotten = create_upload(client, alice, b"0123456789"), create_upload(client, alice, b"abc")
    assert patch(client, alice, working, 0, b"01234").headers["Upload-Offset"] == "5"
    now = datetime.now(UTC)
    for upload_id in (working, forgotten):  # nearly a day later: both about to expire
        set_expiry(upload_id, now + timedelta(minutes=1))
    response = patch(client, alice, working, 5, b"567")  # the paused upload goes on
    sent = parsedate_to_datetime(response.headers["Upload-Expires"])
    assert timedelta(hours=23, minutes=59) < sent - now <= timedelta(hours=24, minutes=1)
    assert abs(expiry_in_db(working) - sent) < timedelta(seconds=1)
    head = client.head(f"/api/v1/uploads/{working}", headers={**alice, **TUS})
    assert head.headers["Upload-Expires"] == response.headers["Upload-Expires"]

    later = now + timedelta(minutes=2)  # past the old expiry: only the one nobody works on goes
    monkeypatch.setattr(uploads, "utcnow", lambda: later)
    with session_scope() as session:
        assert uploads.remove_expired(session) == 1
    monkeypatch.undo()
    assert client.head(f"/api/v1/uploads/{forgotten}", headers={**alice, **TUS}).status_code == 404
    assert patch(client, alice, working, 8, b"89").headers["Upload-Offset"] == "10"


def test_bad_rows_are_listed_and_the_user_decides(client, alice) -> None:
    data = jsonl([{"messages": CHAT}, {"messages": [{"role": "user", "content": "no answer"}]}]) + b"{oops\n" + \
        jsonl([{"messages": CHAT}])
    upload_id = upload(client, alice, data)
    refused = client.post("/api/v1/datasets", headers=alice, json={"name": "chat", "upload_id": upload_id})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("2 rows are invalid (the first on line 2)")
    assert [e["line"] for e in refused.json()["errors"]] == [2, 3]
    assert client.get("/api/v1/datasets", headers=alice).json()["data"] == []  # nothing saved

    saved = client.post("/api/v1/datasets", headers=alice, json={"name": "chat", "upload_id": upload_id,
                                                                 "skip_invalid": True})
    assert saved.status_code == 201  # the same upload, kept after the refusal: no need to send it again
    body = saved.json()
    assert (body["rows"], body["skipped"], [e["line"] for e in body["errors"]]) == (2, 2, [2, 3])
    assert body["stats"]["duplicates"] == 1 and body["stats"]["turns"] == 4


def test_multipart_validate_and_limits(client, alice, settings) -> None:
    files = {"file": ("qa.csv", b"question,answer\nWhat is 2+2?,4\n,empty question\n", "text/csv")}
    dry = client.post("/api/v1/datasets/validate", headers=alice, files=files)
    assert dry.status_code == 200, dry.text
    assert (dry.json()["format"], dry.json()["rows"], dry.json()["error_count"]) == ("csv", 1, 1)
    assert dry.json()["errors"] == [{"line": 3, "message": "The field instruction is empty"}]
    assert dry.json()["preview"][0]["messages"][1] == {"role": "assistant", "content": "4"}

    created = client.post("/api/v1/datasets", headers=alice, files=files,
                          data={"name": "qa", "skip_invalid": "true", "validation_ratio": "0.5"})
    assert created.status_code == 201, created.text
    assert client.post("/api/v1/datasets", headers=alice, files=files, data={"name": " "}).status_code == 400
    assert client.post("/api/v1/datasets", headers=alice, files=files,
                       data={"name": "x", "format": "yaml"}).status_code == 400
    settings.max_multipart_mb = 1
    big = {"file": ("big.jsonl", good_rows(40_000), "application/json")}
    response = client.post("/api/v1/datasets", headers=alice, files=big, data={"name": "big"})
    assert response.status_code == 413 and "/api/v1/uploads" in response.json()["detail"]

    # the same file as a chunked body, without a Content-Length to check first: counted as it arrives
    boundary = "lpBoundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\n"
            f"Content-Type: application/json\r\n\r\n").encode() + good_rows(40_000) + f"\r\n--{boundary}--\r\n".encode()
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    for path in ("/api/v1/datasets", "/api/v1/datasets/validate"):
        response = client.post(path, content=chunks(), headers={
            **alice, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413, response.text
        assert "at most 1 MB" in response.json()["detail"]
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=alice).json()["data"]] == ["qa"]
    settings.max_multipart_mb = 3  # the same chunked body under the limit goes through
    response = client.post("/api/v1/datasets", content=chunks(), headers={
        **alice, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 201 and response.json()["rows"] == 40_000
    assert "content-length" not in response.request.headers  # it really was chunked
    huge_json = json.dumps({"name": "x", "upload_id": "y", "padding": "z" * 2 * 1024 * 1024}).encode()
    response = client.post("/api/v1/datasets", headers={**alice, "Content-Type": "application/json"},
                           content=iter([huge_json]))
    assert response.status_code == 413


def held_out(rows: int, ratio: float, seed: int) -> list[int]:
    return [i for i in range(rows) if datasets.split_of(i, validation_ratio=ratio, seed=seed) == "validation"]


def test_versions_preview_and_download(client, alice) -> None:
    first = client.post("/api/v1/datasets", headers=alice, data={"name": "qa", "validation_ratio": "0.2", "seed": "7"},
                        files={"file": ("a.jsonl", good_rows(600), "application/json")}).json()
    second = client.post(f"/api/v1/datasets/{first['id']}/versions", headers=alice,
                         files={"file": ("b.jsonl", good_rows(650), "application/json")}, data={"note": "more"})
    assert second.status_code == 201 and second.json()["version"] == 2
    detail = client.get(f"/api/v1/datasets/{first['id']}", headers=alice).json()
    assert [(v["version"], v["rows"]) for v in detail["versions"]] == [(2, 650), (1, 600)]
    assert detail["rows"] == 650 and detail["versions"][0]["note"] == "more"
    assert detail["versions"][0]["sha256"] != detail["versions"][1]["sha256"]

    # the train/validation split is stored with each version (the second keeps the first's ratio and seed) ...
    v1_held_out = held_out(600, 0.2, 7)
    assert 80 < len(v1_held_out) < 160  # about a fifth
    assert held_out(650, 0.2, 7)[:len(v1_held_out)] == v1_held_out  # the same rows, by their place
    assert held_out(600, 0.2, 8) != v1_held_out  # the seed matters
    splits = [(v["validation_ratio"], v["validation_rows"]) for v in detail["versions"]]
    assert splits == [(0.2, len(held_out(650, 0.2, 7))), (0.2, len(v1_held_out))]
    again = client.get(f"/api/v1/datasets/{first['id']}", headers=alice).json()  # ... and reads the same every time
    assert [(v["validation_ratio"], v["validation_rows"]) for v in again["versions"]] == splits
    with session_scope() as session:
        stored = session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == first["id"])).all()
        assert {(v.version, v.split_seed) for v in stored} == {(1, 7), (2, 7)}

    page = client.get(f"/api/v1/datasets/{first['id']}/preview?offset=510&limit=5&version=1", headers=alice).json()
    assert page["total"] == 600 and len(page["rows"]) == 5
    assert page["rows"][0]["messages"][0]["content"] == "Question 510"  # found through the index, past row 256
    assert client.get(f"/api/v1/datasets/{first['id']}/preview?limit=1000", headers=alice).status_code == 400

    download = client.get(f"/api/v1/datasets/{first['id']}/versions/1/download", headers=alice)
    lines = download.content.splitlines()
    assert len(lines) == 600 and json.loads(lines[0])["messages"][1]["content"] == "Answer 0"
    assert client.get(f"/api/v1/datasets/{first['id']}/versions/3/download", headers=alice).status_code == 404


def test_a_version_without_some_rows(client, alice, bob) -> None:
    import hashlib

    data = good_rows(10) + good_rows(3)  # rows 10 to 12 repeat rows 0 to 2
    dataset = client.post("/api/v1/datasets", headers=alice, data={"name": "qa", "shared": "true"},
                          files={"file": ("a.jsonl", data, "application/json")}).json()
    assert dataset["stats"]["duplicates"] == 3
    versions = f"/api/v1/datasets/{dataset['id']}/versions"

    deduped = client.post(versions, headers=alice, json={"dedupe": True})
    assert deduped.status_code == 201, deduped.text
    assert (deduped.json()["version"], deduped.json()["rows"], deduped.json()["format"]) == (2, 10, "alpaca")
    assert deduped.json()["stats"]["duplicates"] == 0
    trimmed = client.post(versions, headers=alice, json={"from_version": 2, "remove_rows": [0, 5], "note": "typos"})
    assert trimmed.status_code == 201 and (trimmed.json()["version"], trimmed.json()["rows"]) == (3, 8)
    page = client.get(f"/api/v1/datasets/{dataset['id']}/preview?version=3&limit=10", headers=alice).json()
    assert [r["messages"][0]["content"] for r in page["rows"]] == [f"Question {i}" for i in (1, 2, 3, 4, 6, 7, 8, 9)]

    detail = client.get(f"/api/v1/datasets/{dataset['id']}", headers=alice).json()
    assert [(v["version"], v["rows"]) for v in detail["versions"]] == [(3, 8), (2, 10), (1, 13)]
    assert detail["versions"][0]["note"] == "typos"
    assert detail["versions"][1]["note"] == "From version 1: 0 rows removed, 3 repeated rows removed"
    assert len({v["sha256"] for v in detail["versions"]}) == 3
    for version in detail["versions"]:  # every version as it was made, downloadable
        body = client.get(f"{versions}/{version['version']}/download", headers=alice).content
        assert hashlib.sha256(body).hexdigest() == version["sha256"] and len(body.splitlines()) == version["rows"]

    assert client.post(versions, headers=alice, json={"remove_rows": [8]}).status_code == 400  # v3 has rows 0-7
    assert "no row 8" in client.post(versions, headers=alice, json={"remove_rows": [8]}).json()["detail"]
    assert client.post(versions, headers=alice, json={}).status_code == 400
    assert client.post(versions, headers=alice, json={"dedupe": True}).status_code == 400  # nothing repeats now
    assert client.post(versions, headers=alice, json={"remove_rows": list(range(8))}).status_code == 400
    assert client.post(versions, headers=alice, json={"remove_rows": "all"}).status_code == 400
    assert client.post(versions, headers=bob, json={"dedupe": True}).status_code == 403  # shared: read, not change
    assert [d for a, _, d in audit_events("dataset.version")] == [
        {"version": 2, "rows": 10, "from_version": 1, "removed": 0, "duplicates_removed": 3},
        {"version": 3, "rows": 8, "from_version": 2, "removed": 2, "duplicates_removed": 0}]


def test_ownership_sharing_and_deletion(client, alice, bob, monkeypatch) -> None:
    dataset = client.post("/api/v1/datasets", headers=alice, data={"name": "private"},
                          files={"file": ("a.jsonl", good_rows(3), "application/json")}).json()
    base = f"/api/v1/datasets/{dataset['id']}"
    for path in (base, f"{base}/preview", f"{base}/versions/1/download"):
        assert client.get(path, headers=bob).status_code == 404
    assert client.delete(base, headers=bob).status_code == 404
    assert client.get("/api/v1/datasets", headers=bob).json()["data"] == []
    upload_id = create_upload(client, alice, b"xyz")
    assert client.head(f"/api/v1/uploads/{upload_id}", headers={**bob, **TUS}).status_code == 404
    assert patch(client, bob, upload_id, 0, b"xyz").status_code == 404

    version = client.post(f"{base}/versions", headers=alice, data={"skip_invalid": "true"},
                          files={"file": ("b.jsonl", good_rows(4) + b"{oops\n", "application/json")})
    assert version.status_code == 201 and version.json()["version"] == 2
    assert client.post(f"{base}/versions", headers=bob,
                       files={"file": ("c.jsonl", good_rows(5), "application/json")}).status_code == 404
    assert client.patch(base, headers=alice, json={"shared": True}).json()["shared"] is True
    assert client.get(base, headers=bob).status_code == 200  # shared: bob may read and train on it
    assert client.get("/api/v1/datasets", headers=bob).json()["data"][0]["owner"] == "alice"
    assert client.patch(base, headers=bob, json={"name": "mine"}).status_code == 403
    assert client.delete(base, headers=bob).status_code == 403

    monkeypatch.setattr(datasets, "IN_USE_CHECKS", [lambda session, dataset_id: 1])
    busy = client.delete(base, headers=alice)
    assert busy.status_code == 409 and "1 training jobs use this dataset" in busy.json()["detail"]
    monkeypatch.setattr(datasets, "IN_USE_CHECKS", [])
    assert client.delete(base, headers=alice).status_code == 204
    assert client.get(base, headers=alice).status_code == 404
    target = f"dataset:{dataset['id']}"  # what was done is in the audit log; what was refused changed nothing
    assert audit_events() == [
        ("dataset.create", target, {"name": "private", "rows": 3, "skipped": 0, "format": "alpaca"}),
        ("dataset.version", target, {"version": 2, "rows": 4, "skipped": 1}),
        ("dataset.update", target, {"shared": True}),
        ("dataset.delete", target, {"name": "private"}),
    ]


def test_exact_token_counts_with_a_local_tokenizer(client, alice, tmp_path) -> None:
    from tests.training.tiny import build_model

    model = build_model(tmp_path / "tiny")
    dataset = client.post("/api/v1/datasets", headers=alice, data={"name": "qa"},
                          files={"file": ("a.jsonl", good_rows(40), "application/json")}).json()
    response = client.post(f"/api/v1/datasets/{dataset['id']}/tokens", headers=alice, json={"base_model": str(model)})
    assert response.status_code == 200, response.text
    stats = response.json()["stats"]
    assert stats["tokens_estimated"] is False and stats["tokenizer"] == str(model)
    assert stats["tokens"] > 0 and sum(stats["histogram"]["counts"]) == 40
    stored = client.get(f"/api/v1/datasets/{dataset['id']}", headers=alice).json()["versions"][0]["stats"]
    assert stored["tokens"] == stats["tokens"] and stored["rows"] == 40  # kept with the version
    missing = client.post(f"/api/v1/datasets/{dataset['id']}/tokens", headers=alice,
                          json={"base_model": str(tmp_path / "nowhere")})
    assert missing.status_code == 400 and "No model directory" in missing.json()["detail"]
    assert [(a, t, d["tokens"]) for a, t, d in audit_events("dataset.tokens")] == [
        ("dataset.tokens", f"dataset:{dataset['id']}", stats["tokens"])]

    # counts are stored with the version: a reader of a shared dataset may not overwrite its owner's
    register(client, "bob")
    bob = bearer(login(client, "bob")["access_token"])
    tokens = f"/api/v1/datasets/{dataset['id']}/tokens"
    assert client.post(tokens, headers=bob, json={"base_model": str(model)}).status_code == 404  # private
    client.patch(f"/api/v1/datasets/{dataset['id']}", headers=alice, json={"shared": True})
    refused = client.post(tokens, headers=bob, json={"base_model": str(model)})
    assert refused.status_code == 403 and refused.json()["detail"] == "Only the owner of a dataset may change it"
    assert len(audit_events("dataset.tokens")) == 1
