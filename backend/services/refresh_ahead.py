"""Refresh-ahead for the short-lived caches of the gateway's hot path (credentials, model resolutions, limits).

An entry used in the second half of its lifetime is read again from the database in a worker thread, while the
caller goes on with the entry it has: a steady caller (a script, a chat client) then never waits for the database,
and an entry is still never older than its lifetime since its own read. A cache that is not used goes on ending
as before. One refresh per key runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

# A refresh starts this long after the call that finds its entry due: that call is then past its own start (for the
# gateway, waiting for the upstream's first token) before a worker thread competes with it for the CPU and the GIL.
DELAY_SECONDS = 0.2
_STUCK_SECONDS = 60.0  # a refresh whose loop closed before it ran never reports; its key is free again after this

_running: dict[Hashable, float] = {}  # key → when its refresh was asked for (time.monotonic())


def due(expires_at: float, lifetime: float, now: float) -> bool:
    """Whether an entry that ends at `expires_at` (of `lifetime` seconds) is in the second half of its life."""
    return expires_at - now < lifetime / 2


def in_background(key: Hashable, work: Callable[[], object]) -> None:
    """Run `work` soon in a worker thread unless one for `key` is asked for already; called from the event loop, it
    returns at once. Without a running loop (a caller in a thread) nothing happens: the entry ends as it would have."""
    now = time.monotonic()
    if now - _running.get(key, -_STUCK_SECONDS) < _STUCK_SECONDS:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _running[key] = now
    loop.call_later(DELAY_SECONDS, _submit, loop, key, work)


def _submit(loop: asyncio.AbstractEventLoop, key: Hashable, work: Callable[[], object]) -> None:
    try:
        loop.run_in_executor(None, _run, key, work)
    except RuntimeError:  # the loop's executor is shut down: the loop is closing
        _running.pop(key, None)


def _run(key: Hashable, work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # the entry ends as it would have, and its next caller reads (and reports) for itself
        log.exception("refreshing the cached %s failed", key[0] if isinstance(key, tuple) else key)
    finally:
        _running.pop(key, None)  # here, not in a callback on the loop: a loop that closes meanwhile must not keep it
