"""One module per page; each exposes a NiceGUI `APIRouter` of `@router.page` functions. Only main.py imports this."""

from __future__ import annotations

from fastapi import FastAPI

from pages import admin, auth_pages, chat, compare, datasets, home, models, profile, prompts, training


def install(app: FastAPI) -> None:
    for module in (auth_pages, home, profile, models, chat, compare, datasets, prompts, training, admin):
        app.include_router(module.router)
