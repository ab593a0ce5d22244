"""The portal in a real headless Chromium: sign in, a wrong password, sign out; screenshots for a human eye.

Screenshots land in `tests/e2e/screenshots/` (git-ignored).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import (
    PHONE_VIEWPORT,
    VIEWPORTS,
    api,
    assert_screenshot,
    open_login,
    settle,
    sign_in,
    signed_in_admin,
)


def test_sign_in_and_home_screenshot(portal: Portal, browser: Any, page: Any, screenshots_dir: Path) -> None:
    open_login(page, portal)
    settle(page)
    login_shot = screenshots_dir / "login-desktop.png"
    page.screenshot(path=str(login_shot), full_page=True)

    sign_in(page)
    page.get_by_text(f"Welcome, {ADMIN_USERNAME}").wait_for()
    assert re.search(r"/$", page.url), page.url
    settle(page)
    home_shot = screenshots_dir / "home-desktop.png"
    page.screenshot(path=str(home_shot), full_page=True)

    # Phone width: a fresh context (no cookies) signs in again, which also shows the sign-in page on a phone.
    phone = browser.new_context(viewport=PHONE_VIEWPORT, locale="en-US", is_mobile=True, has_touch=True)
    try:
        phone.set_default_timeout(10_000)
        phone_page = phone.new_page()
        open_login(phone_page, portal)
        settle(phone_page)
        login_phone_shot = screenshots_dir / "login-phone.png"
        phone_page.screenshot(path=str(login_phone_shot), full_page=True)
        sign_in(phone_page)
        phone_page.get_by_text(f"Welcome, {ADMIN_USERNAME}").wait_for()
        settle(phone_page)
        phone_shot = screenshots_dir / "home-phone.png"
        phone_page.screenshot(path=str(phone_shot), full_page=True)
        overflow = phone_page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the home page is {overflow} px wider than a {PHONE_VIEWPORT['width']} px phone"
    finally:
        phone.close()

    for shot in (login_shot, home_shot, login_phone_shot, phone_shot):
        assert_screenshot(shot)


def test_wrong_password_shows_message(portal: Portal, page: Any) -> None:
    page.goto(portal.url("/login"))
    page.get_by_label("Username").wait_for()
    sign_in(page, password="not-the-password")
    page.get_by_text("Wrong username or password").wait_for()
    assert "/login" in page.url


def test_sign_out_returns_to_login(portal: Portal, page: Any) -> None:
    open_login(page, portal)
    sign_in(page)
    page.get_by_text(f"Welcome, {ADMIN_USERNAME}").wait_for()

    page.get_by_role("button", name="Account").click()
    page.get_by_text("Sign out", exact=True).click()
    page.wait_for_url(re.compile(r"/login"))
    page.get_by_role("button", name="Sign in").wait_for()

    # Signed out for real: the home page sends us back to sign in.
    page.goto(portal.url("/"))
    page.wait_for_url(re.compile(r"/login\?redirect_to="))


def test_disabling_a_user_moves_only_their_open_page_to_login(portal: Portal, browser: Any, page: Any) -> None:
    bob = api(portal, "POST", "/api/v1/auth/register", {"username": "bob", "password": "bob password 1"})
    open_login(page, portal)
    sign_in(page)
    page.get_by_text(f"Welcome, {ADMIN_USERNAME}").wait_for()

    bob_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    try:
        bob_page = bob_context.new_page()
        bob_page.goto(portal.url("/profile"))
        bob_page.get_by_label("Username").fill("bob")
        bob_page.get_by_label("Password").fill("bob password 1")
        bob_page.get_by_role("button", name="Sign in").click()
        bob_page.get_by_text("API tokens").first.wait_for()
        assert bob_page.url.endswith("/profile")

        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        api(portal, "PATCH", f"/api/v1/admin/users/{bob['id']}", {"disabled": True}, token=admin["access_token"])

        bob_page.wait_for_url(re.compile(r"/login"), timeout=5_000)  # without reloading: the server moved it
        bob_page.goto(portal.url("/profile"))
        bob_page.wait_for_url(re.compile(r"/login\?redirect_to="))
        page.wait_for_timeout(500)
        assert not re.search(r"/login", page.url), "the admin's own page must stay where it was"
    finally:
        bob_context.close()


def test_profile_and_admin_pages_screenshots(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    shots = []
    for name, viewport in VIEWPORTS:
        with signed_in_admin(browser, portal, viewport) as page:
            page.goto(portal.url("/profile"))
            page.get_by_label("Token name").fill(f"ci-{name}")
            page.get_by_role("button", name="Create token").click()
            page.get_by_text("Your new API token").wait_for()
            settle(page)
            shots.append(screenshots_dir / f"profile-token-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            page.get_by_role("button", name="Done").click()
            page.get_by_text(f"ci-{name}").first.wait_for()
            settle(page)
            shots.append(screenshots_dir / f"profile-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            page.goto(portal.url("/admin"))
            page.get_by_label("Search users").wait_for()
            settle(page)
            shots.append(screenshots_dir / f"admin-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the admin page is {overflow} px too wide at {viewport['width']} px"
    for shot in shots:
        assert_screenshot(shot)


def test_chinese_and_dark_mode(portal: Portal, page: Any, screenshots_dir: Path) -> None:
    open_login(page, portal)
    page.get_by_text("English").click()
    page.get_by_text("简体中文").click()
    page.get_by_role("button", name="登录").wait_for()
    page.get_by_label("用户名").fill(ADMIN_USERNAME)
    page.get_by_label("密码").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_text(f"欢迎，{ADMIN_USERNAME}").wait_for()
    page.get_by_role("button", name="Dark mode").click()
    page.wait_for_function("document.body.classList.contains('body--dark')")
    settle(page)
    shot = screenshots_dir / "home-zh-dark.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_screenshot(shot)
    # The language picked at sign-in was saved to the account: give the other tests their English back.
    admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert api(portal, "GET", "/api/v1/users/me", token=admin["access_token"])["language"] == "zh"
    api(portal, "PATCH", "/api/v1/users/me", {"language": "en"}, token=admin["access_token"])


def test_models_page_screenshots(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    from tests.fakes import reply, start_openai

    with start_openai(models=["deepseek-r1:14b", "gpt-4o-mini", "qwen2.5-vl-7b-instruct"]) as upstream:
        upstream.script.set(reply("hello"))
        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        provider = api(portal, "POST", "/api/v1/providers", {"name": "local-vllm", "kind": "openai",
                                                              "base_url": upstream.base_url, "api_key": "test-key"},
                        token=admin["access_token"])
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/test", token=admin["access_token"])
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/sync", token=admin["access_token"])
        shots = []
        for name, viewport in VIEWPORTS:
            with signed_in_admin(browser, portal, viewport) as page:
                page.goto(portal.url("/models"))
                page.get_by_text("3 of 3 models enabled").click()  # open the model list
                page.get_by_text("deepseek-r1:14b").first.wait_for()
                settle(page)
                shots.append(screenshots_dir / f"models-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the models page is {overflow} px too wide at {viewport['width']} px"
                page.get_by_role("button", name="Add provider").click()
                page.get_by_text("Preset").first.wait_for()
                settle(page)
                shots.append(screenshots_dir / f"models-add-{name}.png")
                page.screenshot(path=str(shots[-1]))
    for shot in shots:
        assert_screenshot(shot)
