"""Per-user limits: requests a minute (chat, compare, the gateway) and input + output tokens a UTC day.

`check` is the one place that enforces them; `enforce` is its form for the gateway's event loop, which leaves the
loop only when it must (a quota to count, limits not cached, or a Redis counter). Limits come from the admin
settings' defaults and the user's overrides, cached for a few seconds per user and cleared when an admin
changes either. The request counter is a sliding window in process, or in Redis with `REDIS_URL` (several
instances), the design of the failed-login limiter.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Literal, Protocol

import redis
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import TooManyRequests
from backend.models.admin import QuotaStatus
from backend.models.provider import UsageRecord
from backend.models.user import User
from backend.security.ratelimit import _wait
from backend.services import refresh_ahead, settings_store

Kind = Literal["chat", "compare", "gateway"]

CACHE_SECONDS = 5.0
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class UserLimits:
    rate_per_minute: int  # 0: none
    daily_quota: int  # 0: none


# --- the request counter ----------------------------------------------------------------------------------------


class RequestLimiter(Protocol):
    def hit(self, key: str, *, limit: int, window: float) -> int:
        """Count a request for `key` and return 0, or return the seconds to wait (and count nothing)."""


class MemoryRequestLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window: float) -> int:
        now = time.time()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            wait = _wait(list(hits)[-limit:], limit=limit, window=window, now=now)
            if not wait:
                hits.append(now)
            return wait

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


class RedisRequestLimiter:
    def __init__(self, url: str, *, prefix: str = "llmportal:rate:") -> None:
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, key: str, *, limit: int, window: float) -> int:
        now = time.time()
        name = self.prefix + key
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(name, "-inf", now - window)
        pipe.zrange(name, -limit, -1, withscores=True)
        _, entries = pipe.execute()
        wait = _wait([score for _, score in entries], limit=limit, window=window, now=now)
        if not wait:
            pipe = self._redis.pipeline()
            pipe.zadd(name, {uuid.uuid4().hex: now})
            pipe.expire(name, math.ceil(window) + 1)
            pipe.execute()
        return wait


@lru_cache
def _limiter(redis_url: str, database_url: str) -> RequestLimiter:
    # One per database too, so that tests (a database each) do not share counters.
    return RedisRequestLimiter(redis_url) if redis_url else MemoryRequestLimiter()


def limiter() -> RequestLimiter:
    settings = get_settings()
    return _limiter(settings.redis_url, settings.effective_database_url)


# --- whose limits -----------------------------------------------------------------------------------------------

_lock = threading.Lock()
_cache: dict[tuple[str, int], tuple[float, UserLimits]] = {}
_generation = 0  # bumped by every clear: limits read before a change are not kept after it


def clear_cache(user_id: int | None = None) -> None:
    """Forget cached limits (of one user, or all): an admin changed them."""
    global _generation
    with _lock:
        _generation += 1
        if user_id is None:
            _cache.clear()
        else:
            for key in [k for k in _cache if k[1] == user_id]:
                del _cache[key]


settings_store.on_change(clear_cache)


def _cached(user_id: int) -> UserLimits | None:
    """The user's cached limits; used in the second half of their lifetime, they are read again in the background
    (when called on the event loop), so that a steady caller keeps finding them."""
    key = (get_settings().effective_database_url, user_id)
    entry = _cache.get(key)
    if entry is None:
        return None
    now = time.monotonic()
    if entry[0] < now:
        return None
    if refresh_ahead.due(entry[0], CACHE_SECONDS, now):
        refresh_ahead.in_background(("limits", *key), partial(_refresh, user_id))
    return entry[1]


def keep_fresh(user_id: int) -> None:
    """Use the user's cached limits without a request (the user is busy with a long answer): refreshed when due."""
    _cached(user_id)


def _refresh(user_id: int) -> None:
    with session_scope() as session:
        _read_limits(session, user_id)


def limits_for(session: Session, user_id: int) -> UserLimits:
    found = _cached(user_id)
    if found is not None:
        return found
    return _read_limits(session, user_id)


