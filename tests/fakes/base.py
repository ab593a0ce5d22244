"""What the three fake providers share: request recording, auth, the script, and the streaming driver.

A provider describes a streamed answer as frames: ("meta", bytes) structural events sent as they come, ("chunk",
bytes) one piece of reasoning or text (counted, delayed by `delay` / `first_token_delay`), ("end", bytes) the
closing events. The driver breaks the stream off (cut, hang, in-stream error) after the chunk count of the reply,
at the latest before the first "end" frame.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .scenario import Behaviour, Error, RecordedRequest, Reply, Script, error
from .server import CutConnection, FakeServer

Frame = tuple[Literal["meta", "chunk", "end"], bytes]


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StreamRecord:
    """One streamed answer as the fake sent it: how many chunks, when it ended (`time.monotonic()`) and how:
    "completed", "error" (the scripted in-stream error was sent), "cut" (the script or the server's stopping dropped
    the connection) or "abandoned" (the client went away, or stopped reading, before the end)."""

    chunks: int = 0
    ended: float | None = None
    outcome: str | None = None  # None while it streams


class FakeLLMServer(FakeServer):
    """Base of the fake provider servers. Attributes tests may change at any time: `api_key` (None: no auth check),
    `models`, `strict_models` (unknown model → 404), `script`; read `requests` (every request received) and `streams`
    (every streamed answer, with how and when it ended)."""

    chat_path = "/v1/chat/completions"
    stream_media_type = "text/event-stream"
    stream_by_default = False
    default_models: tuple[str, ...] = ("fake-model",)

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: Iterable[str] | None = None,
        default: Behaviour | None = None,
        strict_models: bool = False,
        **server_kw: Any,
    ) -> None:
        self.api_key = api_key
        self.models: list[str] = list(models) if models is not None else list(self.default_models)
        self.strict_models = strict_models
        self.script = Script(default)
        self.requests: list[RecordedRequest] = []
        self.streams: list[StreamRecord] = []
        self._ids = itertools.count(1)
        catch_all = Route("/{path:path}", self.unknown_route, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        super().__init__(Starlette(routes=[*self.routes(), catch_all]), **server_kw)

    # -- for tests

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == self.chat_path]

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError("the fake server received no request")
        return self.requests[-1]

    def reset(self) -> None:
        """Forget the received requests and the script (models and api_key stay)."""
        self.requests.clear()
        self.streams.clear()
        self.script.clear()

    # -- for providers

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def presented_key(self, rec: RecordedRequest) -> str | None:
        auth = rec.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def auth_error(self, rec: RecordedRequest) -> Error:
        return error(401, "Invalid API key")

    def error_body(self, err: Error) -> Any:
        raise NotImplementedError

    def stream_error_frame(self, err: Error) -> bytes:
        raise NotImplementedError

    def validate(self, rec: RecordedRequest) -> str | None:
        body = rec.json
        if not isinstance(body, dict):
            return "The request body is not a JSON object."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        if not isinstance(body.get("messages"), list):
            return "messages: Field required"
        return None

    def wants_stream(self, body: dict[str, Any]) -> bool:
        stream = body.get("stream")
        return self.stream_by_default if stream is None else bool(stream)

    def stream_frames(self, reply: Reply, rec: RecordedRequest) -> Iterable[Frame]:
        raise NotImplementedError

    def completion_body(self, reply: Reply, rec: RecordedRequest) -> Any:
        raise NotImplementedError

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # -- plumbing

    async def record(self, request: Request) -> RecordedRequest:
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
        )
        self.requests.append(rec)
        return rec

    async def unknown_route(self, request: Request) -> Response:
        """Any other path: recorded (to see a client's wrong base URL in `requests`), answered with a 404."""
        await self.record(request)
        return self.error_response(error(404, f"Invalid URL ({request.method} {request.url.path})"))

    def error_response(self, err: Error) -> Response:
        return JSONResponse(self.error_body(err), status_code=err.status, headers=err.response_headers())

    def check_auth(self, rec: RecordedRequest) -> Response | None:
        if self.api_key is None or self.presented_key(rec) == self.api_key:
            return None
        return self.error_response(self.auth_error(rec))

    async def handle_chat(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        if (problem := self.validate(rec)) is not None:
            return self.error_response(error(400, problem))
        if self.strict_models and rec.model not in self.models:
            return self.error_response(error(404, f"model '{rec.model}' not found"))
        behaviour = self.script.resolve(rec)
        if isinstance(behaviour, Error):
            return self.error_response(behaviour)
        if self.wants_stream(rec.json):
            frames = self.stream_frames(behaviour, rec)
            return StreamingResponse(self.drive(behaviour, frames), media_type=self.stream_media_type)
        return await self.complete(behaviour, rec)

    async def drive(self, reply: Reply, frames: Iterable[Frame]) -> AsyncIterator[bytes]:
        record = StreamRecord()
        self.streams.append(record)
        outcome = "abandoned"  # unless it gets to an end of its own: the client went away
        try:
            broken = False
            point = reply.break_point
            for kind, data in frames:
                if kind != "meta" and point is not None and not broken and (kind == "end" or record.chunks >= point):
                    broken = True
                    if reply.cut_after is not None:
                        raise CutConnection("cut_after")
                    if reply.hang_after is not None:
                        await self.wait_stopping()
                        raise CutConnection("hang_after: server stopping")
                    if reply.stream_error is not None:
                        yield self.stream_error_frame(reply.stream_error)
                        outcome = "error"
                        return
                if kind == "chunk":
                    await self.sleep(reply.first_token_delay if record.chunks == 0 else reply.delay)
                    record.chunks += 1
                elif self.is_stopping:
                    raise CutConnection("server stopping")
                yield data
            outcome = "completed"
        except CutConnection:
            outcome = "cut"
            raise
        finally:
            record.ended, record.outcome = time.monotonic(), outcome

    async def complete(self, reply: Reply, rec: RecordedRequest) -> Response:
        if reply.hang_after is not None:
            await self.wait_stopping()
            raise CutConnection("hang_after: server stopping")
        if reply.stream_error is not None:
            return self.error_response(reply.stream_error)
        n_chunks = len(reply.text_parts()) + len(reply.reasoning_parts())
        await self.sleep(reply.first_token_delay + reply.delay * max(0, n_chunks - 1))
        body = dumps(self.completion_body(reply, rec)).encode()
        if reply.cut_after is None:
            return Response(body, media_type="application/json")

        async def half_then_cut() -> AsyncIterator[bytes]:
            yield body[: len(body) // 2]
            raise CutConnection("cut_after")

        return StreamingResponse(
            half_then_cut(), media_type="application/json", headers={"content-length": str(len(body))}
        )
