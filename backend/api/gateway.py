"""The OpenAI-compatible gateway: `/v1/models` and `/v1/chat/completions` in front of every configured model."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.api.deps import CurrentUser, SessionDep, bearer_token
from backend.api.errors import openai_error
from backend.db import session_scope
from backend.errors import Invalid
from backend.providers.base import Finish, ProviderError, ReasoningDelta, Reclassify, StreamEvent, TextDelta, Usage
from backend.services import auth, inference, limits, providers

router = APIRouter(prefix="/v1", tags=["gateway"])

ROLES = {"system", "user", "assistant"}


@router.get("/models")
def list_models(_user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    created = int(time.time())
    return {
        "object": "list",
        "data": [{"id": m.id, "object": "model", "created": created, "owned_by": m.provider}
                 for m in providers.list_models(session)],
    }


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise Invalid("'messages' must be a non-empty list")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Invalid("messages[{index}].role must be one of system, user, assistant", index=index)
        content = message.get("content")
        if isinstance(content, list):  # content parts: the text ones are kept
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise Invalid("messages[{index}].content must be a string", index=index)
        messages.append({"role": message["role"], "content": content})
    return messages


def _number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not float(value).is_integer()):
        raise Invalid("'{name}' must be a number", name=name)
    return kind(value)


@router.post("/chat/completions")
async def chat_completions(request: Request, user: CurrentUser) -> Any:
    try:
        body = await request.json()
    except ValueError as error:
        raise Invalid("The body must be JSON") from error
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise Invalid("'model' is required: one of the ids that GET /v1/models lists")
    messages = _messages(body)
    await limits.enforce(user=user, kind="gateway")  # 429 past the user's rate or daily token quota
    resolved = providers.resolved_from_cache(body["model"])  # no thread hop while it is cached
    if resolved is None:
        resolved = await run_in_threadpool(_resolve, body["model"])
    chat_request = inference.build_request(
        resolved, messages,
        temperature=_number(body, "temperature", float),
        top_p=_number(body, "top_p", float),
        max_tokens=_number(body, "max_completion_tokens", int) or _number(body, "max_tokens", int),
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    events = inference.stream_completion(resolved, chat_request, user_id=user.id, source="gateway")
    fresh = _KeepFresh(token=bearer_token(request), model=body["model"], user_id=user.id)  # type: ignore[arg-type]
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        # Wait for the first event here, so that a failure before any token is a proper HTTP error.
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None
        return StreamingResponse(
            _sse(events, first, completion_id=completion_id, model=resolved.public.id, include_usage=include_usage,
                 fresh=fresh),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await _complete(events, completion_id=completion_id, model=resolved.public.id,
                           reasoning="reasoning" in resolved.public.capabilities, fresh=fresh)


def _resolve(model: str) -> providers.ResolvedModel:
    with session_scope() as session:
        return providers.resolve_model(session, model_ref=model)


class _KeepFresh:
    """While an answer streams, its caller is busy, not gone: once a second the cache entries its next call needs
    (credential, model, limits) are used, so that each is read again in the background when due. A script that sends
    call after call then finds them fresh however long each answer takes (longer than their lifetime, they would
    otherwise have ended, and every call would wait for three database reads)."""

    INTERVAL = 1.0

    def __init__(self, *, token: str, model: str, user_id: int) -> None:
        self.token, self.model, self.user_id = token, model, user_id
        self.next = time.monotonic() + self.INTERVAL

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.INTERVAL
        auth.keep_credential_fresh(self.token)
        providers.resolved_from_cache(self.model)
        limits.keep_fresh(self.user_id)


class _Chunks:
    """The SSE events of one answer: everything but the delta is the same in each, so it is encoded once."""

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        self.head = b'data: {"id":' + orjson.dumps(completion_id) + b',"object":"chat.completion.chunk","created":' \
            + str(created).encode() + b',"model":' + orjson.dumps(model) + b',"choices":[{"index":0,"delta":'
        self.identity = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        tail = b',"finish_reason":null}]}\n\n' if finish is None else \
            b',"finish_reason":' + orjson.dumps(finish) + b"}]}\n\n"
        return self.head + orjson.dumps(delta) + tail

    def content(self, text: str) -> bytes:
        return self.head + b'{"content":' + orjson.dumps(text) + b'},"finish_reason":null}]}\n\n'

    def event(self, event: StreamEvent) -> bytes | None:
        """The chunk that carries `event`; None for what a chunk does not carry (usage, a move to the reasoning)."""
        if isinstance(event, TextDelta):
            return self.content(event.text)
        if isinstance(event, ReasoningDelta):
            return self.delta({"reasoning_content": event.text})
        if isinstance(event, Reclassify) and event.to == "answer":
            # Streamed as reasoning, but it was the answer: an OpenAI client cannot take text back,
            # so it gets the answer now (and has seen it once as reasoning).
            return self.content(event.text)
        if isinstance(event, Finish):
            return self.delta({}, finish=event.reason)
        return None


async def _sse(
    events: AsyncIterator[StreamEvent], first: StreamEvent | None, *, completion_id: str, model: str,
    include_usage: bool, fresh: _KeepFresh | None = None,
) -> AsyncIterator[bytes]:
    chunks = _Chunks(completion_id, model, int(time.time()))
    usage: Usage | None = None
    # The role chunk leaves with the first chunk that carries something, in one write: a send less before the first
    # token reaches the client.
    opening = chunks.delta({"role": "assistant", "content": ""})
    event = first
    try:
        while event is not None:
            if isinstance(event, Usage):
                usage = event
            elif (data := chunks.event(event)) is not None:
                yield opening + data
                opening = b""
            if fresh is not None:
                fresh.tick()
            event = await anext(events, None)
    except ProviderError as error:
        # Mid-stream: the status line is sent already; an `error` event is what OpenAI clients understand.
        yield opening + b"data: " + orjson.dumps({"error": _error_body(error)}) + b"\n\n"
        return
    if opening:
        yield opening
    if include_usage:
        tokens = usage or Usage(0, 0)
        payload = {
            **chunks.identity, "choices": [],
            "usage": {"prompt_tokens": tokens.input_tokens, "completion_tokens": tokens.output_tokens,
                      "total_tokens": tokens.input_tokens + tokens.output_tokens},
        }
        yield b"data: " + orjson.dumps(payload) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _complete(events: AsyncIterator[StreamEvent], *, completion_id: str, model: str,
                    reasoning: bool, fresh: _KeepFresh | None = None) -> JSONResponse:
    text: list[str] = []
    thoughts: list[str] = []
    usage = Usage(0, 0)
    finish = "stop"
    async for event in events:
        if fresh is not None:
            fresh.tick()
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            thoughts.append(event.text)
        elif isinstance(event, Reclassify):
            moved = event.text
            if event.to == "reasoning":
                text, thoughts = [], [moved, *thoughts]
            else:
                thoughts, text = [], [moved, *text]
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            finish = event.reason
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    return JSONResponse({
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                  "total_tokens": usage.input_tokens + usage.output_tokens},
    })


def _error_body(error: ProviderError) -> dict[str, Any]:
    return openai_error(error.translated(), status=error.status_code, code=error.code)["error"]
