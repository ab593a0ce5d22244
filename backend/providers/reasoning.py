"""Incremental splitting of inline `<think>…</think>` reasoning from a model's streamed output.

Some models put their reasoning inside the text, between `<think>` and `</think>`. `ThinkTagParser` is fed the
chunks of a stream one by one and returns `Piece`s: `"text"` (answer), `"reasoning"`, or `"correction"`.

Rules, in short:

* Text between `<think>` and `</think>` is reasoning, text outside is answer. A tag may be split across chunks at any
  character; only the shortest suffix that could still begin a tag (`<`, `<t`, …, `</think`) is held back, everything
  else is emitted at once. The tags themselves are never emitted; matching is case-sensitive.
* A stream that ends inside a think block leaves everything after `<think>` as reasoning; `finish()` flushes what
  was held back in the current mode (a trailing `</think` with no `>` comes out as text in answer mode).
* A lone `</think>` (the opening tag was in the prompt template, as with the DeepSeek-R1 distills):
  - with `starts_in_reasoning=True` the output is reasoning from the first token up to `</think>`. If the model
    still emits an explicit `<think>` first (possibly after whitespace, which is dropped) it is the opening tag.
  - with `starts_in_reasoning=False` the text streams as answer; when a `</think>` then arrives with no `<think>`
    before it, a `"correction"` piece says that the answer emitted by earlier `feed()` calls (exactly its `text`)
    was reasoning after all: the consumer clears its answer and puts that text in front of its reasoning (which is
    empty at that point). Text of the same `feed()` call that precedes the tag is returned directly as reasoning.
    After the tag, the text is answer again.
* Stray tags — an `<think>` inside reasoning, a `</think>` in answer mode once a think block or a correction has
  been seen — are dropped; the mode does not change.
* Whitespace: the answer's leading whitespace right after `</think>` is dropped, and so are the reasoning's leading
  newlines right after `<think>` (or at the start of a stream that starts in reasoning). Nothing else is altered.

The parser is O(n) over the stream: each chunk is scanned once, together with at most the few held-back characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

PieceKind = Literal["text", "reasoning", "correction"]


@dataclass(frozen=True)
class Piece:
    """One output of the parser.

    For `"correction"`, `text` is the answer emitted so far (by earlier `feed()` calls), which was reasoning after all.
    """

    kind: PieceKind
    text: str


def _is_tag_prefix(text: str) -> bool:
    return OPEN_TAG.startswith(text) or CLOSE_TAG.startswith(text)


class _Output:
    """The pieces of one `feed()`/`finish()` call; adjacent pieces of the same kind are merged."""

    def __init__(self) -> None:
        self.kinds: list[PieceKind] = []
        self.parts: list[list[str]] = []

    def add(self, kind: PieceKind, text: str) -> None:
        if not text:
            return
        if self.kinds and self.kinds[-1] == kind:
            self.parts[-1].append(text)
        else:
            self.kinds.append(kind)
            self.parts.append([text])

    def take_text(self) -> str:
        """Remove and return all the text so far; only called while nothing but answer text has been added."""
        assert all(kind == "text" for kind in self.kinds)
        taken = "".join(part for parts in self.parts for part in parts)
        self.kinds.clear()
        self.parts.clear()
        return taken

    def pieces(self) -> list[Piece]:
        return [Piece(kind, "".join(parts)) for kind, parts in zip(self.kinds, self.parts, strict=True)]


class ThinkTagParser:
    """Splits a streamed output into answer text and reasoning, chunk by chunk (see the module docstring)."""

    def __init__(self, *, starts_in_reasoning: bool = False) -> None:
        self._reasoning = starts_in_reasoning
        # Before the first non-whitespace character of a stream that starts in reasoning: an explicit `<think>`
        # may still come, and the whitespace before it is then dropped.
        self._at_start = starts_in_reasoning
        self._lead_ws = ""
        self._held = ""  # a suffix that could still be the start of a tag
        self._strip_answer = False  # drop the answer's leading whitespace (right after `</think>`)
        self._strip_reasoning = starts_in_reasoning  # drop the reasoning's leading newlines (right after `<think>`)
        # A lone `</think>` can still turn the answer so far into reasoning: no tag has been seen yet.
        self._may_correct = not starts_in_reasoning
        self._answer_so_far: list[str] = []  # answer returned by earlier feeds, kept only while _may_correct

    @property
    def in_reasoning(self) -> bool:
        """Whether the text that comes next is (so far as is known) reasoning."""
        return self._reasoning

    def feed(self, chunk: str) -> list[Piece]:
        """Parse the next chunk; returns the pieces that can be emitted now (never empty-text ones)."""
        if not chunk:
            return []
        text = self._held + chunk
        self._held = ""
        out = _Output()
        pos = 0
        if self._at_start:
            pos = self._consume_start(text, out)
            if pos < 0:
                return []
        self._scan(text, pos, out)
        pieces = out.pieces()
        if self._may_correct:
            self._answer_so_far.extend(piece.text for piece in pieces)
        return pieces

    def finish(self) -> list[Piece]:
        """Flush at the end of the stream: held-back characters are emitted in the current mode."""
        out = _Output()
        self._emit(self._lead_ws + self._held, out)
        self._lead_ws = self._held = ""
        self._at_start = False
        self._may_correct = False
        self._answer_so_far = []
        return out.pieces()

    # -- internals ---------------------------------------------------------------------------------------------------

    def _consume_start(self, text: str, out: _Output) -> int:
        """Handle the leading whitespace / explicit `<think>` of a stream that starts in reasoning.

        Returns where normal scanning resumes, or -1 when everything is held for now.
        """
        rest = text.lstrip()
        ws_len = len(text) - len(rest)
        if not rest:
            self._lead_ws += text
            return -1
        if rest.startswith(OPEN_TAG):
            self._lead_ws = ""
            self._at_start = False
            self._strip_reasoning = True
            return ws_len + len(OPEN_TAG)
        if len(rest) < len(OPEN_TAG) and OPEN_TAG.startswith(rest):
            self._lead_ws += text[:ws_len]
            self._held = rest
            return -1
        self._at_start = False
        lead, self._lead_ws = self._lead_ws + text[:ws_len], ""
        self._emit(lead, out)
        return ws_len

    def _scan(self, text: str, pos: int, out: _Output) -> None:
        emit_from = search = pos
        end = len(text)
        while True:
            lt = text.find("<", search)
            if lt < 0:
                self._emit(text[emit_from:], out)
                return
            if text.startswith(OPEN_TAG, lt):
                self._emit(text[emit_from:lt], out)
                self._on_open()
                emit_from = search = lt + len(OPEN_TAG)
            elif text.startswith(CLOSE_TAG, lt):
                self._emit(text[emit_from:lt], out)
                self._on_close(out)
                emit_from = search = lt + len(CLOSE_TAG)
            elif end - lt < len(CLOSE_TAG) and _is_tag_prefix(text[lt:]):
                self._emit(text[emit_from:lt], out)
                self._held = text[lt:]
                return
            else:
                search = lt + 1

    def _emit(self, text: str, out: _Output) -> None:
        if not text:
            return
        if self._reasoning:
            if self._strip_reasoning:
                text = text.lstrip("\r\n")
                if not text:
                    return
                self._strip_reasoning = False
            out.add("reasoning", text)
        else:
            if self._strip_answer:
                text = text.lstrip()
                if not text:
                    return
                self._strip_answer = False
            out.add("text", text)

    def _on_open(self) -> None:
        if self._reasoning:
            return  # a stray `<think>` inside reasoning: dropped
        self._reasoning = True
        self._strip_reasoning = True
        self._strip_answer = False
        self._may_correct = False
        self._answer_so_far = []

    def _on_close(self, out: _Output) -> None:
        if self._reasoning:
            self._reasoning = False
            self._strip_answer = True
        elif self._may_correct:
            # A lone `</think>`: all the answer so far was reasoning.
            current = out.take_text()
            moved = "".join(self._answer_so_far)
            out.add("correction", moved)
            out.add("reasoning", current)
            self._may_correct = False
            self._answer_so_far = []
            self._strip_answer = True
        # else: a stray `</think>` in the answer: dropped


def split_reasoning(text: str, *, starts_in_reasoning: bool = False) -> tuple[str, str]:
    """Split a complete (non-streamed) output into `(answer, reasoning)`, corrections applied."""
    parser = ThinkTagParser(starts_in_reasoning=starts_in_reasoning)
    answer: list[str] = []
    reasoning: list[str] = []
    for piece in [*parser.feed(text), *parser.finish()]:
        if piece.kind == "text":
            answer.append(piece.text)
        elif piece.kind == "reasoning":
            reasoning.append(piece.text)
        else:
            answer.clear()
            reasoning.insert(0, piece.text)
    return "".join(answer), "".join(reasoning)
