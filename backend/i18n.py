"""The one translation function. Message ids are the English text; `locales/<lang>.json` maps them.

English and Simplified Chinese ship. A message may carry `{name}` placeholders filled from keyword arguments.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT_LANGUAGE = "en"
LOCALES_DIR = Path(__file__).parent / "locales"

# The language of the current API request (set from Accept-Language); pages pass theirs explicitly.
request_language: ContextVar[str] = ContextVar("request_language", default=DEFAULT_LANGUAGE)


@cache
def catalogue(language: str) -> dict[str, str]:
    path = LOCALES_DIR / f"{language}.json"
    if language == DEFAULT_LANGUAGE or not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def gettext(message: str, *, language: str | None = None, **params: object) -> str:
    text = catalogue(language or request_language.get()).get(message, message)
    return text.format(**params) if params else text


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; it is translated later, where it is shown."""
    return message


def negotiate(accept_language: str | None) -> str:
    """Pick a shipped language from an Accept-Language header (`zh-CN,zh;q=0.9,en;q=0.8` → `zh`)."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE
