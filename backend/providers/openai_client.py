"""OpenAI and every OpenAI-compatible server (DeepSeek, Qwen, GLM, Moonshot, vLLM, LM Studio, …)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import orjson

from backend.providers import errors
from backend.providers.base import (
    BaseClient,
    ChatRequest,
    Finish,
    ModelInfo,
    ProviderConfig,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UpstreamUnavailable,
    Usage,
)

DRAIN_SECONDS = 0.5  # after `[DONE]`, how long to wait for the end of the body


class OpenAIClient(BaseClient):
    kind = "openai"
    label = "OpenAI-compatible"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "none",  # local servers want no key, the SDK wants a string
            timeout=httpx2.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            max_retries=0,  # retries are ours: only before the first token
            default_headers=dict(config.headers),
        )
        self._chat_url = self._client.base_url.join("chat/completions")
        self._timeout = self._client.timeout
        self._headers: dict[str, str] | None = None

    async def aclose(self) -> None:
        await self._client.close()

    async def _list_models(self) -> list[ModelInfo]:
        try:
            return [_model_info(model) async for model in self._client.models.list()]
        except Exception as error:
            raise self._error(error, streaming=False) from error

    def _chat_headers(self) -> dict[str, str]:
        """The headers the SDK sends (user agent, platform, the key, the provider's own), worked out once."""
        if self._headers is None:
            headers = {"Authorization": f"Bearer {self._client.api_key}"}
            headers.update((k, v) for k, v in self._client.default_headers.items() if isinstance(v, str))
            headers["Accept"] = "text/event-stream"
            self._headers = headers
        return self._headers

    async def _stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "top_p", "max_tokens"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
        body.update(request.extra)
        started = False
        finish_reason: str | None = None
        # The chat stream goes straight through the SDK's own HTTP client (its connection pool, timeouts and
        # headers): building the request through the SDK's typed layers costs ~1 ms of CPU per call, and
        # constructing a typed object for every chunk costs more than the rest of the relay. Error statuses are
        # turned into the SDK's own exceptions, so they are mapped exactly as before.
        http = self._client._client
        try:
            response = await http.send(
                http.build_request("POST", self._chat_url, content=orjson.dumps(body), headers=self._chat_headers(),
                                   timeout=self._timeout),
                stream=True,
            )
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._client._make_status_error_from_response(response)
                chunks = response.aiter_bytes()
                buffer = b""
                done = False
                while not done:
                    data = await anext(chunks, None)
                    if data is None:  # the end, and maybe a last line without its newline
                        done, lines = True, [buffer]
                    else:
                        lines = (buffer + data).split(b"\n")
                        buffer = lines.pop()
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            # What follows is the end of the body: read, the connection goes back to the pool.
                            await _drain(chunks)
                            break
                        chunk = orjson.loads(payload)
                        started = True
                        if "error" in chunk:
                            raise UpstreamUnavailable(errors.FAILED_MID_STREAM, provider=self.config.name,
                                                      reason=_detail_text(chunk), detail=payload.decode())
                        if usage := chunk.get("usage"):
                            yield Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                        choices = chunk.get("choices")
                        if choices:
                            choice = choices[0]
                            delta = choice.get("delta") or {}
                            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                            if reasoning and isinstance(reasoning, str):
                                yield ReasoningDelta(reasoning)
                            if content := delta.get("content"):
                                yield TextDelta(content)
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
            finally:
                await response.aclose()
        except ProviderError:
            raise
        except Exception as error:
            raise self._error(error, streaming=started) from error
        if finish_reason is not None:
            yield Finish(finish_reason)

    def _error(self, error: BaseException, *, streaming: bool) -> ProviderError:
        name = self.config.name
        if isinstance(error, openai.APIStatusError):
            return errors.from_status(error.status_code, provider=name, detail=_detail(error),
                                      retry_after=_retry_after(error.response.headers))
        if isinstance(error, openai.APIError) and isinstance(error.body, dict):
            # An error event inside a stream that had begun (HTTP 200 already sent)
            return UpstreamUnavailable(errors.FAILED_MID_STREAM, provider=name, reason=_detail_text(error.body),
                                       detail=str(error.body))
        if isinstance(error, (openai.APIConnectionError, httpx2.HTTPError)):
            return errors.from_transport(error, provider=name, url=self.config.base_url,
                                         timeout=self.config.timeout, streaming=streaming)
        if isinstance(error, (openai.APIResponseValidationError, json.JSONDecodeError, orjson.JSONDecodeError,
                              ValueError)):
            return UpstreamUnavailable(errors.NOT_THIS_KIND, provider=name, kind="OpenAI-compatible",
                                       detail=repr(error))
        return errors.from_transport(error, provider=name, url=self.config.base_url, timeout=self.config.timeout,
                                     streaming=streaming)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of a body for a moment (normally just its end); a server that keeps it open longer only
    costs its connection, which is then closed rather than reused."""
    with contextlib.suppress(TimeoutError, httpx2.HTTPError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass


def _model_info(model: Any) -> ModelInfo:
    extra = model.model_extra or {}
    context = extra.get("context_length") or extra.get("max_model_len") or extra.get("context_window")
    return ModelInfo(
        id=model.id,
        display_name=extra.get("name") if isinstance(extra.get("name"), str) else None,
        context_length=int(context) if isinstance(context, int | float) else None,
        owned_by=getattr(model, "owned_by", None),
    )


def _detail(error: openai.APIStatusError) -> str:
    return _detail_text(error.body) or error.message


def _detail_text(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return ""


def _retry_after(headers: httpx2.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
