"""Chat widgets: model output as sanitized Markdown, a streamed answer with its live reasoning panel and metrics,
and the date groups of a conversation list. Chat and Compare both show answers with these."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import markdown2
import nh3
from nicegui import ui
from pygments.formatters import HtmlFormatter
from pygments.token import STANDARD_TYPES

from backend.i18n import N_
from ui.i18n import _

T = TypeVar("T")

RENDER_INTERVAL = 0.05  # seconds: at most ~20 updates a second per answer, however fast the tokens come
MARKDOWN_EXTRAS = ["fenced-code-blocks", "tables", "strike", "cuddled-lists", "code-friendly", "break-on-newline"]
# What the Markdown renderer produces, and nothing else: no images (a model's output must not make the browser
# fetch a URL of its choosing), no styles, only the classes of code highlighting.
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "map", "area"}
ALLOWED_CLASSES = {"div": {"codehilite"}, "span": {c for c in STANDARD_TYPES.values() if c}}
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)  # markdown2's code fences: backticks only
# Lines that go on a list, a quotation or a table above them even after a blank line (markdown2 lets a table go on).
_LINE_KINDS = (("list", re.compile(r"[ \t]*(?:[*+-]|\d+[.)])(?:[ \t]|$)")), ("quote", re.compile(r"[ \t]*>")),
               ("table", re.compile(r"[ \t]*\|")))
_FENCE_OPEN = re.compile(r"([ \t]*`{3,})[ \t]*[\w+-]*[ \t]*")  # as markdown2 reads one: the same marker closes it
# Lines markdown2 may read across blank lines its own way: raw HTML (escaped, but its blocks are looked for first), a
# setext underline right after a closing fence (the fence then becomes a heading).
_RAW_HTML = re.compile(r"[ \t]*<[/!?a-zA-Z]")
_UNDERLINE = re.compile(r"[ \t]*(=+|-+)[ \t]*")
# A link reference definition changes links anywhere in the text, before it too.
_LINK_DEFINITION = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:", re.MULTILINE)


def render_markdown(text: str) -> str:
    """Model output → HTML that is safe to show: raw HTML in the text is escaped (shown as written, never run),
    then the result goes through an allow-list sanitizer. A code block still open while streaming is closed
    so that it renders as code at once."""
    if len(_FENCE.findall(text)) % 2:
        text += "\n```"
    html = markdown2.markdown(text, extras=MARKDOWN_EXTRAS, safe_mode="escape")
    return nh3.clean(html, tags=ALLOWED_TAGS, allowed_classes=ALLOWED_CLASSES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow", set_tag_attribute_values={"a": {"target": "_blank"}})


@lru_cache(maxsize=512)
def render_stored_markdown(text: str) -> str:
    """`render_markdown` for text that no longer changes (stored answers, shown again on every visit). A streaming
    answer's partial texts are never asked for twice, so they do not go through this cache."""
    return render_markdown(text)


