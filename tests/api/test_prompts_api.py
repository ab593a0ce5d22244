"""The prompt library through the REST API: versions, labels, diffs, rendering, sharing, conversion, import and
export, and who may do what."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from backend.db import session_scope
from backend.services import audit
from tests.conftest import bearer, login, register

TEMPLATE = {
    "name": "Support answer",
    "description": "Replies to a customer",
    "tags": ["Support", "email"],
    "messages": [{"role": "system", "content": "You answer for {{ company }}."},
                 {"role": "user", "content": "{{ question }}"}],
    "variables": [{"name": "company", "default": "ACME"}],
}


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    register(client, "alice")  # the first user: an admin
    register(client, "bob")
    return bearer(login(client, "bob")["access_token"])


@pytest.fixture
def admin(client: TestClient, alice: dict[str, str]) -> dict[str, str]:
    return bearer(login(client, "alice")["access_token"])


@pytest.fixture
def carol(client: TestClient, alice: dict[str, str]) -> dict[str, str]:
    register(client, "carol")
    return bearer(login(client, "carol")["access_token"])


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post("/api/v1/prompts", json={**TEMPLATE, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_finds_the_variables_and_render_fills_them(client, alice) -> None:
    prompt = create(client, alice)
    assert prompt["version"] == 1 and prompt["tags"] == ["support", "email"] and prompt["owner"] == "bob"
    assert prompt["variables"] == [{"name": "company", "type": "string", "default": "ACME", "description": None},
                                   {"name": "question", "type": "string", "default": None, "description": None}]
    rendered = client.post(f"/api/v1/prompts/{prompt['id']}/render", json={"variables": {"question": "Refund?"}},
                           headers=alice)
    assert rendered.status_code == 200
    assert rendered.json() == {"version": 1, "messages": [{"role": "system", "content": "You answer for ACME."},
                                                          {"role": "user", "content": "Refund?"}]}
    listed = client.get("/api/v1/prompts", headers=alice).json()["data"]
    assert [p["name"] for p in listed] == ["Support answer"] and listed[0]["variables"][1]["name"] == "question"


def test_bad_input_is_refused_with_a_clear_message(client, alice) -> None:
    def refused(body: dict[str, Any], status: int = 400) -> str:
        response = client.post("/api/v1/prompts", json={**TEMPLATE, **body}, headers=alice)
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert refused({"name": "  "}) == "A prompt needs a name"
    assert refused({"messages": []}) == "A prompt needs at least one message"
    assert "the role must be one of" in refused({"messages": [{"role": "robot", "content": "x"}]})
    assert "Message 1, line 1" in refused({"messages": [{"role": "user", "content": "{{ unclosed"}]})
    assert "underscore" in refused({"messages": [{"role": "user", "content": "{{ ''.__class__.__mro__ }}"}]})
    assert refused({"variables": [{"name": "nope"}]}) == "Variable nope does not appear in the messages"
    assert refused({"variables": [{"name": "question", "type": "date"}]}, 422).startswith("Invalid request")
    create(client, alice)
    assert refused({}, 409) == "You already have a prompt named Support answer"
    assert client.post("/api/v1/prompts", json=TEMPLATE).status_code == 401


def test_render_errors_name_the_missing_variable_and_refuse_escapes(client, alice) -> None:
    prompt = create(client, alice)
    response = client.post(f"/api/v1/prompts/{prompt['id']}/render", json={"variables": {}}, headers=alice)
    assert response.status_code == 400 and response.json()["detail"] == "Missing variables: question"
    escape = create(client, alice, name="escape", variables=[],
                    messages=[{"role": "user", "content": "{{ ''|attr('__class__') }}"}])
    response = client.post(f"/api/v1/prompts/{escape['id']}/render", json={}, headers=alice)
    assert response.status_code == 400 and "was refused: access to attribute '__class__'" in response.json()["detail"]


def test_patch_makes_a_version_and_an_old_version_still_renders(client, alice) -> None:
    prompt = create(client, alice)
    pid = prompt["id"]
    renamed = client.patch(f"/api/v1/prompts/{pid}", json={"name": "Support reply"}, headers=alice).json()
    assert renamed["name"] == "Support reply" and renamed["version"] == 1  # metadata: no new version
    changed = client.patch(f"/api/v1/prompts/{pid}", headers=alice, json={
        "messages": [{"role": "system", "content": "You answer for {{ company }} in {{ tone }} tone."},
                     {"role": "user", "content": "{{ question }}"}], "note": "tone"}).json()
    assert changed["version"] == 2 and [v["name"] for v in changed["variables"]] == ["company", "tone", "question"]
    assert changed["variables"][0]["default"] == "ACME"  # kept from the version before
    same = client.patch(f"/api/v1/prompts/{pid}", json={"messages": changed["messages"]}, headers=alice).json()
    assert same["version"] == 2  # the same messages again make no version

    old = client.post(f"/api/v1/prompts/{pid}/render", json={"variables": {"question": "Hi"}, "version": 1},
                      headers=alice).json()
    assert old["version"] == 1 and old["messages"][0]["content"] == "You answer for ACME."
    assert client.get(f"/api/v1/prompts/{pid}?version=1", headers=alice).json()["messages"] == TEMPLATE["messages"]
    versions = client.get(f"/api/v1/prompts/{pid}/versions", headers=alice).json()["data"]
    assert [(v["version"], v["note"], v["author"]) for v in versions] == [(2, "tone", "bob"), (1, None, "bob")]
    for number in (9, 0):  # version 0 is no version, not the latest
        missing = client.post(f"/api/v1/prompts/{pid}/render", json={"variables": {"question": "Hi"},
                                                                     "version": number}, headers=alice)
        assert missing.status_code == 404 and missing.json()["detail"] == f"The prompt has no version {number}"
    assert client.get(f"/api/v1/prompts/{pid}?version=0", headers=alice).status_code == 404


def test_labels_diff_and_roll_back(client, alice) -> None:
    pid = create(client, alice)["id"]
    client.patch(f"/api/v1/prompts/{pid}", headers=alice, json={
        "messages": [{"role": "system", "content": "You answer for {{ company }}, politely."},
                     {"role": "user", "content": "{{ question }}"}]})
    labelled = client.put(f"/api/v1/prompts/{pid}/labels/production", json={"version": 1}, headers=alice).json()
    assert labelled["labels"] == {"production": 1}
    body = {"variables": {"question": "Q"}, "label": "production"}
    assert client.post(f"/api/v1/prompts/{pid}/render", json=body, headers=alice).json()["version"] == 1
    moved = client.put(f"/api/v1/prompts/{pid}/labels/production", json={"version": 2}, headers=alice).json()
    assert moved["labels"] == {"production": 2}
    assert client.post(f"/api/v1/prompts/{pid}/render", json=body, headers=alice).json()["version"] == 2
    assert client.put(f"/api/v1/prompts/{pid}/labels/latest", json={"version": 1}, headers=alice).status_code == 400
    assert client.put(f"/api/v1/prompts/{pid}/labels/x", json={"version": 7}, headers=alice).status_code == 404

    diff = client.get(f"/api/v1/prompts/{pid}/diff?from=1&to=2", headers=alice).json()
    assert diff["diff"].splitlines()[:2] == ["--- version 1", "+++ version 2"]
    assert "-You answer for {{ company }}." in diff["diff"] and "+You answer for {{ company }}, politely." in diff[
        "diff"]

    restored = client.post(f"/api/v1/prompts/{pid}/versions/1/restore", headers=alice).json()
    assert restored["version"] == 3 and restored["messages"] == TEMPLATE["messages"]
    assert restored["note"] == "Restored from version 1" and restored["labels"] == {"production": 2}
    assert client.post(f"/api/v1/prompts/{pid}/versions/3/restore", headers=alice).status_code == 400
    assert client.delete(f"/api/v1/prompts/{pid}/labels/production", headers=alice).json()["labels"] == {}


def test_prompts_are_private_unless_shared(client, alice, carol, admin) -> None:
    pid = create(client, alice)["id"]
    for method, path, body in [("GET", "", None), ("PATCH", "", {"name": "mine"}), ("DELETE", "", None),
                               ("POST", "/render", {"variables": {"question": "x"}}), ("GET", "/versions", None),
                               ("PUT", "/labels/production", {"version": 1}), ("POST", "/copy", None)]:
        response = client.request(method, f"/api/v1/prompts/{pid}{path}", json=body, headers=carol)
        assert response.status_code == 404, (method, path)
    assert client.get("/api/v1/prompts", headers=carol).json()["data"] == []
    assert client.get(f"/api/v1/prompts/{pid}", headers=admin).status_code == 200  # admins see all

    client.patch(f"/api/v1/prompts/{pid}", json={"shared": True}, headers=alice)
    assert [p["id"] for p in client.get("/api/v1/prompts", headers=carol).json()["data"]] == [pid]
    assert client.get("/api/v1/prompts?mine=true", headers=carol).json()["data"] == []
    rendered = client.post(f"/api/v1/prompts/{pid}/render", json={"variables": {"question": "x"}}, headers=carol)
    assert rendered.status_code == 200
    refused = client.patch(f"/api/v1/prompts/{pid}", json={"name": "mine"}, headers=carol)
    assert refused.status_code == 403 and "make a copy" in refused.json()["detail"]
    assert client.delete(f"/api/v1/prompts/{pid}", headers=carol).status_code == 403
    copy = client.post(f"/api/v1/prompts/{pid}/copy", headers=carol).json()
    assert (copy["name"], copy["owner"], copy["shared"], copy["version"]) == ("Support answer (copy)", "carol",
                                                                              False, 1)
    assert client.delete(f"/api/v1/prompts/{pid}", headers=alice).status_code == 204
    assert client.get(f"/api/v1/prompts/{pid}", headers=alice).status_code == 404


def test_search_and_tags(client, alice) -> None:
    create(client, alice)
    create(client, alice, name="Summarise", tags=["writing"], description="Shortens a text",
           messages=[{"role": "user", "content": "Summarise: {{ text }}"}], variables=[])
    names = lambda query: [p["name"] for p in client.get(f"/api/v1/prompts?{query}", headers=alice).json()["data"]]  # noqa: E731
    assert names("q=shorten") == ["Summarise"]
    assert names("tag=support") == ["Support answer"]
    assert names("q=WRIT") == ["Summarise"]


def test_convert_between_formats_with_warnings(client, alice) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}]
    response = client.post("/api/v1/prompts/convert", headers=alice,
                           json={"from": "openai", "to": "anthropic", "data": {"messages": messages}})
    assert response.status_code == 200
    assert response.json() == {"data": {"system": "Be brief.", "messages": messages[1:]}, "warnings": []}
    text = client.post("/api/v1/prompts/convert", headers=alice,
                       json={"from": "openai", "to": "text", "data": messages}).json()
    assert text == {"data": "Be brief.\n\nHi\n\nHello",
                    "warnings": ["Plain text keeps no roles: 3 messages were joined into one text"]}
    chinese = client.post("/api/v1/prompts/convert", headers={**alice, "Accept-Language": "zh-CN"},
                          json={"from": "openai", "to": "text", "data": messages}).json()
    assert chinese["warnings"][0] != text["warnings"][0]
    bad = client.post("/api/v1/prompts/convert", headers=alice, json={"from": "csv", "to": "text", "data": "x"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Unknown format csv")
    assert client.post("/api/v1/prompts/convert", json={"from": "text", "to": "openai", "data": "x"}).status_code == 401


def tiny_tokenizer(folder: Path) -> None:
    """A word-level tokenizer with a chat template, saved with a model config: what training accepts as a model."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                        unk_token="[UNK]")
    tokenizer.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text('{"model_type": "llama"}')


