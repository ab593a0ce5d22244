"""`/api/v1/datasets`: datasets from a finished tus upload or a small multipart file; versions, preview, download."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Message

from backend.api.deps import ClientIp, CurrentUser, SessionDep
from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Invalid, TooLarge
from backend.models.dataset import (
    DatasetCreated,
    DatasetFromUpload,
    DatasetInspection,
    DatasetPublic,
    DatasetUpdate,
    TokenCount,
)
from backend.models.user import User
from backend.services import dataset_tokens, datasets, uploads

router = APIRouter(prefix="/datasets", tags=["datasets"])


@contextmanager
def _multipart(file: UploadFile | None) -> Iterator[tuple[Path, str]]:
    """The multipart file on disk for the one pass that reads it, then gone."""
    assert file is not None
    with tempfile.NamedTemporaryFile(dir=uploads.uploads_dir(), suffix=".part", delete=False) as temp:
        while chunk := file.file.read(1024 * 1024):
            temp.write(chunk)
    try:
        yield Path(temp.name), file.filename or ""
    finally:
        Path(temp.name).unlink(missing_ok=True)


JSON_BODY_LIMIT = 1024 * 1024  # a JSON body only names an upload


def _too_large(limit_mb: int) -> TooLarge:
    return TooLarge("A file sent in one request may have at most {limit} MB; upload bigger files through "
                    "/api/v1/uploads (tus), which can also resume", limit=limit_mb)


def _limited(request: Request, limit: int, error: TooLarge) -> Request:
    """The request with a body counted as it arrives and refused past `limit` bytes: a chunked body has no
    Content-Length to check beforehand, and one that has may say less than it sends."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise error
        return message

    return Request(request.scope, receive)


class VersionEdit(BaseModel):
    """A new version from an existing one, without some rows: `POST /api/v1/datasets/{id}/versions`."""

    from_version: int | None = None  # the latest when not given
    remove_rows: list[int] = Field(default_factory=list, max_length=100_000)  # indices from 0, as preview's offset
    dedupe: bool = False  # also leave out every row that repeats an earlier one
    note: str | None = Field(default=None, max_length=500)


