"""The shared page layout: header with the user menu, the navigation drawer, dark mode and language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nicegui import app, ui

from backend.i18n import LANGUAGES, N_
from ui.i18n import _


@dataclass(frozen=True)
class NavItem:
    path: str
    icon: str
    label: str  # an English message id, translated when shown
    admin_only: bool = False


NAVIGATION = [
    NavItem("/", "home", N_("Home")),
    NavItem("/chat", "chat", N_("Chat")),
    NavItem("/compare", "compare_arrows", N_("Compare")),
    NavItem("/models", "hub", N_("Models")),
    NavItem("/datasets", "dataset", N_("Datasets")),
    NavItem("/training", "model_training", N_("Training")),
    NavItem("/prompts", "description", N_("Prompts")),
    NavItem("/admin", "admin_panel_settings", N_("Admin"), admin_only=True),
]

BRAND = "LLM Portal"

_sign_out: Callable[[], Awaitable[None]] | None = None


def set_sign_out_handler(handler: Callable[[], Awaitable[None]]) -> None:
    """The page layer says what "Sign out" does (ending the session is not the frame's business)."""
    global _sign_out
    _sign_out = handler


_admin_banner: Callable[[], None] | None = None


def set_admin_banner(show: Callable[[], None]) -> None:
    """The page layer draws what administrators see above every page (system alerts, from the admin console)."""
    global _admin_banner
    _admin_banner = show


async def _sign_out_clicked() -> None:
    if _sign_out is not None:
        await _sign_out()


def apply_theme() -> ui.dark_mode:
    """Colours, the stylesheet and the dark-mode preference of this browser."""
    ui.colors(primary="#4f46e5", secondary="#64748b", accent="#0ea5e9", positive="#16a34a", negative="#dc2626")
    ui.button.default_props("no-caps")
    ui.add_head_html('<link rel="stylesheet" href="/assets/portal.css">')
    return ui.dark_mode().bind_value(app.storage.user, "dark")


def language_select() -> ui.select:
    """Switching language reloads the page so that every string is shown in the new one."""

    def change(event: object) -> None:
        value = getattr(event, "value", None)
        if value and value != app.storage.user.get("lang"):
            app.storage.user["lang"] = value
            app.storage.user["lang_chosen"] = True  # picked before signing in: the account takes it over
            ui.navigate.reload()

    return ui.select(LANGUAGES, value=app.storage.user.get("lang", "en"), on_change=change).props(
        'dense options-dense borderless aria-label="Language"'
    ).classes("lp-language")


def _user_menu(username: str) -> None:
    account = ui.button(icon="account_circle").props("flat round color=white aria-label=Account")
    with account.mark("account-menu"), ui.menu():
        with ui.item().classes("lp-menu-user"), ui.item_section():
            ui.item_label(username).classes("text-weight-bold")
        ui.separator()
        ui.menu_item(_("Profile"), on_click=lambda: ui.navigate.to("/profile")).mark("profile")
        ui.menu_item(_("Sign out"), on_click=_sign_out_clicked).mark("sign-out")


@contextmanager
def frame(title: str, *, fill: bool = False) -> Iterator[ui.column]:
    """Lay out a signed-in page: everything inside the `with` block is the page's content. With `fill`, the content
    is the whole window below the header, without a heading (a workspace such as chat, which scrolls inside)."""
    dark = apply_theme()
    ui.page_title(f"{title} · {BRAND}")
    username = app.storage.user.get("username", "")
    is_admin = app.storage.user.get("role") == "admin"

    with ui.header(elevated=False).classes("lp-header items-center gap-2 px-3 py-2"):
        drawer_button = ui.button(icon="menu").props('flat round color=white aria-label="Menu"')
        ui.link(BRAND, "/").classes("lp-brand")
        ui.space()
        ui.button(icon="dark_mode", on_click=lambda: dark.set_value(not dark.value)).props(
            'flat round color=white aria-label="Dark mode"'
        ).bind_icon_from(dark, "value", lambda on: "light_mode" if on else "dark_mode").tooltip(_("Dark mode"))
        _user_menu(username)

    current = ui.context.client.page.path
    with ui.left_drawer(bordered=True).classes("lp-drawer").props("width=220 breakpoint=900") as drawer:
        with ui.list().classes("w-full pt-2"):
            for item in NAVIGATION:
                if item.admin_only and not is_admin:
                    continue
                entry = ui.item(on_click=lambda path=item.path: ui.navigate.to(path)).classes("lp-nav-item")
                if item.path == current:
                    entry.props("active").classes("lp-nav-active")
                with entry:
                    with ui.item_section().props("avatar"):
                        ui.icon(item.icon, color="primary")
                    with ui.item_section():
                        ui.item_label(_(item.label))
    drawer_button.on_click(drawer.toggle)
    if is_admin and _admin_banner is not None:
        _admin_banner()

    if fill:
        with ui.column().classes("lp-fill w-full gap-0") as content:
            yield content
        return
    with ui.column().classes("lp-content w-full max-w-screen-xl mx-auto p-4 gap-4") as content:
        ui.label(title).classes("text-h5 lp-page-heading")
        yield content


@contextmanager
def bare_frame(title: str) -> Iterator[ui.card]:
    """A centred card for pages outside the signed-in frame (sign-in, registration)."""
    apply_theme()
    ui.page_title(f"{title} · {BRAND}")
    with ui.column().classes("lp-bare w-full items-center p-4"):
        with ui.row().classes("w-full max-w-sm items-center justify-between"):
            ui.label(BRAND).classes("text-h6 text-primary text-weight-bold")
            language_select()
        with ui.card().classes("w-full max-w-sm p-6 gap-3") as card:
            ui.label(title).classes("text-h5")
            yield card
