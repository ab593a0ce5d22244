"""The SwanLab section of the Training page in a real browser against the real portal: an admin switches to cloud mode,
tests a key against a fake SwanLab server and saves it; screenshot at desktop and phone width (nothing wider than
the screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Portal
from tests.e2e.helpers import VIEWPORTS, assert_screenshot, settle, signed_in_admin
from tests.fakes.swanlab_server import start_swanlab

KEY = "sk-swanlab-browser-0123456789"


def no_overflow(page: Any, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the Training page is {overflow} px too wide at {width} px"


def test_an_admin_tests_and_saves_a_swanlab_cloud_key(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    shots = []
    with start_swanlab(api_key=KEY, username="ada") as cloud:
        with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
            page.set_default_timeout(20_000)
            page.goto(portal.url("/training"))
            page.get_by_text("SwanLab dashboard").wait_for()
            page.get_by_role("button", name="SwanLab cloud").click()
            page.get_by_label("SwanLab server").fill(cloud.url)
            page.get_by_label("API key").fill(KEY)
            page.get_by_role("button", name="Test connection").click()
            page.get_by_text(f"Connected to {cloud.url} as ada in").wait_for()
            page.get_by_role("button", name="Save").click()
            page.get_by_text("Key saved: sk-…6789").wait_for()
            page.get_by_text(f"Runs go to {cloud.url}").wait_for()
            assert cloud.logins[-1].headers["authorization"] == KEY

        for name, viewport in VIEWPORTS:
            with signed_in_admin(browser, portal, viewport) as page:
                page.set_default_timeout(20_000)
                page.goto(portal.url("/training"))
                page.get_by_text("Key saved: sk-…6789").wait_for()
                page.get_by_role("button", name="Test connection").click()  # the saved key
                page.get_by_text(f"Connected to {cloud.url} as ada in").wait_for()
                settle(page)
                page.evaluate("window.scrollTo(0, 0)")
                shots.append(screenshots_dir / f"training-swanlab-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                no_overflow(page, viewport["width"])
    for shot in shots:
        assert_screenshot(shot)
