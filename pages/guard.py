"""Page authentication: signed-out visitors are sent to `/login?redirect_to=…`; signed-out users' open pages
are sent there at once when an admin disables them or their sessions end, and reloaded when their role changes."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import quote

from fastapi import Request
from nicegui import Client, app, core, run, ui
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.db import session_scope
from backend.errors import Unauthorized
from backend.models.user import Language, User
from backend.services import auth, events
from ui.frame import set_sign_out_handler

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/_nicegui", "/api/", "/v1/", "/assets/", "/docs", "/redoc", "/openapi.json", "/favicon")
PUBLIC_PAGES = {"/login", "/register"}

# user id → client id → address of every open page, so that a sign-out or a role change can reach the pages
# already on screen
_open_pages: dict[int, dict[str, str]] = defaultdict(dict)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PAGES or path.startswith(PUBLIC_PREFIXES)


def load_session_user(session_id: str) -> User:
    with session_scope() as session:
        return auth.session_user(session, session_id=session_id)


class PageAuthMiddleware:
    """Plain ASGI (not `BaseHTTPMiddleware`): API responses, streams above all, pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session_id = app.storage.user.get("session_id")
        user = None
        if session_id:
            try:
                user = await run_in_threadpool(load_session_user, session_id)
            except Unauthorized:
                forget_sign_in()
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(f"/login?redirect_to={quote(target, safe='')}", status_code=303)
            await response(scope, receive, send)
            return
        # Role and name can change while signed in; the frame reads them from here.
        app.storage.user.update(user_id=user.id, username=user.username, role=user.role.value)
        scope.setdefault("state", {})["user"] = user  # request.state.user in the page function
        await self.app(scope, receive, send)


def remember_sign_in(user: User, session_id: str) -> None:
    """Store the sign-in in this browser's storage. A language picked on the sign-in page wins over the
    account's (the caller saves it to the account); otherwise the account's language applies."""
    chosen = app.storage.user.pop("lang_chosen", False)
    language = app.storage.user.get("lang") if chosen else user.language.value
    app.storage.user.update(
        session_id=session_id, user_id=user.id, username=user.username, role=user.role.value, lang=language,
    )


def language_picked_before_sign_in() -> Language | None:
    if not app.storage.user.get("lang_chosen"):
        return None
    try:
        return Language(str(app.storage.user.get("lang")))
    except ValueError:
        return None


def forget_sign_in() -> None:
    for key in ("session_id", "user_id", "username", "role"):
        app.storage.user.pop(key, None)


def page_user(request: Request) -> User:
    """The signed-in user of this page (the middleware has checked the session), watched for sign-out."""
    user: User = request.state.user
    client = ui.context.client
    address = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    _open_pages[user.id][client.id] = address  # type: ignore[index]
    client.on_delete(lambda: _open_pages[user.id].pop(client.id, None))  # type: ignore[index]
    return user


def safe_redirect(target: str | None) -> str:
    """Only local paths: `redirect_to` must never send a user to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _send_to_login(user_id: int) -> None:
    for client_id in list(_open_pages.pop(user_id, {})):
        client = Client.instances.get(client_id)
        if client is None:
            continue
        with client:
            ui.navigate.to("/login")


def _reload_pages(user_id: int) -> None:
    """A new role: each open page is built again (the middleware reads the role; the menu and the admin console
    follow it), so a demoted admin's console closes and a promoted user's menu gains it."""
    for client_id, address in list(_open_pages.get(user_id, {}).items()):
        client = Client.instances.get(client_id)
        if client is None:
            continue
        with client:
            ui.navigate.to(address)


def _on_loop(action: Callable[[int], None]) -> Callable[[int], None]:
    """A listener for `events`, which services call from worker threads as well as from the event loop."""

    def listener(user_id: int) -> None:
        loop = core.loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action(user_id)
        else:
            loop.call_soon_threadsafe(action, user_id)

    return listener


_on_signed_out = _on_loop(_send_to_login)
_on_role_changed = _on_loop(_reload_pages)


def _end_session(session_id: str, ip: str) -> None:
    with session_scope() as session:
        try:
            user = auth.session_user(session, session_id=session_id)
        except Unauthorized:
            return  # already ended elsewhere
        auth.logout(session, principal=auth.Principal(user=user, session_id=session_id), ip=ip)


async def sign_out() -> None:
    session_id = app.storage.user.get("session_id")
    if session_id:
        await run.io_bound(_end_session, session_id, ui.context.client.ip)
    forget_sign_in()
    ui.navigate.to("/login")


def install() -> None:
    app.add_middleware(PageAuthMiddleware)
    events.on_user_signed_out(_on_signed_out)
    events.on_user_role_changed(_on_role_changed)
    set_sign_out_handler(sign_out)
