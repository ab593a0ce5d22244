"""Datasets: resumable uploads, datasets and their immutable versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

FORMATS = ("alpaca", "sharegpt", "openai", "text", "csv")


class Upload(SQLModel, table=True):
    """A tus upload: its bytes are in `DATA_DIR/uploads/<id>` while it is in progress and until it is used."""

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    filename: str = Field(default="", max_length=255)
    length: int = Field(sa_column=Column(BigInteger, nullable=False))
    offset: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    meta: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(default_factory=utcnow, index=True)
    completed_at: datetime | None = None


class Dataset(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text))
    format: str = Field(max_length=16)  # of the latest version
    shared: bool = False  # everyone may read and train on it; only its owner (or an admin) changes it
    latest_version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class DatasetVersion(SQLModel, table=True):
    """An immutable version: its rows normalized to JSON lines (`{"messages": [...]}` or `{"text": ...}`) in
    `DATA_DIR/<path>`, with the SHA-256 of that file."""

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True, ondelete="CASCADE")
    version: int
    path: str = Field(max_length=500)  # relative to DATA_DIR
    sha256: str = Field(max_length=64)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # bytes of the normalized file
    format: str = Field(max_length=16)  # the source's format
    source_name: str = Field(default="", max_length=255)
    rows: int = 0
    skipped: int = 0  # bad rows left out when it was saved
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    validation_ratio: float = 0.0  # the train/validation split stored with the version
    split_seed: int = 0
    validation_rows: int = 0
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
