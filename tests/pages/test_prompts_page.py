"""The Prompts page: write a template, save versions, label and roll back, try it in the playground against a
fake model, carry it to chat and compare, share it, and convert formats."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import Conversation, Message, Prompt, PromptVersion
from backend.models import User as UserRow
from backend.models.prompt import PromptCreate, PromptMessage
from backend.models.provider import ProviderCreate
from backend.services import chat, inference, limits, prompts, providers
from tests.api.test_prompts_api import tiny_tokenizer
from tests.fakes import hang_after, reply
from tests.pages.conftest import gone, notified, see, sign_out, signed_up


@pytest.fixture
async def writer(user: User, openai_upstream) -> User:
    """Signed in as the first user (an admin) with the fake OpenAI upstream's models enabled."""
    await signed_up(user, "alice")
    with session_scope() as session:
        admin = session.exec(select(UserRow)).one()
        provider = providers.create_provider(session, actor=admin, data=ProviderCreate(
            name="acme", kind="openai", base_url=openai_upstream.base_url, api_key="test-key", max_retries=0))
        await providers.sync_models(session, actor=admin, provider_id=provider.id)
    yield user
    for _ in range(100):
        if not chat._replies:
            break
        await asyncio.sleep(0.05)
    await inference.flush_usage()


def saved_prompt(user_name: str = "alice", **changes: object) -> int:
    with session_scope() as session:
        owner = session.exec(select(UserRow).where(UserRow.username == user_name)).one()
        data = PromptCreate(name="Translator", description="Translates a sentence", tags=["language"],
                            messages=[PromptMessage(role="system", content="You translate into {{ language }}."),
                                      PromptMessage(role="user", content="{{ sentence }}")],
                            variables=[{"name": "language", "default": "French"}])  # type: ignore[list-item]
        return prompts.create_prompt(session, user=owner, data=data.model_copy(update=changes)).id  # type: ignore[return-value]


def versions(prompt_id: int) -> list[PromptVersion]:
    with session_scope() as session:
        return list(session.exec(select(PromptVersion).where(PromptVersion.prompt_id == prompt_id)
                                 .order_by(PromptVersion.version)).all())


def pick(user: User, marker: str, value: object) -> None:
    next(iter(user.find(marker=marker).elements)).value = value


async def test_write_a_prompt_its_variables_are_found_and_it_is_saved(writer: User) -> None:
    await writer.open("/prompts")
    await see(writer, "No prompts yet")
    writer.find(marker="new-prompt").click()
    await see(writer, marker="prompt-name")
    writer.find(marker="prompt-name").type("Summariser")
    writer.find(marker="message-1").clear().type("Summarise in {{ words }} words:\n{{ text }}")
    await see(writer, marker="variable-words")
    await see(writer, marker="variable-text")
    await writer.should_not_see(marker="variable-question")  # the starter's variable went with its text
    pick(writer, "variable-type-words", "number")
    writer.find(marker="variable-default-words").type("50")
    writer.find(marker="message-1").type(" {{ oops")
    await see(writer, marker="template-error")
    await see(writer, "Message 2, line 2")
    writer.find(marker="message-1").clear().type("Summarise in {{ words }} words:\n{{ text }}")
    writer.find(marker="prompt-shared").click()
    writer.find(marker="save-prompt").click()
    await see(writer, marker="current-version")
    await see(writer, "version 1")
    with session_scope() as session:
        prompt = session.exec(select(Prompt)).one()
    row = versions(prompt.id)[0]  # type: ignore[arg-type]
    assert prompt.name == "Summariser" and prompt.shared
    assert row.messages[1] == {"role": "user", "content": "Summarise in {{ words }} words:\n{{ text }}"}
    assert [(v["name"], v["type"], v["default"]) for v in row.variables] == [
        ("company", "string", None), ("words", "number", 50), ("text", "string", None)]
    await writer.open("/prompts")
    await see(writer, "Summariser")
    await see(writer, "My prompts")


