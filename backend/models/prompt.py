"""Prompt templates and their immutable versions.

A `Prompt` holds what may change without a new version (name, description, tags, sharing, labels); each save of
its messages or variables is a new `PromptVersion`, never changed afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

ROLES = ("system", "user", "assistant")
VARIABLE_TYPES = ("string", "number", "boolean", "json")

VariableType = Literal["string", "number", "boolean", "json"]


class Prompt(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    shared: bool = False  # everyone may read, render and copy it; only its owner (or an admin) changes it
    latest_version: int = 0
    labels: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # label → version
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class PromptVersion(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("prompt_id", "version", name="uq_promptversion_prompt_version"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id", index=True, ondelete="CASCADE")
    version: int
    messages: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # [{name, type, default?, description?}] in the order the variables first appear in the messages
    variables: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=500)
    author_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


# --- what the API takes and gives ------------------------------------------------------------------------------


class PromptMessage(SQLModel):
    role: str
    content: str


class VariableSpec(SQLModel):
    """A variable's type and default; a variable without a default must be given when rendering."""

    name: str
    type: VariableType = "string"
    default: Any = None
    description: str | None = None


class PromptCreate(SQLModel):
    name: str
    description: str | None = None
    tags: list[str] | None = None
    shared: bool = False
    messages: list[PromptMessage]
    variables: list[VariableSpec] | None = None  # types and defaults; the names are found in the messages
    note: str | None = None


class PromptUpdate(SQLModel):
    """Name, description, tags and sharing change in place; new messages or variables make a new version."""

    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    shared: bool | None = None
    messages: list[PromptMessage] | None = None
    variables: list[VariableSpec] | None = None
    note: str | None = None


class PromptSummary(SQLModel):
    id: int
    name: str
    description: str | None
    tags: list[str]
    shared: bool
    owner: str
    owner_id: int
    version: int
    labels: dict[str, int]
    variables: list[VariableSpec]
    created_at: datetime
    updated_at: datetime


class PromptPublic(PromptSummary):
    messages: list[PromptMessage]
    note: str | None = None


class PromptVersionPublic(SQLModel):
    version: int
    messages: list[PromptMessage]
    variables: list[VariableSpec]
    note: str | None
    author: str | None
    labels: list[str]
    created_at: datetime


class RenderRequest(SQLModel):
    variables: dict[str, Any] = {}
    version: int | None = None
    label: str | None = None  # e.g. "production"; `version` wins when both are given


class RenderResult(SQLModel):
    version: int
    messages: list[PromptMessage]


class LabelRequest(SQLModel):
    version: int


class ConvertRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = PydanticField(alias="from")  # `from` is a Python keyword
    to: str
    data: Any


class ConvertResult(SQLModel):
    data: Any
    warnings: list[str]


class ChatTemplateRequest(SQLModel):
    model_dir: str  # a local directory with a tokenizer, or a model id in the local Hugging Face cache
    messages: list[PromptMessage]
    add_generation_prompt: bool = True


class ImportRequest(SQLModel):
    content: str
    format: Literal["json", "yaml"] | None = None  # guessed from the content when left out


class ImportResult(SQLModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class DiffResult(SQLModel):
    from_version: int
    to_version: int
    diff: str  # unified, line by line over a readable rendering of the messages and variables
