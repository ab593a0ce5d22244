"""SwanLab settings as admins change them: where training runs log (the local dashboard, the SwanLab cloud, or
nowhere), the cloud's address and its API key. They live in `app_setting` rows (no table of their own); the key is
stored encrypted and never leaves the portal, only whether one is set."""

from __future__ import annotations

from enum import StrEnum

from pydantic import field_validator
from sqlmodel import Field, SQLModel


class SwanLabMode(StrEnum):
    local = "local"  # runs under DATA_DIR/swanlab, shown by the portal's `swanlab watch` dashboard
    cloud = "cloud"  # runs uploaded to a SwanLab server (the public cloud or a private one) with an API key
    disabled = "disabled"


class SwanLabSettingsUpdate(SQLModel):
    """What an admin changes; a field left out stays as it is. `cloud_host` empty: back to SwanLab's public cloud;
    `api_key` empty: the stored key is removed."""

    mode: SwanLabMode | None = None
    cloud_host: str | None = Field(default=None, max_length=300)
    api_key: str | None = Field(default=None, max_length=500)

    @field_validator("api_key")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return None if value is None else value.strip()

    def __repr_args__(self):  # type: ignore[no-untyped-def]  # never show the key in logs or tracebacks
        return [(k, "***" if k == "api_key" and v else v) for k, v in super().__repr_args__()]


class SwanLabConnectionTest(SQLModel):
    """Try a host and key before saving them; a field left out is the saved one."""

    cloud_host: str | None = Field(default=None, max_length=300)
    api_key: str | None = Field(default=None, max_length=500)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        return [(k, "***" if k == "api_key" and v else v) for k, v in super().__repr_args__()]
