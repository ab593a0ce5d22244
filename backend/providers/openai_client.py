"""OpenAI and every OpenAI-compatible server (DeepSeek, Qwen, GLM, Moonshot, vLLM, LM Studio, …)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

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

    async def aclose(self) -> None:
        await self._client.close()

    async def _list_models(self) -> list[ModelInfo]:
        try:
            return [_model_info(model) async for model in self._client.models.list()]
        except Exception as error:
            raise self._error(error, streaming=False) from error

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
        started = False
        finish_reason: str | None = None
        try:
            # The SDK builds, authenticates and sends the request and raises on an error status; the stream itself
            # is read raw: constructing a typed object for every chunk costs more CPU than the rest of the relay.
            async with self._client.chat.completions.with_streaming_response.create(
                **body, extra_body=dict(request.extra) or None
            ) as response:
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    started = True
                    if "error" in chunk:
                        raise UpstreamUnavailable(errors.FAILED_MID_STREAM, provider=self.config.name,
                                                  reason=_detail_text(chunk), detail=data)
                    if usage := chunk.get("usage"):
                        yield Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                    for choice in (chunk.get("choices") or [])[:1]:
                        delta = choice.get("delta") or {}
                        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                        if isinstance(reasoning, str) and reasoning:
                            yield ReasoningDelta(reasoning)
                        if content := delta.get("content"):
                            yield TextDelta(content)
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
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
        if isinstance(error, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
            return UpstreamUnavailable(errors.NOT_THIS_KIND, provider=name, kind="OpenAI-compatible",
                                       detail=repr(error))
        return errors.from_transport(error, provider=name, url=self.config.base_url, timeout=self.config.timeout,
                                     streaming=streaming)


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
