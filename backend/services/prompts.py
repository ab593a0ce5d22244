"""The prompt library: templates with variables, immutable versions, labels, diffs, sharing, import and export,
and the playground's runs.

A prompt is private to its owner unless shared with everyone; a shared prompt may be read, rendered and copied by
anyone, changed only by its owner (or an admin). Admins see every prompt.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select
from starlette.concurrency import run_in_threadpool

from backend.db import session_scope
from backend.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from backend.models.base import utcnow
from backend.models.chat import ConversationCreate, Message
from backend.models.prompt import (
    ROLES,
    DiffResult,
    ImportResult,
    Prompt,
    PromptCreate,
    PromptMessage,
    PromptPublic,
    PromptSummary,
    PromptUpdate,
    PromptVersion,
    PromptVersionPublic,
    RenderResult,
    VariableSpec,
)
from backend.models.user import Role, User
from backend.services import audit, chat, inference, limits, providers
from backend.services.answers import LiveAnswer
from backend.services.prompt_render import readable, render_messages, variable_specs

MAX_MESSAGES = 100
MAX_CONTENT = 100_000  # characters of one message's template
MAX_TAGS = 20
MAX_IMPORT_BYTES = 5_000_000
LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
EXPORT_KIND = "llm-portal-prompts"
EXPORT_VERSION = 1


# --- checking what comes in -------------------------------------------------------------------------------------


def _clean_name(name: str | None) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise Invalid("A prompt needs a name")
    if len(cleaned) > 200:
        raise Invalid("A name is at most {n} characters", n=200)
    return cleaned


def _clean_tags(tags: list[str] | None) -> list[str]:
    cleaned = list(dict.fromkeys(t.strip().lower()[:40] for t in tags or [] if t and t.strip()))
    if len(cleaned) > MAX_TAGS:
        raise Invalid("At most {n} tags", n=MAX_TAGS)
    return cleaned


def _clean_messages(messages: Sequence[PromptMessage | dict[str, Any]]) -> list[dict[str, str]]:
    cleaned = []
    for index, message in enumerate(messages, start=1):
        role: Any
        content: Any
        if isinstance(message, PromptMessage):
            role, content = message.role, message.content
        else:
            role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise Invalid("Message {n}: the role must be one of {roles}", n=index, roles=", ".join(ROLES))
        if not isinstance(content, str):
            raise Invalid("Message {n}: the content must be text", n=index)
        if len(content) > MAX_CONTENT:
            raise Invalid("Message {n} is longer than {limit} characters", n=index, limit=MAX_CONTENT)
        cleaned.append({"role": role, "content": content})
    if not cleaned:
        raise Invalid("A prompt needs at least one message")
    if len(cleaned) > MAX_MESSAGES:
        raise Invalid("A prompt has at most {n} messages", n=MAX_MESSAGES)
    if not any(m["content"].strip() for m in cleaned):
        raise Invalid("Every message is empty")
    return cleaned


def _specs(messages: list[dict[str, str]], given: list[VariableSpec] | list[dict[str, Any]] | None
           ) -> list[dict[str, Any]]:
    raw = [s.model_dump() if isinstance(s, VariableSpec) else dict(s) for s in given or []]
    return variable_specs([m["content"] for m in messages], raw)


def _name_taken(session: Session, *, owner_id: int, name: str, other_than: int | None = None) -> bool:
    query = select(Prompt.id).where(Prompt.user_id == owner_id, Prompt.name == name)
    if other_than is not None:
        query = query.where(Prompt.id != other_than)
    return session.exec(query).first() is not None


def _clean_label(label: str) -> str:
    label = label.strip().lower()
    if label == "latest" or not LABEL_PATTERN.match(label):
        raise Invalid("A label is up to 40 lower-case letters, digits, dots, dashes or underscores, and not "
                      "'latest'")
    return label


# --- reading ----------------------------------------------------------------------------------------------------


def _owner_name(session: Session, prompt: Prompt) -> str:
    owner = session.get(User, prompt.user_id)
    return owner.username if owner else "?"


def get_prompt(session: Session, *, user: User, prompt_id: int) -> Prompt:
    """A prompt its owner, an admin or (when shared) anyone may read; to anyone else it does not exist."""
    prompt = session.get(Prompt, prompt_id)
    if prompt is None or not (prompt.user_id == user.id or prompt.shared or user.role == Role.admin):
        raise NotFound("No such prompt")
    return prompt


def _editable(session: Session, *, user: User, prompt_id: int) -> Prompt:
    prompt = get_prompt(session, user=user, prompt_id=prompt_id)
    if prompt.user_id != user.id and user.role != Role.admin:
        raise Forbidden("Only the owner of a shared prompt may change it; make a copy to change yours")
    return prompt


def get_version(session: Session, *, user: User, prompt_id: int, version: int | None = None,
                label: str | None = None) -> PromptVersion:
    """A version of the prompt: `version`, else the one `label` points at, else the latest."""
    prompt = get_prompt(session, user=user, prompt_id=prompt_id)
    number = version
    if number is None and label:
        number = prompt.labels.get(label.strip().lower())
        if number is None:
            raise NotFound("The prompt has no label {label}", label=label)
    if number is None:
        number = prompt.latest_version
    row = session.exec(select(PromptVersion).where(PromptVersion.prompt_id == prompt.id,
                                                   PromptVersion.version == number)).first()
    if row is None:
        raise NotFound("The prompt has no version {version}", version=number)
    return row


def summary(session: Session, prompt: Prompt, latest: PromptVersion | None = None, owner: str | None = None
            ) -> PromptSummary:
    latest = latest or session.exec(select(PromptVersion).where(PromptVersion.prompt_id == prompt.id,
                                                                PromptVersion.version == prompt.latest_version)).one()
    return PromptSummary(
        id=prompt.id,  # type: ignore[arg-type]
        name=prompt.name, description=prompt.description, tags=list(prompt.tags), shared=prompt.shared,
        owner=owner or _owner_name(session, prompt), owner_id=prompt.user_id, version=prompt.latest_version,
        labels=dict(prompt.labels), variables=[VariableSpec(**v) for v in latest.variables],
        created_at=prompt.created_at, updated_at=prompt.updated_at,
    )


def prompt_public(session: Session, prompt: Prompt, version: PromptVersion | None = None) -> PromptPublic:
    """The prompt with the messages and variables of `version` (the latest when not given)."""
    version = version or session.exec(select(PromptVersion).where(
        PromptVersion.prompt_id == prompt.id, PromptVersion.version == prompt.latest_version)).one()
    base = summary(session, prompt, version).model_dump(exclude={"variables", "version"})
    return PromptPublic(**base, version=version.version, variables=[VariableSpec(**v) for v in version.variables],
                        messages=[PromptMessage(**m) for m in version.messages], note=version.note)


def read_prompt(session: Session, *, user: User, prompt_id: int, version: int | None = None,
                label: str | None = None) -> PromptPublic:
    prompt = get_prompt(session, user=user, prompt_id=prompt_id)
    return prompt_public(session, prompt, get_version(session, user=user, prompt_id=prompt_id, version=version,
                                                      label=label))


def list_prompts(session: Session, *, user: User, q: str | None = None, tag: str | None = None,
                 mine: bool = False) -> list[PromptSummary]:
    """The prompts `user` may read (their own and the shared ones; an admin's: all), recently changed first;
    `q` searches names, descriptions and tags, `tag` keeps those with that tag, `mine` only the user's own."""
    query = (select(Prompt, PromptVersion, User)
             .join(PromptVersion, (col(PromptVersion.prompt_id) == Prompt.id)
                   & (col(PromptVersion.version) == Prompt.latest_version))
             .join(User, col(User.id) == Prompt.user_id))
    if mine:
        query = query.where(Prompt.user_id == user.id)
    elif user.role != Role.admin:
        query = query.where(or_(col(Prompt.user_id) == user.id, col(Prompt.shared).is_(True)))
    term = (q or "").strip().lower()
    rows = session.exec(query.order_by(col(Prompt.updated_at).desc(), col(Prompt.id).desc())).all()
    found = []
    for prompt, latest, owner in rows:
        if tag and tag.strip().lower() not in prompt.tags:
            continue
        if term and term not in prompt.name.lower() and term not in (prompt.description or "").lower() \
                and not any(term in t for t in prompt.tags):
            continue
        found.append(summary(session, prompt, latest, owner.username))
    return found


def list_versions(session: Session, *, user: User, prompt_id: int) -> list[PromptVersionPublic]:
    """Every version, newest first, with the labels that point at it."""
    prompt = get_prompt(session, user=user, prompt_id=prompt_id)
    rows = session.exec(select(PromptVersion, User).join(User, col(User.id) == PromptVersion.author_id, isouter=True)
                        .where(PromptVersion.prompt_id == prompt.id)
                        .order_by(col(PromptVersion.version).desc())).all()
    return [version_public(prompt, row, author.username if author else None) for row, author in rows]


def version_public(prompt: Prompt, row: PromptVersion, author: str | None) -> PromptVersionPublic:
    return PromptVersionPublic(
        version=row.version, messages=[PromptMessage(**m) for m in row.messages],
        variables=[VariableSpec(**v) for v in row.variables], note=row.note, author=author,
        labels=sorted(label for label, number in prompt.labels.items() if number == row.version),
        created_at=row.created_at,
    )


# --- writing ----------------------------------------------------------------------------------------------------


def _add_version(session: Session, prompt: Prompt, *, author: User, messages: list[dict[str, str]],
                 specs: list[dict[str, Any]], note: str | None) -> PromptVersion:
    prompt.latest_version += 1
    row = PromptVersion(prompt_id=prompt.id, version=prompt.latest_version, messages=messages,  # type: ignore[arg-type]
                        variables=specs, note=(note or "").strip()[:500] or None, author_id=author.id)
    session.add(row)
    return row


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:  # two saves of one prompt at once: the second lost the race for the version number
        session.rollback()
        raise Conflict("The prompt was changed meanwhile; reload it and save again") from None


def create_prompt(session: Session, *, user: User, data: PromptCreate, ip: str | None = None) -> Prompt:
    name = _clean_name(data.name)
    if _name_taken(session, owner_id=user.id, name=name):  # type: ignore[arg-type]
        raise Conflict("You already have a prompt named {name}", name=name)
    messages = _clean_messages(data.messages)
    specs = _specs(messages, data.variables)
    prompt = Prompt(user_id=user.id, name=name, description=(data.description or "").strip() or None,  # type: ignore[arg-type]
                    tags=_clean_tags(data.tags), shared=data.shared)
    session.add(prompt)
    session.flush()
    _add_version(session, prompt, author=user, messages=messages, specs=specs, note=data.note)
    audit.record(session, action="prompt.create", user=user, target=f"prompt:{prompt.id} {name}", ip=ip,
                 detail={"shared": prompt.shared})
    _commit(session)
    return prompt


def update_prompt(session: Session, *, user: User, prompt_id: int, data: PromptUpdate,
                  ip: str | None = None) -> Prompt:
    """Name, description, tags and sharing change in place; messages or variables that differ from the latest
    version make a new version (the same ones again make none)."""
    prompt = _editable(session, user=user, prompt_id=prompt_id)
    changes = data.model_dump(exclude_unset=True)
    changed: list[str] = []
    if changes.get("name") is not None:
        name = _clean_name(changes["name"])
        if name != prompt.name:
            if _name_taken(session, owner_id=prompt.user_id, name=name, other_than=prompt.id):
                raise Conflict("You already have a prompt named {name}", name=name)
            prompt.name = name
            changed.append("name")
    if "description" in changes:
        prompt.description = (changes["description"] or "").strip() or None
        changed.append("description")
    if "tags" in changes:
        prompt.tags = _clean_tags(changes["tags"])
        changed.append("tags")
    if changes.get("shared") is not None and changes["shared"] != prompt.shared:
        prompt.shared = bool(changes["shared"])
        changed.append("shared")
    new_version = None
    if data.messages is not None or data.variables is not None:
        latest = get_version(session, user=user, prompt_id=prompt.id)  # type: ignore[arg-type]
        messages = _clean_messages(data.messages) if data.messages is not None else list(latest.messages)
        given = data.variables if data.variables is not None else [
            v for v in latest.variables if v["name"] in _names_in(messages)]
        specs = _specs(messages, given)
        if messages != latest.messages or specs != latest.variables:
            new_version = _add_version(session, prompt, author=user, messages=messages, specs=specs, note=data.note)
            changed.append("version")
    if not changed:
        return prompt
    prompt.updated_at = utcnow()
    session.add(prompt)
    detail: dict[str, Any] = {"changed": changed}
    if new_version is not None:
        detail["version"] = new_version.version
    audit.record(session, action="prompt.update", user=user, target=f"prompt:{prompt.id} {prompt.name}", ip=ip,
                 detail=detail)
    _commit(session)
    return prompt


def _names_in(messages: list[dict[str, str]]) -> set[str]:
    return {spec["name"] for spec in variable_specs([m["content"] for m in messages], None)}


def delete_prompt(session: Session, *, user: User, prompt_id: int, ip: str | None = None) -> None:
    prompt = _editable(session, user=user, prompt_id=prompt_id)
    session.exec(delete(PromptVersion).where(col(PromptVersion.prompt_id) == prompt.id))  # type: ignore[call-overload]
    audit.record(session, action="prompt.delete", user=user, target=f"prompt:{prompt.id} {prompt.name}", ip=ip)
    session.delete(prompt)
    session.commit()


def restore_version(session: Session, *, user: User, prompt_id: int, version: int, ip: str | None = None) -> Prompt:
    """Roll back: an old version's messages and variables saved again, as the new latest version."""
    prompt = _editable(session, user=user, prompt_id=prompt_id)
    old = get_version(session, user=user, prompt_id=prompt_id, version=version)
    if old.version == prompt.latest_version:
        raise Invalid("Version {version} is the latest already", version=version)
    row = _add_version(session, prompt, author=user, messages=list(old.messages), specs=list(old.variables),
                       note=f"Restored from version {old.version}")
    prompt.updated_at = utcnow()
    session.add(prompt)
    audit.record(session, action="prompt.restore", user=user, target=f"prompt:{prompt.id} {prompt.name}", ip=ip,
                 detail={"from": old.version, "version": row.version})
    _commit(session)
    return prompt


def set_label(session: Session, *, user: User, prompt_id: int, label: str, version: int,
              ip: str | None = None) -> Prompt:
    """Point `label` (e.g. "production") at `version`; a label that pointed elsewhere moves."""
    prompt = _editable(session, user=user, prompt_id=prompt_id)
    label = _clean_label(label)
    get_version(session, user=user, prompt_id=prompt_id, version=version)
    before = prompt.labels.get(label)
    prompt.labels = {**prompt.labels, label: version}
    session.add(prompt)
    audit.record(session, action="prompt.label", user=user, target=f"prompt:{prompt.id} {prompt.name}", ip=ip,
                 detail={"label": label, "version": version, "was": before})
    session.commit()
    return prompt


def remove_label(session: Session, *, user: User, prompt_id: int, label: str, ip: str | None = None) -> Prompt:
    prompt = _editable(session, user=user, prompt_id=prompt_id)
    label = label.strip().lower()
    if label not in prompt.labels:
        raise NotFound("The prompt has no label {label}", label=label)
    prompt.labels = {k: v for k, v in prompt.labels.items() if k != label}
    session.add(prompt)
    audit.record(session, action="prompt.unlabel", user=user, target=f"prompt:{prompt.id} {prompt.name}", ip=ip,
                 detail={"label": label})
    session.commit()
    return prompt


def copy_prompt(session: Session, *, user: User, prompt_id: int, ip: str | None = None) -> Prompt:
    """A copy of a prompt (a shared one, most often) in the user's own library, private, at version 1."""
    source = get_prompt(session, user=user, prompt_id=prompt_id)
    latest = get_version(session, user=user, prompt_id=prompt_id)
    base = source.name[:190]
    name, n = f"{base} (copy)", 2
    while _name_taken(session, owner_id=user.id, name=name):  # type: ignore[arg-type]
        name, n = f"{base} (copy {n})", n + 1
    return create_prompt(session, user=user, ip=ip, data=PromptCreate(
        name=name, description=source.description, tags=list(source.tags), shared=False,
        messages=[PromptMessage(**m) for m in latest.messages], variables=[VariableSpec(**v) for v in latest.variables],
        note=f"Copied from {source.name} version {latest.version}"))


# --- rendering and comparing ------------------------------------------------------------------------------------


def render(session: Session, *, user: User, prompt_id: int, variables: dict[str, Any] | None = None,
           version: int | None = None, label: str | None = None) -> RenderResult:
    """The messages of a version with the variables filled in."""
    row = get_version(session, user=user, prompt_id=prompt_id, version=version, label=label)
    messages = render_messages(list(row.messages), list(row.variables), variables or {})
    return RenderResult(version=row.version, messages=[PromptMessage(**m) for m in messages])


def render_draft(*, messages: Sequence[PromptMessage | dict[str, Any]], variables: list[VariableSpec] | None,
                 values: dict[str, Any]) -> list[dict[str, str]]:
    """Render messages that are not saved yet (the editor's playground)."""
    cleaned = _clean_messages(messages)
    return render_messages(cleaned, _specs(cleaned, variables), values)


def diff_versions(session: Session, *, user: User, prompt_id: int, from_version: int, to_version: int) -> DiffResult:
    """A unified diff, line by line, between readable renderings of two versions (messages, then variables)."""
    old = get_version(session, user=user, prompt_id=prompt_id, version=from_version)
    new = get_version(session, user=user, prompt_id=prompt_id, version=to_version)
    lines = difflib.unified_diff(readable(old.messages, old.variables), readable(new.messages, new.variables),
                                 fromfile=f"version {old.version}", tofile=f"version {new.version}", lineterm="")
    return DiffResult(from_version=old.version, to_version=new.version, diff="\n".join(lines))


# --- import and export ------------------------------------------------------------------------------------------


def export_library(session: Session, *, user: User, format: str, ip: str | None = None) -> tuple[str, str]:
    """The user's own prompts (their latest versions, with labels resolved to nothing: labels name versions that
    another portal does not have) as `(filename, content)`, JSON or YAML."""
    if format not in ("json", "yaml"):
        raise Invalid("Unknown export format {format}: use json or yaml", format=format)
    items = []
    for item in list_prompts(session, user=user, mine=True):
        latest = get_version(session, user=user, prompt_id=item.id)
        entry: dict[str, Any] = {"name": item.name}
        if item.description:
            entry["description"] = item.description
        if item.tags:
            entry["tags"] = item.tags
        if item.shared:
            entry["shared"] = True
        entry["messages"] = list(latest.messages)
        if latest.variables:
            entry["variables"] = [{k: v for k, v in spec.items() if v is not None} for spec in latest.variables]
        items.append(entry)
    document = {"kind": EXPORT_KIND, "version": EXPORT_VERSION, "prompts": items}
    audit.record(session, action="prompt.export", user=user, ip=ip, detail={"prompts": len(items), "format": format})
    session.commit()
    if format == "json":
        return "prompts.json", json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return "prompts.yaml", yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=120)


