"""Capabilities guessed from well-known model names (admins can correct them)."""

import pytest

from backend.services.capabilities import guess_capabilities, guess_context_length


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("deepseek-r1:14b", ["reasoning"]),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", ["reasoning", "tools"]),
        ("qwq-32b", ["reasoning"]),
        ("deepseek-chat", ["tools"]),
        ("gpt-4o-mini", ["vision", "tools"]),
        ("claude-sonnet-4-5", ["vision", "tools"]),  # thinks natively when asked: not "reasoning" by default
        ("o3-mini", []),
        ("qwen2.5-vl-7b-instruct", ["vision", "tools"]),
        ("llava:13b", ["vision"]),
        ("my-private-model", []),
    ],
)
def test_guesses(model_id: str, expected: list[str]) -> None:
    assert guess_capabilities(model_id) == expected


def test_context_length_guesses() -> None:
    assert guess_context_length("claude-3-5-haiku") == 200_000
    assert guess_context_length("unknown") is None
