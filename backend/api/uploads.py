"""`/api/v1/uploads`: resumable uploads by the tus 1.0 protocol (core, creation, termination, expiration).

Any tus client works: `tus-js-client`, `tuspy`, or the page's own (assets/upload.js). A finished upload becomes a
dataset with `POST /api/v1/datasets {"name", "upload_id"}`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from backend.api.deps import CurrentUser, SessionDep
from backend.errors import Invalid
from backend.i18n import N_
from backend.services import uploads

router = APIRouter(prefix="/uploads", tags=["uploads"])

OCTET_STREAM = "application/offset+octet-stream"


class PreconditionFailed(Invalid):
    status_code = 412


class UnsupportedMediaType(Invalid):
    status_code = 415


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": uploads.TUS_VERSION, "Cache-Control": "no-store", **extra}


def _http_date(moment: datetime) -> str:
    """RFC 9110 date, as tus's Upload-Expires wants it (a database may give the moment back without its zone: UTC)."""
    return format_datetime(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC),
                           usegmt=True)


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != uploads.TUS_VERSION:
        raise PreconditionFailed(N_("Send the header Tus-Resumable: 1.0.0 (this server speaks tus 1.0.0)"))


def _integer_header(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit():
        raise Invalid("The header {name} must be a whole number", name=name)
    return int(value)


@router.options("")
def capabilities() -> Response:
    return Response(status_code=204, headers=_headers(**{
        "Tus-Version": uploads.TUS_VERSION, "Tus-Extension": uploads.TUS_EXTENSIONS,
        "Tus-Max-Size": str(uploads.max_size())}))


@router.post("", status_code=201)
def create(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Create an upload: `Upload-Length` (bytes) and optional `Upload-Metadata` (`filename <base64>`)."""
    _check_version(request)
    length = _integer_header(request, "upload-length")
    upload = uploads.create_upload(session, user=user, length=length,
                                   metadata=uploads.parse_metadata(request.headers.get("upload-metadata")))
    return Response(status_code=201, headers=_headers(**{
        "Location": f"{request.url.path.rstrip('/')}/{upload.id}", "Upload-Offset": "0",
        "Upload-Expires": _http_date(upload.expires_at)}))


@router.head("/{upload_id}")
def offset(upload_id: str, request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Where to go on from: the bytes the server has."""
    _check_version(request)
    upload, have = uploads.current_offset(session, user=user, upload_id=upload_id)
    return Response(status_code=200, headers=_headers(**{
        "Upload-Offset": str(have), "Upload-Length": str(upload.length),
        "Upload-Expires": _http_date(upload.expires_at)}))


@router.patch("/{upload_id}")
async def append(upload_id: str, request: Request, user: CurrentUser) -> Response:
    """Bytes from `Upload-Offset` on (`Content-Type: application/offset+octet-stream`)."""
    _check_version(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != OCTET_STREAM:
        raise UnsupportedMediaType(N_("Send the bytes as Content-Type: application/offset+octet-stream"))
    start = _integer_header(request, "upload-offset")
    new_offset, expires = start, None
    with contextlib.suppress(ClientDisconnect):  # what arrived is on disk; HEAD tells the client where to go on
        new_offset, expires = await uploads.append(user=user, upload_id=upload_id, offset=start,
                                                   chunks=request.stream())
    extra = {"Upload-Offset": str(new_offset)}
    if expires is not None:
        extra["Upload-Expires"] = _http_date(expires)
    return Response(status_code=204, headers=_headers(**extra))


@router.delete("/{upload_id}")
def terminate(upload_id: str, request: Request, user: CurrentUser, session: SessionDep) -> Response:
    _check_version(request)
    uploads.terminate(session, user=user, upload_id=upload_id)
    return Response(status_code=204, headers=_headers())