def _parse_library(content: str, format: str | None) -> list[Any]:
    if len(content.encode()) > MAX_IMPORT_BYTES:
        raise TooLarge("The file is larger than {mb} MB", mb=MAX_IMPORT_BYTES // 1_000_000)
    try:
        if format == "json" or (format is None and content.lstrip()[:1] in ("{", "[")):
            document = json.loads(content)
        else:
            document = yaml.safe_load(content)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise Invalid("The file could not be read: {error}", error=str(error).splitlines()[0][:300]) from None
    if isinstance(document, dict) and "prompts" in document:
        document = document["prompts"]
    elif isinstance(document, dict) and "messages" in document:
        document = [document]
    if not isinstance(document, list):
        raise Invalid("Expected a list of prompts, or an object with a prompts list")
    return document


def import_library(session: Session, *, user: User, content: str, format: str | None = None,
                   ip: str | None = None) -> ImportResult:
    """Prompts from a JSON or YAML export. A prompt named like one of the user's gets a new version when its
    messages or variables differ; others are created. All or nothing: any problem names its prompt and nothing
    is saved."""
    items = _parse_library(content, format)
    plans: list[tuple[str, PromptCreate]] = []
    seen: set[str] = set()
    for index, raw in enumerate(items, start=1):
        try:
            if not isinstance(raw, dict):
                raise Invalid("Expected an object with name and messages")
            data = PromptCreate.model_validate({k: v for k, v in raw.items() if k in PromptCreate.model_fields})
            name = _clean_name(data.name)
            messages = _clean_messages(data.messages)
            _specs(messages, data.variables)
        except Invalid as error:
            raise Invalid("Prompt {n}: {error}", n=index, error=error.translated()) from None
        except ValueError as error:  # pydantic's ValidationError
            raise Invalid("Prompt {n}: {error}", n=index, error=str(error).splitlines()[0]) from None
        if name in seen:
            raise Invalid("Prompt {n}: the name {name} comes twice", n=index, name=name)
        seen.add(name)
        plans.append((name, data))
    result = ImportResult(created=[], updated=[], unchanged=[])
    for name, data in plans:
        existing = session.exec(select(Prompt).where(Prompt.user_id == user.id, Prompt.name == name)).first()
        if existing is None:
            create_prompt(session, user=user, data=data.model_copy(update={"name": name}), ip=ip)
            result.created.append(name)
            continue
        before = existing.latest_version
        update_prompt(session, user=user, prompt_id=existing.id, ip=ip, data=PromptUpdate(  # type: ignore[arg-type]
            messages=data.messages, variables=data.variables or [], note=data.note or "Imported"))
        (result.updated if existing.latest_version != before else result.unchanged).append(name)
    audit.record(session, action="prompt.import", user=user, ip=ip,
                 detail={"created": len(result.created), "updated": len(result.updated),
                         "unchanged": len(result.unchanged)})
    session.commit()
    return result


# --- the playground ---------------------------------------------------------------------------------------------

PLAYGROUND_PARAMS = ("temperature", "max_tokens")


@dataclass(kw_only=True)
class PlaygroundRun(LiveAnswer):
    """A rendered prompt's answer, streamed to the playground (not stored: the prompt is what is kept)."""

    messages: list[dict[str, str]] = field(default_factory=list)


async def start_run(*, user: User, messages: list[dict[str, str]], model: str,
                    params: dict[str, Any] | None = None) -> PlaygroundRun:
    """Send rendered messages to `model`; returns at once with the live answer. Counted against the user's rate
    and daily token quota like a chat message (429 past them)."""
    if not model:
        raise Invalid("Choose a model first")
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise Invalid("The rendered prompt has no user message to send")
    resolved = await run_in_threadpool(_resolve, model)
    await limits.enforce(user=user, kind="chat")
    params = {k: v for k, v in (params or {}).items() if k in PLAYGROUND_PARAMS and v is not None}
    request = inference.build_request(resolved, messages, temperature=params.get("temperature"),
                                      max_tokens=params.get("max_tokens"))
    run = PlaygroundRun(model=resolved.public.id, messages=messages)

    async def write() -> None:
        stream = inference.stream_completion(resolved, request, user_id=user.id, source="prompts",
                                             metrics=run.metrics)
        await run.consume(stream)
        run.finish()

    run.task = asyncio.get_running_loop().create_task(write())
    return run


def _resolve(model: str) -> providers.ResolvedModel:
    with session_scope() as session:
        return providers.resolve_model(session, model_ref=model)


async def open_in_chat(*, user: User, messages: list[dict[str, str]], model: str, title: str | None = None) -> int:
    """A new conversation holding the rendered messages: the system prompt as the conversation's, earlier turns
    as its history, and the last user message sent to `model` (the answer starts at once). Returns its id."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    turns = [m for m in messages if m["role"] != "system"]
    last_user = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=None)
    if last_user is None or not turns[last_user]["content"].strip():
        raise Invalid("The rendered prompt has no user message to send")
    if not model:
        raise Invalid("Choose a model first")
    conversation_id = await run_in_threadpool(_new_conversation, user, system, turns[:last_user], model, title)
    try:
        await chat.start_reply(user=user, conversation_id=conversation_id, content=turns[last_user]["content"],
                               model=model)
    except BaseException:  # refused (a limit, the model): no conversation left behind without its question
        await run_in_threadpool(_drop_conversation, user, conversation_id)
        raise
    return conversation_id


def _drop_conversation(user: User, conversation_id: int) -> None:
    with session_scope() as session:
        chat.delete_conversation(session, user=user, conversation_id=conversation_id)


def _new_conversation(user: User, system: str | None, history: list[dict[str, str]], model: str,
                      title: str | None) -> int:
    with session_scope() as session:
        conversation = chat.create_conversation(session, user=user, data=ConversationCreate(
            title=title, model=model, system_prompt=system))
        for message in history:  # earlier turns of the template, as if they had been said
            session.add(Message(conversation_id=conversation.id, role=message["role"],  # type: ignore[arg-type]
                                content=message["content"], status="done"))
        session.commit()
        return conversation.id  # type: ignore[return-value]


def compare_handoff(messages: list[dict[str, str]]) -> tuple[dict[str, str], bool]:
    """What the Compare page takes (a system prompt and one prompt) from rendered messages, and whether earlier
    turns had to be left out (Compare sends one prompt, without a history)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    users = [m for m in turns if m["role"] == "user"]
    if not users:
        raise Invalid("The rendered prompt has no user message to send")
    prompt = users[-1]["content"]
    return {"system": system, "prompt": prompt}, len(turns) > 1
