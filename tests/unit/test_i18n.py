"""Every user-visible message goes through the translation function and has a Simplified Chinese entry."""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

from backend.i18n import LOCALES_DIR, catalogue, gettext, negotiate

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["backend", "ui", "pages", "jobs", "main.py"]
TRANSLATING_CALLS = {"_", "gettext", "N_"}
ERROR_CLASSES = {"Invalid", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooLarge", "TooManyRequests",
                 "DomainError"}


def message_ids() -> dict[str, str]:
    """Message id → where it was first seen, for every literal passed to `_`, `gettext`, `N_` or a domain error."""
    found: dict[str, str] = {}
    files = [p for src in SOURCES if (ROOT / src).exists()
             for p in ((ROOT / src).rglob("*.py") if (ROOT / src).is_dir() else [ROOT / src])]
    for path in files:
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in TRANSLATING_CALLS or name in ERROR_CLASSES:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.setdefault(first.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_the_code_has_messages_to_translate() -> None:
    ids = message_ids()
    assert "Sign in" in ids
    assert "Wrong username or password" in ids


def test_every_message_has_a_chinese_translation() -> None:
    zh = json.loads((LOCALES_DIR / "zh.json").read_text(encoding="utf-8"))
    missing = {msg: where for msg, where in message_ids().items() if not zh.get(msg)}
    assert not missing, "untranslated messages:\n" + "\n".join(f"{w}: {m!r}" for m, w in missing.items())


def test_translations_keep_their_placeholders() -> None:
    zh = json.loads((LOCALES_DIR / "zh.json").read_text(encoding="utf-8"))
    wrong = {msg: text for msg, text in zh.items() if _placeholders(msg) != _placeholders(text)}
    assert not wrong, wrong


def test_translations_are_chinese() -> None:
    zh = json.loads((LOCALES_DIR / "zh.json").read_text(encoding="utf-8"))
    untranslated = [msg for msg, text in zh.items() if not re.search(r"[\u4e00-\u9fff]", text) and msg != "LLM Portal"]
    assert not untranslated, untranslated


def test_gettext_translates_and_fills_placeholders() -> None:
    assert gettext("Sign in", language="en") == "Sign in"
    assert gettext("Sign in", language="zh") == catalogue("zh")["Sign in"]
    assert "7" in gettext("Too many failed sign-in attempts; try again in {seconds} s", language="zh", seconds=7)
    assert gettext("a message nobody translated", language="zh") == "a message nobody translated"


def test_accept_language_negotiation() -> None:
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("fr-FR") == "en"
    assert negotiate(None) == "en"