def _read_limits(session: Session, user_id: int) -> UserLimits:
    """From the database, and into the cache."""
    generation = _generation
    defaults = settings_store.load(session)
    overrides = session.exec(
        select(User.rate_limit_per_minute, User.daily_token_quota).where(User.id == user_id)
    ).first()
    rate, quota = overrides if overrides is not None else (None, None)
    limits = UserLimits(rate_per_minute=defaults.rate_limit_per_minute if rate is None else rate,
                        daily_quota=defaults.daily_token_quota if quota is None else quota)
    with _lock:
        if generation == _generation:
            _cache[(get_settings().effective_database_url, user_id)] = (time.monotonic() + CACHE_SECONDS, limits)
    return limits


# --- counting -----------------------------------------------------------------------------------------------------


def day_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def used_today(session: Session, user_id: int) -> int:
    """Input + output tokens of the user's calls since midnight UTC (one query on the user and time index)."""
    start, _ = day_bounds()
    total = session.exec(
        select(func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0))
        .where(UsageRecord.user_id == user_id, col(UsageRecord.time) >= start)
    ).one()
    return int(total or 0)


def quota_status(session: Session, *, user: User) -> QuotaStatus:
    """The user's limits and what is left of today's tokens (the profile page)."""
    limits = limits_for(session, user.id)  # type: ignore[arg-type]
    used = used_today(session, user.id)  # type: ignore[arg-type]
    _, resets = day_bounds()
    remaining = max(0, limits.daily_quota - used) if limits.daily_quota else None
    return QuotaStatus(rate_limit_per_minute=limits.rate_per_minute, daily_token_quota=limits.daily_quota,
                       used_today=used, remaining_today=remaining, resets_at=resets)


def check_quota(session: Session, *, user: User) -> None:
    """Raise `TooManyRequests` when `user`'s daily token quota is used up, without counting a request against the
    rate (each prompt of a compare batch, which counted once when it started)."""
    assert user.id is not None
    _check_quota(session, user.id, limits_for(session, user.id))


def _check_quota(session: Session, user_id: int, limits: UserLimits) -> None:
    if not limits.daily_quota:
        return
    used = used_today(session, user_id)
    if used >= limits.daily_quota:
        _, resets = day_bounds()
        wait = max(1, math.ceil((resets - datetime.now(UTC)).total_seconds()))
        raise TooManyRequests("Daily token quota of {quota} tokens used up ({used} used); it resets at {resets} UTC",
                              retry_after=wait, quota=limits.daily_quota, used=used,
                              resets=resets.strftime("%Y-%m-%d %H:%M"))


def _check_rate(user_id: int, limits: UserLimits) -> None:
    if not limits.rate_per_minute:
        return
    wait = limiter().hit(f"user:{user_id}", limit=limits.rate_per_minute, window=WINDOW_SECONDS)
    if wait:
        raise TooManyRequests("Rate limit of {limit} requests a minute reached; try again in {seconds} s",
                              retry_after=wait, limit=limits.rate_per_minute, seconds=wait)


def check(session: Session, *, user: User, kind: Kind) -> None:
    """Raise `TooManyRequests` (429, with `retry_after`) when `user` may not start another `kind` call now;
    otherwise count the call against the user's rate."""
    assert user.id is not None
    limits = limits_for(session, user.id)
    _check_quota(session, user.id, limits)  # first: a refused call must not use up the rate
    _check_rate(user.id, limits)


def _check_in_session(user: User, kind: Kind) -> None:
    with session_scope() as session:
        check(session, user=user, kind=kind)


async def enforce(*, user: User, kind: Kind) -> None:
    """`check` for the event loop: without a quota to count, cached limits and the in-process counter, no thread
    hop and no query at all."""
    assert user.id is not None
    limits = _cached(user.id)
    if limits is not None and not limits.daily_quota and isinstance(limiter(), MemoryRequestLimiter):
        _check_rate(user.id, limits)
        return
    await run_in_threadpool(_check_in_session, user, kind)
