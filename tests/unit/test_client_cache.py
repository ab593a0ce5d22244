"""Upstream clients kept per event loop: one whose loop has ended is let go without a close scheduled on another
loop (which fails there, "Event loop is closed", and is logged as an error)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from backend.providers.base import ProviderConfig
from backend.services import inference


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_client_of_an_ended_loop_is_let_go_without_a_close_on_another_loop(kind: str) -> None:
    config = ProviderConfig(name=f"abandoned-{kind}", base_url="http://127.0.0.1:9/v1")

    async def make() -> object:
        return inference.client_for(kind, config)

    client = asyncio.run(make())  # its loop ends here
    http = client._client._client  # type: ignore[attr-defined]
    assert not http.is_closed
    for key in [k for k in inference._clients if k[2] == config]:
        inference._abandon(inference._clients.pop(key)[1])  # what client_for does with an ended loop's client
    assert http.is_closed
    del client, http

    async def collect() -> list[str]:
        gc.collect()  # the SDK's finalizer runs here, on this loop
        return [repr(task.get_coro()) for task in asyncio.all_tasks()]

    assert not [coro for coro in asyncio.run(collect()) if "aclose" in coro]
