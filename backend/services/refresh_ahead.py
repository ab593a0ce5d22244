"""Refresh-ahead for the short-lived caches of the gateway's hot path (credentials, model resolutions, limits).

An entry used in the second half of its lifetime is read again from the database in a worker thread, while the
caller goes on with the entry it has: a steady caller (a script, a chat client) then never waits for the database,
and an entry is still never older than its lifetime since its own read. A cache that is not used goes on ending
as before. One refresh per key runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

_running: set[Hashable] = set()


def due(expires_at: float, lifetime: float, now: float) -> bool:
    """Whether an entry that ends at `expires_at` (of `lifetime` seconds) is in the second half of its life."""
    return expires_at - now < lifetime / 2


def in_background(key: Hashable, work: Callable[[], object]) -> None:
    """Run `work` in a worker thread unless one for `key` runs already; called from the event loop, it returns at
    once. Without a running loop (a caller in a thread) nothing happens: the entry ends as it would have."""
    if key in _running:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _running.add(key)
    try:
        loop.run_in_executor(None, _run, key, work)
    except RuntimeError:  # the loop's executor is shut down: the loop is closing
        _running.discard(key)


def _run(key: Hashable, work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # the entry ends as it would have, and its next caller reads (and reports) for itself
        log.exception("refreshing the cached %s failed", key[0] if isinstance(key, tuple) else key)
    finally:
        _running.discard(key)  # here, not in a callback on the loop: a loop that closes meanwhile must not keep it
