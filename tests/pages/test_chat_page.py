"""The Chat page: send and stream, reasoning, stop, regenerate, edit and resend, errors with retry, export."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import Message
from backend.models import User as UserRow
from backend.models.provider import ModelUpdate
from backend.services import chat, inference, providers
from tests.fakes import error_after, reply
from tests.pages.conftest import gone, notified, see, signed_up, signed_up_with_models
from ui.chat import AnswerView


@pytest.fixture
async def chatting(user: User, openai_upstream) -> User:
    """Signed in as the first user (an admin) with the fake OpenAI upstream's models enabled."""
    await signed_up_with_models(user, openai_upstream)
    yield user
    await inference.flush_usage()


def stored_messages() -> list[Message]:
    with session_scope() as session:
        return list(session.exec(select(Message).order_by(Message.id)).all())


async def ask(user: User, text: str) -> None:
    user.find(marker="composer").type(text)
    user.find(marker="send").click()


async def settled() -> None:
    """Until the last answer is written and stored."""
    for _ in range(250):
        messages = stored_messages()
        if not chat._replies and messages and messages[-1].role == "assistant" and messages[-1].status != "streaming":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no answer was finished")


async def test_an_answer_streams_in_with_its_reasoning_and_metrics(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("The capital is **Paris**.", reasoning="France... its capital is Paris.",
                                     delay=0.01, first_token_delay=0.5, usage=(12, 7)))
    await chatting.open("/chat")
    await see(chatting, "Start a conversation")
    await ask(chatting, "Capital of France?")
    await see(chatting, kind=AnswerView)
    view = next(iter(chatting.find(kind=AnswerView).elements))
    assert view.thoughts.value  # open for the reasoning to come
    folds: list[tuple[bool, bool, str]] = []
    view.thoughts.on_value_change(lambda e: folds.append((e.value, view.streaming, view.text)))
    await see(chatting, content="<strong>Paris</strong>")
    await see(chatting, content="its capital is Paris")  # the reasoning panel
    await settled()
    # The reasoning folded away as the answer began (not only once it was done).
    assert folds[0] == (False, True, "") and not view.thoughts.value
    await see(chatting, "Thought for 1 s")
    await see(chatting, "first token")
    await see(chatting, "7 tokens", )
    await see(chatting, marker="regenerate")
    await see(chatting, "Capital of France?")  # the conversation, titled after the question, in the list
    user_message, answer = stored_messages()
    assert (user_message.content, answer.content, answer.status) == (
        "Capital of France?", "The capital is **Paris**.", "done")
    assert answer.reasoning == "France... its capital is Paris."
    chatting.find(marker=f"copy-{answer.id}").click()
    await notified(chatting, "Copied")


async def test_stop_keeps_what_came(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=[f"word{i} " for i in range(200)], delay=0.05))
    await chatting.open("/chat")
    await ask(chatting, "Count slowly")
    await see(chatting, content="word3")
    chatting.find(marker="stop").click()
    await see(chatting, "Stopped: the answer ends here.")
    await settled()
    answer = stored_messages()[1]
    assert answer.status == "cancelled" and answer.content.startswith("word0 word1 word2 word3")
    assert "word199" not in answer.content


async def test_a_provider_error_shows_in_the_bubble_and_retry_answers(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(error_after(3, status=500, message="model crashed", text="half an answ"))
    await chatting.open("/chat")
    await ask(chatting, "Explain")
    await see(chatting, marker="answer-error")
    await see(chatting, content="half")  # what came before the failure stays
    await see(chatting, "model crashed", )
    openai_upstream.script.set(reply("A whole answer."))
    chatting.find(marker="retry").click()
    await see(chatting, content="A whole answer.")
    await chatting.should_not_see(marker="answer-error", retries=50)
    await settled()
    assert [(m.role, m.status) for m in stored_messages()] == [("user", "done"), ("assistant", "done")]


async def test_a_double_enter_sends_once_and_two_sends_at_once_start_one_answer(chatting: User,
                                                                               openai_upstream) -> None:
    openai_upstream.script.set(reply("Only once."))
    await chatting.open("/chat")
    composer = chatting.find(marker="composer").type("Hello")
    composer.trigger("keydown.enter.exact").trigger("keydown.enter.exact")  # on a new chat: one conversation
    await see(chatting, content="Only once.")
    await settled()
    assert [(m.role, m.content) for m in stored_messages()] == [("user", "Hello"), ("assistant", "Only once.")]
    with session_scope() as session:
        admin = session.exec(select(UserRow)).one()
        assert len(chat.list_conversations(session, user=admin)) == 1
    # The service: of two messages sent at once to a conversation, one is answered and the other refused.
    conversation_id = stored_messages()[0].conversation_id
    results = await asyncio.gather(*(chat.start_reply(user=admin, conversation_id=conversation_id, content=text)
                                     for text in ("one", "two")), return_exceptions=True)
    assert sorted(type(result).__name__ for result in results) == ["Conflict", "Reply"], results
    await settled()
    assert [m.role for m in stored_messages()] == ["user", "assistant", "user", "assistant"]


async def test_regenerate_replaces_the_last_answer(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("First try."))
    await chatting.open("/chat")
    await ask(chatting, "Name a colour")
    await see(chatting, content="First try.")
    await settled()
    openai_upstream.script.set(reply("Second try."))
    chatting.find(marker="regenerate").click()
    await see(chatting, content="Second try.")
    await settled()
    assert [m.content for m in stored_messages()] == ["Name a colour", "Second try."]


async def test_edit_and_resend_from_an_earlier_message(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("About cats."))
    await chatting.open("/chat")
    await ask(chatting, "Tell me about cast")
    await see(chatting, content="About cats.")
    await settled()
    first = stored_messages()[0]
    chatting.find(marker=f"edit-{first.id}").click()
    await see(chatting, marker="edit-box")
    chatting.find(marker="edit-box").clear().type("Tell me about dogs")
    openai_upstream.script.set(reply("About dogs."))
    chatting.find(marker="resend").click()
    await see(chatting, content="About dogs.")
    await settled()
    assert [m.content for m in stored_messages()] == ["Tell me about dogs", "About dogs."]
    assert openai_upstream.last_request.json["messages"] == [{"role": "user", "content": "Tell me about dogs"}]


async def partly_saved() -> Message:
    """Until the answer being written has been saved with part of its text (and is still being written)."""
    for _ in range(250):
        answer = stored_messages()[-1]
        assert answer.status == "streaming", "the answer finished before a partial save was seen"
        if answer.content:
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError("no partial answer was saved")


async def test_an_answer_goes_on_while_the_page_is_away_and_shows_once_on_return(chatting: User, openai_upstream,
                                                                                monkeypatch) -> None:
    monkeypatch.setattr(chat, "SAVE_INTERVAL", 0.1)
    parts = [f"part{i} " for i in range(60)]
    openai_upstream.script.set(reply(chunks=parts, delay=0.03))
    await chatting.open("/chat")
    await ask(chatting, "Long answer please")
    await see(chatting, content="part1 ")
    await chatting.open("/models")  # leave while it is being written
    saved = await partly_saved()  # what came is saved while the answer streams, not only at its end
    assert saved.content.startswith("part0 ") and "part59" not in saved.content
    await chatting.open("/chat")
    chatting.find(marker=f"conversation-{saved.conversation_id}").click()
    await see(chatting, content="part59")
    await settled()
    stored = stored_messages()[1]
    assert stored.content == "".join(parts) and stored.status == "done"
    # Shown once: not the saved part and then the whole answer replayed after it.
    view = next(iter(chatting.find(marker=f"answer-{stored.id}").elements))
    assert view.text == stored.content and view.body.text == stored.content
    assert view.body.content.count("part0 ") == 1


async def test_model_picker_remembers_the_last_model_and_settings_reach_the_model(chatting: User,
                                                                                  openai_upstream) -> None:
    openai_upstream.script.set(reply("ok"))
    await chatting.open("/chat")
    chatting.find(marker="model-picker").click()
    chatting.find("fake-r1 · acme").click()
    chatting.find(marker="chat-settings").click()
    await see(chatting, marker="system-prompt")
    chatting.find(marker="system-prompt").type("Answer in French.")
    chatting.find(marker="temperature").type("0.3")
    chatting.find(marker="save-settings").click()
    await ask(chatting, "Hello")
    await see(chatting, content="<p>ok</p>")
    await settled()
    sent = openai_upstream.last_request.json
    assert sent["model"] == "fake-r1" and sent["temperature"] == 0.3
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}

    chatting.find(marker="new-chat").click()
    await see(chatting, "Start a conversation")
    picker = next(iter(chatting.find(marker="model-picker").elements))
    assert picker.value == "acme/fake-r1"  # the last model used


