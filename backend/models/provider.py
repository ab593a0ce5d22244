"""Model providers, the models they serve, and the usage of every call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

PROVIDER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
CAPABILITIES = ("reasoning", "vision", "tools")
PARAMETER_NAMES = ("temperature", "top_p", "max_tokens")


class Provider(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=40)
    kind: str = Field(max_length=32)
    base_url: str = Field(max_length=500)
    api_key_encrypted: str | None = Field(default=None, max_length=2000)
    api_key_hint: str | None = Field(default=None, max_length=32)
    timeout_seconds: float = 60.0
    max_retries: int = 2
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_test_at: datetime | None = None
    last_test_ok: bool | None = None
    last_test_latency_ms: int | None = None
    last_test_error: str | None = Field(default=None, max_length=1000)
    last_synced_at: datetime | None = None


class ProviderCreate(SQLModel):
    name: str
    kind: str
    base_url: str | None = None
    api_key: str | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)
    preset: str | None = None


class ProviderUpdate(SQLModel):
    name: str | None = None
    base_url: str | None = None
    api_key: str | None = None  # "" removes the key; absent keeps it
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    enabled: bool | None = None


class ProviderPublic(SQLModel):
    """A provider as the API shows it: the key is write-only, only a masked hint leaves."""

    id: int
    name: str
    kind: str
    base_url: str
    has_api_key: bool
    api_key_hint: str | None
    timeout_seconds: float
    max_retries: int
    enabled: bool
    created_at: datetime
    last_test_at: datetime | None
    last_test_ok: bool | None
    last_test_latency_ms: int | None
    last_test_error: str | None
    last_synced_at: datetime | None
    models: int = 0


class ProviderModel(SQLModel, table=True):
    __tablename__ = "provider_model"
    __table_args__ = (UniqueConstraint("provider_id", "model_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider_id: int = Field(foreign_key="provider.id", index=True, ondelete="CASCADE")
    model_id: str = Field(max_length=200)
    # A base URL of this model's own, before the provider's: each deployed model (`local/…`) has a server of its own.
    endpoint: str | None = Field(default=None, max_length=500)
    display_name: str | None = Field(default=None, max_length=200)
    enabled: bool = True
    available: bool = True  # listed by the provider at the last sync
    capabilities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    context_length: int | None = None
    default_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ModelPublic(SQLModel):
    id: str  # "<provider name>/<model id>"
    provider: str
    name: str  # what people see: the display name, or the model id
    model_id: str
    enabled: bool
    available: bool
    capabilities: list[str]
    context_length: int | None
    default_params: dict[str, Any]
    pk: int


class ModelUpdate(SQLModel):
    enabled: bool | None = None
    display_name: str | None = None
    capabilities: list[str] | None = None
    context_length: int | None = Field(default=None, ge=1)
    default_params: dict[str, Any] | None = None


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_record"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None, index=True)
    model: str = Field(index=True, max_length=250)  # the public id, kept when the model is removed
    source: str = Field(default="gateway", max_length=16)  # gateway, chat, compare, …
    input_tokens: int = 0
    output_tokens: int = 0
    ttft_ms: int | None = None
    total_ms: int | None = None
    status: str = Field(default="ok", max_length=16)  # ok, error, cancelled
    error: str | None = Field(default=None, max_length=500)
