"""Datasets: formats, validation that streams, immutable versions, preview, statistics, sharing.

What training reads is fixed here: a version's rows are JSON lines in `version_file(version)`, each either
`{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` or `{"text": str}` (plain text for
continued pre-training), and `split_of(index, ...)` says which rows are held out for validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlmodel import Session, select

from backend.config import get_settings
from backend.errors import NotFound
from backend.models.dataset import Dataset, DatasetVersion
from backend.models.user import Role, User


def version_file(version: DatasetVersion) -> Path:
    """Where the version's normalized rows are."""
    return get_settings().data_dir / version.path


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The normalized rows of a version file, in order."""
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                yield orjson.loads(line)


def split_of(index: int, *, validation_ratio: float, seed: int) -> Literal["train", "validation"]:
    """Which side of the stored train/validation split row `index` (from 0) is on: the same answer every time, for
    every reader, without storing a list."""
    if validation_ratio <= 0:
        return "train"
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return "validation" if int.from_bytes(digest) / 2**64 < validation_ratio else "train"


def can_read(dataset: Dataset, user: User) -> bool:
    return dataset.user_id == user.id or dataset.shared or user.role == Role.admin


def get_dataset(session: Session, *, user: User, dataset_id: int) -> Dataset:
    """A dataset the user may read (their own, a shared one, or any for an admin); others are not found."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or not can_read(dataset, user):
        raise NotFound("No such dataset")
    return dataset


def get_version(session: Session, *, user: User, dataset_id: int, version: int | None = None) -> DatasetVersion:
    """A version (the latest when `version` is None) of a dataset the user may read."""
    dataset = get_dataset(session, user=user, dataset_id=dataset_id)
    number = version if version is not None else dataset.latest_version
    found = session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id,
                                                      DatasetVersion.version == number)).first()
    if found is None:
        raise NotFound("Dataset {name} has no version {version}", name=dataset.name, version=number)
    return found
