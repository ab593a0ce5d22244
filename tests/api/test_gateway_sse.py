"""The gateway's pre-encoded SSE chunks are the JSON an OpenAI client expects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from backend.api.gateway import _Chunks, _sse
from backend.providers.base import Finish, StreamEvent, TextDelta, Usage


def parse(event: bytes) -> dict:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    return json.loads(event[6:])


def test_chunks_are_openai_chunk_objects() -> None:
    chunks = _Chunks("chatcmpl-1", 'up/mo"del-ü', 1700000000)
    identity = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": 'up/mo"del-ü'}
    assert parse(chunks.content('say "hi"\n— 你好')) == {
        **identity, "choices": [{"index": 0, "delta": {"content": 'say "hi"\n— 你好'}, "finish_reason": None}]}
    assert parse(chunks.delta({"reasoning_content": "hm"})) == {
        **identity, "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": None}]}
    assert parse(chunks.delta({}, finish="length")) == {
        **identity, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}


async def _events(*events: StreamEvent) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


async def pieces(first: StreamEvent | None, *rest: StreamEvent, include_usage: bool = False) -> list[bytes]:
    return [piece async for piece in _sse(_events(*rest), first, completion_id="c", model="m",
                                           include_usage=include_usage)]


async def test_the_role_chunk_leaves_with_the_first_token() -> None:
    sent = await pieces(Usage(3, 0), TextDelta("Hi"), Finish("stop"), include_usage=True)
    first = sent[0].split(b"\n\n")
    assert [parse(e + b"\n\n")["choices"][0]["delta"] for e in first if e] == [
        {"role": "assistant", "content": ""}, {"content": "Hi"}]
    assert parse(sent[1])["choices"][0]["finish_reason"] == "stop"
    assert parse(sent[2])["usage"] == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
    assert sent[3] == b"data: [DONE]\n\n"


async def test_an_answer_without_chunks_still_opens_with_the_role() -> None:
    sent = await pieces(None)
    assert parse(sent[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert sent[1:] == [b"data: [DONE]\n\n"]
