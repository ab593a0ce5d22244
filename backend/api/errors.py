"""Every error leaves as `{"detail": "..."}` with its status; never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import DomainError, TooManyRequests, Unauthorized
from backend.i18n import gettext
from backend.providers.base import ProviderError, RateLimited

log = logging.getLogger(__name__)


GATEWAY_PREFIX = "/v1/"


def openai_error(message: str, *, status: int, code: str | None = None) -> dict[str, Any]:
    """The gateway speaks OpenAI's error format, so that OpenAI clients raise their usual exceptions."""
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
            422: "invalid_request_error", 429: "rate_limit_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "code": code}}


def error_response(request: Request, message: str, status: int, *, code: str | None = None,
                   headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> JSONResponse:
    body = openai_error(message, status=status, code=code) if request.url.path.startswith(GATEWAY_PREFIX) \
        else {"detail": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    headers: dict[str, str] = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(request, error.translated(), error.status_code, code=type(error).__name__.lower(),
                          headers=headers, extra=error.extra())


def _provider_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ProviderError)
    headers = {}
    if isinstance(error, RateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(int(error.retry_after) or 1)
    if error.detail:
        log.info("provider error on %s: %s (%s)", request.url.path, error, error.detail)
    return error_response(request, error.translated(), error.status_code, code=error.code, headers=headers)


def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        message = item.get("msg", "invalid")
        parts.append(f"{where}: {message}" if where else message)
    detail = gettext("Invalid request: {errors}", errors="; ".join(parts) or "malformed body")
    return error_response(request, detail, 422)


def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return error_response(request, detail, error.status_code, headers=error.headers)


API_PREFIXES = ("/api/", "/v1/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(ProviderError, _provider_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class ApiErrorsAsJson:
    """An unexpected failure under the API prefixes is logged and answered as JSON, never as a traceback.

    Plain ASGI (not `BaseHTTPMiddleware`), so that streamed answers pass through without extra copies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope["path"])
            if started:  # the status line is out: nothing better to do than to end the response
                raise
            request = Request(scope)
            response = error_response(request, gettext("Internal error; the administrator can find it in the log"),
                                      500)
            await response(scope, receive, send)
