"""Conversations and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow


class Conversation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    title: str = Field(default="New chat", max_length=200)
    model: str | None = Field(default=None, max_length=250)  # public id "<provider>/<model>"
    system_prompt: str | None = Field(default=None, sa_column=Column(Text))
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)  # user, assistant
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    reasoning: str | None = Field(default=None, sa_column=Column(Text))
    model: str | None = Field(default=None, max_length=250)
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: int | None = None
    total_ms: int | None = None
    reasoning_ms: int | None = None  # from the first reasoning token to the first token of the answer
    context_trimmed: int | None = None  # older messages left out of the request to fit the model's context
    # done; streaming (being written); error; cancelled (stopped by the user); interrupted (the portal stopped)
    status: str = Field(default="done", max_length=16)
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)


class MessagePublic(SQLModel):
    id: int
    role: str
    content: str
    reasoning: str | None
    model: str | None
    usage: dict[str, int] | None
    ttft_ms: int | None
    total_ms: int | None
    reasoning_ms: int | None = None
    context_trimmed: int | None = None
    status: str
    error: str | None
    created_at: datetime


class ConversationSummary(SQLModel):
    id: int
    title: str
    model: str | None
    created_at: datetime
    updated_at: datetime


class ConversationPublic(ConversationSummary):
    system_prompt: str | None
    params: dict[str, Any]
    messages: list[MessagePublic]


class ConversationCreate(SQLModel):
    title: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    params: dict[str, Any] | None = None


class ConversationUpdate(SQLModel):
    title: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    params: dict[str, Any] | None = None


class MessageCreate(SQLModel):
    content: str
    model: str | None = None
    # Edit and resend: the id of an earlier user message that this one replaces, with everything after it.
    edit_of: int | None = None


class Regenerate(SQLModel):
    model: str | None = None  # another model may answer this time
