"""Sliding-window failure counters: in process by default, in Redis when `REDIS_URL` is set (several instances)."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from typing import Protocol

import redis


class FailureLimiter(Protocol):
    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again; 0 when it may now."""

    def record_failure(self, key: str) -> None: ...

    def reset(self, key: str) -> None: ...


def _wait(times: list[float], *, limit: int, window: float, now: float) -> int:
    if len(times) < limit:
        return 0
    # Allowed again once the limit-th most recent failure leaves the window.
    return max(1, math.ceil(times[-limit] + window - now))


class MemoryFailureLimiter:
    def __init__(self, *, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]  # keep the table from growing with one-off keys
            return deque()
        return failures

    def retry_after(self, key: str) -> int:
        now = time.time()
        with self._lock:
            return _wait(list(self._recent(key, now)), limit=self.limit, window=self.window, now=now)

    def record_failure(self, key: str) -> None:
        now = time.time()
        with self._lock:
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class RedisFailureLimiter:
    def __init__(self, url: str, *, limit: int, window_seconds: float, prefix: str = "llmportal:fail:") -> None:
        self.limit = limit
        self.window = window_seconds
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def retry_after(self, key: str) -> int:
        now = time.time()
        name = self.prefix + key
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(name, "-inf", now - self.window)
        pipe.zrange(name, 0, -1, withscores=True)
        _, entries = pipe.execute()
        return _wait([score for _, score in entries], limit=self.limit, window=self.window, now=now)

    def record_failure(self, key: str) -> None:
        now = time.time()
        name = self.prefix + key
        pipe = self._redis.pipeline()
        pipe.zadd(name, {uuid.uuid4().hex: now})
        pipe.expire(name, math.ceil(self.window) + 1)
        pipe.execute()

    def reset(self, key: str) -> None:
        self._redis.delete(self.prefix + key)


def make_failure_limiter(*, redis_url: str, limit: int, window_seconds: float) -> FailureLimiter:
    if redis_url:
        return RedisFailureLimiter(redis_url, limit=limit, window_seconds=window_seconds)
    return MemoryFailureLimiter(limit=limit, window_seconds=window_seconds)