class IncrementalMarkdown:
    """`render_markdown` for a text that grows at its end (a streaming answer), in time proportional to what is new
    rather than to the whole text.

    The text is cut into top-level blocks at blank lines outside code fences, where nothing that follows can change
    how the block above renders: the next line is complete, not indented, and does not go on a list, quotation or
    table of the block above; the text has no link reference definition, and nothing that markdown2 reads its own
    way across blank lines (raw HTML, a fence that is none). A finished block is rendered once; only the unfinished
    rest is rendered again on each update. The blocks' HTML joined by newlines (`html`) is `render_markdown` of the
    whole text (tests/unit/test_chat_widgets.py checks it on samples and random documents)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.text = ""
        self.blocks: list[str] = []  # the HTML of the finished blocks
        self.tail = ""  # the HTML of the rest, the block being written
        self._done = 0  # where the rest begins in `text`
        self._scanned = 0  # the start of the first line not looked at yet
        self._fence: str | None = None  # the marker of the code block the scan is in
        self._has_content = self._blank = self._indented = False
        self._kinds: set[str] = set()  # of the block's lines: list, quote, table
        self._closed = False  # the line before closed a code block
        # A line markdown2 may read its own way (a fence that is none, raw HTML...): no more blocks, the rest is
        # rendered whole.
        self._odd = False
        self._whole = False  # a link definition was seen: render the whole text every time

    @property
    def html(self) -> str:
        return "\n".join([*self.blocks, self.tail])

    def update(self, text: str) -> bool:
        """Show `text`. Returns True when the finished blocks were dropped (the text changed other than at its end, or
        a link definition appeared): whoever shows them must start over."""
        restarted = not text.startswith(self.text[:self._done])
        if restarted:
            self.reset()
        if not self._whole and _LINK_DEFINITION.search(text, self._done) is not None:
            restarted = restarted or bool(self.blocks)
            self.reset()
            self._whole = True
        self.text = text
        if not self._whole:
            self._scan()
        self.tail = render_markdown(text[self._done:])
        return restarted

    def _scan(self) -> None:
        text = self.text
        while (end := text.find("\n", self._scanned)) >= 0:
            start, self._scanned = self._scanned, end + 1
            line = text[start:end]
            closed, self._closed = self._closed, False
            if self._fence is not None:  # inside a code block: only its closing line counts
                if line.rstrip(" \t") == self._fence:
                    self._fence, self._closed = None, True
                elif _FENCE.match(line):
                    self._odd = True
                continue
            if (closed and _UNDERLINE.fullmatch(line)) or _RAW_HTML.match(line):
                self._odd = True
            if not line.strip(" \t"):
                # No block ends after indented code either: markdown2 may carry a quotation on across it.
                self._blank = self._has_content and not self._indented
            else:
                kind = next((name for name, pattern in _LINE_KINDS if pattern.match(line)), None)
                # After a blank line, a line that is not indented (a list item's paragraph, code) and does not go on
                # a list, quotation or table of the block begins a new block.
                if (self._blank and not self._odd and not line.startswith((" ", "\t"))
                        and kind not in self._kinds):
                    self.blocks.append(render_markdown(text[self._done:start]))
                    self._done = start
                    self._kinds = set()
                if kind is not None:
                    self._kinds.add(kind)
                self._has_content, self._blank = True, False
                self._indented = line.startswith(("    ", "\t"))
                if _FENCE.match(line):
                    opening = _FENCE_OPEN.fullmatch(line)
                    if opening is None:  # not a fence markdown2 reads as such: leave this part whole
                        self._odd = True
                    else:
                        self._fence = opening.group(1)


@lru_cache(maxsize=1)
def code_highlight_css() -> str:
    light = HtmlFormatter(nobackground=True).get_style_defs(".lp-markdown .codehilite")
    dark = HtmlFormatter(nobackground=True, style="github-dark").get_style_defs(".body--dark .lp-markdown .codehilite")
    return light + dark


# A streamed answer's Markdown is a row of parts (see MarkdownView): paragraphs keep their spacing across parts.
PARTS_CSS = """
.lp-markdown > div > p:last-child { margin-bottom: .6em; }
.lp-markdown > div:last-child > p:last-child { margin-bottom: 0; }
"""


def use_chat_assets() -> None:
    """The page-wide pieces the chat widgets need: highlighting colours and the copy buttons of code blocks."""
    ui.add_css(code_highlight_css() + PARTS_CSS)
    ui.add_head_html(f"<script>window.lpCopyLabel = {json.dumps(_('Copy'))};</script>"
                     '<script src="/assets/chat.js" defer></script>')


def copy_to_clipboard(text: str) -> None:
    """Copy in the browser (with a fallback for pages served over plain HTTP, where the Clipboard API is missing)."""
    ui.run_javascript(f"window.lpCopy({json.dumps(text)})")
    ui.notify(_("Copied"), position="bottom", timeout=1200)


class Throttle:
    """Calls `flush` at most once per `interval`, however often it is poked; the last poke is never lost.

    A slow flush spaces the next one out by as long as it took: however long the text grows, flushing never takes
    more than half of the event loop's time."""

    def __init__(self, flush: Callable[[], None], interval: float = RENDER_INTERVAL) -> None:
        self.flush = flush
        self.interval = interval
        self._next = 0.0  # the earliest time of the next flush
        self._handle: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        if self._handle is not None:
            return  # a flush is due already and will show this change too
        loop = asyncio.get_running_loop()
        wait = self._next - loop.time()
        if wait <= 0:
            self._run()
        else:
            self._handle = loop.call_later(wait, self._run)

    def now(self) -> None:
        """Flush at once (the end of a stream)."""
        self.cancel()
        self._run()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self._handle = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            self.flush()
        finally:
            ended = loop.time()
            self._next = max(started + self.interval, ended + (ended - started))


