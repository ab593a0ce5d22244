"""`_()` for pages: translates into the language of the browser tab's user."""

from __future__ import annotations

from nicegui import app

from backend.i18n import DEFAULT_LANGUAGE, LANGUAGES, gettext


def page_language() -> str:
    try:
        language = app.storage.user.get("lang", DEFAULT_LANGUAGE)
    except RuntimeError:  # outside a page request (start-up, background jobs)
        return DEFAULT_LANGUAGE
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _(message: str, **params: object) -> str:
    return gettext(message, language=page_language(), **params)
