"""Sign-in, registration, the frame, redirects and language, through NiceGUI's simulated user."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User

from backend.config import reset_settings
from backend.db import session_scope
from backend.services import auth
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import see, sign_in, sign_out, signed_up, signed_up_then_out
from ui.frame import NAVIGATION


async def test_register_see_the_frame_sign_out_and_in_again(user: User) -> None:
    await signed_up(user, "alice")
    for module in ("Chat", "Compare", "Models", "Datasets", "Training", "Prompts", "Admin"):
        await user.should_see(module)
    sign_out(user)
    await see(user, "No account yet?")
    await sign_in(user, "alice")
    await see(user, "Welcome, alice")


async def test_first_user_is_told_they_become_admin(user: User) -> None:
    await user.open("/register")
    await user.should_see("You are the first user: your account will be the administrator.")


async def test_wrong_password_is_explained_and_nothing_else_happens(user: User) -> None:
    await signed_up_then_out(user, "alice")
    await sign_in(user, "alice", "not the password")
    await see(user, "Wrong username or password")
    await user.should_not_see("Welcome, alice")


async def test_empty_form_asks_for_both_fields(user: User) -> None:
    await user.open("/login")
    user.find(marker="submit").click()
    await see(user, "Enter your username and password")


async def test_a_page_redirects_to_login_and_back(user: User) -> None:
    await signed_up_then_out(user, "alice")
    await user.open("/profile")
    await user.should_see("No account yet?")  # the login page, not the profile
    await sign_in(user, "alice", path=user.back_history[-1])
    await see(user, "API tokens")


async def test_redirect_to_only_goes_to_local_pages(user: User) -> None:
    await signed_up_then_out(user, "alice")
    await sign_in(user, "alice", path="/login?redirect_to=//evil.example/steal")
    await see(user, "Welcome, alice")


async def test_five_failures_lock_the_form_and_say_when_to_retry(user: User) -> None:
    await signed_up_then_out(user, "alice")
    for _ in range(5):
        await sign_in(user, "alice", "wrong password")
        await see(user, "Wrong username or password")
    await sign_in(user, "alice")
    await see(user, content="try again in")


async def test_a_user_cannot_open_the_admin_page(user: User, create_user) -> None:
    await signed_up(user, "root")
    bob = create_user()
    await signed_up(bob, "bob")
    await bob.should_not_see("Admin")  # not in the navigation
    await bob.open("/admin")
    await bob.should_see("Administrators only")
    await bob.should_not_see("Search users")


async def test_switching_language_on_the_login_page(user: User) -> None:
    await user.open("/login")
    user.find(ui.select).click()
    user.find("简体中文").click()
    await see(user, "还没有账号？")


async def test_language_on_the_profile_is_kept_for_the_account(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/profile")
    user.find(marker="profile-language").click()
    user.find("简体中文").click()
    await see(user, "修改密码")
    sign_out(user)
    await see(user, "还没有账号？")
    await sign_in(user, "alice")
    await see(user, "欢迎，alice")


async def test_language_picked_before_signing_in_is_saved_to_the_account(user: User, create_user) -> None:
    await signed_up(user, "alice")
    other_browser = create_user()
    await other_browser.open("/login")
    other_browser.find(ui.select).click()
    other_browser.find("简体中文").click()
    await see(other_browser, "还没有账号？")
    await sign_in(other_browser, "alice")
    await see(other_browser, "欢迎，alice")
    with session_scope() as session:
        alice = auth.get_user_by_name(session, "alice")
        assert alice is not None and alice.language == "zh"


async def test_closed_registration_says_so(user: User, monkeypatch: pytest.MonkeyPatch, create_user) -> None:
    await signed_up(user, "founder")
    monkeypatch.setenv("ALLOW_REGISTRATION", "false")
    reset_settings()
    other = create_user()
    await other.open("/register")
    await other.should_see("Registration is closed; ask an administrator for an account")
    await other.open("/login")
    await other.should_not_see("No account yet?")


@pytest.fixture
def admin_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USERNAME", "boss")
    monkeypatch.setenv("ADMIN_PASSWORD", TEST_PASSWORD)
    reset_settings()


@pytest.mark.usefixtures("admin_from_environment")  # set before the `user` fixture starts main.py
async def test_admin_from_the_environment_can_sign_in(user: User) -> None:
    await user.open("/register")
    await user.should_not_see("You are the first user: your account will be the administrator.")
    await sign_in(user, "boss")
    await see(user, "Welcome, boss")
    await user.should_see("Admin")


async def test_the_portal_answers_api_errors_as_json_and_pages_with_redirects(user: User) -> None:
    missing = await user.http_client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    unauthorised = await user.http_client.get("/api/v1/users/me")
    assert unauthorised.status_code == 401 and "detail" in unauthorised.json()
    page = await user.http_client.get("/profile")
    assert page.status_code == 303 and page.headers["location"] == "/login?redirect_to=%2Fprofile"
    assert (await user.http_client.get("/api/v1/health")).json() == {"status": "ok"}


async def test_every_module_of_the_navigation_opens_inside_the_frame(user: User) -> None:
    await signed_up(user, "alice")  # the first user: an admin, who sees every module
    for item in NAVIGATION:
        await user.open(item.path)
        await user.should_see(marker="account-menu")
        await user.should_not_see("Coming soon")
