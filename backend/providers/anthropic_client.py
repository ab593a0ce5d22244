"""Anthropic's Messages API, with extended thinking streamed as reasoning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

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

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens
THINKING_BUDGET = 2048


class AnthropicClient(BaseClient):
    kind = "anthropic"
    label = "Anthropic"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client = anthropic.AsyncAnthropic(
            base_url=config.base_url,
            api_key=config.api_key or "none",
            timeout=httpx2.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            max_retries=0,
            default_headers=dict(config.headers),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _list_models(self) -> list[ModelInfo]:
        try:
            return [ModelInfo(id=m.id, display_name=m.display_name) async for m in self._client.models.list()]
        except Exception as error:
            raise self._error(error, streaming=False) from error

    async def _stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [m for m in request.messages if m["role"] != "system"],
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            body["system"] = system
        if request.reasoning:
            body["max_tokens"] = max(body["max_tokens"], THINKING_BUDGET + 1024)
            body["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGET}
        sampling: dict[str, Any] = {}
        if not request.reasoning:  # refused together with thinking; sent raw: newer SDKs dropped the parameters
            sampling = {name: value for name in ("temperature", "top_p")
                        if (value := getattr(request, name)) is not None}
        extra_body = {**sampling, **request.extra} or None
        started = False
        input_tokens = output_tokens = 0
        stop_reason: str | None = None
        try:
            stream = await self._client.messages.create(**body, extra_body=extra_body)
            async for event in stream:
                started = True
                if event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens or 0
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        yield TextDelta(event.delta.text)
                    elif event.delta.type == "thinking_delta":
                        yield ReasoningDelta(event.delta.thinking)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    output_tokens = event.usage.output_tokens or output_tokens
                elif event.type == "message_stop":
                    yield Usage(input_tokens, output_tokens)
                    yield Finish(_FINISH.get(stop_reason or "", stop_reason or "stop"))
        except ProviderError:
            raise
        except Exception as error:
            raise self._error(error, streaming=started) from error

    def _error(self, error: BaseException, *, streaming: bool) -> ProviderError:
        name = self.config.name
        if isinstance(error, anthropic.APIStatusError) and streaming:
            # An `error` event inside a stream that had begun (HTTP 200 already sent)
            return UpstreamUnavailable(errors.FAILED_MID_STREAM, provider=name, reason=_detail(error),
                                       detail=str(error.body))
        if isinstance(error, anthropic.APIStatusError):
            status = 429 if error.status_code == 529 else error.status_code  # 529: overloaded
            retry_after = error.response.headers.get("retry-after")
            return errors.from_status(status, provider=name, detail=_detail(error),
                                      retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
        if isinstance(error, (anthropic.APIConnectionError, httpx2.HTTPError)):
            return errors.from_transport(error.__cause__ or error, provider=name, url=self.config.base_url,
                                         timeout=self.config.timeout, streaming=streaming)
        if isinstance(error, (anthropic.APIResponseValidationError, ValueError)):
            return UpstreamUnavailable(errors.NOT_THIS_KIND, provider=name, kind="Anthropic", detail=repr(error))
        return errors.from_transport(error, provider=name, url=self.config.base_url, timeout=self.config.timeout,
                                     streaming=streaming)


# Anthropic's stop reasons in OpenAI's words, so that every consumer sees one vocabulary.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _detail(error: anthropic.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str):
            return message
    return error.message
