"""The REST API: `/api/v1/<resource>` routers, installed on the application by `install`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.api import admin, auth, gateway, health, providers
from backend.api.errors import ApiErrorsAsJson, install_error_handlers
from backend.i18n import negotiate, request_language

API_PREFIX = "/api/v1"


def build_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for module in (health, auth, providers, admin):
        router.include_router(module.router)
    return router


class RequestLanguage:
    """Messages of an API request come in the language its Accept-Language asks for (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1")
        token = request_language.set(negotiate(header))
        try:
            await self.app(scope, receive, send)
        finally:
            request_language.reset(token)


def install(app: FastAPI) -> None:
    """Mount every router and the error handlers on `app` (the NiceGUI app in production, a bare one in tests)."""
    app.include_router(build_router())
    app.include_router(gateway.router)
    install_error_handlers(app)
    app.add_middleware(ApiErrorsAsJson)
    app.add_middleware(RequestLanguage)
