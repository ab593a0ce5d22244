"""Conversations through the REST API: answers streamed as SSE and stored, privacy, stop, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.db import session_scope
from backend.models import Message
from backend.services import chat
from tests.conftest import bearer, login, register, signed_in_with_models
from tests.fakes import error, error_after, reply


@pytest.fixture
def alice(client: TestClient, openai_upstream) -> dict[str, str]:
    return signed_in_with_models(client, openai_upstream)


def new_conversation(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/conversations", json={"model": "acme/fake-chat", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def send(client: TestClient, headers: dict[str, str], conversation_id: int, content: str) -> list[dict[str, Any]]:
    events = []
    with client.stream("POST", f"/api/v1/conversations/{conversation_id}/messages", json={"content": content},
                       headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_an_answer_streams_and_both_messages_are_stored(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("Paris.", reasoning="France's capital.", usage=(9, 2)))
    conversation = new_conversation(client, alice, system_prompt="Be brief.")
    assert conversation["title"] == "New chat" and conversation["messages"] == []
    events = send(client, alice, conversation["id"], "Capital of France?")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert "".join(e["text"] for e in events if e["type"] == "text") == "Paris."
    assert "".join(e["text"] for e in events if e["type"] == "reasoning") == "France's capital."

    stored = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()
    assert stored["title"] == "Capital of France?"
    user_message, answer = stored["messages"]
    assert (user_message["role"], user_message["content"]) == ("user", "Capital of France?")
    assert (answer["role"], answer["content"], answer["reasoning"]) == ("assistant", "Paris.", "France's capital.")
    assert answer["status"] == "done" and answer["model"] == "acme/fake-chat"
    assert answer["usage"] == {"input_tokens": 9, "output_tokens": 2} and answer["ttft_ms"] is not None
    sent = openai_upstream.last_request.json["messages"]
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def test_the_history_goes_with_the_next_message(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("First answer."))
    conversation = new_conversation(client, alice)
    send(client, alice, conversation["id"], "one")
    send(client, alice, conversation["id"], "two")
    assert [m["content"] for m in openai_upstream.last_request.json["messages"]] == ["one", "First answer.", "two"]


def test_a_lone_close_tag_is_corrected_in_the_stored_message(client, alice, openai_upstream) -> None:
    chunks = ["Let me think", " about it.", "</think>", "\n\nSure."]
    openai_upstream.script.set(reply("".join(chunks), chunks=chunks))
    conversation = new_conversation(client, alice)
    events = send(client, alice, conversation["id"], "hi")
    assert any(e["type"] == "reclassify" and e["to"] == "reasoning" for e in events)
    answer = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"][1]
    assert (answer["content"], answer["reasoning"]) == ("Sure.", "Let me think about it.")


def test_a_provider_error_is_stored_with_what_arrived(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(error_after(2, status=500, message="model crashed", text="partial answer text"))
    conversation = new_conversation(client, alice)
    events = send(client, alice, conversation["id"], "hi")
    assert events[-1]["type"] == "error" and "model crashed" in events[-1]["error"]
    answer = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"][1]
    assert answer["status"] == "error" and "model crashed" in answer["error"]
    assert answer["content"]  # the chunks before the failure are kept

    openai_upstream.script.set(error(401, "bad key"))
    events = send(client, alice, conversation["id"], "again")
    assert events[-1]["type"] == "error" and "refused the API key" in events[-1]["error"]


@pytest.mark.parametrize("kind", ["openai", "anthropic", "ollama"])
def test_stop_keeps_what_came_and_ends_the_upstream_stream_at_once(client, kind, request) -> None:
    upstream = request.getfixturevalue(f"{kind}_upstream")
    register(client, "alice")
    headers = bearer(login(client, "alice")["access_token"])
    provider = client.post("/api/v1/providers", headers=headers, json={
        "name": "up", "kind": kind, "base_url": upstream.base_url, "api_key": "test-key", "max_retries": 0}).json()
    model = client.post(f"/api/v1/providers/{provider['id']}/sync", headers=headers).json()["models"][0]["id"]
    upstream.script.set(reply(chunks=["word "] * 200, delay=0.05))  # 10 s to the end
    conversation = new_conversation(client, headers, model=model)
    with client.stream("POST", f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "go"},
                       headers=headers) as response:
        seen = 0
        for line in response.iter_lines():
            if '"type": "text"' in line:
                seen += 1
            if seen == 3:
                assert client.post(f"/api/v1/conversations/{conversation['id']}/stop",
                                   headers=headers).json() == {"stopped": True}
                sent_when_stopped = upstream.streams[-1].chunks
                break
    answer = client.get(f"/api/v1/conversations/{conversation['id']}", headers=headers).json()["messages"][1]
    assert answer["status"] == "cancelled"
    assert answer["content"].startswith("word word word") and len(answer["content"]) < 200 * 5
    # The portal hung up on the upstream: it did not go on reading (nor leave the stream to run to its end).
    stream = upstream.streams[-1]
    deadline = time.monotonic() + 15
    while stream.outcome is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream.outcome == "abandoned" and stream.chunks <= sent_when_stopped + 2, stream


def test_a_client_that_leaves_does_not_stop_the_answer(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=["word "] * 20, delay=0.02))
    conversation = new_conversation(client, alice)
    with client.stream("POST", f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "go"},
                       headers=alice) as response:
        for line in response.iter_lines():
            if '"type": "text"' in line:
                break  # the reader goes away after the first words
    deadline = time.monotonic() + 10
    while True:
        answer = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"][1]
        if answer["status"] != "streaming" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer["status"] == "done" and answer["content"] == "word " * 20
    assert openai_upstream.streams[-1].outcome == "completed"  # read from the upstream to its end


def test_conversations_are_private(client, alice, openai_upstream) -> None:
    conversation = new_conversation(client, alice, title="secret plans")
    register(client, "mallory")
    mallory = bearer(login(client, "mallory")["access_token"])
    cid = conversation["id"]
    assert client.get(f"/api/v1/conversations/{cid}", headers=mallory).status_code == 404
    assert client.patch(f"/api/v1/conversations/{cid}", json={"title": "mine"}, headers=mallory).status_code == 404
    assert client.delete(f"/api/v1/conversations/{cid}", headers=mallory).status_code == 404
    sent = client.post(f"/api/v1/conversations/{cid}/messages", json={"content": "hi"}, headers=mallory)
    assert sent.status_code == 404
    assert client.get("/api/v1/conversations", headers=mallory).json()["data"] == []
    assert client.get("/api/v1/conversations").status_code == 401
    assert client.get(f"/api/v1/conversations/{cid}", headers=alice).json()["title"] == "secret plans"


def test_rename_search_and_delete(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("The mitochondria is the powerhouse."))
    first = new_conversation(client, alice)
    send(client, alice, first["id"], "biology question")
    second = new_conversation(client, alice, title="Holiday")
    renamed = client.patch(f"/api/v1/conversations/{second['id']}", json={"title": "Holiday plans"}, headers=alice)
    assert renamed.json()["title"] == "Holiday plans"
    assert client.patch(f"/api/v1/conversations/{second['id']}", json={"title": " "}, headers=alice).status_code == 400

    def titles(q: str) -> list[str]:
        return [c["title"] for c in client.get(f"/api/v1/conversations?q={q}", headers=alice).json()["data"]]

    assert titles("powerhouse") == ["biology question"]  # found by an answer's text
    assert titles("holiday") == ["Holiday plans"]
    assert client.delete(f"/api/v1/conversations/{first['id']}", headers=alice).status_code == 204
    assert titles("") == ["Holiday plans"]


def test_bad_messages_are_refused(client, alice) -> None:
    conversation = new_conversation(client, alice)
    empty = client.post(f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "  "},
                        headers=alice)
    assert empty.status_code == 400
    unknown = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                          json={"content": "hi", "model": "acme/nope"}, headers=alice)
    assert unknown.status_code == 404
    no_model = client.post("/api/v1/conversations", json={}, headers=alice).json()
    refused = client.post(f"/api/v1/conversations/{no_model['id']}/messages", json={"content": "hi"}, headers=alice)
    assert refused.status_code == 400 and "Choose a model" in refused.json()["detail"]
    assert client.post("/api/v1/conversations", json={"params": {"seed": 1}}, headers=alice).status_code == 400


def test_bad_parameters_are_refused(client, alice) -> None:
    conversation = new_conversation(client, alice, params={"temperature": 0.7, "top_p": 1, "max_tokens": 512.0})
    good = {"temperature": 0.7, "top_p": 1, "max_tokens": 512}
    assert conversation["params"] == good
    for params, message in [
        ({"temperature": "hot"}, "temperature must be between 0.0 and 2.0"),
        ({"temperature": -0.1}, "temperature must be between 0.0 and 2.0"),
        ({"top_p": 5}, "top_p must be between 0.0 and 1.0"),
        ({"max_tokens": 0}, "max_tokens must be a whole number of at least 1"),
        ({"max_tokens": 1.5}, "max_tokens must be a whole number of at least 1"),
        ({"max_tokens": True}, "max_tokens must be a whole number of at least 1"),
    ]:
        created = client.post("/api/v1/conversations", json={"params": params}, headers=alice)
        assert (created.status_code, created.json()["detail"]) == (400, message), params
        changed = client.patch(f"/api/v1/conversations/{conversation['id']}", json={"params": params}, headers=alice)
        assert (changed.status_code, changed.json()["detail"]) == (400, message), params
    assert client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["params"] == good
    assert len(client.get("/api/v1/conversations", headers=alice).json()["data"]) == 1  # none was stored


def test_answers_cut_by_a_restart_are_marked_interrupted(client, alice) -> None:
    conversation = new_conversation(client, alice)
    with session_scope() as session:
        session.add(Message(conversation_id=conversation["id"], role="assistant", content="half an ans",
                            status="streaming"))
        session.commit()
        assert chat.mark_interrupted(session) == 1
    answer = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"][0]
    assert (answer["status"], answer["content"]) == ("interrupted", "half an ans")


def test_export_as_markdown_and_json(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("Paris.", reasoning="France's capital."))
    conversation = new_conversation(client, alice, system_prompt="Be brief.")
    send(client, alice, conversation["id"], "Capital of France?")
    markdown = client.get(f"/api/v1/conversations/{conversation['id']}/export?format=md", headers=alice)
    assert markdown.status_code == 200 and "attachment" in markdown.headers["content-disposition"]
    text = markdown.text
    assert text.startswith("# Capital of France?")
    assert "## System\n\nBe brief." in text and "## User\n\nCapital of France?" in text
    assert "<summary>Reasoning</summary>\n\nFrance's capital." in text and "Paris." in text
    exported = client.get(f"/api/v1/conversations/{conversation['id']}/export?format=json", headers=alice).json()
    assert [m["content"] for m in exported["messages"]] == ["Capital of France?", "Paris."]
    assert client.get(f"/api/v1/conversations/{conversation['id']}/export?format=pdf", headers=alice).status_code == 422
    register(client, "eve")
    eve = bearer(login(client, "eve")["access_token"])
    assert client.get(f"/api/v1/conversations/{conversation['id']}/export", headers=eve).status_code == 404


def test_a_long_history_is_trimmed_to_the_context_and_says_so(client, alice, openai_upstream) -> None:
    openai_upstream.script.set(reply("ok"))
    client.patch("/api/v1/models/acme/fake-chat", json={"context_length": 1100, "default_params": {"max_tokens": 1000}},
                 headers=alice)  # room for about 300 characters of prompt
    conversation = new_conversation(client, alice, system_prompt="Be brief.")
    for word in ("alpha", "bravo", "charlie"):
        events = send(client, alice, conversation["id"], word * 20)
    assert events[0]["type"] == "start" and events[0]["trimmed"] > 0
    sent = openai_upstream.last_request.json["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["content"] == "charlie" * 20
    assert all("alpha" not in m["content"] for m in sent)
    stored = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"]
    assert stored[-1]["context_trimmed"] == events[0]["trimmed"]  # the note outlives the stream
    first = send(client, alice, new_conversation(client, alice)["id"], "short")
    assert first[0]["trimmed"] == 0


def test_trimming_keeps_the_newest_message_even_when_it_alone_is_too_long() -> None:
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "x" * 10_000}]
    assert chat.trim_to_context(history, context_length=100, max_tokens=10) == (history, 0)
    assert chat.trim_to_context(history, context_length=None, max_tokens=None) == (history, 0)
    turns = [{"role": "user", "content": "q" * 30}, {"role": "assistant", "content": "a" * 30},
             {"role": "user", "content": "new"}]
    sent, trimmed = chat.trim_to_context(turns, context_length=30, max_tokens=10)  # room for 60 characters
    assert sent == [{"role": "user", "content": "new"}] and trimmed == 2  # never opens with the assistant


def test_regenerate_writes_the_last_answer_again(client, alice, openai_upstream) -> None:
    conversation = new_conversation(client, alice)
    openai_upstream.script.set(error(500, "upstream exploded"))
    send(client, alice, conversation["id"], "Tell me a joke")
    openai_upstream.script.set(reply("A joke.", reasoning="Something light.", reasoning_chunks=["Something", " light."],
                                     delay=0.02))
    events = []
    with client.stream("POST", f"/api/v1/conversations/{conversation['id']}/regenerate", headers=alice) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "done" and events[-1]["message"]["content"] == "A joke."
    stored = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"]
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "Tell me a joke", "done"), ("assistant", "A joke.", "done")]  # the failed answer is replaced
    assert stored[1]["reasoning"] == "Something light." and stored[1]["reasoning_ms"] is not None
    sent = openai_upstream.last_request.json["messages"]
    assert [m["content"] for m in sent] == ["Tell me a joke"]  # the failed answer is not sent back


def test_regenerate_needs_a_message_first(client, alice) -> None:
    conversation = new_conversation(client, alice)
    response = client.post(f"/api/v1/conversations/{conversation['id']}/regenerate", headers=alice)
    assert response.status_code == 400 and "send a message first" in response.json()["detail"]


def test_edit_and_resend_replaces_the_message_and_what_followed(client, alice, openai_upstream) -> None:
    conversation = new_conversation(client, alice)
    openai_upstream.script.set(reply("First answer."))
    send(client, alice, conversation["id"], "Frist question")
    send(client, alice, conversation["id"], "Second question")
    first_question = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"][0]

    openai_upstream.script.set(reply("Better answer."))
    with client.stream("POST", f"/api/v1/conversations/{conversation['id']}/messages", headers=alice,
                       json={"content": "First question", "edit_of": first_question["id"]}) as response:
        assert response.status_code == 200
        response.read()
    stored = client.get(f"/api/v1/conversations/{conversation['id']}", headers=alice).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "First question"),
                                                           ("assistant", "Better answer.")]
    assert [m["content"] for m in openai_upstream.last_request.json["messages"]] == ["First question"]


def test_edit_of_an_unknown_or_foreign_message_is_404(client, alice, openai_upstream) -> None:
    mine = new_conversation(client, alice)
    other = new_conversation(client, alice)
    openai_upstream.script.set(reply("ok"))
    send(client, alice, other["id"], "elsewhere")
    elsewhere = client.get(f"/api/v1/conversations/{other['id']}", headers=alice).json()["messages"]
    for message_id in (elsewhere[0]["id"], elsewhere[1]["id"], 999_999):  # another conversation's, an answer, none
        response = client.post(f"/api/v1/conversations/{mine['id']}/messages", headers=alice,
                               json={"content": "x", "edit_of": message_id})
        assert response.status_code == 404, response.text
