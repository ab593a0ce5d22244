"""Format conversion: each format both ways where it is lossless, and the loss named where it is not."""

from __future__ import annotations

import os
import time

import pytest

from backend.errors import Invalid
from backend.models.user import Role, User
from backend.services import prompt_formats
from backend.services.prompt_formats import convert, from_messages, to_messages

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
]


def texts(losses: list) -> list[str]:
    return [loss.text() for loss in losses]


@pytest.mark.parametrize("format", ["openai", "anthropic", "sharegpt", "alpaca"])
def test_a_system_prompt_and_alternating_turns_go_both_ways_without_loss(format: str) -> None:
    data, losses = from_messages(format, CONVERSATION)
    assert losses == []
    back, losses = to_messages(format, data)
    assert losses == [] and back == CONVERSATION


def test_each_format_looks_as_its_tools_expect() -> None:
    assert convert(source="openai", target="anthropic", data={"messages": CONVERSATION})[0] == {
        "system": "You are terse.", "messages": CONVERSATION[1:]}
    assert convert(source="openai", target="sharegpt", data=CONVERSATION)[0]["conversations"][:3] == [
        {"from": "system", "value": "You are terse."}, {"from": "human", "value": "Capital of France?"},
        {"from": "gpt", "value": "Paris."}]
    assert convert(source="openai", target="alpaca", data=CONVERSATION)[0] == {
        "instruction": "And of Italy?", "input": "", "output": "Rome.", "system": "You are terse.",
        "history": [["Capital of France?", "Paris."]]}


def test_every_pair_of_formats_converts_a_single_question_without_loss() -> None:
    question = [{"role": "user", "content": "Why is the sky blue?"}]
    for source in prompt_formats.FORMATS:
        data, _ = from_messages(source, question)
        for target in prompt_formats.FORMATS:
            converted, losses = convert(source=source, target=target, data=data)
            assert losses == [], (source, target)
            assert to_messages(target, converted)[0] == question, (source, target)


def test_plain_text_keeps_no_roles_and_says_so() -> None:
    text, losses = from_messages("text", CONVERSATION)
    assert text == "You are terse.\n\nCapital of France?\n\nParis.\n\nAnd of Italy?\n\nRome."
    assert texts(losses) == ["Plain text keeps no roles: 5 messages were joined into one text"]
    assert texts(from_messages("text", [{"role": "system", "content": "Be kind."}])[1]) == [
        "Plain text keeps no roles: the system message became plain text"]
    assert to_messages("text", "Hello") == ([{"role": "user", "content": "Hello"}], [])


def test_alpaca_names_what_does_not_pair_up() -> None:
    messages = [{"role": "assistant", "content": "Hi, how can I help?"}, {"role": "user", "content": "One"},
                {"role": "user", "content": "Two"}, {"role": "assistant", "content": "Answer"}]
    data, losses = from_messages("alpaca", messages)
    assert data == {"instruction": "Two", "input": "", "output": "Answer", "history": [["One", ""]]}
    assert texts(losses) == [
        "Alpaca pairs each answer with an instruction: 1 assistant messages without one were dropped",
        "Alpaca pairs each instruction with an answer: 1 user messages without one were given an empty answer"]


def test_alpaca_input_is_joined_to_the_instruction_and_that_is_said() -> None:
    messages, losses = to_messages("alpaca", {"instruction": "Translate to French.", "input": "Good morning",
                                              "output": "Bonjour"})
    assert messages == [{"role": "user", "content": "Translate to French.\n\nGood morning"},
                        {"role": "assistant", "content": "Bonjour"}]
    assert texts(losses) == ["Alpaca's instruction and input were joined into one user message"]


