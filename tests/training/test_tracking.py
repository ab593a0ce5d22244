"""SwanLab tracking: a tiny run in this process logs through SwanLab's transformers callback in local mode, its run
written under DATA_DIR; with tracking disabled nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import reset_settings
from backend.models.training import JobStatus
from backend.models.user import User
from backend.services import tracking
from jobs.worker import run_job
from tests.training.conftest import new_job


def test_a_tiny_run_writes_its_swanlab_run_under_data_dir(owner: User, dataset_id: int, tiny_model: Path,
                                                          isolated_settings: Path) -> None:
    job_id = new_job(owner, dataset_id, tiny_model, max_steps=4)
    assert run_job(job_id) == JobStatus.succeeded
    folder = tracking.log_dir()
    assert folder == isolated_settings / "swanlab"
    runs = sorted(folder.glob("run-*"))
    assert len(runs) == 1, list(folder.iterdir())
    assert list(runs[0].glob("*.swanlab"))  # the run's record: what `swanlab watch` reads
    metadata = (runs[0] / "files" / "config.yaml").read_text()
    assert "FRAMEWORK" in metadata and "transformers" in metadata  # the callback's config of the run
    assert (folder / "runs.swanlab").exists()


def test_tracking_disabled_writes_nothing(owner: User, dataset_id: int, tiny_model: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWANLAB_MODE", "disabled")
    reset_settings()
    job_id = new_job(owner, dataset_id, tiny_model, max_steps=2)
    assert run_job(job_id) == JobStatus.succeeded
    assert not tracking.log_dir().exists()
