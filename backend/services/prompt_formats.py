"""Conversation formats: OpenAI messages, Anthropic messages (system apart), ShareGPT, Alpaca and plain text.

Every conversion goes through plain `{role, content}` messages (roles system, user, assistant). What a format
cannot hold is named in a warning rather than lost in silence: Alpaca keeps one exchange plus a history of pairs,
plain text keeps no roles, Anthropic keeps one system prompt apart and wants turns that alternate.
Also: a local tokenizer's chat template applied to messages, when `transformers` is installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from backend.errors import Invalid
from backend.i18n import N_, gettext
from backend.models.user import Role, User

FORMATS = ("openai", "anthropic", "sharegpt", "alpaca", "text")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
SHAREGPT_NAMES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class Loss:
    """What a conversion could not keep: a message id and its parameters, translated where it is shown."""

    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, language: str | None = None) -> str:
        return gettext(self.message, language=language, **self.params)


Messages = list[dict[str, str]]


# --- reading --------------------------------------------------------------------------------------------------


def _text_of(content: Any, *, where: str, losses: list[Loss]) -> str:
    """A message's content: a string, or the text parts of a list of content blocks (others are dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts, dropped = [], 0
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                dropped += 1
        if dropped:
            losses.append(Loss(N_("{where}: {n} parts that are not text were dropped"), {"where": where, "n": dropped}))
        return "\n\n".join(texts)
    if content is None:
        return ""
    raise Invalid("{where}: content must be text", where=where)


def _message_list(data: Any, key: str, format: str) -> list[Any]:
    items = data.get(key) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise Invalid("{format}: expected a list of messages under {key}", format=format, key=key)
    return items


def _read_openai(data: Any, losses: list[Loss]) -> Messages:
    messages: Messages = []
    for index, item in enumerate(_message_list(data, "messages", "openai"), start=1):
        if not isinstance(item, dict):
            raise Invalid("{format}: message {n} is not an object", format="openai", n=index)
        role = item.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            losses.append(Loss(N_("Message {n} with role {role} was dropped"), {"n": index, "role": str(role)}))
            continue
        extra = sorted(key for key, value in item.items() if key not in ("role", "content") and value)
        if extra:  # tool_calls, name, refusal, …: plain messages have no place for them
            losses.append(Loss(N_("Message {n}: {fields} could not be kept, only the role and the text"),
                               {"n": index, "fields": ", ".join(extra)}))
        messages.append({"role": role, "content": _text_of(item.get("content"), where=f"openai #{index}",
                                                          losses=losses)})
    return messages


def _read_anthropic(data: Any, losses: list[Loss]) -> Messages:
    if not isinstance(data, dict):
        raise Invalid("{format}: expected an object with messages and an optional system", format="anthropic")
    messages: Messages = []
    system = _text_of(data.get("system"), where="anthropic system", losses=losses)
    if system:
        messages.append({"role": "system", "content": system})
    for index, item in enumerate(_message_list(data, "messages", "anthropic"), start=1):
        if not isinstance(item, dict):
            raise Invalid("{format}: message {n} is not an object", format="anthropic", n=index)
        role = item.get("role")
        if role not in ("user", "assistant"):
            losses.append(Loss(N_("Message {n} with role {role} was dropped"), {"n": index, "role": str(role)}))
            continue
        messages.append({"role": role, "content": _text_of(item.get("content"), where=f"anthropic #{index}",
                                                          losses=losses)})
    return messages


def _read_sharegpt(data: Any, losses: list[Loss]) -> Messages:
    messages: Messages = []
    for index, item in enumerate(_message_list(data, "conversations", "sharegpt"), start=1):
        if not isinstance(item, dict):
            raise Invalid("{format}: message {n} is not an object", format="sharegpt", n=index)
        speaker = item.get("from")
        role = SHAREGPT_ROLES.get(str(speaker))
        if role is None:
            losses.append(Loss(N_("Message {n} with role {role} was dropped"), {"n": index, "role": str(speaker)}))
            continue
        messages.append({"role": role, "content": _text_of(item.get("value"), where=f"sharegpt #{index}",
                                                          losses=losses)})
    if isinstance(data, dict) and isinstance(data.get("system"), str) and data["system"]:
        messages.insert(0, {"role": "system", "content": data["system"]})
    return messages


