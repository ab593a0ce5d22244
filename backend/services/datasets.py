"""Datasets: formats, validation that streams, immutable versions, preview, statistics, sharing.

What training reads is fixed here: a version's rows are JSON lines in `version_file(version)`, each either
`{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` or `{"text": str}` (plain text for
continued pre-training), and `split_of(index, ...)` says which rows are held out for validation.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from array import array
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlmodel import Session, col, delete, or_, select

from backend.config import get_settings
from backend.errors import Conflict, Forbidden, Invalid, NotFound
from backend.i18n import N_, gettext
from backend.models.base import utcnow
from backend.models.dataset import (
    Dataset,
    DatasetCreated,
    DatasetInspection,
    DatasetPublic,
    DatasetVersion,
    LineErrorPublic,
    VersionPublic,
)
from backend.models.user import Role, User
from backend.services import audit, uploads
from backend.services.dataset_formats import FORMATS, Report, fingerprint, read_dataset, repeated_rows


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


# --- writing versions -------------------------------------------------------------------------------------------

INDEX_EVERY = 256  # rows between two entries of a version's sparse line index (paged preview without a scan)
MAX_PREVIEW = 100
# Other modules tell whether a dataset is in use (training jobs): `lambda session, dataset_id: count`.
IN_USE_CHECKS: list[Callable[[Session, int], int]] = []


class InvalidRows(Invalid):
    """The file has bad rows, and the caller did not ask to leave them out: which, and where."""

    status_code = 422

    def __init__(self, report: Report) -> None:
        super().__init__(N_("{count} rows are invalid (the first on line {line}); fix the file and upload it "
                            "again, or save without them"), count=report.error_count,
                         line=report.errors[0].line if report.errors else 0)
        self.report = report

    def extra(self) -> dict[str, object]:
        return {"errors": [e.public() for e in self.report.errors], "rows": self.report.rows}


def datasets_dir() -> Path:
    return get_settings().data_dir / "datasets"


def inspect_file(path: Path, *, filename: str | None = None, format: str | None = None,
                 mapping: dict[str, str] | None = None) -> Report:
    """A dry run: the format, the rows, every bad line and the statistics, without saving anything."""
    _check_format(format)
    return read_dataset(path, filename=filename, format=format, mapping=mapping)


def _check_format(format: str | None) -> None:
    if format is not None and format not in FORMATS:
        raise Invalid("Unknown format {format}; use one of {formats}", format=format, formats=", ".join(FORMATS))


def _write_version(session: Session, dataset: Dataset, *, source: Path, source_name: str, format: str | None,
                   mapping: dict[str, str] | None, skip_invalid: bool, validation_ratio: float, seed: int,
                   note: str | None) -> tuple[DatasetVersion, Report]:
    _check_format(format)
    if not 0 <= validation_ratio < 1:
        raise Invalid("The validation share must be at least 0 and below 1")
    number = dataset.latest_version + 1
    relative = Path("datasets") / str(dataset.id) / f"v{number}.jsonl"
    target = get_settings().data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        report = read_dataset(source, filename=source_name, format=format, mapping=mapping, out=out)
    if report.error_count and not skip_invalid:
        partial.unlink()
        raise InvalidRows(report)
    if not report.rows:
        partial.unlink()
        if report.errors:
            raise InvalidRows(report)
        raise Invalid("The file has no rows")
    partial.replace(target)
    _write_index(target)
    validation_rows = sum(split_of(i, validation_ratio=validation_ratio, seed=seed) == "validation"
                          for i in range(report.rows)) if validation_ratio else 0
    version = DatasetVersion(
        dataset_id=dataset.id, version=number, path=relative.as_posix(), sha256=report.sha256, size=report.size,  # type: ignore[arg-type]
        format=report.format, source_name=source_name[:255], rows=report.rows, skipped=report.error_count,
        stats=report.stats.public(), validation_ratio=validation_ratio, split_seed=seed,
        validation_rows=validation_rows, note=(note or "")[:500] or None)
    dataset.latest_version, dataset.format, dataset.updated_at = number, report.format, utcnow()
    session.add(version)
    session.add(dataset)
    return version, report


def _write_index(path: Path) -> None:
    offsets = array("Q")
    position = 0
    with path.open("rb") as file:
        for row, line in enumerate(file):
            if row % INDEX_EVERY == 0:
                offsets.append(position)
            position += len(line)
    path.with_suffix(".idx").write_bytes(offsets.tobytes())


def _validate_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid("A dataset needs a name")
    if len(name) > 200:
        raise Invalid("A dataset name has at most 200 characters")
    return name


def create_dataset(session: Session, *, user: User, name: str, source: Path, source_name: str,
                   format: str | None = None, mapping: dict[str, str] | None = None, skip_invalid: bool = False,
                   description: str | None = None, shared: bool = False, validation_ratio: float = 0.0,
                   seed: int = 0, ip: str | None = None) -> tuple[Dataset, DatasetVersion, Report]:
    """A new dataset whose version 1 is the file at `source`; bad rows refuse it unless `skip_invalid`."""
    dataset = Dataset(user_id=user.id, name=_validate_name(name), description=description or None,  # type: ignore[arg-type]
                      format=format or "openai", shared=shared)
    session.add(dataset)
    session.flush()
    try:
        version, report = _write_version(session, dataset, source=source, source_name=source_name, format=format,
                                         mapping=mapping, skip_invalid=skip_invalid,
                                         validation_ratio=validation_ratio, seed=seed, note=None)
    except Exception:
        session.rollback()
        raise
    audit.record(session, action="dataset.create", user=user, target=f"dataset:{dataset.id}", ip=ip,
                 detail={"name": dataset.name, "rows": report.rows, "skipped": report.error_count,
                         "format": report.format})
    session.commit()
    return dataset, version, report


def add_version(session: Session, *, user: User, dataset_id: int, source: Path, source_name: str,
                format: str | None = None, mapping: dict[str, str] | None = None, skip_invalid: bool = False,
                validation_ratio: float | None = None, seed: int | None = None, note: str | None = None,
                ip: str | None = None) -> tuple[DatasetVersion, Report]:
    """A new version from another file (the old ones stay as they are)."""
    dataset = owned_dataset(session, user=user, dataset_id=dataset_id)
    previous = get_version(session, user=user, dataset_id=dataset_id)
    version, report = _write_version(
        session, dataset, source=source, source_name=source_name, format=format, mapping=mapping,
        skip_invalid=skip_invalid, note=note,
        validation_ratio=previous.validation_ratio if validation_ratio is None else validation_ratio,
        seed=previous.split_seed if seed is None else seed)
    audit.record(session, action="dataset.version", user=user, target=f"dataset:{dataset.id}", ip=ip,
                 detail={"version": version.version, "rows": report.rows, "skipped": report.error_count})
    session.commit()
    return version, report


EDITED_NOTE = N_("From version {version}: {removed} rows removed, {duplicates} repeated rows removed")


def edit_version(session: Session, *, user: User, dataset_id: int, from_version: int | None = None,
                 remove_rows: Collection[int] = (), dedupe: bool = False, note: str | None = None,
                 ip: str | None = None) -> tuple[DatasetVersion, Report]:
    """A new version made from `from_version` (the latest by default) without some of its rows: those at the
    indices in `remove_rows` (from 0, as the preview's offset counts), and with `dedupe` every row that repeats an
    earlier one. The version it comes from stays as it is; the new one has its own hash, statistics and row count,
    and keeps the split's ratio and seed."""
    dataset = owned_dataset(session, user=user, dataset_id=dataset_id)
    source = get_version(session, user=user, dataset_id=dataset_id, version=from_version)
    remove = set(remove_rows)
    outside = sorted(r for r in remove if not 0 <= r < source.rows)
    if outside:
        raise Invalid("Version {version} has no row {row} (its rows are 0 to {last})", version=source.version,
                      row=outside[0], last=source.rows - 1)
    if not remove and not dedupe:
        raise Invalid("Name the rows to remove, or ask for repeated rows to be removed")
    path = version_file(source)
    repeats = None
    if dedupe:
        fingerprints = array("Q")
        with path.open("rb") as file:
            for line in file:
                fingerprints.append(fingerprint(line.rstrip(b"\n")))
        repeats = repeated_rows(fingerprints)
        del fingerprints
    removed = duplicates = 0
    edited = path.with_name(f"edit-{uuid.uuid4().hex}.jsonl")
    try:
        with path.open("rb") as file, edited.open("wb") as out:
            for index, line in enumerate(file):
                if index in remove:
                    removed += 1
                elif repeats is not None and repeats[index]:
                    duplicates += 1
                else:
                    out.write(line)
        if not removed and not duplicates:
            raise Invalid("Version {version} has no repeated rows: nothing to remove", version=source.version)
        if removed + duplicates == source.rows:
            raise Invalid("That would remove every row; delete the dataset instead")
        version, report = _write_version(
            session, dataset, source=edited, source_name=source.source_name, format=None, mapping=None,
            skip_invalid=False, validation_ratio=source.validation_ratio, seed=source.split_seed,
            note=note or gettext(EDITED_NOTE, version=source.version, removed=removed, duplicates=duplicates))
    finally:
        edited.unlink(missing_ok=True)
    version.format = dataset.format = source.format  # the rows' original format, not that of their normal form
    audit.record(session, action="dataset.version", user=user, target=f"dataset:{dataset.id}", ip=ip,
                 detail={"version": version.version, "rows": report.rows, "from_version": source.version,
                         "removed": removed, "duplicates_removed": duplicates})
    session.commit()
    return version, report


def owned_dataset(session: Session, *, user: User, dataset_id: int) -> Dataset:
    """A dataset the user may change: their own (or any, for an admin). A shared one may be read, not changed."""
    dataset = get_dataset(session, user=user, dataset_id=dataset_id)
    if dataset.user_id != user.id and user.role != Role.admin:
        raise Forbidden("Only the owner of a dataset may change it")
    return dataset


# --- reading ----------------------------------------------------------------------------------------------------


def list_datasets(session: Session, *, user: User, q: str | None = None) -> list[Dataset]:
    """The user's datasets and those shared with everyone (all of them for an admin), newest first."""
    query = select(Dataset)
    if user.role != Role.admin:
        query = query.where(or_(col(Dataset.user_id) == user.id, col(Dataset.shared).is_(True)))
    if q and q.strip():
        query = query.where(col(Dataset.name).icontains(q.strip()))
    return list(session.exec(query.order_by(col(Dataset.updated_at).desc(), col(Dataset.id).desc())).all())


def versions_of(session: Session, dataset_id: int) -> list[DatasetVersion]:
    return list(session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
                             .order_by(col(DatasetVersion.version).desc())).all())


