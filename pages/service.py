"""How pages call services: in a worker thread, with a session of their own, errors shown to the user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nicegui import run, ui

from backend.db import session_scope
from backend.errors import DomainError
from backend.providers.base import ProviderError
from ui.i18n import page_language

T = TypeVar("T")


def _in_session(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    with session_scope() as session:
        return fn(session, **kwargs)


async def call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `fn(session, **kwargs)` off the event loop; domain errors propagate for the page to show."""
    result = await run.io_bound(_in_session, fn, kwargs)
    return result  # type: ignore[return-value]


async def call_async(fn: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
    """Await an async service (network calls); its few database statements run on the loop, as in the API."""
    with session_scope() as session:
        return await fn(session, **kwargs)


def query(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """A quick read while building a page (an indexed lookup: no need to leave the loop)."""
    with session_scope() as session:
        return fn(session, **kwargs)


def show_error(error: DomainError | ProviderError) -> None:
    ui.notify(error.translated(page_language()), type="negative", position="top", multi_line=True)


def error_text(error: DomainError) -> str:
    return error.translated(page_language())
