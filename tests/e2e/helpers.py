"""Helpers of the browser tests: signing in, settling a page before a screenshot, calling the API."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal

PHONE_VIEWPORT = {"width": 390, "height": 844}
MIN_SCREENSHOT_BYTES = 5_000  # a blank or broken page compresses to far less


def settle(page: Any) -> None:
    """Let the page finish loading fonts and icons, so that screenshots show what a user sees."""
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready.then(() => true)")
    page.wait_for_timeout(300)  # Quasar's transitions (drawer, inputs) finish


def open_login(page: Any, portal: Portal) -> None:
    page.goto(portal.url("/"))
    page.wait_for_url(re.compile(r"/login\?redirect_to="))
    page.get_by_label("Username").wait_for()


def sign_in(page: Any, password: str = ADMIN_PASSWORD) -> None:
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


VIEWPORTS = (("desktop", {"width": 1280, "height": 800}), ("phone", PHONE_VIEWPORT))


@contextmanager
def signed_in_admin(browser: Any, portal: Portal, viewport: dict[str, int]) -> Iterator[Any]:
    """A page of a fresh browser context at `viewport`, signed in as the admin."""
    context = browser.new_context(viewport=viewport, locale="en-US")
    try:
        page = context.new_page()
        open_login(page, portal)
        sign_in(page)
        page.get_by_text(f"Welcome, {ADMIN_USERNAME}").wait_for()
        yield page
    finally:
        context.close()


def assert_screenshot(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    size = path.stat().st_size
    assert size > MIN_SCREENSHOT_BYTES, f"{path} is only {size} bytes"


def api(portal: Portal, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(portal.url(path), method=method, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}
