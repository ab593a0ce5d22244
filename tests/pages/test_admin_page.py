"""The admin page: users, roles, disabling (which signs the user out of open pages at once), password reset."""

from __future__ import annotations

from nicegui.testing import User

from backend.db import session_scope
from backend.models.user import Role, UserUpdate
from backend.services import auth, users
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import notified, see, sign_in, signed_up


async def test_disabling_a_user_sends_their_open_page_to_login(user: User, create_user) -> None:
    await signed_up(user, "root")
    bob = create_user()
    await signed_up(bob, "bob")
    await bob.open("/profile")
    await bob.should_see("API tokens")

    await user.open("/admin")
    await user.should_see("bob")
    user.find(marker="enabled-bob").click()
    await see(user, content="Disable bob?")
    user.find(marker="confirm-ok").click()
    # The simulation navigates whichever User was touched last, so look at bob first; that it is bob's page
    # and only his that moves is checked in a real browser (tests/e2e).
    await see(bob, "No account yet?")  # bob's open page went to the login page by itself
    await see(user, "disabled")
    await sign_in(bob, "bob")
    await see(bob, "This account is disabled; ask an administrator")

    # Bob's sign-out push navigates whichever simulated User was touched last, which may have been this one: open
    # the console again rather than click on a page that may have been navigated away.
    await user.open("/admin")
    await see(user, "bob")
    user.find(marker="enabled-bob").click()  # enabling asks nothing
    await notified(user, "bob enabled")
    await user.should_not_see("disabled", retries=50)
    await sign_in(bob, "bob")
    await see(bob, "Welcome, bob")


async def test_disabling_through_the_api_reaches_open_pages_too(user: User) -> None:
    await signed_up(user, "root")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        assert root is not None
        bob = auth.register(session, username="bob", password="bob password 1")
        # root's own page is not touched when bob is disabled
        users.update_user(session, actor=root, user_id=bob.id, changes=UserUpdate(disabled=True))
    await user.should_see("Welcome, root")


async def test_reset_a_password(user: User, create_user) -> None:
    await signed_up(user, "root")
    bob = create_user()
    await signed_up(bob, "bob")

    await user.open("/admin")
    user.find(marker="reset-bob").click()
    await see(user, "New password for bob")
    user.find(marker="new-password").type("short")
    user.find(marker="set-password").click()
    await see(user, "At least 8 characters")
    user.find(marker="new-password").clear().type("reset password 1")
    user.find(marker="set-password").click()
    await see(bob, "No account yet?")
    await sign_in(bob, "bob", "reset password 1")
    await see(bob, "Welcome, bob")


async def test_search_users(user: User, create_user) -> None:
    await signed_up(user, "root")
    with session_scope() as session:
        auth.register(session, username="carol", password="carol password")
    await user.open("/admin")
    await user.should_see("carol")
    user.find("Search users").type("zzz")
    await see(user, "No user matches.")


async def test_a_demoted_admins_open_console_closes_at_once(user: User, create_user) -> None:
    await signed_up(user, "root")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        bob_id = users.create_user(session, actor=root, username="bob", password=TEST_PASSWORD,  # type: ignore[arg-type]
                                   role=Role.admin).id
    bob = create_user()  # one page open (the simulation sends every page of bob's to the same User)
    await sign_in(bob, "bob", path="/login?redirect_to=/admin")
    await see(bob, marker="new-user")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        users.update_user(session, actor=root, user_id=bob_id, changes=UserUpdate(role=Role.user))  # type: ignore[arg-type]
    # bob's page was built again by itself: the console, and what it could do, are gone
    await see(bob, "Administrators only")
    await bob.should_not_see(marker="new-user")