def test_anthropic_keeps_one_system_prompt_apart_and_wants_alternation() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"},
                {"role": "system", "content": "Be kind."}]
    data, losses = from_messages("anthropic", messages)
    assert data == {"system": "Be brief.\n\nBe kind.", "messages": [
        {"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}]}
    assert texts(losses) == [
        "Anthropic keeps one system prompt apart: 2 system messages were joined and moved before the conversation",
        "Anthropic wants user and assistant turns to alternate: 1 messages were joined to the one before"]
    assert texts(from_messages("anthropic", [{"role": "assistant", "content": "Hi"}])[1]) == [
        "Anthropic wants the conversation to open with a user message"]


def test_content_blocks_keep_their_text_and_name_what_was_dropped() -> None:
    data = {"system": [{"type": "text", "text": "Be brief."}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image", "source": {"type": "base64", "data": "..."}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "A cat."}]}]}
    messages, losses = to_messages("anthropic", data)
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is this?"},
                        {"role": "assistant", "content": "A cat."}]
    assert texts(losses) == ["anthropic #1: 1 parts that are not text were dropped",
                             "anthropic #2: 1 parts that are not text were dropped"]
    messages, losses = to_messages("openai", [{"role": "developer", "content": "Rules"},
                                              {"role": "tool", "content": "42", "tool_call_id": "x"}])
    assert messages == [{"role": "system", "content": "Rules"}]
    assert texts(losses) == ["Message 2 with role tool was dropped"]


def test_bad_input_and_unknown_formats_are_refused() -> None:
    with pytest.raises(Invalid, match="Unknown format yaml"):
        convert(source="yaml", target="openai", data=[])
    with pytest.raises(Invalid, match="Unknown format x"):
        convert(source="openai", target="x", data=[])
    with pytest.raises(Invalid, match="openai: expected a list of messages under messages"):
        convert(source="openai", target="text", data={"prompt": "hi"})
    with pytest.raises(Invalid, match="text: expected a string"):
        convert(source="text", target="openai", data=["hi"])
    with pytest.raises(Invalid, match="alpaca: history entry 1 is not"):
        convert(source="alpaca", target="openai", data={"instruction": "x", "history": [["only one"]]})


def test_tool_calls_names_and_other_fields_of_openai_messages_are_named_when_dropped() -> None:
    messages, losses = to_messages("openai", [
        {"role": "user", "content": "Weather in Paris?", "name": "alice"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "name": None}])
    assert messages == [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": ""},
                        {"role": "assistant", "content": "Sunny."}]
    assert texts(losses) == ["Message 1: name could not be kept, only the role and the text",
                             "Message 2: tool_calls could not be kept, only the role and the text",
                             "Message 3 with role tool was dropped"]


def test_an_empty_user_turn_is_named_when_alpaca_cannot_keep_it() -> None:
    data, losses = from_messages("alpaca", [{"role": "user", "content": ""}, {"role": "assistant", "content": "Hi!"}])
    assert data == {"instruction": "", "input": "", "output": "Hi!"}
    assert texts(losses) == ["Alpaca keeps an empty last instruction as none: the empty user message is lost when it "
                             "is read back"]
    messages, losses = to_messages("alpaca", data)
    assert messages == [{"role": "assistant", "content": "Hi!"}]
    assert texts(losses) == ["Alpaca's instruction is empty: the answer has no user message before it"]
    assert from_messages("alpaca", [])[1] == []  # nothing to lose


def admin() -> User:
    return User(id=1, username="root", password_hash="x", role=Role.admin)


def member() -> User:
    return User(id=2, username="bob", password_hash="x", role=Role.user)


def test_the_chat_template_preview_says_clearly_when_transformers_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(prompt_formats, "transformers_available", lambda: False)
    with pytest.raises(Invalid, match="needs the transformers package, which is not installed"):
        prompt_formats.chat_template_preview(user=admin(), model_dir="/models/x", messages=CONVERSATION)


def test_the_chat_template_preview_applies_a_local_tokenizer(tmp_path) -> None:
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                        unk_token="[UNK]")
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    tokenizer.save_pretrained(tmp_path)
    text = prompt_formats.chat_template_preview(user=admin(), model_dir=str(tmp_path), messages=CONVERSATION[:2])
    assert text == "<|system|>You are terse.\n<|user|>Capital of France?\n<|assistant|>"
    with pytest.raises(Invalid, match=r"No tokenizer could be loaded from .*missing: "):  # an admin is told why
        prompt_formats.chat_template_preview(user=admin(), model_dir=str(tmp_path / "missing"), messages=CONVERSATION)
    # others name a model as for training: a directory with a config.json, not any path on the server
    with pytest.raises(Invalid, match=r"has no config\.json: not a model directory"):
        prompt_formats.chat_template_preview(user=member(), model_dir=str(tmp_path), messages=CONVERSATION)
    with pytest.raises(Invalid, match=r"^No model directory at /etc/nothing-here$"):
        prompt_formats.chat_template_preview(user=member(), model_dir="/etc/nothing-here", messages=CONVERSATION)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert prompt_formats.chat_template_preview(user=member(), model_dir=str(tmp_path), messages=CONVERSATION[1:2],
                                                add_generation_prompt=False) == "<|user|>Capital of France?\n"
    # the tokenizer is read again when its files change
    tokenizer.chat_template = "{% for m in messages %}[{{ m.content }}]{% endfor %}"
    tokenizer.save_pretrained(tmp_path)
    os.utime(tmp_path / "tokenizer_config.json", (time.time() + 5, time.time() + 5))
    assert prompt_formats.chat_template_preview(user=member(), model_dir=str(tmp_path),
                                                messages=CONVERSATION[1:2]) == "[Capital of France?]"
