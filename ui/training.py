"""Training charts: a job's live metric charts (loss with eval loss, learning rate, grad norm, tokens/s) and the loss
curves of several jobs overlaid. Animation is off: charts that redraw every couple of seconds must not wobble."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nicegui import ui

from backend.i18n import N_
from ui.i18n import _

# chart name → its series: (metric field, label)
CHARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "loss": (("loss", N_("Loss")), ("eval_loss", N_("Eval loss"))),
    "learning_rate": (("learning_rate", N_("Learning rate")),),
    "grad_norm": (("grad_norm", N_("Grad norm")),),
    "tokens_per_s": (("tokens_per_s", N_("Tokens/s")),),
}
CHART_TITLES = {"loss": N_("Loss"), "learning_rate": N_("Learning rate"), "grad_norm": N_("Grad norm"),
                "tokens_per_s": N_("Tokens/s")}
COLORS = ["#4f46e5", "#f97316", "#059669", "#dc2626", "#0891b2", "#a21caf", "#ca8a04", "#475569"]


def _line(name: str, color: str, data: list[list[float]]) -> dict[str, Any]:
    return {"type": "line", "name": name, "data": data, "showSymbol": len(data) < 2, "symbolSize": 5,
            "lineStyle": {"width": 2}, "itemStyle": {"color": color}, "connectNulls": True}


def _options(title: str, series: list[dict[str, Any]], *, legend: bool) -> dict[str, Any]:
    return {
        "animation": False,
        "title": {"text": title, "left": 8, "top": 4, "textStyle": {"fontSize": 13, "fontWeight": 500}},
        "grid": {"left": 56, "right": 16, "top": 56 if legend else 36, "bottom": 32},
        "tooltip": {"trigger": "axis"},
        "legend": {"show": legend, "top": 24, "type": "scroll"},
        "xAxis": {"type": "value", "name": _("step"), "nameLocation": "end", "minInterval": 1,
                  "nameTextStyle": {"fontSize": 11}},
        "yAxis": {"type": "value", "scale": True},
        "series": series,
    }


def points(rows: Sequence[Any], field: str) -> list[list[float]]:
    return [[row.step, value] for row in rows if (value := getattr(row, field)) is not None]


class MetricCharts:
    """A grid of a job's metric charts that grows as steps arrive: `extend` appends the new rows (a re-sent step, such
    as an evaluation joining a step already shown, replaces that step's points)."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self.charts: dict[str, ui.echart] = {}
        with ui.element("div").classes("w-full grid grid-cols-1 md:grid-cols-2 gap-3").mark("charts"):
            for name, fields in CHARTS.items():
                series = [_line(_(label), COLORS[i], points(rows, field)) for i, (field, label) in enumerate(fields)]
                self.charts[name] = ui.echart(_options(_(CHART_TITLES[name]), series, legend=len(fields) > 1)
                                              ).classes("w-full h-56").mark(f"chart-{name}")

    def extend(self, rows: Sequence[Any]) -> None:
        if not rows:
            return
        first = rows[0].step
        for name, fields in CHARTS.items():
            chart = self.charts[name]
            changed = False
            for series, (field, _label) in zip(chart.options["series"], fields, strict=True):
                data: list[list[float]] = series["data"]
                new = points(rows, field)
                kept = [p for p in data if p[0] < first]
                if new or len(kept) != len(data):
                    series["data"] = kept + new
                    series["showSymbol"] = len(series["data"]) < 2
                    changed = True
            if changed:
                chart.update()

    def series_data(self, name: str) -> list[list[list[float]]]:
        """The points each series of a chart shows now (for tests)."""
        return [series["data"] for series in self.charts[name].options["series"]]


def loss_comparison(curves: Mapping[str, Sequence[Any]], *, field: str = "loss") -> ui.echart:
    """The loss curves of several jobs on one chart, a line per job (named by the mapping's keys)."""
    series = [_line(name, COLORS[i % len(COLORS)], points(rows, field))
              for i, (name, rows) in enumerate(curves.items())]
    title = _("Eval loss") if field == "eval_loss" else _("Loss")
    return ui.echart(_options(title, series, legend=True)).classes("w-full h-96").mark(f"compare-{field}")
