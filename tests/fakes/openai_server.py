"""A fake OpenAI Chat Completions server (also what DeepSeek, OpenRouter, vLLM … speak).

    with FakeOpenAI(models=["gpt-a"]) as server:
        server.script.set(reply("Hi", reasoning="hmm"))
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key="test-key")

Endpoints: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions (streamed as SSE `data:` lines ending in
`data: [DONE]`, or one `chat.completion` object). Auth: `Authorization: Bearer <api_key>`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .base import FakeLLMServer, Frame, dumps
from .scenario import Error, RecordedRequest, Reply, error

# status → (error.type, error.code) as OpenAI sends them
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}
_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to sample from this model.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests. Please try again shortly.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


class FakeOpenAI(FakeLLMServer):
    chat_path = "/v1/chat/completions"
    default_models = ("gpt-fake", "gpt-fake-mini")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
            Route("/v1/chat/completions", self.handle_chat, methods=["POST"]),
        ]

    @property
    def base_url(self) -> str:
        """What the openai SDK takes as `base_url`."""
        return self.url + "/v1"

    # -- models

    def _model(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1735689600, "owned_by": "fake"}

    async def list_models(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        return JSONResponse({"object": "list", "data": [self._model(m) for m in self.models]})

    async def get_model(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        model_id = request.path_params["model"]
        if model_id not in self.models:
            return self.error_response(error(404, f"The model '{model_id}' does not exist"))
        return JSONResponse(self._model(model_id))

    # -- errors

    def auth_error(self, rec: RecordedRequest) -> Error:
        if not rec.headers.get("authorization"):
            return error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="",
            )
        return error(401, "Incorrect API key provided. You can find your API key at https://example.invalid/keys.")

    def error_body(self, err: Error) -> Any:
        kind, code = _ERRORS.get(err.status, ("server_error" if err.status >= 500 else "invalid_request_error", None))
        return {
            "error": {
                "message": err.message or _MESSAGES.get(err.status, f"Error {err.status}"),
                "type": err.type or kind,
                "param": None,
                "code": (err.code or None) if err.code is not None else code,
            }
        }

    def stream_error_frame(self, err: Error) -> bytes:
        return f"data: {dumps(self.error_body(err))}\n\n".encode()

    # -- answers

    def _usage(self, reply: Reply) -> dict[str, int]:
        prompt, completion = reply.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def stream_frames(self, reply: Reply, rec: RecordedRequest) -> Iterator[Frame]:
        body = rec.json
        chunk_id = self.next_id("chatcmpl-fake")
        created = int(time.time())
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def event(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
            chunk: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [],
            }
            if delta is not None:
                chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if include_usage:
                chunk["usage"] = None if delta is not None else self._usage(reply)
            return f"data: {dumps(chunk)}\n\n".encode()

        yield "meta", event({"role": "assistant", "content": ""})
        for part in reply.reasoning_parts():
            yield "chunk", event({"content": None, reply.reasoning_field: part})
        for part in reply.text_parts():
            yield "chunk", event({"content": part})
        yield "end", event({}, reply.finish_reason)
        if include_usage:
            yield "end", event(None)
        yield "end", b"data: [DONE]\n\n"

    def completion_body(self, reply: Reply, rec: RecordedRequest) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.full_text, "refusal": None}
        if (reasoning := reply.full_reasoning) is not None:
            message[reply.reasoning_field] = reasoning
        return {
            "id": self.next_id("chatcmpl-fake"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": rec.json["model"],
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": self._usage(reply),
        }
