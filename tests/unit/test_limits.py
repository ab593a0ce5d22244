"""The request counter behind the per-user rate limit: a sliding window, in process and in Redis."""

from __future__ import annotations

import time

import pytest

from backend.services import limits


def test_the_memory_window_allows_the_limit_then_says_how_long_to_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    counter = limits.MemoryRequestLimiter()
    assert [counter.hit("u", limit=3, window=60) for _ in range(3)] == [0, 0, 0]
    assert counter.hit("u", limit=3, window=60) == 60  # refused, and not counted
    assert counter.hit("other", limit=3, window=60) == 0
    now[0] += 59.5
    assert counter.hit("u", limit=3, window=60) == 1
    now[0] += 1
    assert [counter.hit("u", limit=3, window=60) for _ in range(3)] == [0, 0, 0]  # the earlier hits left the window
    assert counter.hit("u", limit=3, window=60) == 60


def test_a_lower_limit_applies_at_once_to_hits_already_counted() -> None:
    counter = limits.MemoryRequestLimiter()
    for _ in range(5):
        counter.hit("u", limit=10, window=60)
    assert counter.hit("u", limit=2, window=60) > 0


def test_the_redis_window_counts_across_instances(redis_url: str) -> None:
    first = limits.RedisRequestLimiter(redis_url, prefix="llmportal:test-rate:")
    second = limits.RedisRequestLimiter(redis_url, prefix="llmportal:test-rate:")
    first._redis.delete("llmportal:test-rate:u")
    assert first.hit("u", limit=2, window=60) == 0
    assert second.hit("u", limit=2, window=60) == 0
    assert 0 < first.hit("u", limit=2, window=60) <= 60
    first._redis.delete("llmportal:test-rate:u")


def test_the_day_resets_at_midnight_utc() -> None:
    from datetime import UTC, datetime

    start, end = limits.day_bounds(datetime(2026, 3, 4, 23, 59, tzinfo=UTC))
    assert (start.isoformat(), end.isoformat()) == ("2026-03-04T00:00:00+00:00", "2026-03-05T00:00:00+00:00")
