"""The gateway's pre-encoded SSE chunks are the JSON an OpenAI client expects."""

from __future__ import annotations

import json

from backend.api.gateway import _Chunks


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
