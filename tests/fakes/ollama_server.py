"""A fake Ollama server.

    with FakeOllama(models=["llama3:8b"]) as server:
        server.script.set(reply("Hi", reasoning="hmm"))
        client = ollama.AsyncClient(host=server.url)

Endpoints: GET / ("Ollama is running"), GET /api/version, GET /api/tags, POST /api/chat (NDJSON lines when `stream`
is true or absent, as Ollama streams by default; one JSON object when `stream` is false).

Reasoning goes to `message.thinking` when the request has a truthy `think` (true, or "low" / "medium" / "high");
otherwise it is put inline in the content as `<think>…</think>`, like models on older Ollama. No auth by default
(`api_key=None`); with an `api_key` the fake wants `Authorization: Bearer <key>` (like a proxy or Ollama's cloud).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .base import FakeLLMServer, Frame, dumps, iso_now
from .scenario import Behaviour, Error, RecordedRequest, Reply

_MESSAGES = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: "model not found, try pulling it first",
    429: "too many requests",
    500: "an error was encountered while running the model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
VERSION = "0.12.6"


class FakeOllama(FakeLLMServer):
    chat_path = "/api/chat"
    stream_media_type = "application/x-ndjson"
    stream_by_default = True
    default_models = ("llama3:8b", "qwen3:4b")

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        default: Behaviour | None = None,
        strict_models: bool = False,
        **server_kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, models=models, default=default, strict_models=strict_models, **server_kw)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.list_models, methods=["GET"]),
            Route("/api/chat", self.handle_chat, methods=["POST"]),
        ]

    @property
    def base_url(self) -> str:
        """What `ollama.AsyncClient(host=...)` takes."""
        return self.url

    async def root(self, request: Request) -> Response:
        await self.record(request)
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"version": VERSION})

    async def list_models(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self.check_auth(rec)) is not None:
            return denied
        return JSONResponse({"models": [self._model(m) for m in self.models]})

    def _model(self, model_id: str) -> dict[str, Any]:
        family = model_id.split(":")[0].rstrip("0123456789.") or "llama"
        return {
            "name": model_id,
            "model": model_id,
            "modified_at": "2025-01-01T00:00:00.000000000Z",
            "size": 4_920_753_328,
            "digest": hashlib.sha256(model_id.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": "8.0B",
                "quantization_level": "Q4_K_M",
            },
        }

    # -- validation and errors

    def validate(self, rec: RecordedRequest) -> str | None:
        body = rec.json
        if not isinstance(body, dict):
            return "invalid JSON body"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model is required"
        if "messages" in body and not isinstance(body["messages"], list):
            return "messages must be a list"
        return None

    def error_body(self, err: Error) -> Any:
        return {"error": err.message or _MESSAGES.get(err.status, f"error {err.status}")}

    def stream_error_frame(self, err: Error) -> bytes:
        return (dumps(self.error_body(err)) + "\n").encode()

    # -- answers

    @staticmethod
    def thinks(body: dict[str, Any]) -> bool:
        think = body.get("think")
        return bool(think) and think not in ("false", "none")

    def _stats(self, reply: Reply) -> dict[str, Any]:
        prompt, completion = reply.usage
        return {
            "done_reason": reply.finish_reason,
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 200_000,
            "eval_count": completion,
            "eval_duration": 700_000,
        }

    def stream_frames(self, reply: Reply, rec: RecordedRequest) -> Iterator[Frame]:
        model = rec.json["model"]

        def line(message: dict[str, Any], done: bool = False, **extra: Any) -> bytes:
            data = {"model": model, "created_at": iso_now(), "message": {"role": "assistant", **message}, "done": done}
            return (dumps({**data, **extra}) + "\n").encode()

        reasoning = reply.reasoning_parts()
        if self.thinks(rec.json):
            for part in reasoning:
                yield "chunk", line({"content": "", "thinking": part})
        elif reasoning:
            reasoning[0] = "<think>" + reasoning[0]
            reasoning[-1] += "</think>\n\n"
            for part in reasoning:
                yield "chunk", line({"content": part})
        for part in reply.text_parts():
            yield "chunk", line({"content": part})
        yield "end", line({"content": ""}, done=True, **self._stats(reply))

    def completion_body(self, reply: Reply, rec: RecordedRequest) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.full_text}
        reasoning = reply.full_reasoning
        if reasoning:
            if self.thinks(rec.json):
                message["thinking"] = reasoning
            else:
                message["content"] = f"<think>{reasoning}</think>\n\n{reply.full_text}"
        return {
            "model": rec.json["model"],
            "created_at": iso_now(),
            "message": message,
            "done": True,
            **self._stats(reply),
        }
