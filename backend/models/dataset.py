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


# --- API shapes ---------------------------------------------------------------------------------------------------


class LineErrorPublic(SQLModel):
    line: int
    message: str


class VersionPublic(SQLModel):
    version: int
    rows: int
    skipped: int
    format: str
    sha256: str
    size: int
    source_name: str
    stats: dict[str, Any]
    validation_ratio: float
    validation_rows: int
    note: str | None
    created_at: datetime


class DatasetPublic(SQLModel):
    id: int
    name: str
    description: str | None
    format: str
    shared: bool
    owner: str
    version: int  # the latest
    rows: int  # of the latest version
    created_at: datetime
    updated_at: datetime
    versions: list[VersionPublic] | None = None


class DatasetCreated(SQLModel):
    """What the contract promises for a new dataset or version: the rows kept, the lines left out and why."""

    id: int
    name: str
    version: int
    format: str
    rows: int
    skipped: int
    errors: list[LineErrorPublic]
    stats: dict[str, Any]


class DatasetInspection(SQLModel):
    format: str
    rows: int
    error_count: int
    errors: list[LineErrorPublic]
    stats: dict[str, Any]
    preview: list[dict[str, Any]]


class DatasetFromUpload(SQLModel):
    name: str | None = None  # required to create; not used for a new version
    upload_id: str
    format: str | None = None
    mapping: dict[str, str] | None = None  # CSV: field (instruction, input, output, system, text) → column
    skip_invalid: bool = False
    description: str | None = None
    shared: bool = False
    validation_ratio: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0
    note: str | None = None


class DatasetUpdate(SQLModel):
    name: str | None = None
    description: str | None = None
    shared: bool | None = None


class TokenCount(SQLModel):
    base_model: str  # a local model directory or a model id in the local Hugging Face cache
    version: int | None = None
