"""Deploying from a job's page: Deploy, the status while the model loads, Chat with it (the answer streams from the
model's own server), the list of deployed models above the jobs, Undeploy. A real `transformers serve` on CPU for a
tiny model built here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import Deployment, Message
from backend.models import User as UserRow
from backend.services import deployments
from tests.pages.conftest import see, signed_up
from tests.training.tiny import build_model, finished_job


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(autouse=True)
def no_servers_left(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAINING_SCHEDULER", "false")  # the page moves the deployment on by itself
    yield
    deployments.stop_servers()


async def eventually_see(user: User, marker: str, seconds: float = 120.0) -> None:
    """A model server takes seconds to start: longer than `see` waits."""
    for _ in range(int(seconds / 0.5)):
        try:
            await user.should_see(marker=marker, retries=1)
            return
        except AssertionError:
            await asyncio.sleep(0.5)
    await user.should_see(marker=marker)


async def test_deploy_chat_with_it_and_undeploy(user: User, tiny_model: Path) -> None:
    await signed_up(user, "alice")
    with session_scope() as session:
        alice = session.exec(select(UserRow).where(UserRow.username == "alice")).one()
        job_id = finished_job(session, user=alice, base=tiny_model, name="Support bot v1")

    await user.open(f"/training/{job_id}")
    await see(user, content="Serve this model on the portal's machine and chat with it")
    user.find(marker="deploy").click()
    await see(user, marker="deployed-model")
    await see(user, "local/support-bot-v1")
    await eventually_see(user, "chat-with-deployed")  # running: Chat with it
    await see(user, content="Serving since")

    await user.open("/training")  # listed above the jobs
    await see(user, marker="deployments")
    await see(user, "local/support-bot-v1")

    await user.open(f"/training/{job_id}")
    await see(user, marker="chat-with-deployed")
    user.find(marker="chat-with-deployed").click()
    await see(user, marker="composer")
    user.find(marker="composer").type("What is the capital of France?")
    user.find(marker="send").click()
    for _ in range(200):  # the tiny model's answer, streamed from its own server, is stored
        with session_scope() as session:
            answer = session.exec(select(Message).where(Message.role == "assistant")).first()
        if answer is not None and answer.status != "streaming":
            break
        await asyncio.sleep(0.1)
    assert answer is not None and answer.status == "done" and answer.model == "local/support-bot-v1", answer
    assert answer.content

    await user.open(f"/training/{job_id}")
    await see(user, marker="undeploy")
    user.find(marker="undeploy").click()
    await see(user, marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await see(user, content="local/support-bot-v1 was undeployed")
    await see(user, marker="deploy")  # Deploy again
    with session_scope() as session:
        assert session.exec(select(Deployment)).one().status == "stopped"


async def test_the_models_page_explains_the_local_provider(user: User, tiny_model: Path) -> None:
    await signed_up(user, "root")  # the first account: an admin

    def deployed() -> str:
        with session_scope() as session:
            root = session.exec(select(UserRow).where(UserRow.username == "root")).one()
            job_id = finished_job(session, user=root, base=tiny_model, name="Support bot v1")
            deployment = deployments.deploy(session, user=root, job_id=job_id)
            deployments.wait_until_settled(session, deployment, timeout=120)
            return f"{deployment.status}: {deployment.error}"

    assert await asyncio.to_thread(deployed) == "running: None"  # off the loop: the page's client stays answered
    await user.open("/models")
    await see(user, marker="provider-local")
    await see(user, content="Fine-tuned models deployed from their training jobs")
    await see(user, "Support bot v1")
    for marker in ("test-local", "sync-local", "edit-local", "delete-local"):  # the portal keeps this provider
        await user.should_not_see(marker=marker)
