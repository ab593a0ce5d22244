"""A fake Anthropic Messages API server.

    with FakeAnthropic(models=["claude-a"]) as server:
        server.script.set(reply("Hi", reasoning="hmm"))
        client = AsyncAnthropic(base_url=server.url, api_key="test-key")

Endpoints: GET /v1/models (paginated with limit / after_id / before_id), GET /v1/models/{id}, POST /v1/messages
(streamed as SSE `event:` + `data:` pairs, or one `message` object).

Auth: the key may come as `x-api-key: <key>` (the documented header, and what raw HTTP clients send) or as
`Authorization: Bearer <key>` (what anthropic 2.x's `api_key=` sends). `anthropic-version` must be present, as on the
real API (`require_version = False` turns that off). A reply with `reasoning` always streams a thinking block first,
whether or not the request asked for thinking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .base import FakeLLMServer, Frame, dumps
from .scenario import Error, RecordedRequest, Reply, error

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    503: "Overloaded",
    529: "Overloaded",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
SIGNATURE = "ZmFrZS1zaWduYXR1cmU="


class FakeAnthropic(FakeLLMServer):
    chat_path = "/v1/messages"
    default_models = ("claude-fake", "claude-fake-mini")
    require_version = True

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
            Route("/v1/messages", self.handle_chat, methods=["POST"]),
        ]

    @property
    def base_url(self) -> str:
        """What the anthropic SDK takes as `base_url` (it adds /v1 itself)."""
        return self.url

    # -- models

    def _model(self, model_id: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z",
            "lifecycle": "active",  # required in anthropic 2.x's ModelInfo
        }

    async def list_models(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        models = list(self.models)
        limit = int(rec.query.get("limit") or 20)
        if after := rec.query.get("after_id"):
            models = models[models.index(after) + 1 :] if after in models else []
            page, has_more = models[:limit], len(models) > limit
        elif before := rec.query.get("before_id"):
            models = models[: models.index(before)] if before in models else []
            page, has_more = models[-limit:], len(models) > limit
        else:
            page, has_more = models[:limit], len(models) > limit
        return JSONResponse(
            {
                "data": [self._model(m) for m in page],
                "has_more": has_more,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        )

    async def get_model(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        model_id = request.path_params["model"]
        if model_id not in self.models:
            return self.error_response(error(404, f"model: {model_id}"))
        return JSONResponse(self._model(model_id))

    # -- auth, validation, errors

    def presented_key(self, rec: RecordedRequest) -> str | None:
        return rec.headers.get("x-api-key") or super().presented_key(rec)

    def auth_error(self, rec: RecordedRequest) -> Error:
        if not rec.headers.get("x-api-key") and not rec.headers.get("authorization"):
            return error(401, "x-api-key header is required")
        return error(401, "invalid x-api-key")

    def check_auth(self, rec: RecordedRequest) -> Response | None:
        if (denied := super().check_auth(rec)) is not None:
            return denied
        if self.require_version and not rec.headers.get("anthropic-version"):
            return self.error_response(error(400, "anthropic-version: header is required"))
        return None

    def validate(self, rec: RecordedRequest) -> str | None:
        if (problem := super().validate(rec)) is not None:
            return problem
        max_tokens = rec.json.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Field required"
        return None

    def error_body(self, err: Error) -> Any:
        kind = err.type or _TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": err.message or _MESSAGES.get(err.status, f"Error {err.status}")},
            "request_id": self.next_id("req_fake"),
        }

    def stream_error_frame(self, err: Error) -> bytes:
        body = self.error_body(err)
        body.pop("request_id", None)
        return f"event: error\ndata: {dumps(body)}\n\n".encode()

    # -- answers

    def stream_frames(self, reply: Reply, rec: RecordedRequest) -> Iterator[Frame]:
        def event(data: dict[str, Any]) -> bytes:
            return f"event: {data['type']}\ndata: {dumps(data)}\n\n".encode()

        input_tokens, output_tokens = reply.usage
        message = {
            "id": self.next_id("msg_fake"),
            "type": "message",
            "role": "assistant",
            "model": rec.json["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        yield "meta", event({"type": "message_start", "message": message})
        index = 0
        reasoning = reply.reasoning_parts()
        if reasoning or reply.reasoning is not None:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            yield "meta", event({"type": "content_block_start", "index": index, "content_block": block})
            yield "meta", event({"type": "ping"})
            for part in reasoning:
                delta = {"type": "thinking_delta", "thinking": part}
                yield "chunk", event({"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": SIGNATURE}
            yield "meta", event({"type": "content_block_delta", "index": index, "delta": delta})
            yield "meta", event({"type": "content_block_stop", "index": index})
            index += 1
        block = {"type": "text", "text": ""}
        yield "meta", event({"type": "content_block_start", "index": index, "content_block": block})
        if index == 0:
            yield "meta", event({"type": "ping"})
        for part in reply.text_parts():
            delta = {"type": "text_delta", "text": part}
            yield "chunk", event({"type": "content_block_delta", "index": index, "delta": delta})
        yield "end", event({"type": "content_block_stop", "index": index})
        yield (
            "end",
            event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP_REASONS[reply.finish_reason], "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                }
            ),
        )
        yield "end", event({"type": "message_stop"})

    def completion_body(self, reply: Reply, rec: RecordedRequest) -> Any:
        content: list[dict[str, Any]] = []
        if (reasoning := reply.full_reasoning) is not None:
            content.append({"type": "thinking", "thinking": reasoning, "signature": SIGNATURE})
        content.append({"type": "text", "text": reply.full_text})
        input_tokens, output_tokens = reply.usage
        return {
            "id": self.next_id("msg_fake"),
            "type": "message",
            "role": "assistant",
            "model": rec.json["model"],
            "content": content,
            "stop_reason": _STOP_REASONS[reply.finish_reason],
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