def _read_alpaca(data: Any, losses: list[Loss]) -> Messages:
    if not isinstance(data, dict) or not isinstance(data.get("instruction", ""), str):
        raise Invalid("{format}: expected an object with instruction, input and output", format="alpaca")
    messages: Messages = []
    if isinstance(data.get("system"), str) and data["system"]:
        messages.append({"role": "system", "content": data["system"]})
    history = data.get("history") or []
    if not isinstance(history, list):
        raise Invalid("{format}: history must be a list of [instruction, answer] pairs", format="alpaca")
    for index, pair in enumerate(history, start=1):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise Invalid("{format}: history entry {n} is not an [instruction, answer] pair", format="alpaca", n=index)
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    instruction, extra = str(data.get("instruction") or ""), str(data.get("input") or "")
    if extra:
        losses.append(Loss(N_("Alpaca's instruction and input were joined into one user message")))
    prompt = f"{instruction}\n\n{extra}" if instruction and extra else instruction or extra
    if prompt:
        messages.append({"role": "user", "content": prompt})
    elif data.get("output"):
        losses.append(Loss(N_("Alpaca's instruction is empty: the answer has no user message before it")))
    if data.get("output"):
        messages.append({"role": "assistant", "content": str(data["output"])})
    return messages


def _read_text(data: Any, losses: list[Loss]) -> Messages:
    if not isinstance(data, str):
        raise Invalid("{format}: expected a string", format="text")
    return [{"role": "user", "content": data}] if data else []


# --- writing --------------------------------------------------------------------------------------------------


def _write_openai(messages: Messages, losses: list[Loss]) -> Any:
    return {"messages": [dict(m) for m in messages]}


def _split_system(messages: Messages, losses: list[Loss], format: str) -> tuple[str, Messages]:
    systems = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    placed_first = all(m["role"] == "system" for m in messages[:len(systems)])
    if len(systems) > 1 or not placed_first:
        losses.append(Loss(N_("{format} keeps one system prompt apart: {n} system messages were joined and moved "
                              "before the conversation"), {"format": format, "n": len(systems)}))
    return "\n\n".join(systems), rest


def _write_anthropic(messages: Messages, losses: list[Loss]) -> Any:
    system, rest = _split_system(messages, losses, "Anthropic")
    merged: Messages = []
    joined = 0
    for message in rest:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n\n" + message["content"]}
            joined += 1
        else:
            merged.append(dict(message))
    if joined:
        losses.append(Loss(N_("Anthropic wants user and assistant turns to alternate: {n} messages were joined to "
                              "the one before"), {"n": joined}))
    if merged and merged[0]["role"] != "user":
        losses.append(Loss(N_("Anthropic wants the conversation to open with a user message")))
    data: dict[str, Any] = {"messages": merged}
    if system:
        data = {"system": system, **data}
    return data


def _write_sharegpt(messages: Messages, losses: list[Loss]) -> Any:
    return {"conversations": [{"from": SHAREGPT_NAMES[m["role"]], "value": m["content"]} for m in messages]}


def _write_alpaca(messages: Messages, losses: list[Loss]) -> Any:
    system, rest = _split_system(messages, losses, "Alpaca")
    pairs: list[list[str]] = []
    open_pair: list[str] | None = None
    unanswered = dropped = 0
    for message in rest:
        if message["role"] == "user":
            if open_pair is not None:
                unanswered += 1
                pairs.append([open_pair[0], ""])
            open_pair = [message["content"]]
        elif open_pair is not None:
            pairs.append([open_pair[0], message["content"]])
            open_pair = None
        else:
            dropped += 1
    if open_pair is not None:
        pairs.append([open_pair[0], ""])
    if dropped:
        losses.append(Loss(N_("Alpaca pairs each answer with an instruction: {n} assistant messages without one "
                              "were dropped"), {"n": dropped}))
    if unanswered:
        losses.append(Loss(N_("Alpaca pairs each instruction with an answer: {n} user messages without one were "
                              "given an empty answer"), {"n": unanswered}))
    last = pairs.pop() if pairs else ["", ""]
    if not last[0] and any(m["role"] == "user" for m in rest):
        losses.append(Loss(N_("Alpaca keeps an empty last instruction as none: the empty user message is lost when "
                              "it is read back")))
    data: dict[str, Any] = {"instruction": last[0], "input": "", "output": last[1]}
    if system:
        data["system"] = system
    if pairs:
        data["history"] = pairs
    return data


