"""One module per page; each exposes a NiceGUI `APIRouter` of `@router.page` functions. Only main.py imports this."""

from __future__ import annotations

from fastapi import FastAPI

from pages import admin, auth_pages, chat, compare, datasets, home, models, profile, prompts, training


def install(app: FastAPI) -> None:
    # FastAPI wraps the app's lifespan in each included router's; these routers have none of their own, and the page
    # tests install them again for every test (the simulation removes page routes in between), which would nest the
    # lifespan deeper each time until Python's recursion limit.
    lifespan = app.router.lifespan_context
    for module in (auth_pages, home, profile, models, chat, compare, datasets, prompts, training, admin):
        app.include_router(module.router)
    app.router.lifespan_context = lifespan
