"""The admin console: users (roles, disabling, password resets)."""

from __future__ import annotations

from fastapi import Request
from nicegui import APIRouter, ui

from backend.errors import DomainError
from backend.models.user import PASSWORD_MIN_LENGTH, Role, User, UserUpdate
from backend.services import users
from pages.guard import page_user
from pages.service import call, query, show_error
from ui.frame import frame
from ui.i18n import _
from ui.widgets import confirm, format_time, new_password_input, section

router = APIRouter()


def forbidden() -> None:
    with ui.card().classes("w-full items-center p-8 gap-2 lp-forbidden"):
        ui.icon("block", size="3rem").classes("text-negative")
        ui.label(_("Administrators only")).classes("text-h6")
        ui.label(_("Your account may not open this page.")).classes("text-secondary")


@router.page("/admin")
def admin_page(request: Request) -> None:
    admin = page_user(request)
    ip = request.client.host if request.client else None
    with frame(_("Admin")):
        if admin.role != Role.admin:
            forbidden()
            return
        _users_section(admin, ip)


def _users_section(admin: User, ip: str | None) -> None:
    with section(_("Users"), icon="group"):
        search = ui.input(_("Search users"), on_change=lambda: user_list.refresh()).props(
            "outlined dense clearable debounce=300"
        ).classes("w-full max-w-sm")

        async def apply(user: User, changes: UserUpdate, done: str) -> None:
            try:
                await call(users.update_user, actor=admin, user_id=user.id, changes=changes, ip=ip)
            except DomainError as error:
                show_error(error)
            else:
                ui.notify(done, type="positive")
            user_list.refresh()

        async def toggle_disabled(user: User) -> None:
            if not user.disabled and not await confirm(
                _("Disable {name}? They are signed out everywhere at once.", name=user.username), ok=_("Disable")
            ):
                user_list.refresh()
                return
            await apply(user, UserUpdate(disabled=not user.disabled),
                        _("{name} enabled", name=user.username) if user.disabled
                        else _("{name} disabled", name=user.username))

        @ui.refreshable
        def user_list() -> None:
            found = query(users.list_users, search=search.value or None)
            if not found:
                ui.label(_("No user matches.")).classes("text-secondary")
                return
            with ui.column().classes("w-full gap-0 lp-user-list"):
                for user in found:
                    with ui.row().classes("lp-user-row w-full items-center justify-between gap-2 py-2"):
                        with ui.column().classes("gap-0 min-w-0"):
                            with ui.row().classes("items-center gap-2"):
                                ui.label(user.username).classes("text-weight-medium")
                                if user.disabled:
                                    ui.badge(_("disabled"), color="negative")
                            ui.label(f"{_('last sign-in')} {format_time(user.last_login_at)}").classes(
                                "text-caption text-secondary"
                            )
                        with ui.row().classes("items-center gap-2 no-wrap"):
                            ui.select(
                                {Role.admin.value: _("Administrator"), Role.user.value: _("User")},
                                value=user.role.value,
                                on_change=lambda e, u=user: apply(u, UserUpdate(role=Role(e.value)),
                                                                  _("Role changed")) if e.value != u.role else None,
                            ).props('dense outlined options-dense aria-label="Role"').classes("w-36")
                            ui.switch(value=not user.disabled, on_change=lambda _e, u=user: toggle_disabled(u)).mark(
                                f"enabled-{user.username}").props('aria-label="Enabled"').tooltip(_("Enabled"))
                            ui.button(icon="password", on_click=lambda u=user: reset_password(u)).mark(
                                f"reset-{user.username}").props(
                                f'flat round aria-label="{_("Reset password")}"'
                            ).tooltip(_("Reset password"))

        async def reset_password(user: User) -> None:
            with ui.dialog() as dialog, ui.card().classes("gap-3 w-full max-w-sm"):
                ui.label(_("New password for {name}", name=user.username)).classes("text-h6")
                password = new_password_input(_("New password"), min_length=PASSWORD_MIN_LENGTH, dense=True).mark(
                    "new-password"
                )
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")
                    def submit() -> None:
                        if password.validate():
                            dialog.submit(password.value)

                    ui.button(_("Set password"), on_click=submit).props("unelevated").mark("set-password")
            value = await dialog
            dialog.delete()
            if value:
                await apply(user, UserUpdate(password=value), _("Password reset; their sessions were ended"))

        user_list()