class MarkdownView(ui.element):
    """Model output rendered on the server (sanitized there, not by the browser).

    A text shown as a whole (a stored answer) is one HTML element. A growing text (`show` while it streams) is
    rendered incrementally (`IncrementalMarkdown`): an element per finished block, sent to the browser once, and
    one for the block being written, the only one rendered and sent again on each update."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.classes("lp-markdown")
        self.text = text
        self._markdown: IncrementalMarkdown | None = None  # once the text is shown growing
        self._blocks: list[ui.html] = []
        self._tail: ui.html | None = None
        if text:
            with self:
                self._tail = ui.html(render_stored_markdown(text), sanitize=False)

    @property
    def content(self) -> str:
        """The HTML shown, as one piece (as `ui.html` has it): `render_markdown(self.text)`."""
        if self._markdown is not None:
            return self._markdown.html
        return self._tail.content if self._tail is not None else ""

    def show(self, text: str) -> None:
        if text == self.text:
            return
        self.text = text
        if self._markdown is None:
            self._markdown = IncrementalMarkdown()
            self._clear()
        if self._markdown.update(text):
            self._clear()
        self._draw()

    def _clear(self) -> None:
        self.clear()
        self._blocks, self._tail = [], None

    def _draw(self) -> None:
        assert self._markdown is not None
        for html in self._markdown.blocks[len(self._blocks):]:
            if self._tail is not None:  # the block that was being written is finished
                part, self._tail = self._tail, None
                part.set_content(html)
            else:
                with self:
                    part = ui.html(html, sanitize=False)
            self._blocks.append(part)
        if self._tail is None:
            with self:
                self._tail = ui.html(self._markdown.tail, sanitize=False)
        else:
            self._tail.set_content(self._markdown.tail)


def tokens_per_second(output_tokens: int | None, ttft_ms: int | None, total_ms: int | None) -> float | None:
    if not output_tokens or ttft_ms is None or total_ms is None or total_ms <= ttft_ms:
        return None
    return output_tokens / ((total_ms - ttft_ms) / 1000)


def metrics_text(*, model: str | None, output_tokens: int | None, ttft_ms: int | None, total_ms: int | None) -> str:
    """"model · 120 tokens · first token 310 ms · 42.0 tokens/s": what the answer cost, for the curious."""
    parts = [model] if model else []
    if output_tokens:
        parts.append(_("{n} tokens", n=output_tokens))
    if ttft_ms is not None:
        parts.append(_("first token {ms} ms", ms=ttft_ms))
    rate = tokens_per_second(output_tokens, ttft_ms, total_ms)
    if rate is not None:
        parts.append(_("{rate} tokens/s", rate=f"{rate:.1f}"))
    elif total_ms is not None:
        parts.append(_("{s} s in all", s=f"{total_ms / 1000:.1f}"))
    return " · ".join(parts)


class LiveEvent(Protocol):
    """What a live answer publishes (backend.services.answers.AnswerEvent), as this widget reads it."""

    @property
    def kind(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def to(self) -> str | None: ...


class AnswerView(ui.column):
    """One answer: its reasoning in a collapsible panel above it, the Markdown text, a status note, and metrics.

    Feed it stream pieces (`add_text`, `add_reasoning`, `reclassify`); it redraws at most every
    `RENDER_INTERVAL` and `finish` shows the final state."""

    def __init__(self, *, text: str = "", reasoning: str = "", reasoning_ms: int | None = None,
                 streaming: bool = False) -> None:
        super().__init__()
        self.classes("lp-answer w-full gap-1")
        self.text, self.reasoning = text, reasoning
        self.streaming = streaming
        self._reasoning_started: float | None = None
        self._reasoning_ms = reasoning_ms
        self._answer_started = bool(text)
        with self:
            self.note = ui.label().classes("lp-answer-note text-caption text-secondary")
            self.note.set_visibility(False)
            self.thoughts = ui.expansion(icon="psychology", value=streaming and not text).classes(
                "lp-reasoning w-full").props("dense header-class=lp-reasoning-header")
            with self.thoughts:
                self.thoughts_view = MarkdownView(reasoning).classes("lp-reasoning-text")
            self.thoughts.set_visibility(bool(reasoning))
            self.body = MarkdownView(text)
            self.typing = ui.spinner("dots", size="1.6rem", color="primary")
            self.typing.set_visibility(streaming and not text)
            self.status = ui.row().classes("lp-answer-status items-center gap-2 w-full")
            self.metrics = ui.label().classes("lp-metrics text-caption text-secondary")
            self.actions = ui.row().classes("lp-actions items-center gap-0")
        self._throttle = Throttle(self._render)
        self._update_reasoning_label()

    # --- streaming --------------------------------------------------------------------------------------------

    def show_note(self, text: str) -> None:
        self.note.set_text(text)
        self.note.set_visibility(True)

    def add_text(self, text: str) -> None:
        if not self._answer_started:
            self._answer_started = True
            self._end_reasoning()
        self.text += text
        self._throttle.poke()

    def add_reasoning(self, text: str) -> None:
        if self._reasoning_started is None and self._reasoning_ms is None:
            self._reasoning_started = time.monotonic()
            self.thoughts.set_visibility(True)
            self.thoughts.set_value(True)
        self.reasoning += text
        self._throttle.poke()

    def reclassify(self, text: str, to: str) -> None:
        """A lone `</think>` said that the "answer" so far was reasoning (or the other way round)."""
        if to == "reasoning":
            self.text, self.reasoning = "", text + self.reasoning
            self._answer_started = False
            self._reasoning_started = self._reasoning_started or time.monotonic()
            self.thoughts.set_visibility(True)
        else:
            self.reasoning, self.text = "", text + self.text
            self._reasoning_started, self._reasoning_ms = None, None
            self.thoughts.set_visibility(False)
        self._throttle.poke()

    def finish(self, *, status: str, model: str | None = None, output_tokens: int | None = None,
               ttft_ms: int | None = None, total_ms: int | None = None, reasoning_ms: int | None = None,
               text: str | None = None, reasoning: str | None = None) -> None:
        """The stored message arrived: show it as it will stay (its `text` and `reasoning`, when given, replace
        what was streamed)."""
        self.streaming = False
        if text is not None:
            self.text = text
        if reasoning is not None:
            self.reasoning = reasoning
            self.thoughts.set_visibility(bool(reasoning))
        if reasoning_ms is not None:
            self._reasoning_ms = reasoning_ms
        elif self._reasoning_started is not None and self._reasoning_ms is None:
            self._end_reasoning()
        self._throttle.now()
        if self.text:
            self.thoughts.set_value(False)
        self.metrics.set_text(metrics_text(model=model, output_tokens=output_tokens, ttft_ms=ttft_ms,
                                           total_ms=total_ms))

    def show_outcome(self, status: str, error: str | None = None, *, error_marker: str = "answer-error",
                     retry: Callable[[], Any] | None = None) -> None:
        """Say how the answer ended, when not simply done: the provider's error (with a retry button when there is
        something to retry), stopped by the user, interrupted by a restart, or still being written elsewhere."""
        self.status.clear()
        with self.status:
            if status == "error":
                with ui.row().classes("lp-answer-error w-full items-center gap-2 no-wrap").mark(error_marker):
                    ui.icon("error_outline", color="negative")
                    ui.label(error or _("The model failed to answer")).classes("grow")
                    if retry is not None:
                        ui.button(_("Retry"), icon="refresh", on_click=retry).props("flat dense color=negative").mark(
                            "retry")
            elif status == "cancelled":
                ui.label(_("Stopped: the answer ends here.")).classes("text-caption text-secondary")
            elif status == "interrupted":
                ui.label(_("Interrupted: the portal stopped while this answer was being written.")).classes(
                    "text-caption text-warning")
            elif status == "streaming":  # being written by another instance of the portal
                ui.label(_("Still being written; reload to see more.")).classes("text-caption text-secondary")

    def stop_rendering(self) -> None:
        self._throttle.cancel()

    async def follow(self, events: AsyncIterator[LiveEvent]) -> LiveEvent | None:
        """Show a live answer's events as they come; returns its last one (`done` or `error`), or None when the
        stream ended without one. Rendering stops however it ends (the page left, the listener was cancelled)."""
        try:
            async for event in events:
                if event.kind == "text":
                    self.add_text(event.text)
                elif event.kind == "reasoning":
                    self.add_reasoning(event.text)
                elif event.kind == "reclassify":
                    self.reclassify(event.text, event.to or "answer")
                else:
                    return event
            return None
        finally:
            self.stop_rendering()

    # --- drawing ----------------------------------------------------------------------------------------------

    def _end_reasoning(self) -> None:
        if self._reasoning_started is not None and self._reasoning_ms is None:
            self._reasoning_ms = round((time.monotonic() - self._reasoning_started) * 1000)
        self.thoughts.set_value(False)  # the answer begins: the thinking folds away

    def _update_reasoning_label(self) -> None:
        if self._reasoning_ms is not None:
            self.thoughts.set_text(_("Thought for {s} s", s=max(1, round(self._reasoning_ms / 1000))))
        elif self._reasoning_started is not None:
            self.thoughts.set_text(_("Thinking… {s} s", s=int(time.monotonic() - self._reasoning_started)))
        else:
            self.thoughts.set_text(_("Reasoning"))

    def _render(self) -> None:
        if self.is_deleted:
            return
        self.body.show(self.text)
        self.thoughts_view.show(self.reasoning)
        self.typing.set_visibility(self.streaming and not self.text)
        self._update_reasoning_label()


DATE_GROUPS = (N_("Today"), N_("Yesterday"), N_("Previous 7 days"), N_("Previous 30 days"))


def group_by_date(items: Iterable[tuple[datetime, T]], *, now: datetime) -> list[tuple[str, list[T]]]:
    """Newest-first items under "Today", "Yesterday", "Previous 7 days", "Previous 30 days", then one group per
    month ("2026-09"). Labels of the first four are message ids, to be translated by the caller."""
    today = now.date()
    groups: dict[str, list[T]] = {}
    for when, item in items:
        age = (today - when.date()).days
        if age <= 0:
            label = DATE_GROUPS[0]
        elif age == 1:
            label = DATE_GROUPS[1]
        elif age < 7:
            label = DATE_GROUPS[2]
        elif age < 30:
            label = DATE_GROUPS[3]
        else:
            label = when.strftime("%Y-%m")
        groups.setdefault(label, []).append(item)
    return list(groups.items())
