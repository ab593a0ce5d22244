"""Deployments: a fine-tuned model served by a managed OpenAI-compatible server (`transformers serve`) and reachable
as `local/<name>` in chat, compare and the gateway."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from backend.models.base import utcnow


class DeploymentStatus(StrEnum):
    starting = "starting"  # the adapter is being merged or the model loaded; not answering yet
    running = "running"  # the server answers; the model is listed
    stopped = "stopped"  # undeployed
    failed = "failed"  # the server did not come up, or died


ACTIVE_DEPLOYMENT = (DeploymentStatus.starting, DeploymentStatus.running)


class Deployment(SQLModel, table=True):
    """One job's model server. Its files (the server's log, the name it serves the model under) are in
    `DATA_DIR/deployments/<id>`; the model it serves is the job's merged model or its full fine-tuned weights."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="trainingjob.id", unique=True, ondelete="CASCADE")  # one deployment a job
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")  # who deployed it
    name: str = Field(max_length=80, unique=True)  # the model id under the `local` provider: `local/<name>`
    status: DeploymentStatus = Field(default=DeploymentStatus.starting, max_length=16, index=True)
    host: str | None = Field(default=None, max_length=255)  # the machine its process runs on
    port: int | None = None
    pid: int | None = None
    attempts: int = 0  # starts, counting restarts after the portal found the server gone
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None  # when it last began answering
    stopped_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class DeploymentPublic(SQLModel):
    id: int
    job_id: int
    job_name: str
    owner: str
    model: str  # "local/<name>", as chat, compare and the gateway know it
    status: DeploymentStatus
    url: str | None  # the server's OpenAI-compatible base URL (on the portal's host, loopback only)
    error: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
