"""The Training pages: the wizard queues a job (base model checked, dataset, preset, memory estimate), QLoRA is
refused on CPU with its reason, the list shows queue position and progress and cancels and resumes, and a job's page
tails its log and metrics live. The dispatcher is off here: jobs stay where the test puts them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui.testing import User
from sqlmodel import select
from transformers import TrainerCallback

from backend.config import reset_settings
from backend.db import session_scope
from backend.models import TrainingJob
from backend.models import User as UserRow
from backend.models.base import utcnow
from backend.models.training import JobStatus, TrainingJobCreate
from backend.services import devices, tracking, training
from jobs.worker import run_job
from tests.pages.conftest import notified, register, see, sign_out, signed_up
from tests.training.tiny import build_model, chat_rows, write_dataset


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_SCHEDULER", "false")


def set_value(user: User, marker: str, value: Any) -> None:
    next(iter(user.find(marker=marker).elements)).set_value(value)


def account(username: str) -> UserRow:
    with session_scope() as session:
        return session.exec(select(UserRow).where(UserRow.username == username)).one()


def dataset_for(username: str) -> int:
    with session_scope() as session:
        return write_dataset(session, user=account(username), rows=chat_rows()).dataset_id


def queued_job(username: str, model: Path, dataset_id: int, name: str = "tiny run") -> int:
    body = TrainingJobCreate(name=name, base_model=str(model), dataset_id=dataset_id,
                             params={"max_steps": 10, "save_steps": 5})
    with session_scope() as session:
        return training.create_job(session, user=account(username), data=body).id  # type: ignore[return-value]


async def test_the_wizard_queues_a_job(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "alice")
    dataset_for("alice")
    await user.open("/training")
    await see(user, "No training jobs yet.")
    user.find(marker="new-job").click()
    await see(user, marker="base-model")
    await user.should_see("Check a base model to see what it needs.")

    user.find(marker="base-model").type("/no/such/model")
    user.find(marker="check-model").click()
    await see(user, "No model directory at /no/such/model")

    user.find(marker="base-model").clear().type(str(tiny_model))
    user.find(marker="check-model").click()
    await see(user, content="qwen2 ·")
    await see(user, content="chat template")
    await see(user, "Trainable parameters")  # the memory estimate
    assert next(iter(user.find(marker="job-name").elements)).value == "tiny-qwen2-lora"

    user.find(marker="dataset").click()
    user.find("facts (#1)").click()
    set_value(user, "preset", "quick")
    await see(user, "60 steps with a small adapter: checks that data and model work before a long run.")
    user.find(marker="update-estimate").click()
    user.find(marker="submit-job").click()
    await see(user, marker="job-summary")
    await see(user, "Queued: position 1")

    with session_scope() as session:
        job = session.exec(select(TrainingJob)).one()
    assert (job.name, job.method, job.status, job.dataset_version) == ("tiny-qwen2-lora", "lora", "queued", 1)
    assert (job.params["max_steps"], job.params["learning_rate"], job.params["lora_rank"]) == (60, 3e-4, 8)


async def test_qlora_on_cpu_is_refused_with_its_reason(no_dispatch: None, user: User, tiny_model: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)  # what this machine has does not matter
    await signed_up(user, "alice")
    dataset_for("alice")
    await user.open("/training/new")
    user.find(marker="base-model").type(str(tiny_model))
    user.find(marker="dataset").click()
    user.find("facts (#1)").click()
    set_value(user, "method", "qlora")
    await see(user, "QLoRA needs a CUDA GPU and this machine has none: choose LoRA or full fine-tuning")
    user.find(marker="job-name").type("4-bit")
    user.find(marker="submit-job").click()
    await notified(user, "QLoRA needs a CUDA GPU")
    with session_scope() as session:
        assert session.exec(select(TrainingJob)).first() is None


async def test_the_list_shows_progress_and_cancels_and_resumes(no_dispatch: None, user: User,
                                                                tiny_model: Path) -> None:
    await signed_up(user, "alice")
    dataset = dataset_for("alice")
    running = queued_job("alice", tiny_model, dataset, name="running one")
    waiting = queued_job("alice", tiny_model, dataset, name="waiting one")
    with session_scope() as session:
        job = session.get(TrainingJob, running)
        assert job is not None
        job.status, job.step, job.total_steps, job.device = JobStatus.running, 5, 10, "cpu"
        job.run_started_at, job.run_start_step = utcnow() - timedelta(seconds=100), 0
        session.commit()

    await user.open("/training")
    await see(user, content="Step 5 of 10 · ETA 2 min · cpu")  # 5 steps in 100 s: 5 more take about 100 s
    await see(user, "Queued: position 1")

    user.find(marker=f"cancel-{waiting}").click()
    await see(user, marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await notified(user, "Cancelled waiting one")
    await see(user, marker=f"resume-{waiting}")
    user.find(marker=f"cancel-{running}").click()
    await see(user, marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await see(user, content="stopping after a checkpoint")
    with session_scope() as session:
        assert session.get(TrainingJob, running).cancel_requested  # type: ignore[union-attr]

    user.find(marker=f"resume-{waiting}").click()
    await notified(user, "waiting one is queued to continue from its latest checkpoint")
    await see(user, "Queued: position 1")


async def test_a_job_page_tails_its_log_and_metrics(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "alice")
    job_id = queued_job("alice", tiny_model, dataset_for("alice"))
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        job.status, job.step, job.total_steps = JobStatus.running, 1, 10
        session.commit()
        training.record_metric(session, job_id=job_id, step=1, values={"loss": 2.3456, "learning_rate": 1e-4})
        training.append_log(job, "first line of the run")
    await user.open(f"/training/{job_id}")
    await see(user, content="first line of the run")
    await see(user, marker="metrics")
    await see(user, "No checkpoint yet: one is saved every 5 steps.")

    # What the worker writes meanwhile shows up without a reload.
    with session_scope() as session:
        training.record_metric(session, job_id=job_id, step=2, values={"loss": 1.2345, "learning_rate": 9e-5})
        job = session.get(TrainingJob, job_id)
        training.append_log(job, "second line of the run")  # type: ignore[arg-type]
        training.record_checkpoints(session, job=job, found=[(2, training.job_dir(job) / "checkpoints/c-2")])  # type: ignore[arg-type]
        training.record_progress(session, job_id=job_id, step=2, epoch=0.5, total_steps=10)
    await see(user, content="second line of the run")
    await see(user, "Step 2")
    table = next(iter(user.find(marker="metrics").elements))
    assert [row["loss"] for row in table.rows] == ["1.2345", "2.3456"]  # newest first
    assert chart_points(user, "loss") == [[[1, 2.3456], [2, 1.2345]], []]

    # An evaluation joining the step already shown reaches the loss chart too.
    with session_scope() as session:
        training.record_metric(session, job_id=job_id, step=2, values={"eval_loss": 1.5})
    for _ in range(100):
        if chart_points(user, "loss")[1]:
            break
        await asyncio.sleep(0.05)
    assert chart_points(user, "loss") == [[[1, 2.3456], [2, 1.2345]], [[2, 1.5]]]
    assert chart_points(user, "learning_rate") == [[[1, 1e-4], [2, 9e-5]]]


def chart_points(user: User, name: str) -> list[list[list[float]]]:
    chart = next(iter(user.find(marker=f"chart-{name}").elements))
    return [series["data"] for series in chart.options["series"]]  # type: ignore[attr-defined]


class PauseAt(TrainerCallback):
    """Holds the run after step N until the test lets it go on."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.reached = threading.Event()
        self.go_on = threading.Event()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            self.reached.set()
            self.go_on.wait(timeout=120)


