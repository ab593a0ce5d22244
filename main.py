"""LLM Portal: wiring only. Settings, database, API routers, pages, then `ui.run`."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from nicegui import app, ui
from nicegui.storage import Storage

import pages
from backend import api
from backend.config import get_settings
from backend.db import init_db, session_scope
from backend.services import auth, chat, compare, inference
from jobs import scheduler
from pages import guard

ASSETS_DIR = Path(__file__).parent / "assets"


def create_app() -> None:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_db(settings.effective_database_url)
    with session_scope() as session:
        auth.ensure_admin(session, username=settings.admin_username, password=settings.admin_password)
        chat.mark_interrupted(session)  # answers cut off by the last shutdown keep what arrived
        compare.mark_interrupted(session)

    Storage.path = settings.data_dir / "storage"
    Storage.redis_url = settings.redis_url or None  # NiceGUI's shared storage, for several instances
    app.storage = Storage()

    app.add_static_files("/assets", ASSETS_DIR)
    api.serve_in_front_of(app, api.create_api_app())
    guard.install()
    pages.install(app)
    # The training queue's dispatcher lives in the running event loop; workers outlive a stop (found again on start).
    app.on_startup(scheduler.start)
    app.on_shutdown(scheduler.stop)
    app.on_shutdown(inference.close_clients)  # upstream connections belong to this loop
    # What start-up loaded lives as long as the process: frozen, it is left out of every full garbage collection, which
    # otherwise walks its ~400k objects (~200 ms with the event loop stopped, in the middle of whatever is streaming).
    # Not in NiceGUI's simulated user (page tests), which runs this file once per test in one process: freezing there
    # would keep every test's objects for good, and the collection would run earlier tests' finalizers (an unclosed
    # SDK client schedules its close on whatever loop runs) inside the next test.
    if os.environ.get("NICEGUI_USER_SIMULATION") != "true":
        app.on_startup(freeze_startup_objects)


def freeze_startup_objects() -> None:
    gc.collect()
    gc.freeze()


if __name__ in {"__main__", "__mp_main__"}:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    create_app()
    settings = get_settings()
    ui.run(
        host=settings.host,
        port=settings.port,
        title="LLM Portal",
        favicon=ASSETS_DIR / "favicon.svg",
        storage_secret=settings.effective_secret_key,
        reload=False,
        show=False,
        language="en-US",
        reconnect_timeout=10,
    )
