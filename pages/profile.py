"""The profile page: account, language, password and personal API tokens."""

from __future__ import annotations

from fastapi import Request
from nicegui import APIRouter, app, ui

from backend.errors import DomainError
from backend.i18n import LANGUAGES
from backend.models.user import PASSWORD_MIN_LENGTH, Language, User
from backend.services import auth, limits, users
from pages.guard import page_user
from pages.service import call, query, show_error
from ui.frame import frame
from ui.i18n import _
from ui.widgets import confirm, format_time, new_password_input, repeat_password_input, section, timestamp

router = APIRouter()


@router.page("/profile")
def profile_page(request: Request) -> None:
    user = page_user(request)
    session_id = app.storage.user.get("session_id")
    ip = request.client.host if request.client else None
    with frame(_("Profile")):
        _account_card(user)
        _limits_card(user)
        _password_card(user, session_id, ip)
        _tokens_card(user, ip)


def _account_card(user: User) -> None:
    with section(_("Account"), icon="person"):
        with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 items-center"):
            ui.label(_("Username")).classes("text-secondary")
            ui.label(user.username).classes("text-weight-medium")
            ui.label(_("Role")).classes("text-secondary")
            ui.label(_("Administrator") if user.role == "admin" else _("User"))
            ui.label(_("Member since")).classes("text-secondary")
            timestamp(user.created_at)
            ui.label(_("Language")).classes("text-secondary")

            async def change_language(event: object) -> None:
                value = getattr(event, "value", None)
                if not value or value == user.language:
                    return
                await call(users.set_language, user=user, language=Language(value))
                app.storage.user["lang"] = value
                ui.navigate.reload()

            ui.select(LANGUAGES, value=user.language.value, on_change=change_language).mark("profile-language").props(
                'dense outlined aria-label="Language"'
            ).classes("w-40")


def _limits_card(user: User) -> None:
    """The user's request rate and what is left of today's tokens (set by administrators)."""
    status = query(limits.quota_status, user=user)
    with section(_("Limits"), icon="speed"), ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 items-center"):
        ui.label(_("Requests a minute")).classes("text-secondary")
        ui.label(f"{status.rate_limit_per_minute:,}" if status.rate_limit_per_minute else _("no limit"))
        ui.label(_("Tokens today")).classes("text-secondary")
        if status.daily_token_quota:
            ui.label(_("{remaining} of {quota} left; resets {time}", remaining=f"{status.remaining_today:,}",
                       quota=f"{status.daily_token_quota:,}", time=format_time(status.resets_at))).mark("quota-left")
        else:
            ui.label(_("{used} used; no daily quota", used=f"{status.used_today:,}")).mark("quota-left")


def _password_card(user: User, session_id: str | None, ip: str | None) -> None:
    with section(_("Change password"), icon="lock"):
        with ui.column().classes("w-full max-w-md gap-2"):
            current = ui.input(_("Current password"), password=True).props(
                "outlined dense autocomplete=current-password"
            ).classes("w-full")
            new = new_password_input(_("New password"), min_length=PASSWORD_MIN_LENGTH, dense=True)
            repeat = repeat_password_input(_("Repeat new password"), of=new, dense=True)

            async def change() -> None:
                if not current.value or not new.validate() or not repeat.validate():
                    return
                button.props("loading")
                try:
                    await call(auth.change_password, user=user, current_password=current.value,
                               new_password=new.value, keep_session=session_id, ip=ip)
                except DomainError as error:
                    show_error(error)
                    return
                finally:
                    button.props(remove="loading")
                for field in (current, new, repeat):
                    field.set_value("")
                    field.props(remove="error")
                ui.notify(_("Password changed; your other sessions were signed out"), type="positive")

            button = ui.button(_("Change password"), on_click=change).props("unelevated").mark("change-password")


def _tokens_card(user: User, ip: str | None) -> None:
    with section(_("API tokens"), icon="key"):
        ui.label(_("Personal tokens let scripts call the API as you. A token is shown once; keep it secret.")).classes(
            "text-body2 text-secondary"
        )
        with ui.row().classes("w-full items-start gap-2"):
            name = ui.input(_("Token name"), placeholder=_("e.g. notebook")).props("outlined dense").classes(
                "grow min-w-[12rem]"
            )

            async def create() -> None:
                if not name.value.strip():
                    ui.notify(_("Give the token a name"), type="warning")
                    return
                try:
                    created = await call(auth.create_api_token, user=user, name=name.value, ip=ip)
                except DomainError as error:
                    show_error(error)
                    return
                name.set_value("")
                token_list.refresh()
                _show_new_token(created.token)

            ui.button(_("Create token"), icon="add", on_click=create).props("unelevated").mark("create-token")
            name.on("keydown.enter", create)

        @ui.refreshable
        def token_list() -> None:
            tokens = query(auth.list_api_tokens, user=user)
            if not tokens:
                ui.label(_("No API tokens yet.")).classes("text-secondary lp-empty")
                return
            with ui.list().props("bordered separator").classes("w-full rounded-borders"):
                for token in tokens:
                    with ui.item().classes("lp-token-row"):
                        with ui.item_section():
                            ui.item_label(token.name).classes("text-weight-medium")
                            ui.item_label(f"{token.prefix}…").props("caption").classes("lp-token")
                            ui.item_label(
                                f"{_('created')} {format_time(token.created_at)} · "
                                f"{_('last used')} {format_time(token.last_used_at)}"
                            ).props("caption")
                        with ui.item_section().props("side"):
                            ui.button(icon="delete", on_click=lambda t=token: revoke(t.id, t.name)).mark(
                                f"revoke-{token.name}").props(
                                f'flat round color=negative aria-label="{_("Revoke")}"'
                            ).tooltip(_("Revoke"))

        async def revoke(token_id: int, token_name: str) -> None:
            if not await confirm(_("Revoke the token {name}? Scripts using it stop working at once.",
                                   name=token_name), ok=_("Revoke")):
                return
            try:
                await call(auth.revoke_api_token, user=user, token_id=token_id, ip=ip)
            except DomainError as error:
                show_error(error)
                return
            token_list.refresh()
            ui.notify(_("Token revoked"), type="positive")

        token_list()


def _show_new_token(token: str) -> None:
    # Persistent, and deleted when done: the token must not linger in the page once the user has it.
    with ui.dialog().props("persistent") as dialog, ui.card().classes("w-full max-w-lg gap-3"):
        ui.label(_("Your new API token")).classes("text-h6")
        ui.label(_("Copy it now: it will not be shown again.")).classes("text-body2 text-warning")
        ui.label(token).classes("lp-token p-2 rounded-borders bg-grey-2 text-black w-full").mark("new-token")
        with ui.row().classes("w-full justify-end gap-2"):
            def copy() -> None:
                ui.clipboard.write(token)
                ui.notify(_("Copied"), type="positive")

            ui.button(_("Copy"), icon="content_copy", on_click=copy).props("flat")
            ui.button(_("Done"), on_click=dialog.delete).props("unelevated")
    dialog.open()
