"""Resumable uploads (the tus 1.0 protocol's core, creation, termination and expiration): a client creates an upload
of a known length, sends its bytes in PATCH requests from the offset the server has, and after a dropped connection
or a page reload asks the server's offset (HEAD) and goes on from there.

The bytes go straight to `DATA_DIR/uploads/<id>` as they arrive: memory stays flat whatever the file's size, and
whatever reached the disk before a connection dropped counts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Conflict, Invalid, NotFound, TooLarge
from backend.models.base import utcnow
from backend.models.dataset import Upload
from backend.models.user import User

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"

_locks: dict[str, asyncio.Lock] = {}  # one PATCH at a time per upload


def uploads_dir() -> Path:
    path = get_settings().data_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(upload_id: str) -> Path:
    return uploads_dir() / upload_id


def max_size() -> int:
    return get_settings().max_upload_mb * 1024 * 1024


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata: filename d29yZC5qc29u,filetype …`: comma-separated keys with base64 values."""
    meta: dict[str, str] = {}
    for pair in (header or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            meta[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError) as error:
            raise Invalid("Upload-Metadata: the value of {key} is not base64 of UTF-8 text", key=key) from error
    return meta


def create_upload(session: Session, *, user: User, length: int, metadata: dict[str, str]) -> Upload:
    if length < 0:
        raise Invalid("Upload-Length must be a whole number of bytes")
    if length > max_size():
        raise TooLarge("The file is {size} MB; the largest upload accepted is {limit} MB",
                       size=round(length / 1024 / 1024), limit=get_settings().max_upload_mb)
    remove_expired(session)
    upload = Upload(id=uuid.uuid4().hex, user_id=user.id, filename=metadata.get("filename", "")[:255],  # type: ignore[arg-type]
                    length=length, meta=metadata,
                    expires_at=_new_expiry())
    upload_path(upload.id).touch()
    session.add(upload)
    session.commit()
    return upload


def get_upload(session: Session, *, user: User, upload_id: str) -> Upload:
    """The user's own upload; anyone else's is not found."""
    upload = session.get(Upload, upload_id)
    if upload is None or upload.user_id != user.id or not upload_path(upload_id).exists():
        raise NotFound("No such upload (it may have expired)")
    return upload


def _offset(upload_id: str) -> int:
    # The file is the truth: a PATCH cut off mid-way leaves its bytes on disk, and the offset says so.
    return upload_path(upload_id).stat().st_size


def current_offset(session: Session, *, user: User, upload_id: str) -> tuple[Upload, int]:
    upload = get_upload(session, user=user, upload_id=upload_id)
    return upload, _offset(upload_id)


def _new_expiry() -> datetime:
    return utcnow() + timedelta(hours=get_settings().upload_expiry_hours)


async def append(*, user: User, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> tuple[int, datetime]:
    """Write the body of a PATCH at `offset` (which must be the server's); returns the new offset and the upload's
    new expiry (each PATCH pushes it back: an upload still being worked on is not removed, however long it takes). A
    body cut off by the client keeps what arrived."""
    lock = _locks.setdefault(upload_id, asyncio.Lock())
    if lock.locked():
        raise Conflict("This upload is receiving data from another request")
    async with lock:  # held from before the expiry is pushed back: remove_expired leaves it alone meanwhile
        try:
            upload = await run_in_threadpool(_get, user, upload_id)
        except NotFound:
            _locks.pop(upload_id, None)
            raise
        have = _offset(upload_id)
        if offset != have:
            raise Conflict("Upload-Offset {offset} does not match the server's offset {have}", offset=offset,
                           have=have)
        fd = os.open(upload_path(upload_id), os.O_WRONLY | os.O_APPEND)
        written = have
        try:
            async for chunk in chunks:
                if written + len(chunk) > upload.length:
                    raise Invalid("More bytes than Upload-Length ({length})", length=upload.length)
                os.write(fd, chunk)  # page cache speed: cheaper here than a thread hop per chunk
                written += len(chunk)
        finally:
            os.close(fd)
            expires = await asyncio.shield(run_in_threadpool(_record_offset, upload_id, written, upload.length))
        return written, expires


def _get(user: User, upload_id: str) -> Upload:
    with session_scope() as session:
        upload = get_upload(session, user=user, upload_id=upload_id)
        upload.expires_at = _new_expiry()  # bytes are coming: not to be removed while they do
        session.add(upload)
        session.commit()
        session.refresh(upload)
        return upload


def _record_offset(upload_id: str, offset: int, length: int) -> datetime:
    expires = _new_expiry()
    with session_scope() as session:
        upload = session.get(Upload, upload_id)
        if upload is None:
            return expires
        upload.offset, upload.expires_at = offset, expires
        if offset == length and upload.completed_at is None:
            upload.completed_at = utcnow()
        session.add(upload)
        session.commit()
    return expires


def finished_upload(session: Session, *, user: User, upload_id: str) -> tuple[Upload, Path]:
    """An upload whose bytes have all arrived, and where they are."""
    upload = get_upload(session, user=user, upload_id=upload_id)
    have = _offset(upload_id)
    if have != upload.length:
        raise Conflict("The upload is not finished: {have} of {length} bytes arrived", have=have,
                       length=upload.length)
    return upload, upload_path(upload_id)


def delete_upload(session: Session, *, upload: Upload) -> None:
    with contextlib.suppress(FileNotFoundError):
        upload_path(upload.id).unlink()
    _locks.pop(upload.id, None)
    session.delete(upload)
    session.commit()


def terminate(session: Session, *, user: User, upload_id: str) -> None:
    delete_upload(session, upload=get_upload(session, user=user, upload_id=upload_id))


def remove_expired(session: Session) -> int:
    """Unfinished (or unused) uploads past their expiry are removed, bytes and all; not one receiving bytes now."""
    expired = [upload for upload in session.exec(select(Upload).where(col(Upload.expires_at) < utcnow())).all()
               if not (upload.id in _locks and _locks[upload.id].locked())]
    for upload in expired:
        with contextlib.suppress(FileNotFoundError):
            upload_path(upload.id).unlink()
        session.delete(upload)
    if expired:
        session.commit()
        log.info("removed %d expired uploads", len(expired))
    return len(expired)
