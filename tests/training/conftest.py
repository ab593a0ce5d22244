"""Engine tests: a tiny model built from a config, a database in the test's DATA_DIR, a user and a dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend import db
from backend.models.training import TrainingJobCreate
from backend.models.user import User
from backend.services import training
from tests.training.tiny import build_model, chat_rows, write_dataset


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def database(isolated_settings: Path) -> Iterator[None]:
    db.init_db(f"sqlite:///{isolated_settings / 'portal.db'}")
    yield
    db.get_engine().dispose()


@pytest.fixture
def owner(database: None) -> User:
    with db.session_scope() as session:
        user = User(username="trainer", password_hash="x")
        session.add(user)
        session.commit()
        return user


@pytest.fixture
def dataset_id(owner: User) -> int:
    with db.session_scope() as session:
        return write_dataset(session, user=owner, rows=chat_rows(repeat=2)).dataset_id


def new_job(owner: User, dataset_id: int, base_model: Path, **params: Any) -> int:
    body = TrainingJobCreate(name="tiny", base_model=str(base_model), dataset_id=dataset_id, method="lora",
                             params={"learning_rate": 1e-2, "batch_size": 2, "grad_accum": 1, "max_length": 64,
                                     "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0, "warmup_ratio": 0.0,
                                     "scheduler": "linear", "logging_steps": 1, "save_steps": 4, **params})
    with db.session_scope() as session:
        return training.create_job(session, user=owner, data=body).id  # type: ignore[return-value]
