"""Sign in, register, sign out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from nicegui import APIRouter, app, ui
from sqlmodel import Session

from backend.errors import DomainError, Unauthorized
from backend.models.user import PASSWORD_MIN_LENGTH, USERNAME_PATTERN, Language, User
from backend.services import auth, users
from pages.guard import (
    forget_sign_in,
    language_picked_before_sign_in,
    load_session_user,
    remember_sign_in,
    safe_redirect,
)
from pages.service import call, error_text, query
from ui.frame import bare_frame
from ui.i18n import _
from ui.widgets import new_password_input, repeat_password_input

router = APIRouter()


def _sign_in(
    session: Session, *, username: str, password: str, ip: str, user_agent: str, language: Language | None,
    register: bool = False,
) -> tuple[User, str]:
    if register:
        user = auth.register(session, username=username, password=password, ip=ip)
    else:
        user = auth.authenticate(session, username=username, password=password, ip=ip)
    if language is not None and language != user.language:
        users.set_language(session, user=user, language=language)
    auth_session = auth.start_session(session, user=user, kind="web", ip=ip, user_agent=user_agent)
    return user, auth_session.id


@dataclass
class _Form:
    username: ui.input
    password: ui.input
    button: ui.button
    message: ui.label
    ip: str
    user_agent: str
    target: str


def show(message: ui.label, text: str) -> None:
    message.set_text(text)
    message.set_visibility(True)


async def _sign_in_and_go(form: _Form, *, register: bool) -> bool:
    """Sign in (or register, then sign in) and go to the target page; on failure say why in the form."""
    form.message.set_visibility(False)
    form.button.props("loading")
    try:
        user, session_id = await call(
            _sign_in, username=form.username.value, password=form.password.value, ip=form.ip,
            user_agent=form.user_agent, language=language_picked_before_sign_in(), register=register,
        )
    except DomainError as error:  # wrong password, locked (with when to retry), disabled, taken, closed
        show(form.message, error_text(error))
        return False
    finally:
        form.button.props(remove="loading")
    remember_sign_in(user, session_id)
    ui.navigate.to(form.target)
    return True


def _already_signed_in() -> bool:
    session_id = app.storage.user.get("session_id")
    if not session_id:
        return False
    try:
        load_session_user(session_id)
    except Unauthorized:
        forget_sign_in()
        return False
    return True


@router.page("/login")
def login_page(request: Request, redirect_to: str = "/") -> None:
    target = safe_redirect(redirect_to)
    if _already_signed_in():
        ui.navigate.to(target)
        return
    ip = request.client.host if request.client else ""
    user_agent = request.headers.get("user-agent", "")

    with bare_frame(_("Sign in")):
        username = ui.input(_("Username")).props("outlined autofocus autocomplete=username").classes("w-full").mark(
            "username"
        )
        password = ui.input(_("Password"), password=True, password_toggle_button=True).props(
            "outlined autocomplete=current-password"
        ).classes("w-full").mark("password")
        message = ui.label().classes("text-negative lp-form-error")
        message.set_visibility(False)

        async def submit() -> None:
            if not username.value.strip() or not password.value:
                show(message, _("Enter your username and password"))
                return
            if not await _sign_in_and_go(form, register=False):
                password.set_value("")

        button = ui.button(_("Sign in"), on_click=submit).props("unelevated").classes("w-full").mark("submit")
        form = _Form(username, password, button, message, ip, user_agent, target)
        password.on("keydown.enter", submit)
        username.on("keydown.enter", submit)
        if query(auth.registration_open):
            with ui.row().classes("w-full justify-center gap-1 text-body2"):
                ui.label(_("No account yet?"))
                ui.link(_("Register"), f"/register?redirect_to={target}")


@router.page("/register")
def register_page(request: Request, redirect_to: str = "/") -> None:
    target = safe_redirect(redirect_to)
    ip = request.client.host if request.client else ""
    user_agent = request.headers.get("user-agent", "")

    with bare_frame(_("Create an account")):
        if not query(auth.registration_open):
            ui.label(_("Registration is closed; ask an administrator for an account")).classes("text-body1")
            ui.link(_("Back to sign in"), "/login")
            return
        if query(auth.user_count) == 0:
            ui.label(_("You are the first user: your account will be the administrator.")).classes(
                "text-body2 text-positive"
            )
        username = ui.input(_("Username"), validation={
            _("3 to 64 letters, digits or . _ - @"): lambda v: bool(re.fullmatch(USERNAME_PATTERN, (v or "").strip())),
        }).props("outlined autofocus autocomplete=username lazy-rules").classes("w-full")
        password = new_password_input(_("Password"), min_length=PASSWORD_MIN_LENGTH)
        confirm = repeat_password_input(_("Repeat password"), of=password)
        message = ui.label().classes("text-negative lp-form-error")
        message.set_visibility(False)

        async def submit() -> None:
            if all(field.validate() for field in (username, password, confirm)):
                await _sign_in_and_go(form, register=True)

        button = ui.button(_("Create account"), on_click=submit).props("unelevated").classes("w-full").mark("submit")
        form = _Form(username, password, button, message, ip, user_agent, target)
        confirm.on("keydown.enter", submit)
        with ui.row().classes("w-full justify-center gap-1 text-body2"):
            ui.label(_("Already registered?"))
            ui.link(_("Sign in"), f"/login?redirect_to={target}")