async def wait_until(condition: Any, what: str, *, seconds: float = 120) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}")


async def test_the_charts_grow_while_a_tiny_run_trains(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "alice")
    body = TrainingJobCreate(name="live", base_model=str(tiny_model), dataset_id=dataset_for("alice"),
                             params={"max_steps": 8, "save_steps": 4, "logging_steps": 1, "batch_size": 2,
                                     "grad_accum": 1, "max_length": 64, "learning_rate": 1e-2})
    with session_scope() as session:
        job_id = training.create_job(session, user=account("alice"), data=body).id
    assert job_id is not None
    await user.open(f"/training/{job_id}")
    await see(user, marker="charts")
    assert chart_points(user, "loss") == [[], []]

    pause = PauseAt(4)
    run = asyncio.create_task(asyncio.to_thread(run_job, job_id, callbacks=[pause]))
    try:
        await wait_until(pause.reached.is_set, "reached step 4")
        # Mid-run, without a reload: the first steps are drawn and the progress bar shows where the run is.
        await wait_until(lambda: len(chart_points(user, "loss")[0]) >= 3, "drew the first steps")
        assert [p[0] for p in chart_points(user, "loss")[0]][:3] == [1, 2, 3]
        await see(user, content=" of 8 · ETA ")  # progress is written at most once a second: the step may lag
    finally:
        pause.go_on.set()
        status = await run
    assert status == JobStatus.succeeded
    await see(user, "Done in 8 steps")
    await wait_until(lambda: len(chart_points(user, "loss")[0]) == 8, "drew every step")
    steps = [p[0] for p in chart_points(user, "loss")[0]]
    assert steps == list(range(1, 9))
    assert len(chart_points(user, "grad_norm")[0]) == 8
    assert all(p[1] > 0 for p in chart_points(user, "tokens_per_s")[0])