async def test_versions_diff_labels_and_roll_back(writer: User) -> None:
    prompt_id = saved_prompt()
    await writer.open(f"/prompts/{prompt_id}")
    writer.find(marker="message-1").clear().type("Translate this, keeping the tone: {{ sentence }}")
    writer.find(marker="version-note").type("keep the tone")
    writer.find(marker="save-prompt").click()
    await notified(writer, "Saved as version 2")
    assert [v.version for v in versions(prompt_id)] == [1, 2]
    writer.find(marker="tab-versions").click()
    await see(writer, marker="version-1")
    await see(writer, "keep the tone")
    writer.find(marker="show-diff").click()
    await see(writer, marker="diff")
    await see(writer, content="+Translate this, keeping the tone: {{ sentence }}")
    await see(writer, content="-{{ sentence }}")
    pick(writer, "label-version", 1)
    writer.find(marker="set-label").click()
    await notified(writer, "production now points at version 1")
    with session_scope() as session:
        assert session.get(Prompt, prompt_id).labels == {"production": 1}  # type: ignore[union-attr]
    writer.find(marker="label-chip-production").trigger("remove")
    await gone(writer, "label-chip-production")
    with session_scope() as session:
        assert session.get(Prompt, prompt_id).labels == {}  # type: ignore[union-attr]
    pick(writer, "label-version", 1)
    writer.find(marker="set-label").click()
    await see(writer, marker="label-chip-production")
    writer.find(marker="restore-1").click()
    await notified(writer, "Version 1 restored as version 3")
    await see(writer, "version 3")
    assert versions(prompt_id)[-1].messages == versions(prompt_id)[0].messages


async def test_the_playground_streams_the_answer_to_the_rendered_prompt(writer: User, openai_upstream) -> None:
    prompt_id = saved_prompt()
    openai_upstream.script.set(reply("Bonjour **tout le monde**.", delay=0.01, usage=(20, 6)))
    await writer.open(f"/prompts/{prompt_id}")
    await see(writer, marker="value-sentence")
    writer.find(marker="run-prompt").click()
    await notified(writer, "Missing variables: sentence")
    writer.find(marker="value-sentence").type("Hello everyone.")
    writer.find(marker="preview").click()
    await see(writer, "You translate into French.")
    writer.find(marker="value-language").clear().type("German")
    writer.find(marker="run-prompt").click()
    await see(writer, content="<strong>tout le monde</strong>")
    await see(writer, "6 tokens")
    assert openai_upstream.last_request.json["messages"] == [
        {"role": "system", "content": "You translate into German."}, {"role": "user", "content": "Hello everyone."}]
    # the playground spends the user's tokens as chat does: past the daily quota, a run and Open in chat are refused
    await inference.flush_usage()
    with session_scope() as session:
        session.exec(select(UserRow)).one().daily_token_quota = 10
        session.commit()
    limits.clear_cache()
    writer.find(marker="run-prompt").click()
    await notified(writer, "Daily token quota of 10 tokens used up (26 used)")
    writer.find(marker="open-chat").click()
    await notified(writer, "Daily token quota of 10 tokens used up (26 used)")
    with session_scope() as session:
        assert session.exec(select(Conversation)).all() == []  # none left behind without its question


