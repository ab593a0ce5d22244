"""In-process notifications from services to whoever holds live state (open pages).

Services stay unaware of pages: the page layer subscribes at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

SignedOutListener = Callable[[int], None]
_signed_out_listeners: list[SignedOutListener] = []


def on_user_signed_out(listener: SignedOutListener) -> None:
    if listener not in _signed_out_listeners:
        _signed_out_listeners.append(listener)


def user_signed_out(user_id: int) -> None:
    """Every session of `user_id` has ended (disabled, or signed out everywhere)."""
    for listener in list(_signed_out_listeners):
        try:
            listener(user_id)
        except Exception:  # a broken listener must not undo the sign-out that already happened
            log.exception("signed-out listener failed for user %s", user_id)