def preview(session: Session, *, user: User, dataset_id: int, version: int | None = None, offset: int = 0,
            limit: int = 20) -> tuple[DatasetVersion, list[dict[str, Any]]]:
    """Rows `offset` to `offset + limit` of a version, found through its sparse index (no scan from the start)."""
    if offset < 0 or not 1 <= limit <= MAX_PREVIEW:
        raise Invalid("offset must be 0 or more and limit between 1 and {max}", max=MAX_PREVIEW)
    found = get_version(session, user=user, dataset_id=dataset_id, version=version)
    path = version_file(found)
    index = array("Q")
    index_path = path.with_suffix(".idx")
    if index_path.exists():
        index.frombytes(index_path.read_bytes())
    block = min(offset // INDEX_EVERY, len(index) - 1) if index else 0
    rows: list[dict[str, Any]] = []
    with path.open("rb") as file:
        if index:
            file.seek(index[block])
        row = block * INDEX_EVERY if index else 0
        for line in file:
            if row >= offset + limit:
                break
            if row >= offset:
                rows.append(orjson.loads(line))
            row += 1
    return found, rows


def update_dataset(session: Session, *, user: User, dataset_id: int, name: str | None = None,
                   description: str | None = None, shared: bool | None = None, ip: str | None = None) -> Dataset:
    dataset = owned_dataset(session, user=user, dataset_id=dataset_id)
    changes: dict[str, Any] = {}
    if name is not None:
        dataset.name = changes["name"] = _validate_name(name)
    if description is not None:
        dataset.description = changes["description"] = description.strip() or None
    if shared is not None and shared != dataset.shared:
        dataset.shared = changes["shared"] = shared
    if changes:
        dataset.updated_at = utcnow()
        session.add(dataset)
        audit.record(session, action="dataset.update", user=user, target=f"dataset:{dataset.id}", ip=ip,
                     detail=changes)
        session.commit()
    return dataset


def delete_dataset(session: Session, *, user: User, dataset_id: int, ip: str | None = None) -> None:
    """Delete a dataset with every version; refused while a training job uses it."""
    dataset = owned_dataset(session, user=user, dataset_id=dataset_id)
    jobs = sum(check(session, dataset_id) for check in IN_USE_CHECKS)
    if jobs:
        raise Conflict("{count} training jobs use this dataset; delete or finish them first", count=jobs)
    # One statement, before the dataset's own: the unit of work (no relationship between the two) could otherwise
    # delete the dataset first, the database cascade take the versions, and its own deletes then find nothing.
    session.exec(delete(DatasetVersion).where(col(DatasetVersion.dataset_id) == dataset_id))  # type: ignore[call-overload]
    session.delete(dataset)
    audit.record(session, action="dataset.delete", user=user, target=f"dataset:{dataset_id}", ip=ip,
                 detail={"name": dataset.name})
    session.commit()
    shutil.rmtree(datasets_dir() / str(dataset_id), ignore_errors=True)


# --- API shapes -------------------------------------------------------------------------------------------------


def version_public(version: DatasetVersion) -> VersionPublic:
    return VersionPublic.model_validate(version, from_attributes=True)


def dataset_public(session: Session, dataset: Dataset, *, with_versions: bool = False) -> DatasetPublic:
    versions = versions_of(session, dataset.id) if with_versions else []  # type: ignore[arg-type]
    latest = versions[0] if versions else session.exec(select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == dataset.latest_version)).first()
    owner = session.get(User, dataset.user_id)
    return DatasetPublic(
        id=dataset.id, name=dataset.name, description=dataset.description, format=dataset.format,  # type: ignore[arg-type]
        shared=dataset.shared, owner=owner.username if owner else "?", version=dataset.latest_version,
        rows=latest.rows if latest else 0, created_at=dataset.created_at, updated_at=dataset.updated_at,
        versions=[version_public(v) for v in versions] if with_versions else None)