async def test_a_run_stops_on_stop_and_when_the_page_closes(writer: User, openai_upstream,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[prompts.PlaygroundRun] = []
    start_run = prompts.start_run

    async def recorded(**kwargs: Any) -> prompts.PlaygroundRun:
        started.append(await start_run(**kwargs))
        return started[-1]

    monkeypatch.setattr(prompts, "start_run", recorded)
    openai_upstream.script.set(hang_after(2, reply("Un deux trois quatre cinq six")))
    await writer.open(f"/prompts/{saved_prompt()}")
    writer.find(marker="value-sentence").type("Count.")
    writer.find(marker="run-prompt").click()
    await see(writer, marker="stop-prompt")
    writer.find(marker="stop-prompt").click()
    await see(writer, "Stopped: the answer ends here.")
    await see(writer, marker="run-prompt")
    writer.find(marker="run-prompt").click()
    await see(writer, marker="stop-prompt")
    assert [run.status for run in started] == ["cancelled", "streaming"]
    writer.client.delete()  # the page is closed: nobody reads the answer any more
    for _ in range(100):
        if started[1].status != "streaming":
            break
        await asyncio.sleep(0.02)
    assert started[1].status == "cancelled"


async def test_the_playground_tries_unsaved_changes_and_refuses_escapes(writer: User) -> None:
    prompt_id = saved_prompt()
    await writer.open(f"/prompts/{prompt_id}")
    writer.find(marker="message-1").clear().type("{{ ''|attr('__class__') }} {{ sentence }}")
    writer.find(marker="value-sentence").type("x")
    writer.find(marker="preview").click()
    await notified(writer, "access to attribute '__class__' of 'str' object is unsafe")


async def test_open_in_chat_starts_a_conversation_with_the_rendered_messages(writer: User, openai_upstream) -> None:
    prompt_id = saved_prompt(messages=[  # a few-shot template: its examples become the conversation's history
        PromptMessage(role="system", content="You translate into {{ language }}."),
        PromptMessage(role="user", content="One."), PromptMessage(role="assistant", content="Eins."),
        PromptMessage(role="user", content="{{ sentence }}")])
    openai_upstream.script.set(reply("Guten Tag."))
    await writer.open(f"/prompts/{prompt_id}")
    writer.find(marker="value-sentence").type("Good day.")
    writer.find(marker="value-language").clear().type("German")
    writer.find(marker="open-chat").click()
    await see(writer, content="Guten Tag.")
    with session_scope() as session:
        conversation = session.exec(select(Conversation)).one()
        stored = [(m.role, m.content) for m in session.exec(select(Message).order_by(Message.id)).all()]
    assert (conversation.title, conversation.system_prompt) == ("Translator", "You translate into German.")
    assert stored == [("user", "One."), ("assistant", "Eins."), ("user", "Good day."), ("assistant", "Guten Tag.")]
    assert openai_upstream.last_request.json["messages"] == [
        {"role": "system", "content": "You translate into German."}, {"role": "user", "content": "One."},
        {"role": "assistant", "content": "Eins."}, {"role": "user", "content": "Good day."}]


async def test_open_in_compare_fills_the_compare_prompt(writer: User) -> None:
    prompt_id = saved_prompt()
    await writer.open(f"/prompts/{prompt_id}")
    writer.find(marker="value-sentence").type("Good night.")
    writer.find(marker="open-compare").click()
    await see(writer, marker="compare-prompt")
    assert next(iter(writer.find(marker="compare-prompt").elements)).value == "Good night."
    systems = {element.value for element in writer.find(marker="system-prompt").elements}  # the run's and the batch's
    assert systems == {"You translate into French.", ""}


async def test_a_shared_prompt_is_read_only_to_others_who_may_copy_it(writer: User) -> None:
    prompt_id = saved_prompt(shared=True)
    sign_out(writer)
    await see(writer, "No account yet?")
    await signed_up(writer, "bob")
    await writer.open("/prompts")
    await see(writer, "Shared with me")
    await see(writer, "by alice")
    await writer.open(f"/prompts/{prompt_id}")
    await see(writer, "Shared by alice: read only")
    await writer.should_not_see(marker="save-prompt")
    writer.find(marker="copy").click()
    await see(writer, marker="save-prompt")
    with session_scope() as session:
        copies = session.exec(select(Prompt).where(Prompt.name == "Translator (copy)")).all()
    assert len(copies) == 1 and not copies[0].shared


async def test_convert_names_what_a_format_loses(writer: User) -> None:
    await writer.open("/prompts")
    writer.find(marker="tab-convert").click()
    writer.find(marker="convert-input").type('{"messages": [{"role": "system", "content": "Be brief."}, '
                                             '{"role": "user", "content": "Hi"}]}')
    pick(writer, "convert-to", "text")
    writer.find(marker="convert").click()
    await see(writer, marker="convert-warning")
    await see(writer, "Plain text keeps no roles: 2 messages were joined into one text")
    pick(writer, "convert-to", "anthropic")
    writer.find(marker="convert").click()
    await see(writer, marker="convert-output")
    await writer.should_not_see(marker="convert-warning")


async def test_import_export_and_delete(writer: User) -> None:
    await writer.open("/prompts")
    writer.find(marker="import").click()
    await see(writer, marker="import-text")
    writer.find(marker="import-text").type('{"prompts": [{"name": "Imported", "messages": '
                                           '[{"role": "user", "content": "{{ q }}"}]}]}')
    writer.find(marker="import-ok").click()
    await notified(writer, "Imported: 1 new, 0 updated, 0 unchanged")
    await see(writer, "Imported")
    writer.find(marker="export-yaml").click()
    exported = yaml.safe_load((await writer.download.next()).content)
    assert [(p["name"], p["messages"]) for p in exported["prompts"]] == [
        ("Imported", [{"role": "user", "content": "{{ q }}"}])]
    with session_scope() as session:
        prompt_id = session.exec(select(Prompt)).one().id
    await writer.open(f"/prompts/{prompt_id}")
    writer.find(marker="delete-prompt").click()
    await see(writer, marker="confirm-ok")
    writer.find(marker="confirm-ok").click()
    await see(writer, "No prompts yet")
    with session_scope() as session:
        assert session.exec(select(Prompt)).all() == []


async def test_the_chat_template_preview_shows_what_a_local_model_receives(writer: User, tmp_path) -> None:
    pytest.importorskip("transformers")
    tiny_tokenizer(tmp_path)
    await writer.open("/prompts")
    writer.find(marker="tab-convert").click()
    writer.find(marker="convert-input").type('[{"role": "user", "content": "Hi"}]')
    writer.find(marker="template-model").type(str(tmp_path / "missing"))
    writer.find(marker="template-preview").click()
    await see(writer, marker="template-preview-error")
    writer.find(marker="template-model").clear().type(str(tmp_path))
    writer.find(marker="template-preview").click()
    await see(writer, marker="template-output")
    await see(writer, content="<|user|>Hi")
