"""Compare in a real browser: three models side by side, a blind vote, the leaderboard and a batch; screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import VIEWPORTS, api, assert_screenshot, settle, signed_in_admin


def test_compare_side_by_side_vote_and_batch(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    from tests.fakes import error, reply, start_openai

    with start_openai(models=["qwen3-8b", "llama-3.1-8b", "mistral-7b"]) as upstream:
        upstream.script.set(reply("**Paris** is the capital of France.", reasoning="Capital of France: Paris.",
                                  delay=0.02), model="qwen3-8b")
        upstream.script.set(reply("The capital of France is Paris, on the Seine.", delay=0.03), model="llama-3.1-8b")
        upstream.script.set(error(503, "overloaded"), model="mistral-7b")
        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        provider = api(portal, "POST", "/api/v1/providers", {"name": "lab", "kind": "openai", "max_retries": 0,
                                                             "base_url": upstream.base_url, "api_key": "test-key"},
                       token=admin["access_token"])
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/sync", token=admin["access_token"])
        shots = []
        for name, viewport in VIEWPORTS:
            with signed_in_admin(browser, portal, viewport) as page:
                page.goto(portal.url("/compare"))
                page.get_by_label("Models (2 to 4)").click()
                page.get_by_role("option", name="qwen3-8b · lab").click()  # the first two are chosen already
                page.keyboard.press("Escape")
                page.get_by_label("Prompt", exact=True).fill("What is the capital of France?")
                page.get_by_role("button", name="Run").click()
                page.get_by_text("on the Seine.").wait_for()
                page.get_by_text("HTTP 503").wait_for()
                page.locator(".lp-compare-metrics", has_text="tokens/s").first.wait_for()
                settle(page)
                shots.append(screenshots_dir / f"compare-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the compare page is {overflow} px too wide at {viewport['width']} px"

        with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
            page.goto(portal.url("/compare"))
            page.get_by_text("Blind", exact=True).click()
            page.get_by_label("Prompt", exact=True).fill("Capital of France, briefly?")
            page.get_by_role("button", name="Run").click()
            page.get_by_text("Which answer is better?").wait_for()
            settle(page)
            shots.append(screenshots_dir / "compare-blind-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            page.get_by_role("button", name="A is better").click()
            page.get_by_text("Your vote: A is better").wait_for()
            page.get_by_role("tab", name="Leaderboard").click()
            page.get_by_text("95 % interval").wait_for()
            settle(page)
            shots.append(screenshots_dir / "compare-leaderboard-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            page.get_by_role("tab", name="Batch").click()
            page.get_by_label("Prompts, one per line").fill("Capital of France?\nCapital of Italy?\nCapital of Spain?")
            page.get_by_role("button", name="Run batch").click()
            page.get_by_text("3 of 3 prompts answered").wait_for()
            page.get_by_text("Averages per model").wait_for()
            settle(page)
            shots.append(screenshots_dir / "compare-batch-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
    for shot in shots:
        assert_screenshot(shot)