async def test_the_loss_curves_of_several_jobs_are_compared(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "alice")
    dataset = dataset_for("alice")
    first = queued_job("alice", tiny_model, dataset, name="first")
    second = queued_job("alice", tiny_model, dataset, name="second")
    with session_scope() as session:
        for job_id, losses in ((first, (2.0, 1.5, 1.0)), (second, (2.5, 2.0))):
            for step, loss in enumerate(losses, start=1):
                training.record_metric(session, job_id=job_id, step=step, values={"loss": loss})
    await user.open("/training")
    await see(user, marker="compare-jobs")
    set_value(user, "compare-jobs", [first, second])
    user.find(marker="compare-open").click()
    await see(user, "Compare training runs")
    await see(user, marker="compare-loss")
    chart = next(iter(user.find(marker="compare-loss").elements))
    series = {s["name"]: s["data"] for s in chart.options["series"]}  # type: ignore[attr-defined]
    assert series == {f"first (#{first})": [[1, 2.0], [2, 1.5], [3, 1.0]], f"second (#{second})": [[1, 2.5], [2, 2.0]]}

    await user.open("/training/compare?jobs=")
    await see(user, marker="compare-empty")


async def test_someone_elses_job_is_not_found(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "root")  # the first account is the admin
    job_id = queued_job("root", tiny_model, dataset_for("root"))
    await user.open("/profile")
    sign_out(user)
    await see(user, "No account yet?")
    await register(user, "mallory")
    await see(user, "Welcome, mallory")
    await user.open(f"/training/{job_id}")
    await see(user, "No such training job")
    await user.open("/training")
    await see(user, "No training jobs yet.")


@pytest.fixture
def dashboard_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    monkeypatch.setenv("SWANLAB_PORT", str(port))
    reset_settings()
    yield port
    tracking.stop()  # never leave a dashboard behind


async def test_an_admin_runs_the_swanlab_dashboard_and_job_pages_embed_it(
        no_dispatch: None, user: User, tiny_model: Path, dashboard_port: int) -> None:
    await signed_up(user, "root")  # the first account is the admin
    job_id = queued_job("root", tiny_model, dataset_for("root"))
    await user.open(f"/training/{job_id}")
    await see(user, content="The SwanLab dashboard is not running. Start it in the SwanLab section")

    await user.open("/training")
    await see(user, "SwanLab dashboard")
    await see(user, "stopped")
    user.find(marker="swanlab-start").click()
    await notified(user, "The SwanLab dashboard is running")
    await see(user, marker="swanlab-stop")
    url = f"http://127.0.0.1:{dashboard_port}"
    assert httpx.get(url + "/", timeout=10).status_code == 200

    await user.open(f"/training/{job_id}")
    await see(user, marker="swanlab-frame")
    frame_element = next(iter(user.find(marker="swanlab-frame").elements))
    assert frame_element.tag == "iframe" and frame_element.props["src"] == url

    await user.open("/training")
    await see(user, marker="swanlab-stop")
    user.find(marker="swanlab-stop").click()
    await notified(user, "The SwanLab dashboard is stopped")
    await see(user, marker="swanlab-start")
    assert not tracking.status().running


async def test_a_user_sees_why_the_dashboard_is_missing(no_dispatch: None, user: User, tiny_model: Path) -> None:
    await signed_up(user, "root")
    await user.open("/profile")
    sign_out(user)
    await see(user, "No account yet?")
    await register(user, "bob")
    await see(user, "Welcome, bob")
    job_id = queued_job("bob", tiny_model, dataset_for("bob"))
    await user.open("/training")
    await see(user, marker=f"job-{job_id}")
    await user.should_not_see("SwanLab dashboard")
    await user.open(f"/training/{job_id}")
    await see(user, content="The SwanLab dashboard is not running; an administrator can start it.")
