"""Comparisons: one prompt answered by several models side by side, blind votes, and batches of prompts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

Outcome = Literal["a", "b", "tie", "both_bad"]  # a blind vote: left better, right better, tie, both bad


class CompareBatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    system_prompt: str | None = Field(default=None, sa_column=Column(Text))
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    concurrency: int = 4
    total: int = 0
    done: int = 0
    status: str = Field(default="running", max_length=16)  # running, done, cancelled, interrupted, failed
    error: str | None = Field(default=None, sa_column=Column(Text))  # why a failed batch stopped
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class CompareRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    batch_id: int | None = Field(default=None, foreign_key="comparebatch.id", index=True, ondelete="CASCADE")
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    system_prompt: str | None = Field(default=None, sa_column=Column(Text))
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    blind: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)


class CompareResult(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="comparerun.id", index=True, ondelete="CASCADE")
    position: int  # the column, from 0
    model: str = Field(max_length=250)
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    reasoning: str | None = Field(default=None, sa_column=Column(Text))
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: int | None = None
    total_ms: int | None = None
    reasoning_ms: int | None = None
    status: str = Field(default="streaming", max_length=16)  # streaming, done, error, cancelled, interrupted
    error: str | None = Field(default=None, max_length=1000)


class CompareVote(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="comparerun.id", unique=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    model_a: str = Field(max_length=250)
    model_b: str = Field(max_length=250)
    outcome: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


# --- API shapes ---------------------------------------------------------------------------------------------------


class CompareRequest(SQLModel):
    prompt: str
    models: list[str]
    system: str | None = None
    params: dict[str, Any] | None = None
    blind: bool = False


class CompareResultPublic(SQLModel):
    position: int
    model: str  # "Model A" / "Model B" in a blind run until it is voted on
    text: str
    reasoning: str | None
    ttft_ms: int | None
    total_ms: int | None
    reasoning_ms: int | None
    output_tokens: int | None
    tokens_per_s: float | None
    status: str
    error: str | None


class CompareRunSummary(SQLModel):
    id: int
    prompt: str
    models: list[str]
    blind: bool
    vote: str | None
    created_at: datetime


class CompareRunPublic(CompareRunSummary):
    system: str | None
    params: dict[str, Any]
    results: list[CompareResultPublic]


class VoteRequest(SQLModel):
    outcome: Outcome


class BatchRequest(SQLModel):
    models: list[str]
    prompts: list[str] | None = None  # the prompts themselves, or
    text: str | None = None  # a pasted list or a file's content (one prompt per line, CSV, JSONL or a JSON array)
    filename: str | None = None  # the file's name, to tell its format
    system: str | None = None
    params: dict[str, Any] | None = None
    concurrency: int = Field(default=4, ge=1, le=16)


class ModelAverages(SQLModel):
    model: str
    answers: int
    errors: int
    ttft_ms: float | None
    total_ms: float | None
    output_tokens: float | None
    tokens_per_s: float | None


class BatchPublic(SQLModel):
    id: int
    models: list[str]
    status: str
    total: int
    done: int
    concurrency: int
    created_at: datetime
    finished_at: datetime | None
    error: str | None = None  # why a failed batch stopped
    averages: list[ModelAverages]
