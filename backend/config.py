"""Settings: the one place that reads the environment (and an optional `.env`)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = ""
    admin_username: str = ""
    admin_password: str = ""
    allow_registration: bool = True
    redis_url: str = ""

    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # How long a resolved access or API token is reused without the database (0: never). Revocations made in this
    # process end it at once; another instance of the portal notices them only after this long.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    # Dataset uploads: the largest file accepted (resumable, through tus), the largest sent as one multipart
    # request, and how long an unfinished upload is kept.
    max_upload_mb: int = Field(default=20 * 1024, ge=1)
    max_multipart_mb: int = Field(default=64, ge=1)
    upload_expiry_hours: int = Field(default=24, ge=1)

    # Training queue. Devices: "auto" (a slot per GPU found through NVML or torch, one CPU slot when there is none),
    # "cpu" (one CPU slot), a list of CUDA device numbers ("0,1"), or "none" (jobs wait; nothing is started).
    training_devices: str = "auto"
    training_max_restarts: int = Field(default=2, ge=0)  # automatic resumes of a job whose worker died
    training_poll_seconds: float = Field(default=5.0, gt=0)  # how often the queue is looked at
    training_scheduler: bool = True  # false on all but one instance of a deployment: one queue dispatcher

    # Deployed models (`transformers serve`, one process each, on 127.0.0.1): how many may run at once, the device
    # ("auto": a GPU when there is one; "cpu"; "cuda:1"), and how long merging and loading may take.
    deploy_max: int = Field(default=2, ge=1)
    deploy_device: str = "auto"
    deploy_start_timeout: float = Field(default=900.0, gt=0)

    # Admin console: the first values of settings that admins then change in the portal (stored in the database).
    default_role: str = "user"  # the role of newly registered users
    default_rate_limit_per_minute: int = Field(default=0, ge=0)  # requests a minute per user; 0: none
    default_daily_token_quota: int = Field(default=0, ge=0)  # input + output tokens per user and UTC day; 0: none
    monitor_sample_seconds: int = Field(default=60, ge=5)  # how often the system monitor keeps a sample

    # SwanLab: every training run logs there ("local": under DATA_DIR/swanlab; "disabled": not at all). Its dashboard
    # (`swanlab watch`) runs as a managed process on a host and port of its own; `swanlab_url` is the address a browser
    # reaches it at when that is not http://host:port (behind a proxy).
    swanlab_mode: str = "local"
    swanlab_host: str = "127.0.0.1"
    swanlab_port: int = Field(default=5092, ge=1, le=65535)
    swanlab_url: str = ""

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'portal.db'}"

    @property
    def effective_secret_key(self) -> str:
        """`SECRET_KEY`, or one generated into `DATA_DIR` on first start and reused afterwards."""
        if self.secret_key:
            return self.secret_key
        return _stored_secret(self.data_dir)


def _stored_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created 0600 atomically so that the key is never readable by others, not even for a moment.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between runs)."""
    get_settings.cache_clear()
