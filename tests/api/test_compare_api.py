"""`/api/v1/compare`: models called concurrently, failures kept to their column, blind votes, batches, export."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer, login, register, signed_in_with_models
from tests.fakes import error, reply

MODELS = ["acme/fake-chat", "acme/fake-r1", "acme/slow-model"]


@pytest.fixture
def alice(client: TestClient, openai_upstream) -> dict[str, str]:
    return signed_in_with_models(client, openai_upstream)


@pytest.fixture
def bob(client: TestClient, alice) -> dict[str, str]:
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


def test_models_are_called_concurrently(client, alice, openai_upstream) -> None:
    for model in ("fake-chat", "fake-r1", "slow-model"):
        openai_upstream.script.set(reply(f"answer of {model}", first_token_delay=1.0), model=model)
    started = time.monotonic()
    response = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["model"] for r in results] == MODELS
    assert [r["text"] for r in results] == ["answer of fake-chat", "answer of fake-r1", "answer of slow-model"]
    assert all(r["ttft_ms"] >= 1000 and r["error"] is None for r in results)
    assert elapsed < 2.5, f"{elapsed:.1f} s: the three 1 s calls were not made at once (in turn: over 3 s)"


def test_a_failing_model_fails_alone(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("fine", reasoning="hm", usage=(5, 4), delay=0.01), model="fake-chat")
    openai_upstream.script.set(error(500, "exploded"), model="fake-r1")
    body = client.post("/api/v1/compare", headers=alice, json={
        "prompt": "Hi", "models": MODELS[:2], "system": "Be kind.", "params": {"temperature": 0.2}}).json()
    good, bad = body["results"]
    assert (good["text"], good["reasoning"], good["status"], good["output_tokens"]) == ("fine", "hm", "done", 4)
    assert good["tokens_per_s"] is not None and good["total_ms"] >= good["ttft_ms"]
    assert bad["status"] == "error" and "HTTP 500" in bad["error"] and bad["text"] == ""
    sent = [r.json for r in openai_upstream.chat_requests]
    assert all(s["messages"][0] == {"role": "system", "content": "Be kind."} for s in sent)
    assert all(s["temperature"] == 0.2 for s in sent)
    assert client.get(f"/api/v1/compare/{body['id']}", headers=alice).json()["results"] == body["results"]


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"prompt": "Hi", "models": ["acme/fake-chat"]}, 400, "Choose 2 to 4 different models"),
    ({"prompt": "Hi", "models": ["acme/fake-chat", "acme/fake-chat"]}, 400, "Choose 2 to 4"),
    ({"prompt": "Hi", "models": [*MODELS, "a/b", "c/d"]}, 400, "Choose 2 to 4"),
    ({"prompt": "  ", "models": MODELS}, 400, "A prompt cannot be empty"),
    ({"prompt": "Hi", "models": MODELS, "blind": True}, 400, "exactly two models"),
    ({"prompt": "Hi", "models": ["acme/fake-chat", "acme/nope"]}, 404, "nope"),
    ({"prompt": "Hi", "models": MODELS[:2], "params": {"temp": 1}}, 400, "Unknown parameters"),
])
def test_bad_requests_are_refused(client, alice, body, status, detail) -> None:
    response = client.post("/api/v1/compare", headers=alice, json=body)
    assert response.status_code == status and detail in response.json()["detail"], response.text


def test_blind_vote_reveals_the_models_and_counts_on_the_leaderboard(client, alice, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("left or right"))
    run = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2],
                                                               "blind": True}).json()
    assert [r["model"] for r in run["results"]] == ["Model A", "Model B"] and run["models"] == ["Model A", "Model B"]
    listed = client.get("/api/v1/compare", headers=alice).json()["data"]
    assert listed[0]["models"] == ["Model A", "Model B"]  # not even the history tells before the vote
    assert client.post(f"/api/v1/compare/{run['id']}/vote", headers=bob, json={"outcome": "a"}).status_code == 404

    voted = client.post(f"/api/v1/compare/{run['id']}/vote", headers=alice, json={"outcome": "a"})
    assert voted.status_code == 200
    revealed = [r["model"] for r in voted.json()["results"]]
    assert sorted(revealed) == sorted(MODELS[:2]) and voted.json()["vote"] == "a"
    again = client.post(f"/api/v1/compare/{run['id']}/vote", headers=alice, json={"outcome": "b"})
    assert again.status_code == 409

    board = client.get("/api/v1/compare/leaderboard", headers=bob).json()["data"]  # everyone's votes, for everyone
    assert [(r["model"], r["wins"], r["losses"], r["votes"]) for r in board] == [
        (revealed[0], 1, 0, 1), (revealed[1], 0, 1, 1)]
    assert board[0]["ci_low"] <= board[0]["rating"] <= board[0]["ci_high"]

    plain = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2]}).json()
    response = client.post(f"/api/v1/compare/{plain['id']}/vote", headers=alice, json={"outcome": "tie"})
    assert response.status_code == 400
    response = client.post(f"/api/v1/compare/{run['id']}/vote", headers=alice, json={"outcome": "maybe"})
    assert response.status_code == 422


def test_comparisons_are_private_and_export(client, alice, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("Hello, \"world\"\nsecond line"))
    run = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2]}).json()
    for path in (f"/api/v1/compare/{run['id']}", f"/api/v1/compare/{run['id']}/export"):
        assert client.get(path, headers=bob).status_code == 404
    assert client.get("/api/v1/compare", headers=bob).json()["data"] == []

    exported = client.get(f"/api/v1/compare/{run['id']}/export?format=csv", headers=alice)
    assert exported.headers["content-disposition"] == f'attachment; filename="comparison-{run["id"]}.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["prompt"], r["model"], r["text"]) for r in rows] == [
        ("Hi", MODELS[0], "Hello, \"world\"\nsecond line"), ("Hi", MODELS[1], "Hello, \"world\"\nsecond line")]
    as_json = json.loads(client.get(f"/api/v1/compare/{run['id']}/export?format=json", headers=alice).text)
    assert [r["model"] for r in as_json] == MODELS[:2] and "ttft_ms" in as_json[0]
    assert client.get("/api/v1/compare", headers=None).status_code == 401


def _wait_for_batch(client: TestClient, headers: dict[str, str], batch_id: int) -> dict:
    for _ in range(200):
        batch = client.get(f"/api/v1/compare/batches/{batch_id}", headers=headers).json()
        if batch["status"] != "running":
            return batch
        time.sleep(0.05)
    raise AssertionError("the batch did not finish")


def test_a_batch_runs_every_prompt_against_every_model(client, alice, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply("quick", usage=(3, 10), delay=0.01), model="fake-chat")
    openai_upstream.script.set(error(500, "down"), model="fake-r1")
    text = '{"prompt": "one"}\n\n{"prompt": "two"}\n"three"\n'
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "text": text, "filename": "prompts.jsonl", "concurrency": 2})
    assert response.status_code == 201, response.text
    batch = _wait_for_batch(client, alice, response.json()["id"])
    assert (batch["status"], batch["total"], batch["done"]) == ("done", 3, 3)
    chat_avg, r1_avg = batch["averages"]
    assert (chat_avg["model"], chat_avg["answers"], chat_avg["errors"], chat_avg["output_tokens"]) == (
        "acme/fake-chat", 3, 0, 10)
    assert (r1_avg["answers"], r1_avg["errors"], r1_avg["ttft_ms"]) == (0, 3, None)
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/api/v1/compare/batches/{batch['id']}/export", headers=alice).text)))
    assert sorted((r["prompt"], r["model"], r["status"]) for r in rows) == sorted(
        (p, m, s) for p in ("one", "two", "three") for m, s in (("acme/fake-chat", "done"), ("acme/fake-r1", "error")))
    assert client.get(f"/api/v1/compare/batches/{batch['id']}", headers=bob).status_code == 404
    assert client.get("/api/v1/compare", headers=alice).json()["data"] == []  # batch prompts stay in their batch


def test_a_batch_with_a_bad_line_names_it(client, alice) -> None:
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "text": '{"prompt": "ok"}\n{"prompt": \n', "filename": "p.jsonl"})
    assert response.status_code == 400 and response.json()["detail"].startswith("Line 2:")
    response = client.post("/api/v1/compare/batches", headers=alice, json={"models": MODELS[:2], "prompts": []})
    assert response.status_code == 400


def _admin_limits(client: TestClient, headers: dict[str, str], **limits: int) -> None:
    me = client.get("/api/v1/users/me", headers=headers).json()
    response = client.patch(f"/api/v1/admin/users/{me['id']}", headers=headers, json=limits)
    assert response.status_code == 200, response.text


def test_a_batch_is_one_request_against_the_rate_limit(client, alice, openai_upstream) -> None:
    _admin_limits(client, alice, rate_limit_per_minute=2)
    openai_upstream.script.set(reply("ok", delay=0.01))
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "prompts": ["one", "two", "three", "four"], "concurrency": 4})
    assert response.status_code == 201, response.text
    batch = _wait_for_batch(client, alice, response.json()["id"])
    assert (batch["status"], batch["done"], batch["error"]) == ("done", 4, None)  # its 8 calls: one request
    assert client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2]}).status_code == 200
    refused = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2]})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    refused = client.post("/api/v1/compare/batches", headers=alice, json={"models": MODELS[:2], "prompts": ["x"]})
    assert refused.status_code == 429  # a batch starts only within the rate
    assert len(client.get("/api/v1/compare/batches", headers=alice).json()["data"]) == 1


def test_a_batch_stops_cleanly_with_the_reason_when_the_daily_quota_runs_out(client, alice, openai_upstream) -> None:
    from backend.db import session_scope
    from backend.models import UsageRecord

    _admin_limits(client, alice, daily_token_quota=1000)
    me = client.get("/api/v1/users/me", headers=alice).json()
    openai_upstream.script.set(reply("slow", usage=(1, 1), first_token_delay=1.0))
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "prompts": ["one", "two", "three"], "concurrency": 1})
    assert response.status_code == 201, response.text
    for _ in range(200):  # the first prompt passed its quota check once its calls reach the upstream
        if openai_upstream.chat_requests:
            break
        time.sleep(0.05)
    with session_scope() as session:  # while the first prompt is answered, today's tokens run out
        session.add(UsageRecord(user_id=me["id"], model="elsewhere/model", source="gateway", input_tokens=1000))
        session.commit()
    batch = _wait_for_batch(client, alice, response.json()["id"])
    assert (batch["status"], batch["done"]) == ("failed", 1)
    assert batch["error"].startswith("Daily token quota of 1000 tokens used up")
    assert len(openai_upstream.chat_requests) == 2  # the first prompt's two calls; the third prompt never started
    rows = client.get(f"/api/v1/compare/batches/{batch['id']}/export?format=json", headers=alice).json()
    assert sorted((r["prompt"], r["status"]) for r in rows) == [("one", "done"), ("one", "done")]
    listed = client.get("/api/v1/compare/batches", headers=alice).json()["data"]
    assert [(b["id"], b["status"], b["error"]) for b in listed] == [(batch["id"], "failed", batch["error"])]


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # an end before a start
    at_once = most = 0
    for _, step in edges:
        at_once += step
        most = max(most, at_once)
    return most


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_a_batch_never_has_more_calls_in_flight_than_its_concurrency(client, alice, openai_upstream, monkeypatch,
                                                                     concurrency) -> None:
    from backend.services import inference

    spans: list[tuple[float, float]] = []
    calling = inference.stream_completion

    async def timed(*args, **kwargs):  # each upstream call's start and end, as the service makes it
        started = time.perf_counter()
        try:
            async for event in calling(*args, **kwargs):
                yield event
        finally:
            spans.append((started, time.perf_counter()))

    monkeypatch.setattr(inference, "stream_completion", timed)
    openai_upstream.script.set(reply("ok", first_token_delay=0.3))
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "prompts": ["one", "two", "three"], "concurrency": concurrency})
    batch = _wait_for_batch(client, alice, response.json()["id"])
    assert (batch["status"], batch["done"], len(spans)) == ("done", 3, 6)
    assert _most_at_once(spans) == concurrency  # never more; and as many as allowed did run together


def test_a_batch_cancelled_keeps_its_answers_so_far(client, alice, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=[f"w{i} " for i in range(60)], delay=0.05))
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:2], "prompts": [f"p{i}" for i in range(6)], "concurrency": 2})
    batch_id = response.json()["id"]
    for _ in range(100):  # the first answers are under way
        if len(openai_upstream.chat_requests) >= 2:
            break
        time.sleep(0.05)
    assert client.post(f"/api/v1/compare/batches/{batch_id}/cancel", headers=bob).status_code == 404
    cancelled = client.post(f"/api/v1/compare/batches/{batch_id}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": True}
    batch = _wait_for_batch(client, alice, batch_id)
    assert batch["status"] == "cancelled" and batch["done"] < 6
    rows = client.get(f"/api/v1/compare/batches/{batch_id}/export?format=json", headers=alice).json()
    assert rows and all(r["status"] in ("done", "cancelled") for r in rows)  # nothing left "streaming"
    assert any(r["text"].startswith("w0 ") for r in rows)  # what came before the cancel is kept
    for _ in range(100):  # once its task has unwound (on a busy machine, a moment after it was marked cancelled)
        if client.post(f"/api/v1/compare/batches/{batch_id}/cancel", headers=alice).json() == {"cancelled": False}:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("a cancelled batch still says it was cancelled now")
    assert client.get("/api/v1/compare/batches", headers=bob).json()["data"] == []
    assert client.get("/api/v1/compare/batches", headers=None).status_code == 401


def test_stop_ends_a_comparison_in_flight_for_its_owner_only(client, alice, bob, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=[f"w{i} " for i in range(200)], delay=0.05))
    answered: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: answered.setdefault("response", client.post(
        "/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2]})))
    thread.start()
    for _ in range(100):
        runs = client.get("/api/v1/compare", headers=alice).json()["data"]
        if runs and len(openai_upstream.chat_requests) >= 2:
            break
        time.sleep(0.05)
    run_id = runs[0]["id"]
    assert client.post(f"/api/v1/compare/{run_id}/stop", headers=bob).status_code == 404
    assert client.post(f"/api/v1/compare/{run_id}/stop?position=1", headers=alice).json() == {"stopped": 1}
    assert client.post(f"/api/v1/compare/{run_id}/stop", headers=alice).json() == {"stopped": 1}
    thread.join(10)
    results = answered["response"].json()["results"]
    assert [r["status"] for r in results] == ["cancelled", "cancelled"]
    assert all("w199" not in r["text"] for r in results)
    assert client.post("/api/v1/compare", json={"prompt": "Hi", "models": MODELS[:2]}).status_code == 401


def test_per_line_system_prompts_of_a_file_are_sent(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("ok"))
    text = 'prompt,system\n"first\nline two",Be terse.\nsecond,\n'
    response = client.post("/api/v1/compare/batches", headers=alice, json={
        "models": MODELS[:1], "text": text, "filename": "p.csv", "system": "Default.", "concurrency": 1})
    assert response.status_code == 201, response.text
    assert _wait_for_batch(client, alice, response.json()["id"])["status"] == "done"
    sent = sorted((r.json["messages"][1]["content"], r.json["messages"][0]["content"])
                  for r in openai_upstream.chat_requests)
    assert sent == [("first\nline two", "Be terse."), ("second", "Default.")]


def test_a_blind_error_does_not_name_its_model_before_the_vote(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(error(400, "fake-r1 cannot take this request"), model="fake-r1")
    openai_upstream.script.set(reply("fine"), model="fake-chat")
    run = client.post("/api/v1/compare", headers=alice, json={"prompt": "Hi", "models": MODELS[:2],
                                                               "blind": True}).json()
    failed = next(r for r in run["results"] if r["status"] == "error")
    assert "fake-r1" not in failed["error"] and "acme" not in failed["error"], failed["error"]
    assert failed["model"] in failed["error"]  # "Model A …" or "Model B …"
    assert client.get(f"/api/v1/compare/{run['id']}", headers=alice).json()["results"] == run["results"]
    voted = client.post(f"/api/v1/compare/{run['id']}/vote", headers=alice, json={"outcome": "tie"}).json()
    failed = next(r for r in voted["results"] if r["status"] == "error")
    assert "fake-r1 cannot take this request" in failed["error"]  # revealed with the names
