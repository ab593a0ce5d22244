"""Widgets of the admin console: stat tiles, the usage and history charts, sizes in bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nicegui import ui

from ui.i18n import _

CHART_COLORS = ["#4f46e5", "#0ea5e9", "#16a34a", "#f59e0b", "#dc2626", "#9333ea", "#0d9488", "#db2777",
                "#64748b"]


def human_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def stat_tile(label: str, value: str, *, caption: str = "", percent: float | None = None,
              warn: bool = False) -> ui.card:
    """A measure with its label, and a bar when it is a share of something."""
    with ui.card().classes("lp-stat-tile gap-1 p-3 grow" + (" bg-red-1" if warn else "")).style(
            "min-width: 150px; flex-basis: 150px") as card:
        ui.label(label).classes("text-caption text-secondary")
        ui.label(value).classes("text-h6 text-weight-medium")
        if percent is not None:
            ui.linear_progress(value=max(0.0, min(1.0, percent / 100)), show_value=False).props(
                f"rounded size=6px color={'negative' if warn else 'primary'}")
        if caption:
            ui.label(caption).classes("text-caption text-secondary")
    return card


def _measure(day: Any, measure: str) -> float | None:
    if measure == "tokens":
        return day.input_tokens + day.output_tokens
    if measure == "latency":
        return day.avg_latency_ms
    return getattr(day, measure)


def usage_chart(days: Sequence[Any], measure: str = "tokens", *, labels: Mapping[str, str] | None = None
                ) -> ui.echart:
    """A measure per day, one series per `key` (a user or model, in the order given; `labels` renames some; a key
    None is everyone): tokens, requests or errors as stacked bars, average latency (ms) as lines (no sum)."""
    dates = sorted({d.day for d in days})
    keys = list(dict.fromkeys(d.key for d in days))
    found = {(d.day, d.key): _measure(d, measure) for d in days}
    stacked = measure != "latency"
    names = {"tokens": _("Tokens"), "requests": _("Requests"), "errors": _("Errors"),
             "latency": _("Average latency (ms)")}
    return ui.echart({
        "animation": False,
        "grid": {"left": 64, "right": 24, "top": 32, "bottom": 64},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "type": "scroll"},
        "xAxis": {"type": "category", "data": dates},
        "yAxis": {"type": "value", "name": names[measure], "minInterval": 1},
        "series": [
            {"name": names[measure] if key is None else (labels or {}).get(key, key),
             "type": "bar" if stacked else "line", "barMaxWidth": 48, "connectNulls": False,
             **({"stack": "all"} if stacked else {}),
             "data": [found.get((day, key), 0 if stacked else None) for day in dates],
             "itemStyle": {"color": CHART_COLORS[i % len(CHART_COLORS)]}}
            for i, key in enumerate(keys)],
    })


def history_chart(times: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> ui.echart:
    """Percentages over the last hours, one line each."""
    return ui.echart({
        "animation": False,
        "grid": {"left": 48, "right": 16, "top": 16, "bottom": 64},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "xAxis": {"type": "category", "data": list(times)},
        "yAxis": {"type": "value", "min": 0, "max": 100, "axisLabel": {"formatter": "{value} %"}},
        "series": [{"name": name, "type": "line", "showSymbol": len(times) < 30, "data": list(values),
                    "itemStyle": {"color": CHART_COLORS[i % len(CHART_COLORS)]}}
                   for i, (name, values) in enumerate(series.items())],
    })


def alert_banner(messages: Sequence[str]) -> ui.row:
    """The strip admins see on every page while a system alert lasts."""
    with ui.row().classes("lp-alert-banner w-full items-center gap-2 px-4 py-2 no-wrap bg-red-1 text-red-10") as row:
        ui.icon("warning", size="1.4rem").classes("text-negative")
        ui.label("; ".join(messages)).classes("grow text-body2")
        ui.link(_("System monitor"), "/admin?tab=system").classes("text-body2")
    return row.mark("alert-banner")
