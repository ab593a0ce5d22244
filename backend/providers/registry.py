"""Provider kinds and presets. A new kind is one module and one line in `CLIENTS`."""

from __future__ import annotations

from dataclasses import dataclass

from backend.providers.anthropic_client import AnthropicClient
from backend.providers.base import BaseClient, ProviderConfig
from backend.providers.ollama_client import OllamaClient
from backend.providers.openai_client import OpenAIClient

CLIENTS: dict[str, type[BaseClient]] = {
    OpenAIClient.kind: OpenAIClient,
    AnthropicClient.kind: AnthropicClient,
    OllamaClient.kind: OllamaClient,
}


def make_client(kind: str, config: ProviderConfig) -> BaseClient:
    try:
        return CLIENTS[kind](config)
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}") from None


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    kind: str
    base_url: str
    needs_api_key: bool = True


PRESETS = [
    Preset("openai", "OpenAI", "openai", "https://api.openai.com/v1"),
    Preset("anthropic", "Anthropic", "anthropic", "https://api.anthropic.com"),
    Preset("deepseek", "DeepSeek", "openai", "https://api.deepseek.com/v1"),
    Preset("qwen", "Qwen (DashScope)", "openai", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    Preset("glm", "Zhipu GLM", "openai", "https://open.bigmodel.cn/api/paas/v4"),
    Preset("moonshot", "Moonshot (Kimi)", "openai", "https://api.moonshot.cn/v1"),
    Preset("siliconflow", "SiliconFlow", "openai", "https://api.siliconflow.cn/v1"),
    Preset("openrouter", "OpenRouter", "openai", "https://openrouter.ai/api/v1"),
    Preset("vllm", "vLLM", "openai", "http://127.0.0.1:8000/v1", needs_api_key=False),
    Preset("lmstudio", "LM Studio", "openai", "http://127.0.0.1:1234/v1", needs_api_key=False),
    Preset("ollama", "Ollama", "ollama", "http://127.0.0.1:11434", needs_api_key=False),
]
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}