async def _read_request(request: Request, *, edits: bool = False) -> tuple[
        DatasetFromUpload | VersionEdit | None, UploadFile | None, dict[str, Any]]:
    """JSON naming an upload (or, with `edits`, a `VersionEdit`), or a multipart form with `file` (and the same
    fields as form values)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        limit = get_settings().max_multipart_mb
        declared = request.headers.get("content-length") or ""
        if declared.isdigit() and int(declared) > limit * 1024 * 1024:
            raise _too_large(limit)  # at once, before a byte of the body is read
        request = _limited(request, limit * 1024 * 1024, _too_large(limit))
        form = await request.form(max_files=1)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise Invalid("Send the dataset as a multipart field named file")
        fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        if "mapping" in fields:
            try:
                fields["mapping"] = json.loads(fields["mapping"])
            except ValueError as error:
                raise Invalid("mapping must be a JSON object of field → column") from error
        for flag in ("skip_invalid", "shared"):
            if flag in fields:
                fields[flag] = fields[flag].lower() in ("1", "true", "yes", "on")
        return None, file, fields
    request = _limited(request, JSON_BODY_LIMIT, TooLarge("The request body is too big"))
    try:
        raw = await request.json()
    except ValueError as error:
        raise Invalid("Send JSON with name and upload_id, or a multipart form with a file") from error
    if edits and isinstance(raw, dict) and "upload_id" not in raw:
        try:
            edit = VersionEdit.model_validate(raw)
        except ValueError as error:
            raise Invalid("Send JSON with upload_id, or with from_version and remove_rows (a list of row indices) "
                          "or dedupe") from error
        return edit, None, edit.model_dump()
    try:
        body = DatasetFromUpload.model_validate(raw)
    except ValueError as error:
        raise Invalid("Send JSON with name and upload_id, or a multipart form with a file") from error
    return body, None, body.model_dump()


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"format": fields.get("format") or None, "mapping": fields.get("mapping") or None,
                "skip_invalid": bool(fields.get("skip_invalid")),
                "validation_ratio": float(fields.get("validation_ratio") or 0), "seed": int(fields.get("seed") or 0)}
    except (TypeError, ValueError) as error:
        raise Invalid("validation_ratio must be a number and seed a whole number") from error


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetCreated)
async def create_dataset(request: Request, user: CurrentUser, ip: ClientIp) -> DatasetCreated:
    """A new dataset. Bad rows refuse it (422, with every bad line) unless `skip_invalid` is true, in which case they
    are left out and listed in `errors`."""
    body, file, fields = await _read_request(request)
    assert not isinstance(body, VersionEdit)
    return await run_in_threadpool(_create, user, body, file, fields, ip)


def _create(user: User, body: DatasetFromUpload | None, file: UploadFile | None, fields: dict[str, Any],
            ip: str | None) -> DatasetCreated:
    options = _options(fields)
    common = {"name": fields.get("name") or "", "description": fields.get("description"),
              "shared": bool(fields.get("shared")), "ip": ip, **options}
    with session_scope() as session:
        if body is not None:
            dataset, version, report = datasets.create_from_upload(session, user=user, upload_id=body.upload_id,
                                                                   **common)
        else:
            with _multipart(file) as (path, name):
                dataset, version, report = datasets.create_dataset(session, user=user, source=path, source_name=name,
                                                                   **common)
        return datasets.created_public(dataset, version, report)


@router.post("/validate", response_model=DatasetInspection)
async def validate_dataset(request: Request, user: CurrentUser) -> DatasetInspection:
    """A dry run: format, rows, every bad line and the statistics; nothing is saved."""
    body, file, fields = await _read_request(request)
    assert not isinstance(body, VersionEdit)
    return await run_in_threadpool(_inspect, user, body, file, fields)


def _inspect(user: User, body: DatasetFromUpload | None, file: UploadFile | None,
             fields: dict[str, Any]) -> DatasetInspection:
    options = _options(fields)
    if body is not None:
        with session_scope() as session:
            report = datasets.inspect_upload(session, user=user, upload_id=body.upload_id, format=options["format"],
                                             mapping=options["mapping"])
    else:
        with _multipart(file) as (path, name):
            report = datasets.inspect_file(path, filename=name, format=options["format"], mapping=options["mapping"])
    return datasets.inspection_public(report)


@router.get("")
def list_datasets(user: CurrentUser, session: SessionDep, q: str | None = None) -> dict[str, list[DatasetPublic]]:
    return {"data": datasets.list_public(session, user=user, q=q)}


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: int, user: CurrentUser, session: SessionDep) -> DatasetPublic:
    dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
    return datasets.dataset_public(session, dataset, with_versions=True)


@router.patch("/{dataset_id}", response_model=DatasetPublic)
def update_dataset(dataset_id: int, body: DatasetUpdate, user: CurrentUser, session: SessionDep,
                   ip: ClientIp) -> DatasetPublic:
    dataset = datasets.update_dataset(session, user=user, dataset_id=dataset_id, ip=ip,
                                      **body.model_dump(exclude_unset=True))
    return datasets.dataset_public(session, dataset, with_versions=True)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> Response:
    datasets.delete_dataset(session, user=user, dataset_id=dataset_id, ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{dataset_id}/versions", status_code=status.HTTP_201_CREATED, response_model=DatasetCreated)
async def add_version(dataset_id: int, request: Request, user: CurrentUser, ip: ClientIp) -> DatasetCreated:
    """A new version: from another file (JSON naming an upload, or multipart), checked like a new dataset; or from
    an existing version without some rows (JSON `{from_version?, remove_rows: [row index, ...], dedupe?, note?}`,
    indices from 0). Earlier versions stay as they were."""
    body, file, fields = await _read_request(request, edits=True)
    if isinstance(body, VersionEdit):
        return await run_in_threadpool(_edit_version, user, dataset_id, body, ip)
    return await run_in_threadpool(_add_version, user, dataset_id, body, file, fields, ip)


def _edit_version(user: User, dataset_id: int, edit: VersionEdit, ip: str | None) -> DatasetCreated:
    with session_scope() as session:
        version, report = datasets.edit_version(session, user=user, dataset_id=dataset_id,
                                                from_version=edit.from_version, remove_rows=edit.remove_rows,
                                                dedupe=edit.dedupe, note=edit.note, ip=ip)
        dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
        return datasets.created_public(dataset, version, report)


def _add_version(user: User, dataset_id: int, body: DatasetFromUpload | None, file: UploadFile | None,
                 fields: dict[str, Any], ip: str | None) -> DatasetCreated:
    options = _options(fields)
    if "validation_ratio" not in fields:  # the new version keeps the split of the one before
        options.pop("validation_ratio")
        options.pop("seed")
    with session_scope() as session:
        if body is not None:
            version, report = datasets.version_from_upload(session, user=user, dataset_id=dataset_id,
                                                           upload_id=body.upload_id, note=fields.get("note"), ip=ip,
                                                           **options)
        else:
            with _multipart(file) as (path, name):
                version, report = datasets.add_version(session, user=user, dataset_id=dataset_id, source=path,
                                                       source_name=name, note=fields.get("note"), ip=ip, **options)
        dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
        return datasets.created_public(dataset, version, report)


@router.get("/{dataset_id}/preview")
def preview(dataset_id: int, user: CurrentUser, session: SessionDep, offset: int = 0, limit: int = 20,
            version: int | None = None) -> dict[str, Any]:
    """Rows as conversations (`{messages}`) or documents (`{text}`), paged."""
    found, rows = datasets.preview(session, user=user, dataset_id=dataset_id, version=version, offset=offset,
                                   limit=limit)
    return {"version": found.version, "total": found.rows, "offset": offset, "rows": rows}


@router.get("/{dataset_id}/versions/{version}/download")
def download(dataset_id: int, version: int, user: CurrentUser, session: SessionDep) -> FileResponse:
    """The version's rows as JSON lines (the normalized form that training reads)."""
    found = datasets.get_version(session, user=user, dataset_id=dataset_id, version=version)
    dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
    filename = f"{_safe(dataset.name)}-v{found.version}.jsonl"
    return FileResponse(datasets.version_file(found), media_type="application/x-ndjson", filename=filename)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "dataset"



@router.post("/{dataset_id}/tokens")
def count_tokens(dataset_id: int, body: TokenCount, user: CurrentUser, session: SessionDep,
                 ip: ClientIp) -> dict[str, Any]:
    """Exact token statistics with a local base model's tokenizer (a directory or a model id in the local Hugging
    Face cache); kept with the version's statistics, so only the dataset's owner (or an admin) may count them."""
    return {"stats": dataset_tokens.count_tokens(session, user=user, dataset_id=dataset_id,
                                                 base_model=body.base_model, version=body.version, ip=ip)}
