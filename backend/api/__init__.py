"""The REST API: `/api/v1/<resource>` routers, installed on the application by `install`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response

from backend.api import admin, auth, gateway, health, providers
from backend.api.errors import api_errors_as_json, install_error_handlers
from backend.i18n import negotiate, request_language

API_PREFIX = "/api/v1"


def build_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for module in (health, auth, providers, admin):
        router.include_router(module.router)
    return router


async def _language_middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    token = request_language.set(negotiate(request.headers.get("accept-language")))
    try:
        return await call_next(request)
    finally:
        request_language.reset(token)


def install(app: FastAPI) -> None:
    """Mount every router and the error handlers on `app` (the NiceGUI app in production, a bare one in tests)."""
    app.include_router(build_router())
    app.include_router(gateway.router)
    install_error_handlers(app)
    app.middleware("http")(api_errors_as_json)
    app.middleware("http")(_language_middleware)
