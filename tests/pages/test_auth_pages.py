from nicegui.testing import User

from tests.pages.conftest import register, see, sign_in, sign_out


async def test_register_sign_in_and_out(user: User) -> None:
    await register(user, "alice")
    await see(user, "Welcome, alice")
    await see(user, "Chat")
    sign_out(user)
    await see(user, "Sign in")
    await sign_in(user, "alice")
    await see(user, "Welcome, alice")
