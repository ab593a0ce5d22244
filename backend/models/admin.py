"""Admin console tables: settings that admins change at run time, and system monitor samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow
from backend.models.user import Role


class AppSetting(SQLModel, table=True):
    """One admin-editable setting; a key missing here falls back to its environment default."""

    __tablename__ = "app_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)


class SystemSample(SQLModel, table=True):
    """The machine once a minute (kept 24 hours): what the system tab's history charts draw."""

    __tablename__ = "system_sample"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, index=True)
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    memory_used: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    memory_total: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    disk_percent: float = 0.0
    disk_used: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    disk_total: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    portal_rss: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    gpus: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    workers: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _percent(value: float) -> float:
    if not 0 <= value <= 100:
        raise ValueError("a percentage from 0 (off) to 100")
    return value


class AdminSettings(SQLModel):
    """What admins set in the settings tab. Limits: 0 means none; thresholds: 0 means no alert."""

    allow_registration: bool = True
    default_role: Role = Role.user
    rate_limit_per_minute: int = Field(default=0, ge=0)
    daily_token_quota: int = Field(default=0, ge=0)
    alert_cpu_percent: float = 0.0
    alert_memory_percent: float = 0.0
    alert_disk_percent: float = 0.0
    alert_gpu_memory_percent: float = 0.0
    alert_webhook_url: str = Field(default="", max_length=500)


class AdminSettingsUpdate(SQLModel):
    allow_registration: bool | None = None
    default_role: Role | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    daily_token_quota: int | None = Field(default=None, ge=0)
    alert_cpu_percent: float | None = None
    alert_memory_percent: float | None = None
    alert_disk_percent: float | None = None
    alert_gpu_memory_percent: float | None = None
    alert_webhook_url: str | None = Field(default=None, max_length=500)

    @field_validator("alert_cpu_percent", "alert_memory_percent", "alert_disk_percent", "alert_gpu_memory_percent")
    @classmethod
    def _in_range(cls, value: float | None) -> float | None:
        return None if value is None else _percent(value)

    @field_validator("alert_webhook_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// address, or empty for none")
        return value


class UsageRow(SQLModel):
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    errors: int
    avg_latency_ms: float | None


class UsageDay(SQLModel):
    day: str
    requests: int
    input_tokens: int
    output_tokens: int
    errors: int


class QuotaStatus(SQLModel):
    """A user's limits now: 0 means none."""

    rate_limit_per_minute: int
    daily_token_quota: int
    used_today: int
    remaining_today: int | None
    resets_at: datetime


class AdminUserCreate(SQLModel):
    username: str
    password: str
    role: Role = Role.user


class Alert(SQLModel):
    metric: str  # cpu, memory, disk, gpu_memory
    value: float
    threshold: float
    label: str = ""  # which GPU
