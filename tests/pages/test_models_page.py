"""The Models page: add, test, sync, enable, edit and delete providers and models as an admin."""

from __future__ import annotations

from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import Provider
from backend.services import providers
from tests.pages.conftest import gone, see, signed_up


async def add_provider(user: User, upstream, *, name: str = "acme", key: str = "test-key") -> None:
    await user.open("/models")
    user.find(marker="add-provider").click()
    await see(user, marker="provider-name")
    user.find(marker="provider-name").type(name)
    user.find(marker="provider-url").type(upstream.base_url)
    user.find(marker="provider-key").type(key)
    user.find(marker="save-provider").click()
    await see(user, marker=f"provider-{name}")


async def test_add_test_sync_and_curate_a_provider(user: User, openai_upstream) -> None:
    await signed_up(user, "admin")
    await user.open("/models")
    await user.should_see("No provider yet: add one to make models available.")
    await add_provider(user, openai_upstream)
    await user.should_see("not tested")
    with session_scope() as session:
        stored = session.exec(select(Provider)).one()
    assert stored.api_key_encrypted and "test-key" not in stored.api_key_encrypted
    await user.should_not_see("test-key")  # only the masked hint is on the page
    await user.should_see("API key: ••••")

    user.find(marker="test-acme").click()
    await see(user, content="connected ·")

    user.find(marker="sync-acme").click()
    await see(user, "3 of 3 models enabled")
    user.find(marker="enable-acme/slow-model").click()
    await see(user, "2 of 3 models enabled")
    with session_scope() as session:
        assert [m.id for m in providers.list_models(session)] == ["acme/fake-chat", "acme/fake-r1"]

    user.find(marker="edit-model-acme/fake-chat").click()
    await see(user, marker="display-name")
    user.find(marker="display-name").type("House chat")
    user.find(marker="cap-tools").click()
    user.find(marker="save-model").click()
    await gone(user, "display-name")
    await see(user, "House chat")
    with session_scope() as session:
        model = next(m for m in providers.list_models(session) if m.id == "acme/fake-chat")
    assert model.name == "House chat", user.notify.messages
    assert model.capabilities == ["tools"]  # nothing guessed from "fake-chat"; ticked by hand


async def test_a_wrong_key_shows_the_reason(user: User, openai_upstream) -> None:
    await signed_up(user, "admin")
    await add_provider(user, openai_upstream, key="wrong")
    user.find(marker="test-acme").click()
    await see(user, "connection failed")
    assert any("refused the API key" in message for message in user.notify.messages)
    user.find(marker="sync-acme").click()
    await see(user, "No models yet: sync the model list.")


async def test_presets_fill_the_form_and_bad_input_is_refused(user: User) -> None:
    await signed_up(user, "admin")
    await user.open("/models")
    user.find(marker="add-provider").click()
    await see(user, marker="preset")
    user.find(marker="preset").click()
    user.find("DeepSeek").click()
    url = next(iter(user.find(marker="provider-url").elements))
    assert url.value == "https://api.deepseek.com/v1"
    name = next(iter(user.find(marker="provider-name").elements))
    assert name.value == "deepseek"
    user.find(marker="provider-name").clear().type("bad/name")
    user.find(marker="save-provider").click()
    await see(user, "Letters, digits, '.', '_' or '-'; up to 40")
    with session_scope() as session:
        assert session.exec(select(Provider)).all() == []


async def test_edit_and_delete(user: User, openai_upstream) -> None:
    await signed_up(user, "admin")
    await add_provider(user, openai_upstream)
    user.find(marker="edit-acme").click()
    await see(user, "Edit acme")
    user.find(marker="provider-name").clear().type("acme2")
    user.find(marker="save-provider").click()
    await see(user, marker="provider-acme2")
    user.find(marker="delete-acme2").click()
    await see(user, content="Delete acme2")
    user.find(marker="confirm-ok").click()
    await see(user, "No provider yet: add one to make models available.")


async def test_users_see_only_enabled_models(user: User, create_user, openai_upstream) -> None:
    await signed_up(user, "admin")
    await add_provider(user, openai_upstream)
    user.find(marker="sync-acme").click()
    await see(user, "3 of 3 models enabled")
    user.find(marker="enable-acme/slow-model").click()
    await see(user, "2 of 3 models enabled")
    bob = create_user()
    await signed_up(bob, "bob")
    await bob.open("/models")
    await bob.should_see("acme/fake-chat")
    await bob.should_not_see("acme/slow-model")
    await bob.should_not_see(marker="add-provider")
