"""Small widgets that several pages use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from nicegui import ui

from ui.i18n import _


@contextmanager
def section(title: str, *, icon: str | None = None) -> Iterator[ui.card]:
    """A titled card: the unit every settings-like page is made of."""
    with ui.card().classes("w-full gap-3") as card:
        with ui.row().classes("items-center gap-2"):
            if icon:
                ui.icon(icon, size="1.4rem").classes("text-primary")
            ui.label(title).classes("text-h6")
        yield card


def format_time(value: datetime | None) -> str:
    """A time, in UTC and labelled so: the server's zone would mean nothing to the reader."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else _("never")


def timestamp(value: datetime | None, *, classes: str = "") -> ui.label:
    return ui.label(format_time(value)).classes(classes)


async def confirm(message: str, *, ok: str, cancel: str | None = None) -> bool:
    with ui.dialog() as dialog, ui.card().classes("gap-4 max-w-md"):
        ui.label(message).classes("text-body1")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(cancel or _("Cancel"), on_click=lambda: dialog.submit(False)).props("flat")
            ui.button(ok, on_click=lambda: dialog.submit(True)).props("unelevated color=negative").mark("confirm-ok")
    result = await dialog
    dialog.delete()
    return bool(result)


def new_password_input(label: str, *, min_length: int, dense: bool = False) -> ui.input:
    """A field for choosing a password, checked for length as the user leaves it."""
    rule = _("At least {min} characters", min=min_length)
    field = ui.input(label, password=True, password_toggle_button=True,
                     validation={rule: lambda v: len(v or "") >= min_length})
    return field.props(f"outlined autocomplete=new-password lazy-rules {'dense' if dense else ''}").classes("w-full")


def repeat_password_input(label: str, *, of: ui.input, dense: bool = False) -> ui.input:
    field = ui.input(label, password=True, validation={_("The passwords do not match"): lambda v: v == of.value})
    return field.props(f"outlined autocomplete=new-password lazy-rules {'dense' if dense else ''}").classes("w-full")