def list_public(session: Session, *, user: User, q: str | None = None) -> list[DatasetPublic]:
    """`list_datasets` as the list shows it, with owners and row counts read in two queries, not two per dataset."""
    found = list_datasets(session, user=user, q=q)
    owners = {u.id: u.username for u in session.exec(select(User).where(
        col(User.id).in_({d.user_id for d in found})))}
    rows = {(v.dataset_id, v.version): v.rows for v in session.exec(select(DatasetVersion).where(
        col(DatasetVersion.dataset_id).in_([d.id for d in found])))}
    return [DatasetPublic(
        id=d.id, name=d.name, description=d.description, format=d.format, shared=d.shared,  # type: ignore[arg-type]
        owner=owners.get(d.user_id, "?"), version=d.latest_version, rows=rows.get((d.id, d.latest_version), 0),  # type: ignore[arg-type]
        created_at=d.created_at, updated_at=d.updated_at) for d in found]


def created_public(dataset: Dataset, version: DatasetVersion, report: Report) -> DatasetCreated:
    return DatasetCreated(id=dataset.id, name=dataset.name, version=version.version, format=version.format,  # type: ignore[arg-type]
                          rows=version.rows, skipped=version.skipped,
                          errors=[LineErrorPublic(**e.public()) for e in report.errors],  # type: ignore[arg-type]
                          stats=version.stats)


