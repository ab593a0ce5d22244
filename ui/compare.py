"""Compare widgets: one column per model (name, live metrics, stop, the answer) and the blind vote bar."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from backend.i18n import N_
from ui.chat import AnswerView
from ui.i18n import _

VOTES = (("a", "arrow_back", N_("A is better")), ("tie", "drag_handle", N_("Tie")),
         ("both_bad", "thumb_down", N_("Both are bad")), ("b", "arrow_forward", N_("B is better")))


def metrics_line(*, ttft_ms: int | None, total_ms: int | None, output_tokens: int | None, estimated: bool,
                 tokens_per_s: float | None, finished: bool = False) -> str:
    """"first token 310 ms · 4.2 s · ~120 tokens · 42.0 tokens/s" (~: counted from the stream, until usage comes)."""
    if ttft_ms is not None:
        parts = [_("first token {ms} ms", ms=ttft_ms)]
    else:
        parts = [_("no answer") if finished else _("waiting for the first token")]
    if total_ms is not None:
        parts.append(_("{s} s", s=f"{total_ms / 1000:.1f}"))
    if output_tokens:
        parts.append(("~" if estimated else "") + _("{n} tokens", n=output_tokens))
    if tokens_per_s:
        parts.append(_("{rate} tokens/s", rate=f"{tokens_per_s:.1f}"))
    return " · ".join(parts)


class CompareColumn(ui.card):
    """A model's column: its name (hidden in a blind run), live metrics, a stop button and the answer."""

    def __init__(self, *, title: str, on_stop: Callable[[], Awaitable[None]] | None = None, text: str = "",
                 reasoning: str = "", reasoning_ms: int | None = None, streaming: bool = False) -> None:
        super().__init__()
        self.classes("lp-compare-column gap-2 p-3")
        with self:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.title = ui.label(title).classes("lp-compare-title text-subtitle2 text-weight-bold grow")
                self.stop_button = ui.button(icon="stop", on_click=on_stop).props(
                    f'flat round dense size=sm color=negative aria-label="{_("Stop")}"')
                self.stop_button.tooltip(_("Stop this model"))
                self.stop_button.set_visibility(streaming and on_stop is not None)
            self.metrics = ui.label().classes("lp-compare-metrics text-caption text-secondary")
            self.answer = AnswerView(text=text, reasoning=reasoning, reasoning_ms=reasoning_ms, streaming=streaming)
            self.answer.metrics.set_visibility(False)  # the column shows its own, above the answer

    def show_metrics(self, text: str) -> None:
        self.metrics.set_text(text)

    def done(self) -> None:
        self.stop_button.set_visibility(False)

    def reveal(self, name: str) -> None:
        self.title.set_text(name)


def vote_bar(on_vote: Callable[[str], Awaitable[None]]) -> ui.row:
    """Four buttons for the verdict on a blind run."""
    with ui.row().classes("lp-vote-bar w-full items-center justify-center gap-2") as bar:
        ui.label(_("Which answer is better?")).classes("text-subtitle2 w-full text-center")
        for outcome, icon, label in VOTES:
            ui.button(_(label), icon=icon, on_click=lambda o=outcome: on_vote(o)).props(
                "outline color=primary").mark(f"vote-{outcome}")
    return bar
