"""Dataset widgets: statistics, the histogram of lengths, rows shown as conversations."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.i18n import N_
from ui.i18n import _

ROLE_LABELS = {"system": N_("System"), "user": N_("User"), "assistant": N_("Assistant")}
ROW_TEXT_LIMIT = 2000  # characters of a message shown in a preview; the rest is cut with a note


def stats_grid(stats: dict[str, Any]) -> None:
    """The numbers that tell whether a dataset is what one thinks it is."""
    items = [
        (_("Rows"), f"{stats.get('rows', 0):,}"),
        (_("Turns"), f"{stats.get('turns', 0):,}"),
        (_("Characters"), f"{stats.get('characters', 0):,}"),
        (_("Tokens (estimated)") if stats.get("tokens_estimated", True) else _("Tokens"),
         f"{stats.get('tokens', 0):,}"),
        (_("Mean tokens a row"), f"{stats.get('mean_tokens', 0):,}"),
        (_("Longest row (tokens)"), f"{stats.get('max_tokens', 0):,}"),
        (_("Duplicate rows"), f"{stats.get('duplicates', 0):,}" + ("" if stats.get("duplicates_exact", True) else "+")),
    ]
    with ui.element("div").classes("lp-stats w-full").mark("stats"):
        for label, value in items:
            with ui.column().classes("lp-stat gap-0"):
                ui.label(value).classes("text-h6 text-weight-medium")
                ui.label(label).classes("text-caption text-secondary")


def histogram_chart(histogram: dict[str, Any], *, estimated: bool = True) -> None:
    """Rows by length in tokens (estimated, or counted by a tokenizer)."""
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if not counts:
        return
    labels = [f"<{edges[0]}"] + [f"{a}–{b}" for a, b in itertools.pairwise(edges)] + [f"≥{edges[-1]}"]
    ui.label(_("Rows by length (tokens, estimated)") if estimated else _("Rows by length (tokens)")).classes(
        "text-subtitle2").mark("histogram-title")
    ui.echart({
        "animation": False,
        "grid": {"left": 56, "right": 16, "top": 16, "bottom": 56},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": labels, "axisLabel": {"rotate": 40}},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "data": counts, "itemStyle": {"color": "#4f46e5"}}],
    }).classes("w-full h-64").mark("histogram")


def conversation_preview(rows: list[dict[str, Any]], *, first_index: int = 0,
                         on_remove: Callable[[int], Any] | None = None) -> None:
    """Rows as a reader would see them: conversations with their roles, or plain documents. With `on_remove`, each
    row has a button that calls it with the row's index (from 0)."""
    if not rows:
        ui.label(_("No rows.")).classes("text-secondary")
        return
    for offset, row in enumerate(rows):
        index = first_index + offset
        with ui.card().classes("w-full gap-1 lp-row-card").mark("preview-row"):
            with ui.row().classes("w-full items-center no-wrap gap-1"):
                ui.label(_("Row {n}", n=index + 1)).classes("text-caption text-secondary")
                if on_remove is not None:
                    ui.space()
                    remove = ui.button(icon="delete_outline", on_click=lambda i=index: on_remove(i)).props(
                        "flat dense round size=sm").mark("remove-row", f"remove-row-{index}")
                    remove.tooltip(_("Remove this row"))
            if "text" in row:
                _text(row["text"])
                continue
            for message in row.get("messages", []):
                role = message.get("role", "")
                with ui.row().classes(f"lp-row-message lp-role-{role} w-full no-wrap gap-2"):
                    ui.label(_(ROLE_LABELS.get(role, role))).classes("lp-role-label text-caption text-weight-bold")
                    _text(message.get("content", ""))


def _text(text: str) -> None:
    shown = text if len(text) <= ROW_TEXT_LIMIT else text[:ROW_TEXT_LIMIT] + "…"
    ui.label(shown).classes("lp-prewrap text-body2 grow min-w-0")
    if len(text) > ROW_TEXT_LIMIT:
        ui.label(_("({n} characters in all)", n=f"{len(text):,}")).classes("text-caption text-secondary")
