"""The home page: where each module of the portal is."""

from __future__ import annotations

from fastapi import Request
from nicegui import APIRouter, ui

from backend.i18n import N_
from pages.guard import page_user
from ui.frame import NAVIGATION, frame
from ui.i18n import _

router = APIRouter()

DESCRIPTIONS = {
    "/chat": N_("Talk to any model the company has configured, with its reasoning shown live."),
    "/compare": N_("One prompt, several models side by side, with timings and blind votes."),
    "/models": N_("Providers and their models: keys, connection tests and model lists."),
    "/datasets": N_("Upload, validate and version the data you fine-tune on."),
    "/training": N_("Fine-tune models with LoRA, QLoRA or fully, in a queue, and watch them learn."),
    "/prompts": N_("Prompt templates with variables and versions, and a playground."),
    "/admin": N_("Users, usage, system load and the audit log."),
}


@router.page("/")
def home_page(request: Request) -> None:
    user = page_user(request)
    with frame(_("Home")):
        ui.label(_("Welcome, {name}", name=user.username)).classes("text-subtitle1 text-secondary")
        with ui.element("div").classes("grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-3 gap-3 sm:gap-4 w-full"):
            for item in NAVIGATION:
                if item.path not in DESCRIPTIONS or (item.admin_only and user.role != "admin"):
                    continue
                with ui.card().classes("lp-module-card").on("click", lambda path=item.path: ui.navigate.to(path)):
                    with ui.row().classes("items-center gap-3 no-wrap w-full"):
                        ui.icon(item.icon, size="2rem").classes("text-primary")
                        ui.label(_(item.label)).classes("text-h6")
                    ui.label(_(DESCRIPTIONS[item.path])).classes("text-body2 text-secondary")
