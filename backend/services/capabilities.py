"""Guessing what a model can do from its well-known name; admins correct the guess on the Models page."""

from __future__ import annotations

import re

_REASONING = re.compile(
    r"(^|[/_.:-])(o[1345](-|$)|r1|qwq|reasoner|thinking|think|deepseek-r|magistral|gpt-oss|qwen3(?!.*instruct))",
    re.IGNORECASE,
)
_VISION = re.compile(r"(vision|-vl|vl-|llava|gpt-4o|gpt-4\.1|gpt-5|claude-(3|sonnet|opus|haiku)|gemini|pixtral|"
                     r"minicpm-v|glm-4v|qwen.*vl|moondream)", re.IGNORECASE)
_TOOLS = re.compile(r"(gpt-|claude|qwen|deepseek-(chat|v3)|glm-4|moonshot|kimi|mistral|llama-?3\.[123]|command-r)",
                    re.IGNORECASE)
# Models that think only when asked and return their thinking natively: the text itself is the answer.
_NATIVE_REASONING = re.compile(r"(^|[/_.:-])(o[1345](-|$)|claude|gpt-oss|deepseek-reasoner)", re.IGNORECASE)


def guess_capabilities(model_id: str) -> list[str]:
    found = []
    if _REASONING.search(model_id) and not _NATIVE_REASONING.search(model_id):
        found.append("reasoning")
    if _VISION.search(model_id):
        found.append("vision")
    if _TOOLS.search(model_id):
        found.append("tools")
    return found


_CONTEXT = [
    (re.compile(r"claude", re.I), 200_000),
    (re.compile(r"gpt-4o|gpt-4\.1|o[134]|gpt-5", re.I), 128_000),
    (re.compile(r"deepseek", re.I), 64_000),
    (re.compile(r"qwen", re.I), 32_768),
    (re.compile(r"moonshot|kimi", re.I), 128_000),
    (re.compile(r"glm-4", re.I), 128_000),
]


def guess_context_length(model_id: str) -> int | None:
    for pattern, length in _CONTEXT:
        if pattern.search(model_id):
            return length
    return None