async def test_search_rename_export_and_delete(chatting: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("Bananas are berries."))
    await chatting.open("/chat")
    await ask(chatting, "A fruit fact")
    await see(chatting, content="Bananas are berries.")
    await settled()
    chatting.find(marker="new-chat").click()
    openai_upstream.script.set(reply("Rust is a language."))
    await ask(chatting, "A programming fact")
    await see(chatting, content="Rust is a language.")
    await settled()

    fruit, programming = sorted({m.conversation_id for m in stored_messages()})
    chatting.find(marker="chat-search").type("berries")  # found by what the answer says
    await see(chatting, marker=f"conversation-{fruit}")
    await chatting.should_not_see(marker=f"conversation-{programming}", retries=50)
    chatting.find(marker="chat-search").clear()
    await see(chatting, marker=f"conversation-{programming}")

    chatting.find(marker="chat-menu").click()
    chatting.find(marker="rename").click()
    await see(chatting, marker="title-input")
    chatting.find(marker="title-input").clear().type("Rust notes")
    chatting.find(marker="save-title").click()
    await gone(chatting, "title-input")
    await see(chatting, "Rust notes")

    chatting.find(marker="chat-menu").click()
    chatting.find(marker="export-md").click()
    exported = (await chatting.download.next(timeout=5)).text
    assert exported.startswith("# Rust notes") and "Rust is a language." in exported

    chatting.find(marker="chat-menu").click()
    chatting.find(marker="delete-conversation").click()
    await see(chatting, "Delete this conversation and all its messages?")
    chatting.find(marker="confirm-ok").click()
    await see(chatting, "Conversation deleted")
    await see(chatting, "Start a conversation")
    with session_scope() as session:
        assert [c.title for c in chat.list_conversations(session, user=session.exec(select(UserRow)).one())] == [
            "A fruit fact"]


async def test_someone_elses_conversation_is_not_shown(chatting: User, openai_upstream, create_user) -> None:
    openai_upstream.script.set(reply("secret answer"))
    await chatting.open("/chat")
    await ask(chatting, "my secret")
    await see(chatting, content="secret answer")
    await settled()
    conversation_id = stored_messages()[0].conversation_id
    other = create_user()
    await signed_up(other, "bob")
    await other.open(f"/chat/{conversation_id}")
    await see(other, "No such conversation")
    await other.should_not_see(content="secret answer")


async def test_without_models_the_page_says_what_to_do(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/chat")
    await see(user, "No models are available yet.")
    await see(user, "Add a provider on the Models page, then come back.")


async def test_a_trimmed_context_is_noted_under_the_answer(chatting: User, openai_upstream) -> None:
    with session_scope() as session:
        admin = session.exec(select(UserRow)).one()
        providers.update_model(session, actor=admin, model_ref="acme/fake-chat",
                               data=ModelUpdate(context_length=1100, default_params={"max_tokens": 1000}))
    openai_upstream.script.set(reply("ok"))
    await chatting.open("/chat")
    for word in ("alpha", "bravo"):
        await ask(chatting, word * 60)
        await see(chatting, content=word * 60)
        await settled()
    await see(chatting, "2 earlier messages were left out to fit the model's context.")
