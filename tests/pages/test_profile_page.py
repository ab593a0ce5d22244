"""The profile page: API tokens and password change."""

from __future__ import annotations

from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import ApiToken
from backend.security.tokens import hash_token
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import notified, see, sign_in, sign_out, signed_up


async def open_profile(user: User, name: str = "alice") -> None:
    await signed_up(user, name)
    await user.open("/profile")


async def test_create_a_token_see_it_once_and_revoke_it(user: User) -> None:
    await open_profile(user)
    await user.should_see("No API tokens yet.")
    user.find("Token name").type("notebook")
    user.find(marker="create-token").click()
    await see(user, "Your new API token")
    shown = next(iter(user.find(marker="new-token").elements)).text
    assert shown.startswith("lpt_")
    with session_scope() as session:
        stored = session.exec(select(ApiToken)).one()
    assert stored.name == "notebook"
    assert stored.token_hash == hash_token(shown) and shown not in stored.token_hash
    user.find("Done").click()
    await see(user, "notebook")
    await user.should_not_see(marker="new-token")

    user.find(marker="revoke-notebook").click()
    await see(user, content="Revoke the token notebook?")
    user.find(marker="confirm-ok").click()
    await see(user, "No API tokens yet.")


async def test_a_token_needs_a_name(user: User) -> None:
    await open_profile(user)
    user.find(marker="create-token").click()
    await notified(user, "Give the token a name")
    await user.should_see("No API tokens yet.")


async def test_change_password(user: User) -> None:
    await open_profile(user)
    user.find("Current password").type("not my password")
    user.find("New password").type("a new password")
    user.find("Repeat new password").type("a new password")
    user.find(marker="change-password").click()
    await notified(user, "The current password is wrong")

    user.find("Current password").clear().type(TEST_PASSWORD)
    user.find(marker="change-password").click()
    await notified(user, "Password changed; your other sessions were signed out")
    sign_out(user)
    await see(user, "No account yet?")
    await sign_in(user, "alice", "a new password")
    await see(user, "Welcome, alice")
