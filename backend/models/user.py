"""Users and their roles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{3,64}$"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256


class Role(StrEnum):
    admin = "admin"
    user = "user"


class Language(StrEnum):
    en = "en"
    zh = "zh"


class UserBase(SQLModel):
    username: str = Field(index=True, unique=True, max_length=64)
    role: Role = Field(default=Role.user, max_length=16)
    disabled: bool = False
    language: Language = Field(default=Language.en, max_length=8)


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
    # Per-user overrides of the admin settings' defaults (None: the default; 0: no limit).
    rate_limit_per_minute: int | None = None
    daily_token_quota: int | None = None


class UserPublic(UserBase):
    id: int
    created_at: datetime
    last_login_at: datetime | None = None
    rate_limit_per_minute: int | None = None
    daily_token_quota: int | None = None


class Credentials(SQLModel):
    """What register and login take; validation messages are shown to the user as they are."""

    username: str
    password: str

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class PasswordChange(SQLModel):
    current_password: str
    new_password: str


class UserUpdate(SQLModel):
    """What an admin may change about a user."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = None
    # Limits: a number overrides the default (0: none); null goes back to the default.
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    daily_token_quota: int | None = Field(default=None, ge=0)


class ProfileUpdate(SQLModel):
    language: Language | None = None