def test_chat_template_preview_applies_a_local_models_template(client, alice, tmp_path) -> None:
    pytest.importorskip("transformers")
    tiny_tokenizer(tmp_path)
    response = client.post("/api/v1/prompts/chat-template", headers=alice, json={
        "model_dir": str(tmp_path), "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "hi"}], "add_generation_prompt": False})
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "<|system|>Be brief.\n<|user|>hi\n"}


def test_chat_template_preview_refuses_what_it_cannot_load(client, alice, admin, tmp_path) -> None:
    pytest.importorskip("transformers")
    body = {"model_dir": str(tmp_path / "no-model"), "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/api/v1/prompts/chat-template", headers=alice, json=body)
    assert response.status_code == 400 and response.json()["detail"] == f"No model directory at {tmp_path}/no-model"
    # any server path is not for everyone to probe: only a model directory, as training takes, and no loader message
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.json").write_text("{}")
    response = client.post("/api/v1/prompts/chat-template", headers=alice, json={**body, "model_dir": str(
        tmp_path / "etc")})
    assert response.status_code == 400
    assert response.json()["detail"] == f"No tokenizer could be loaded from {tmp_path}/etc"
    response = client.post("/api/v1/prompts/chat-template", headers=admin, json={**body, "model_dir": str(
        tmp_path / "etc")})  # an administrator is told why
    assert response.status_code == 400 and response.json()["detail"].startswith(
        f"No tokenizer could be loaded from {tmp_path}/etc: ")
    assert client.post("/api/v1/prompts/chat-template", json={"model_dir": "x", "messages": []}).status_code == 401


def test_export_and_import_as_yaml_and_json(client, alice, carol) -> None:
    pid = create(client, alice)["id"]
    exported = client.get("/api/v1/prompts/export?format=yaml", headers=alice)
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    document = yaml.safe_load(exported.text)
    assert document["kind"] == "llm-portal-prompts" and document["prompts"][0]["name"] == "Support answer"

    imported = client.post("/api/v1/prompts/import", json={"content": exported.text}, headers=carol).json()
    assert imported == {"created": ["Support answer"], "updated": [], "unchanged": []}
    again = client.post("/api/v1/prompts/import", json={"content": exported.text}, headers=carol).json()
    assert again == {"created": [], "updated": [], "unchanged": ["Support answer"]}
    document["prompts"][0]["messages"][1]["content"] = "Question: {{ question }}"
    as_json = client.get("/api/v1/prompts/export?format=json", headers=alice).json()
    assert as_json["prompts"][0]["variables"][0] == {"name": "company", "type": "string", "default": "ACME"}
    changed = client.post("/api/v1/prompts/import", json={"content": yaml.safe_dump(document)}, headers=carol).json()
    assert changed["updated"] == ["Support answer"]
    mine = client.get("/api/v1/prompts", headers=carol).json()["data"]
    assert [(p["name"], p["version"], p["owner"]) for p in mine] == [("Support answer", 2, "carol")]
    assert client.get(f"/api/v1/prompts/{pid}", headers=alice).json()["version"] == 1  # bob's is untouched


def test_a_bad_import_names_the_prompt_and_saves_nothing(client, alice) -> None:
    content = yaml.safe_dump({"prompts": [
        {"name": "fine", "messages": [{"role": "user", "content": "ok"}]},
        {"name": "broken", "messages": [{"role": "user", "content": "{{ ''.__class__ }}"}]}]})
    response = client.post("/api/v1/prompts/import", json={"content": content}, headers=alice)
    assert response.status_code == 400 and response.json()["detail"].startswith("Prompt 2: ")
    assert client.get("/api/v1/prompts", headers=alice).json()["data"] == []
    bad = client.post("/api/v1/prompts/import", json={"content": "{not json", "format": "json"}, headers=alice)
    assert bad.status_code == 400 and bad.json()["detail"].startswith("The file could not be read")
    assert client.post("/api/v1/prompts/import", json={"content": "[]"}).status_code == 401


def test_prompt_actions_are_audited(client, alice) -> None:
    pid = create(client, alice)["id"]
    client.patch(f"/api/v1/prompts/{pid}", json={"messages": [{"role": "user", "content": "{{ q }}"}]}, headers=alice)
    client.put(f"/api/v1/prompts/{pid}/labels/production", json={"version": 2}, headers=alice)
    client.delete(f"/api/v1/prompts/{pid}/labels/production", headers=alice)
    client.post(f"/api/v1/prompts/{pid}/versions/1/restore", headers=alice)
    copied = client.post(f"/api/v1/prompts/{pid}/copy", headers=alice).json()
    exported = client.get("/api/v1/prompts/export?format=json", headers=alice)
    assert client.post("/api/v1/prompts/import", json={"content": exported.text}, headers=alice).status_code == 200
    client.delete(f"/api/v1/prompts/{pid}", headers=alice)
    with session_scope() as session:
        events = audit.list_events(session, action="prompt.")
    assert [e.action for e in events] == ["prompt.delete", "prompt.import", "prompt.export", "prompt.create",
                                          "prompt.restore", "prompt.unlabel", "prompt.label", "prompt.update",
                                          "prompt.create"]
    assert all(e.user == "bob" for e in events)
    assert events[3].target == f"prompt:{copied['id']} Support answer (copy)"
    assert events[1].detail == {"created": 0, "updated": 0, "unchanged": 2}
    assert events[2].detail == {"prompts": 2, "format": "json"}
