"""`/api/v1/conversations`: conversations, and answers streamed as server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse

from backend.api.deps import CurrentUser, SessionDep
from backend.models.chat import (
    ConversationCreate,
    ConversationPublic,
    ConversationSummary,
    ConversationUpdate,
    MessageCreate,
    Regenerate,
)
from backend.services import chat

router = APIRouter(prefix="/conversations", tags=["chat"])


@router.get("")
def list_conversations(user: CurrentUser, session: SessionDep, q: str | None = None
                       ) -> dict[str, list[ConversationSummary]]:
    return {"data": [chat.summary(c) for c in chat.list_conversations(session, user=user, q=q)]}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConversationPublic)
def create_conversation(body: ConversationCreate, user: CurrentUser, session: SessionDep) -> ConversationPublic:
    return chat.conversation_public(session, chat.create_conversation(session, user=user, data=body))


@router.get("/{conversation_id}", response_model=ConversationPublic)
def get_conversation(conversation_id: int, user: CurrentUser, session: SessionDep) -> ConversationPublic:
    return chat.read_conversation(session, user=user, conversation_id=conversation_id)


@router.get("/{conversation_id}/export")
def export_conversation(conversation_id: int, user: CurrentUser, session: SessionDep,
                        format: Literal["md", "json"] = "md") -> Response:
    """Download the conversation as Markdown or JSON."""
    filename, body = chat.export_conversation(session, user=user, conversation_id=conversation_id, format=format)
    media_type = "application/json" if format == "json" else "text/markdown; charset=utf-8"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.patch("/{conversation_id}", response_model=ConversationPublic)
def update_conversation(conversation_id: int, body: ConversationUpdate, user: CurrentUser,
                        session: SessionDep) -> ConversationPublic:
    conversation = chat.update_conversation(session, user=user, conversation_id=conversation_id, data=body)
    return chat.conversation_public(session, conversation)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_conversation(conversation_id: int, user: CurrentUser, session: SessionDep) -> Response:
    chat.delete_conversation(session, user=user, conversation_id=conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{conversation_id}/messages")
async def send_message(conversation_id: int, body: MessageCreate, user: CurrentUser) -> StreamingResponse:
    """Stores the message and streams the answer as SSE: a `start` event, `{"type": "text"|"reasoning"|"reclassify",
    ...}` events, then one `done` or `error` event with the stored message. A client that leaves does not stop the
    answer. With `edit_of` (an earlier user message's id) the message replaces that one and what followed it."""
    reply = await chat.start_reply(user=user, conversation_id=conversation_id, content=body.content,
                                   model=body.model, edit_of=body.edit_of)
    return _streamed(reply)


@router.post("/{conversation_id}/regenerate")
async def regenerate(conversation_id: int, user: CurrentUser, body: Regenerate | None = None) -> StreamingResponse:
    """Writes the last answer again (optionally by another model), streamed like a new message."""
    reply = await chat.regenerate_reply(user=user, conversation_id=conversation_id, model=body.model if body else None)
    return _streamed(reply)


def _streamed(reply: chat.Reply) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        yield _sse({"type": "start", "message_id": reply.message_id, "model": reply.model, "trimmed": reply.trimmed})
        async for event in reply.events():
            payload: dict[str, object] = {"type": event.kind}
            if event.kind in ("text", "reasoning", "reclassify"):
                payload["text"] = event.text
            if event.to:
                payload["to"] = event.to
            if event.message is not None:
                payload["message"] = event.message.model_dump(mode="json")
            if event.kind == "error":
                payload["error"] = event.text
            yield _sse(payload)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/{conversation_id}/stop")
async def stop_answer(conversation_id: int, user: CurrentUser) -> dict[str, bool]:
    """Stop the answer being written (what arrived is kept)."""
    return {"stopped": await chat.cancel_reply(user=user, conversation_id=conversation_id)}


def _sse(payload: dict[str, object]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
