"""In-process notifications from services to whoever holds live state (open pages).

Services stay unaware of pages: the page layer subscribes at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

UserListener = Callable[[int], None]
_signed_out_listeners: list[UserListener] = []
_role_changed_listeners: list[UserListener] = []


def on_user_signed_out(listener: UserListener) -> None:
    if listener not in _signed_out_listeners:
        _signed_out_listeners.append(listener)


def on_user_role_changed(listener: UserListener) -> None:
    if listener not in _role_changed_listeners:
        _role_changed_listeners.append(listener)


def _notify(listeners: list[UserListener], user_id: int, what: str) -> None:
    for listener in list(listeners):
        try:
            listener(user_id)
        except Exception:  # a broken listener must not undo the change that already happened
            log.exception("%s listener failed for user %s", what, user_id)


def user_signed_out(user_id: int) -> None:
    """Every session of `user_id` has ended (disabled, or signed out everywhere)."""
    _notify(_signed_out_listeners, user_id, "signed-out")


def user_role_changed(user_id: int) -> None:
    """An admin changed the role of `user_id`: what their open pages show and allow is out of date."""
    _notify(_role_changed_listeners, user_id, "role-changed")
