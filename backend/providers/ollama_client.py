"""Ollama's native API: NDJSON streams, `thinking` as reasoning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama

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


class OllamaClient(BaseClient):
    kind = "ollama"
    label = "Ollama"
    needs_api_key = False

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = dict(config.headers)
        if config.api_key:  # Ollama behind an authenticating proxy
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = ollama.AsyncClient(
            host=config.base_url,
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            headers=headers,
        )

    async def aclose(self) -> None:
        await self._client._client.aclose()

    async def _list_models(self) -> list[ModelInfo]:
        try:
            listing = await self._client.list()
        except Exception as error:
            raise self._error(error, streaming=False) from error
        return [ModelInfo(id=m.model) for m in listing.models if m.model]

    async def _stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        options.update(request.extra.get("options", {}))
        started = False
        try:
            parts = await self._client.chat(
                model=request.model,
                messages=request.messages,
                stream=True,
                think=True if request.reasoning else None,
                options=options or None,
            )
            async for part in parts:
                started = True
                if part.message.thinking:
                    yield ReasoningDelta(part.message.thinking)
                if part.message.content:
                    yield TextDelta(part.message.content)
                if part.done:
                    yield Usage(part.prompt_eval_count or 0, part.eval_count or 0)
                    yield Finish(part.done_reason or "stop")
        except ProviderError:
            raise
        except Exception as error:
            raise self._error(error, streaming=started) from error

    def _error(self, error: BaseException, *, streaming: bool) -> ProviderError:
        name = self.config.name
        if isinstance(error, ollama.ResponseError) and error.status_code < 100:
            # An error line inside a stream that had begun
            return UpstreamUnavailable(errors.FAILED_MID_STREAM, provider=name, reason=error.error, detail=error.error)
        if isinstance(error, ollama.ResponseError):
            return errors.from_status(error.status_code, provider=name, detail=error.error)
        if isinstance(error, (httpx.HTTPError, ConnectionError)):
            return errors.from_transport(error, provider=name, url=self.config.base_url,
                                         timeout=self.config.timeout, streaming=streaming)
        if isinstance(error, ValueError):
            return UpstreamUnavailable(errors.NOT_THIS_KIND, provider=name, kind="Ollama", detail=repr(error))
        return errors.from_transport(error, provider=name, url=self.config.base_url, timeout=self.config.timeout,
                                     streaming=streaming)
