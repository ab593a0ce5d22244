"""The OpenAI-compatible client's own reading of the SSE stream, against a minimal HTTP/1.1 server whose bytes on
the wire each test chooses: connection reuse, lines split across reads, a body that stays open after `[DONE]`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.providers import openai_client
from backend.providers.base import ChatRequest, Finish, ProviderConfig, TextDelta, Usage
from backend.providers.openai_client import OpenAIClient


def sse(*events: Any) -> list[bytes]:
    return [b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events]


def delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}


class WireServer:
    """Answers every POST with `pieces` as HTTP/1.1 chunks; `hold_open`: never sends the last chunk."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.hold_open = False
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append({"head": head.decode(), "body": json.loads(await reader.readexactly(length))})
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                for piece in self.pieces:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                if self.hold_open:
                    await asyncio.sleep(30)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"


@pytest.fixture
async def wire() -> AsyncIterator[WireServer]:
    server = WireServer()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


async def answer(client: OpenAIClient) -> list[Any]:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "Hi"}], extra={"seed": 7})
    return [event async for event in client.stream_chat(request)]


async def test_the_connection_is_reused_between_answers(wire: WireServer) -> None:
    wire.pieces = sse(delta("Hel"), delta("lo", "stop"), {"choices": [], "usage": {"prompt_tokens": 3,
                                                                                   "completion_tokens": 2}}, b"[DONE]")
    client = OpenAIClient(ProviderConfig(name="up", base_url=wire.url, api_key="k", headers=(("X-Team", "a"),)))
    try:
        for _ in range(3):
            assert await answer(client) == [TextDelta("Hel"), TextDelta("lo"), Usage(3, 2), Finish("stop")]
    finally:
        await client.aclose()
    assert wire.connections == 1
    head = wire.requests[0]["head"].lower()
    assert "authorization: bearer k" in head and "x-team: a" in head and "user-agent: " in head
    assert wire.requests[0]["body"]["seed"] == 7 and wire.requests[0]["body"]["stream"] is True


async def test_lines_split_across_reads_and_a_last_line_without_newline(wire: WireServer) -> None:
    raw = b"".join(sse(delta("a"), delta("b"))) + b": comment\r\n" + b"data: " + json.dumps(delta("", "stop")).encode()
    wire.pieces = [raw[i:i + 7] for i in range(0, len(raw), 7)]
    client = OpenAIClient(ProviderConfig(name="up", base_url=wire.url))
    try:
        assert await answer(client) == [TextDelta("a"), TextDelta("b"), Finish("stop")]
    finally:
        await client.aclose()


async def test_a_body_left_open_after_done_does_not_hold_the_answer(wire: WireServer, monkeypatch) -> None:
    monkeypatch.setattr(openai_client, "DRAIN_SECONDS", 0.2)
    wire.pieces = sse(delta("x", "stop"), b"[DONE]")
    wire.hold_open = True
    client = OpenAIClient(ProviderConfig(name="up", base_url=wire.url))
    try:
        started = time.monotonic()
        assert await answer(client) == [TextDelta("x"), Finish("stop")]
        assert time.monotonic() - started < 5
        assert await answer(client) == [TextDelta("x"), Finish("stop")]  # on a new connection
    finally:
        await client.aclose()
    assert wire.connections == 2
