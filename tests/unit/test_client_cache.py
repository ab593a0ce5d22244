"""The cache of provider clients: one per event loop and config, and a full cache never touches a finished loop."""

from __future__ import annotations

import asyncio
import gc

from backend.providers.base import ProviderConfig
from backend.services import inference


def config(i: int) -> ProviderConfig:
    return ProviderConfig(name=f"p{i}", base_url=f"http://127.0.0.1:9/{i}/v1")


async def client_of(i: int):
    return inference.client_for("openai", config(i))


def test_clients_are_closed_with_their_loop(monkeypatch, caplog,
                                                                              openai_upstream) -> None:
    monkeypatch.setattr(inference, "_clients", type(inference._clients)())

    async def used_client(i: int) -> None:  # a connection stays in the client's pool when its loop ends
        client = inference.client_for("openai", ProviderConfig(name=f"p{i}", base_url=openai_upstream.base_url,
                                                               api_key="test-key"))
        await client.list_models()
        await inference.close_clients()  # as the portal does at shutdown: its connections belong to this loop

    for i in range(inference._CLIENT_CACHE_SIZE + 10):  # each on a loop of its own that then ends, like tests do
        asyncio.run(used_client(i % 3))
    gc.collect()
    assert len(inference._clients) == 0  # each closed and forgotten with its loop
    assert "Event loop is closed" not in caplog.text


async def test_the_same_loop_and_config_share_a_client_and_evicted_ones_are_closed(monkeypatch) -> None:
    monkeypatch.setattr(inference, "_clients", type(inference._clients)())
    first = await client_of(0)
    assert await client_of(0) is first and await client_of(1) is not first
    closed = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(first, "aclose", aclose)
    for i in range(2, inference._CLIENT_CACHE_SIZE + 2):
        await client_of(i)
    await asyncio.sleep(0)
    assert closed == [True]  # evicted from this loop's cache: closed on it


def test_a_client_is_never_handed_to_another_loop(monkeypatch) -> None:
    monkeypatch.setattr(inference, "_clients", type(inference._clients)())
    old = asyncio.run(client_of(0))
    # Whatever id the next loop gets, a client made on another loop is never handed out.
    new = asyncio.run(client_of(0))
    assert new is not old
