"""Modules that later work fills in: each shows a clear "coming soon" page in the frame until then."""

from __future__ import annotations

from fastapi import Request
from nicegui import APIRouter

from pages.guard import page_user
from pages.home import DESCRIPTIONS
from ui.frame import coming_soon, frame
from ui.i18n import _

router = APIRouter()


def _placeholder(request: Request, title: str, path: str) -> None:
    page_user(request)
    with frame(_(title)):
        coming_soon(_(DESCRIPTIONS[path]))
