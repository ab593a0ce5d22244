"""The SwanLab section of the Training page: an admin picks cloud mode, enters the host and key of a (fake) SwanLab
server, tests the connection (a spinner while it runs, then the user it logged in as, or why not) and saves; the key
is then shown masked, the local dashboard's start is gone, and a job's page says its runs go to the cloud."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui.testing import User

from backend.db import session_scope
from backend.models.tracking import SwanLabMode
from backend.services import swanlab_settings
from tests.fakes.swanlab_server import FakeSwanLab, start_swanlab
from tests.pages.conftest import notified, see, signed_up
from tests.pages.test_training_page import dataset_for, queued_job, set_value
from tests.training.tiny import build_model

KEY = "sk-swanlab-page-0123456789"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def fake_cloud() -> Iterator[FakeSwanLab]:
    with start_swanlab(api_key=KEY, username="ada") as server:
        yield server


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_SCHEDULER", "false")


def saved() -> swanlab_settings.SwanLabSettings:
    with session_scope() as session:
        return swanlab_settings.load(session)


async def test_an_admin_tests_and_saves_a_cloud_key(no_dispatch: None, user: User, fake_cloud: FakeSwanLab,
                                                    small_model: Path) -> None:
    await signed_up(user, "root")  # the first account is the admin
    job_id = queued_job("root", small_model, dataset_for("root"))
    await user.open("/training")
    await see(user, marker="swanlab-mode")
    await see(user, marker="swanlab-start")  # local mode: the dashboard can be started
    await user.should_not_see(marker="swanlab-test")

    set_value(user, "swanlab-mode", "cloud")
    await see(user, marker="swanlab-test")
    await see(user, "No key saved.")
    user.find(marker="swanlab-host").clear().type(fake_cloud.url)
    user.find(marker="swanlab-key").type("sk-wrong")
    fake_cloud.delay = 1.0  # long enough to see the spinner
    user.find(marker="swanlab-test").click()
    await see(user, "Testing the connection…")
    await see(user, marker="swanlab-testing")
    await see(user, content=f"{fake_cloud.url} refused the API key: api key is invalid")
    await user.should_not_see(marker="swanlab-testing")
    assert fake_cloud.logins[-1].headers["authorization"] == "sk-wrong"

    fake_cloud.delay = 0.0
    user.find(marker="swanlab-key").clear().type(KEY)
    user.find(marker="swanlab-test").click()
    await see(user, content=f"Connected to {fake_cloud.url} as ada in")
    assert saved().mode == SwanLabMode.local  # a test saves nothing

    user.find(marker="swanlab-save").click()
    await notified(user, "SwanLab settings saved")
    await see(user, "Key saved: sk-…6789")
    settings = saved()
    assert (settings.mode, settings.cloud_host, settings.key_set) == (SwanLabMode.cloud, fake_cloud.url, True)
    await see(user, content=f"Runs go to {fake_cloud.url}")
    await user.should_not_see(marker="swanlab-start")

    user.find(marker="swanlab-test").click()  # the saved key, the input being empty again
    await see(user, content=f"Connected to {fake_cloud.url} as ada in")
    assert fake_cloud.logins[-1].headers["authorization"] == KEY

    await user.open(f"/training/{job_id}")
    await see(user, marker="swanlab-cloud")
    await see(user, content=f"Runs of this portal go to the SwanLab cloud at {fake_cloud.url}, project llm-portal.")
    await user.should_not_see(marker="swanlab-off")


async def test_an_admin_removes_the_key_and_turns_tracking_off(no_dispatch: None, user: User,
                                                               small_model: Path) -> None:
    await signed_up(user, "root")
    job_id = queued_job("root", small_model, dataset_for("root"))
    await user.open("/training")
    set_value(user, "swanlab-mode", "cloud")
    user.find(marker="swanlab-save").click()
    await notified(user, "Cloud mode needs a SwanLab API key")
    user.find(marker="swanlab-key").type(KEY)
    user.find(marker="swanlab-save").click()
    await notified(user, "SwanLab settings saved")
    await see(user, marker="swanlab-remove-key")

    set_value(user, "swanlab-remove-key", True)  # shown in cloud mode, kept when the mode changes
    set_value(user, "swanlab-mode", "disabled")
    user.find(marker="swanlab-save").click()
    await see(user, marker="swanlab-status", content="disabled")
    assert (saved().mode, saved().key_set) == (SwanLabMode.disabled, False)
    await user.open(f"/training/{job_id}")
    await see(user, "SwanLab tracking is disabled on this portal.")