def _write_text(messages: Messages, losses: list[Loss]) -> Any:
    if len(messages) > 1:
        losses.append(Loss(N_("Plain text keeps no roles: {n} messages were joined into one text"),
                           {"n": len(messages)}))
    elif messages and messages[0]["role"] != "user":
        losses.append(Loss(N_("Plain text keeps no roles: the {role} message became plain text"),
                           {"role": messages[0]["role"]}))
    return "\n\n".join(m["content"] for m in messages)


READERS = {"openai": _read_openai, "anthropic": _read_anthropic, "sharegpt": _read_sharegpt, "alpaca": _read_alpaca,
           "text": _read_text}
WRITERS = {"openai": _write_openai, "anthropic": _write_anthropic, "sharegpt": _write_sharegpt,
           "alpaca": _write_alpaca, "text": _write_text}


def _check_format(name: str) -> str:
    if name not in FORMATS:
        raise Invalid("Unknown format {format}: use {known}", format=name, known=", ".join(FORMATS))
    return name


def to_messages(format: str, data: Any) -> tuple[Messages, list[Loss]]:
    losses: list[Loss] = []
    return READERS[_check_format(format)](data, losses), losses


def from_messages(format: str, messages: Messages) -> tuple[Any, list[Loss]]:
    losses: list[Loss] = []
    return WRITERS[_check_format(format)](messages, losses), losses


def convert(*, source: str, target: str, data: Any) -> tuple[Any, list[Loss]]:
    """`data` in format `source` as format `target`, and what could not be kept on the way."""
    _check_format(target)
    messages, read_losses = to_messages(source, data)
    converted, write_losses = from_messages(target, messages)
    return converted, read_losses + write_losses


# --- a tokenizer's chat template ------------------------------------------------------------------------------


def transformers_available() -> bool:
    return importlib.util.find_spec("transformers") is not None


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "config.json", "chat_template.jinja")


@lru_cache(maxsize=8)
def _tokenizer(model_dir: str, stamp: tuple[float, ...]) -> Any:
    """A tokenizer, read again when its directory or files change (`stamp`: their modification times)."""
    from transformers import AutoTokenizer  # optional: installed with the training extras

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)


def _stamp(path: str) -> tuple[float, ...]:
    folder = Path(path)
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in (folder, *(folder / f for f in TOKENIZER_FILES)))


def chat_template_preview(*, user: User, model_dir: str, messages: Messages, add_generation_prompt: bool = True
                          ) -> str:
    """The text a local model would see: its tokenizer's chat template applied to `messages`. Never downloads.

    A user names a model as for training (a model directory, or a model id in the local Hugging Face cache), and
    learns no more than training tells about the server's files; an administrator may name any directory, and
    sees why a tokenizer does not load."""
    if not transformers_available():
        raise Invalid("The chat template preview needs the transformers package, which is not installed here")
    path = model_dir.strip()
    if not path:
        raise Invalid("Give a local model directory or a model id from the local Hugging Face cache")
    admin = user.role == Role.admin
    if not admin:
        from backend.services import training  # the model directories and ids that training accepts

        path = str(training.resolve_base_model(path))
    try:
        tokenizer = _tokenizer(path, _stamp(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        if not admin:
            raise Invalid("No tokenizer could be loaded from {path}", path=model_dir.strip()) from None
        raise Invalid("No tokenizer could be loaded from {path}: {error}", path=path, error=str(error)[:300]) from None
    if not getattr(tokenizer, "chat_template", None):
        raise Invalid("The tokenizer in {path} has no chat template", path=model_dir.strip())
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as error:  # a template may raise anything (e.g. "roles must alternate"): show it
        raise Invalid("The chat template failed: {error}", error=str(error)[:300]) from None
    return str(text)
