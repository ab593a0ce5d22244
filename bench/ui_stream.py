"""Streaming into the UI: what each update of a streamed answer costs the event loop, and how many there are.

    .venv/bin/python bench/ui_stream.py                    # writes bench/results/ui_stream.json and ui_stream.md
    .venv/bin/python bench/ui_stream.py --rate 2000 --kb 30

A 30 KB Markdown answer (paragraphs, lists, tables, code blocks) arrives at a fixed token rate (1000 tokens of ~4
characters a second by default: an upstream does not wait for the portal, tokens that came while the loop was busy
are all there at once) and goes through what a chat bubble does with it: every token pokes the render throttle,
each flush renders the Markdown (markdown2, pygments, nh3) on the event loop and hands the HTML to send.

- before: the whole text rendered on each flush and all its HTML sent; the throttle waited `interval` from the start
  of the last flush, so once a render took longer than that it rendered on every token (the state before this work,
  reproduced here).
- after: `ui.chat.IncrementalMarkdown` (finished blocks rendered once, only the block being written again; sent:
  that block, and a finished block once) and `ui.chat.Throttle`, which also spaces flushes out by as long as the
  last one took.

Measured: updates and updates/s, render time per update, bytes handed to the websocket per update, how late a 5 ms
timer fires meanwhile (the loop's responsiveness), and how much of the answer was shown when the stream ended. A run
stops after `--limit` seconds (before: renders of the whole text on every token can take minutes). The browser's side
(websocket, DOM) is not part of it. Budget (shared/DESIGN.md): at most ~20 updates a second per bubble, and nothing
blocks the event loop for more than a few milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ui.chat import RENDER_INTERVAL, IncrementalMarkdown, Throttle, render_markdown  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORDS = ["the", "model", "answers", "with", "a", "list", "of", "steps", "and", "some", "code", "so", "that", "the",
         "reader", "can", "follow", "each", "part", "of", "the", "explanation", "without", "losing", "track", "of",
         "what", "came", "before", "it"]


def answer(kb: int, seed: int = 0) -> str:
    """A Markdown answer of about `kb` KB shaped like a model's: headings, paragraphs, lists, tables, code."""
    rng = random.Random(seed)

    def sentence(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    parts: list[str] = []
    while sum(len(p) + 2 for p in parts) < kb * 1024:
        kind = rng.choice(["paragraph", "paragraph", "list", "code", "table", "heading"])
        if kind == "paragraph":
            parts.append(" ".join(sentence(rng.randint(8, 20)) for _ in range(rng.randint(2, 5))))
        elif kind == "list":
            parts.append("\n".join(f"{i + 1}. **{rng.choice(WORDS)}**: {sentence(rng.randint(6, 14))}"
                                   for i in range(rng.randint(3, 7))))
        elif kind == "code":
            body = "\n".join(f"    result = compute({rng.choice(WORDS)!r}, step={i})  # {rng.choice(WORDS)}"
                             for i in range(rng.randint(4, 15)))
            parts.append(f"```python\ndef run():\n{body}\n    return result\n```")
        elif kind == "table":
            rows = "\n".join(f"| {rng.choice(WORDS)} | {rng.randint(1, 999)} | {sentence(4)} |"
                             for _ in range(rng.randint(3, 8)))
            parts.append(f"| name | value | note |\n|---|---:|---|\n{rows}")
        else:
            parts.append(f"## {sentence(4)}")
    return "\n\n".join(parts) + "\n"


def tokens(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


class OldThrottle:
    """The throttle before: `interval` from the start of the last flush, whatever the flush cost."""

    def __init__(self, flush: Callable[[], None], interval: float = RENDER_INTERVAL) -> None:
        self.flush, self.interval, self._last = flush, interval, 0.0
        self._handle: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self.interval - loop.time()
        if wait <= 0:
            self._run()
        else:
            self._handle = loop.call_later(wait, self._run)

    def now(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._run()

    def _run(self) -> None:
        self._handle = None
        self._last = asyncio.get_running_loop().time()
        self.flush()


@dataclass
class Bubble:
    """What a chat bubble does with the text, as `before` or `after`."""

    mode: str
    text: str = ""
    renders_ms: list[float] = field(default_factory=list)
    sent_bytes: list[int] = field(default_factory=list)
    shown: str = ""
    html: str = ""

    def __post_init__(self) -> None:
        self.markdown = IncrementalMarkdown()
        self.throttle: Throttle | OldThrottle = (Throttle(self.flush) if self.mode == "after"
                                                 else OldThrottle(self.flush))

    def add(self, token: str) -> None:
        self.text += token
        self.throttle.poke()

    def flush(self) -> None:
        if self.text == self.shown:
            return
        started = time.perf_counter()
        if self.mode == "before":
            self.html = render_markdown(self.text)
            sent = len(self.html)  # all of it, every time
        else:
            done = len(self.markdown.blocks)
            self.markdown.update(self.text)
            sent = len(self.markdown.tail) + sum(len(b) for b in self.markdown.blocks[done:])
            self.html = ""
        self.renders_ms.append((time.perf_counter() - started) * 1000)
        self.sent_bytes.append(sent)
        self.shown = self.text


async def run(mode: str, text: str, rate: float, limit: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    pieces = tokens(text)
    bubble = Bubble(mode)
    lags: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:  # how late a 5 ms timer fires: how long the loop was held
        while not stop.is_set():
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lags.append((loop.time() - due) * 1000)

    watcher = asyncio.create_task(watch())
    started = loop.time()
    given = 0
    while given < len(pieces) and loop.time() - started < limit:
        due = min(len(pieces), int((loop.time() - started) * rate) + 1)
        while given < due and loop.time() - started < limit:  # all that came meanwhile, one poke each
            bubble.add(pieces[given])
            given += 1
        await asyncio.sleep(0.001)
    streamed = loop.time() - started
    if given == len(pieces):
        bubble.throttle.now()  # the end of the stream: the last state at once
    elapsed = loop.time() - started
    stop.set()
    await watcher
    if mode == "after" and given == len(pieces):
        assert bubble.markdown.html == render_markdown(text), "incremental render differs from a full render"
    renders = sorted(bubble.renders_ms)
    return {
        "mode": mode,
        "tokens_given": given,
        "tokens": len(pieces),
        "chars_shown": len(bubble.shown),
        "finished": given == len(pieces) and bubble.shown == text,
        "stream_s": round(streamed, 2),
        "elapsed_s": round(elapsed, 2),
        "updates": len(renders),
        "updates_per_s": round(len(renders) / elapsed, 1),
        "render_ms_mean": round(statistics.fmean(renders), 2),
        "render_ms_p50": round(renders[len(renders) // 2], 2),
        "render_ms_p95": round(renders[int(len(renders) * 0.95)], 2),
        "render_ms_max": round(renders[-1], 2),
        "render_ms_total": round(sum(renders)),
        "sent_kb_per_update": round(statistics.fmean(bubble.sent_bytes) / 1024, 2),
        "sent_kb_total": round(sum(bubble.sent_bytes) / 1024),
        "loop_lag_ms_p99": round(sorted(lags)[int(len(lags) * 0.99)], 1),
        "loop_lag_ms_max": round(max(lags), 1),
    }


def markdown_table(results: list[dict[str, object]], args: argparse.Namespace, size: int) -> str:
    lines = [f"# Streaming into the UI: a {size / 1024:.1f} KB answer at {args.rate:g} tokens/s (~4 characters each)",
             "", f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_version()}, `bench/ui_stream.py "
             f"--rate {args.rate:g} --kb {args.kb}` (runs stop after {args.limit:g} s)", "",
             "| | shown at the end | updates/s | render ms p50 / p95 / max | KB sent an update (total) | "
             "loop lag ms p99 / max |", "| --- | --- | ---: | --- | --- | --- |"]
    for r in results:
        shown = "all" if r["finished"] else f"{r['chars_shown']:,} of {size:,} characters after {r['elapsed_s']} s"
        lines.append(f"| {r['mode']} | {shown} | {r['updates_per_s']} | {r['render_ms_p50']} / {r['render_ms_p95']} "
                     f"/ {r['render_ms_max']} | {r['sent_kb_per_update']} ({r['sent_kb_total']:,}) | "
                     f"{r['loop_lag_ms_p99']} / {r['loop_lag_ms_max']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="tokens a second")
    parser.add_argument("--kb", type=int, default=30, help="size of the answer")
    parser.add_argument("--limit", type=float, default=30, help="seconds a run may take at most")
    parser.add_argument("--modes", nargs="+", default=["before", "after"])
    parser.add_argument("--name", default="ui_stream")
    args = parser.parse_args()
    text = answer(args.kb)
    render_markdown(text)  # imports, pygments lexers: not part of the first update
    results = [asyncio.run(run(mode, text, args.rate, args.limit)) for mode in args.modes]
    for result in results:
        print(json.dumps(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
            "machine": platform.machine(), "rate": args.rate, "kb": args.kb, "chars": len(text), "limit_s": args.limit}
    (RESULTS / f"{args.name}.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown_table(results, args, len(text)))


if __name__ == "__main__":
    main()
