"""Datasets in a real browser: a tus upload that loses its connection, survives a page reload and resumes from the
server's offset, is paused and resumed; the check before saving; the dataset's page. Screenshots at desktop and phone
width."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Portal
from tests.e2e.helpers import VIEWPORTS, assert_screenshot, settle, signed_in_admin

ROWS = 120_000  # about 17 MB: three PATCH requests of the page's 8 MB chunks
CHUNK = 8 * 1024 * 1024  # assets/upload.js


def dataset_file(tmp_path: Path) -> Path:
    path = tmp_path / "support-chats.jsonl"
    with path.open("w") as file:
        for i in range(ROWS):
            file.write(json.dumps({"messages": [{"role": "user", "content": f"Question {i}: where is my order?"},
                                                {"role": "assistant", "content": f"Answer {i}: on its way."}]}) + "\n")
        file.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    return path


def test_upload_survives_a_lost_connection_and_a_reload(portal: Portal, browser: Any, screenshots_dir: Path,
                                                        tmp_path: Path) -> None:
    from playwright.sync_api import Error as PlaywrightError

    path = dataset_file(tmp_path)
    shots = []
    with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
        page.goto(portal.url("/datasets"))
        page.get_by_text("No datasets yet.").wait_for()
        page.get_by_role("button", name="New dataset").click()
        page.get_by_text("Drop a file here, or click to choose one").wait_for()

        patches: list[str] = []  # the Upload-Offset of every PATCH the page sends, in order
        server_offsets: list[str] = []  # what the server answered to every HEAD
        held: list[Any] = []  # a PATCH kept waiting, so that the page can be seen (and paused) mid-upload
        first_went_through = threading.Event()
        mode = {"now": "cut"}

        def network(route: Any) -> None:
            method = route.request.method
            if method == "HEAD":
                response = route.fetch()
                server_offsets.append(response.headers.get("upload-offset", ""))
                route.fulfill(response=response)
                return
            if method != "PATCH":
                route.continue_()
                return
            patches.append(route.request.headers.get("upload-offset", ""))
            if mode["now"] == "cut":
                if not first_went_through.is_set():
                    first_went_through.set()
                    route.continue_()
                else:
                    route.abort("connectionreset")  # the network goes away for good
            elif mode["now"] == "hold":
                mode["now"] = "pass"
                held.append(route)
            else:
                route.continue_()

        page.route("**/api/v1/uploads/*", network)
        page.locator(".lp-file").set_input_files(str(path))
        page.get_by_text("Connection lost; trying again").wait_for()
        settle(page)
        shots.append(screenshots_dir / "datasets-upload-retrying-desktop.png")
        page.screenshot(path=str(shots[-1]))
        assert patches[0] == "0" and set(patches[1:]) == {str(CHUNK)}  # the retries go on from the first chunk

        page.reload()  # the tab is closed and opened again: the same file, dropped again, goes on
        mode["now"], patches[:], server_offsets[:] = "hold", [], []  # the route stays: it is the page's
        page.get_by_role("button", name="New dataset").click()
        page.locator(".lp-file").set_input_files(str(path))
        page.get_by_text("Going on from where it stopped…").wait_for()
        for _ in range(200):  # the held PATCH reaches the handler
            if held:
                break
            page.wait_for_timeout(50)
        assert server_offsets == [str(CHUNK)]  # the server kept the first chunk
        assert patches == [str(CHUNK)]  # and the page asked for it, then went on from there, not from 0

        page.get_by_role("button", name="Pause").click()
        page.get_by_text("Paused ·", exact=False).wait_for()
        with contextlib.suppress(PlaywrightError):  # the page gave it up; it never reaches the server
            held.pop().abort()
        page.get_by_role("button", name="Resume").click()
        page.get_by_text(f"{ROWS:,} good rows, 1 bad").wait_for(timeout=60_000)
        assert server_offsets[-1] == str(CHUNK)  # after the pause, the page asked again where the server was
        assert patches == [str(CHUNK), str(CHUNK), str(2 * CHUNK)]  # and went on from there to the end
        page.unroute("**/api/v1/uploads/*")
        page.get_by_text("no assistant message to learn from", exact=False).first.wait_for()
        settle(page)
        shots.append(screenshots_dir / "datasets-check-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        page.get_by_role("button", name="Save without the 1 bad rows").click()
        page.get_by_text(f"{ROWS:,} rows · OpenAI messages · by admin").wait_for(timeout=60_000)
        page.get_by_text("Question 0: where is my order?").wait_for()
        settle(page)
        shots.append(screenshots_dir / "datasets-detail-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        page.get_by_role("tab", name="Statistics").click()
        page.get_by_text("Rows by length").wait_for()
        settle(page)
        shots.append(screenshots_dir / "datasets-stats-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

    for name, viewport in VIEWPORTS:
        with signed_in_admin(browser, portal, viewport) as page:
            page.goto(portal.url("/datasets"))
            page.get_by_text("support-chats").wait_for()
            settle(page)
            shots.append(screenshots_dir / f"datasets-list-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the datasets page is {overflow} px too wide at {viewport['width']} px"
            page.get_by_text("support-chats").click()
            page.get_by_text("Question 0: where is my order?").wait_for()
            settle(page)
            shots.append(screenshots_dir / f"datasets-rows-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the dataset page is {overflow} px too wide at {viewport['width']} px"
    for shot in shots:
        assert_screenshot(shot)
