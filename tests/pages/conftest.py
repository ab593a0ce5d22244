"""Page tests run main.py in NiceGUI's simulated `User` on a fresh SQLite database per test."""

from __future__ import annotations

import asyncio

from nicegui.testing import User

from tests.conftest import TEST_PASSWORD


async def see(user: User, target: str | None = None, **kwargs: object) -> None:
    """`should_see` with time for work done off the event loop (password hashing, database writes)."""
    await user.should_see(target, retries=50, **kwargs)  # type: ignore[arg-type]


async def sign_in(user: User, username: str, password: str = TEST_PASSWORD, *, path: str = "/login") -> None:
    await user.open(path)
    user.find(marker="username").type(username)
    user.find(marker="password").type(password)
    user.find(marker="submit").click()


async def register(user: User, username: str, password: str = TEST_PASSWORD) -> None:
    await user.open("/register")
    user.find("Username").type(username)
    user.find("Password").type(password)
    user.find("Repeat password").type(password)
    user.find(marker="submit").click()


def sign_out(user: User) -> None:
    user.find(marker="account-menu").click()
    user.find(marker="sign-out").click()


async def notified(user: User, message: str) -> None:
    """Wait until a notification with `message` has been shown (up to 15 s: on a busy machine, with other test
    processes training models, a handler's database work can take seconds)."""
    for _ in range(300):
        if user.notify.contains(message):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no notification {message!r}; got {user.notify.messages}")


async def signed_up(user: User, username: str) -> None:
    """Register `username` in this browser and land on the home page."""
    await register(user, username)
    await see(user, f"Welcome, {username}")


async def signed_up_then_out(user: User, username: str) -> None:
    await signed_up(user, username)
    sign_out(user)
    await see(user, "No account yet?")


async def gone(user: User, marker: str) -> None:
    """Wait until no element with `marker` is left (a dialog that saved and closed)."""
    await user.should_not_see(marker=marker, retries=50)


async def signed_up_with_models(user: User, upstream: object, username: str = "alice") -> None:
    """Sign up `username` (the first user: an admin) with the fake OpenAI upstream's models enabled as `acme/...`."""
    from sqlmodel import select

    from backend.db import session_scope
    from backend.models import User as UserRow
    from backend.models.provider import ProviderCreate
    from backend.services import providers

    await signed_up(user, username)
    with session_scope() as session:
        admin = session.exec(select(UserRow).where(UserRow.username == username)).one()
        provider = providers.create_provider(session, actor=admin, data=ProviderCreate(
            name="acme", kind="openai", base_url=upstream.base_url, api_key="test-key",  # type: ignore[attr-defined]
            max_retries=0))
        await providers.sync_models(session, actor=admin, provider_id=provider.id)  # type: ignore[arg-type]
