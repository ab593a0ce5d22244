"""The admin console in a real browser: every tab at desktop and phone width, the alert banner; screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import VIEWPORTS, api, assert_screenshot, settle, signed_in_admin

TABS = (("users", "carol"), ("usage", "By model"), ("system", "Portal process"),
        ("audit", "auth.login"), ("settings", "Anyone may register an account"))


def test_admin_tabs_and_alert_banner(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    from tests.fakes import reply, start_openai

    with start_openai(models=["qwen3-8b", "llama-3.1-8b"]) as upstream:
        upstream.script.set(reply("Hello there.", usage=(120, 40)))
        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        token = admin["access_token"]
        provider = api(portal, "POST", "/api/v1/providers", {"name": "lab", "kind": "openai", "max_retries": 0,
                                                             "base_url": upstream.base_url, "api_key": "test-key"},
                       token=token)
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/sync", token=token)
        for name in ("carol", "dave"):
            api(portal, "POST", "/api/v1/admin/users", {"username": name, "password": f"{name} password 1"},
                token=token)
        carol = api(portal, "POST", "/api/v1/auth/login", {"username": "carol", "password": "carol password 1"})
        for model in ("lab/qwen3-8b", "lab/qwen3-8b", "lab/llama-3.1-8b"):
            for who in (token, carol["access_token"]):
                api(portal, "POST", "/v1/chat/completions",
                    {"model": model, "messages": [{"role": "user", "content": "hi"}]}, token=who)
        carol_id = next(u["id"] for u in api(portal, "GET", "/api/v1/admin/users?q=carol", token=token)["data"])
        api(portal, "PATCH", f"/api/v1/admin/users/{carol_id}", {"rate_limit_per_minute": 20,
                                                                  "daily_token_quota": 100000}, token=token)

    shots = []
    for name, viewport in VIEWPORTS:
        with signed_in_admin(browser, portal, viewport) as page:
            for tab, text in TABS:
                page.goto(portal.url(f"/admin?tab={tab}"))
                page.get_by_text(text, exact=True).first.wait_for()
                if tab == "usage":
                    page.locator(".nicegui-echart canvas").first.wait_for()
                settle(page)
                shots.append(screenshots_dir / f"admin-{tab}-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the {tab} tab is {overflow} px too wide at {viewport['width']} px"

    api(portal, "PATCH", "/api/v1/admin/settings", {"alert_memory_percent": 0.1}, token=token)
    try:
        with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
            page.goto(portal.url("/"))
            page.get_by_text("Memory at").wait_for()
            settle(page)
            shots.append(screenshots_dir / "admin-alert-banner-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=False)
    finally:
        api(portal, "PATCH", "/api/v1/admin/settings", {"alert_memory_percent": 0}, token=token)
    for shot in shots:
        assert_screenshot(shot)