def inspection_public(report: Report) -> DatasetInspection:
    return DatasetInspection(format=report.format, rows=report.rows, error_count=report.error_count,
                             errors=[LineErrorPublic(**e.public()) for e in report.errors],  # type: ignore[arg-type]
                             stats=report.stats.public(), preview=report.preview)


# --- from a finished upload (the page, and the API's JSON form) -----------------------------------------------


def inspect_upload(session: Session, *, user: User, upload_id: str, format: str | None = None,
                   mapping: dict[str, str] | None = None) -> Report:
    upload, path = uploads.finished_upload(session, user=user, upload_id=upload_id)
    return inspect_file(path, filename=upload.filename, format=format, mapping=mapping)


def create_from_upload(session: Session, *, user: User, upload_id: str, name: str, ip: str | None = None,
                       **options: Any) -> tuple[Dataset, DatasetVersion, Report]:
    """A dataset from a finished upload, whose bytes are then dropped (kept when the rows were refused, so that the
    user can save without the bad ones without sending the file again)."""
    upload, path = uploads.finished_upload(session, user=user, upload_id=upload_id)
    created = create_dataset(session, user=user, name=name, source=path, source_name=upload.filename, ip=ip,
                             **options)
    uploads.delete_upload(session, upload=upload)
    return created


def version_from_upload(session: Session, *, user: User, dataset_id: int, upload_id: str, ip: str | None = None,
                        **options: Any) -> tuple[DatasetVersion, Report]:
    upload, path = uploads.finished_upload(session, user=user, upload_id=upload_id)
    added = add_version(session, user=user, dataset_id=dataset_id, source=path, source_name=upload.filename, ip=ip,
                        **options)
    uploads.delete_upload(session, upload=upload)
    return added
