"""An endpoint's live traffic as the dashboard draws it: a row per deployment (requests, rate,
p50/p99 latency, error rate over the window, from the router; the mean batch size, from the
replicas' own metrics) and the series as SVG polyline points.

The points are computed here, in the chart's own coordinates, so the template only places them:
the page needs no script to draw, and no inline style (the CSP forbids both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelport.control.batch_sizes import Batches
from modelport.routing.history import Traffic, TrafficHistory

WIDTH, HEIGHT = 600.0, 120.0  # the chart's viewBox

Series = Sequence[tuple[float, float | None]]  # (time.time(), value) points


@dataclass(frozen=True)
class Line:
    deployment: str
    points: str  # "x,y x,y ..." in the viewBox


@dataclass(frozen=True)
class Chart:
    label: str
    top: float  # the value at the chart's top edge
    unit: str
    lines: list[Line]


@dataclass(frozen=True)
class LiveView:
    rows: list[Traffic]
    batches: dict[str, Batches]  # by deployment: those whose replicas executed a model in the window
    total: int
    errors: int
    window_s: float
    charts: list[Chart]


def live_view(history: TrafficHistory, endpoint: str, batches: dict[str, Batches]) -> LiveView:
    rows = history.view(endpoint)
    window_s = history.window_s
    names = [row.deployment for row in rows]
    names += sorted(name for name in batches if name not in names)  # colours follow the table's rows
    charts = [
        _chart(
            "requests/s", "/s", window_s, names, {row.deployment: [(p[0], p[1]) for p in row.series] for row in rows}
        ),
        _chart(
            "p99 latency", "ms", window_s, names, {row.deployment: [(p[0], p[2]) for p in row.series] for row in rows}
        ),
        _chart("mean batch size", "rows", window_s, names, {name: b.series for name, b in batches.items()}),
    ]
    shown_s = min(rows[0].window_s, window_s) if rows else 0.0
    return LiveView(rows, batches, sum(row.requests for row in rows), sum(row.errors for row in rows), shown_s, charts)


def _chart(label: str, unit: str, window_s: float, names: list[str], series: dict[str, Series]) -> Chart:
    """Lines in the order of ``names`` (a name without a series draws nothing but keeps its colour)."""
    values = [v for points in series.values() for _, v in points if v is not None]
    top = _nice(max(values, default=0.0))
    end = max((at for points in series.values() for at, _ in points), default=0.0)
    lines = []
    for name in names:
        coordinates = []
        for at, v in series.get(name, ()):
            if v is None:
                continue
            x = WIDTH * (1 - (end - at) / window_s)
            y = HEIGHT * (1 - v / top) if top else HEIGHT
            coordinates.append(f"{max(x, 0.0):.1f},{y:.1f}")
        lines.append(Line(name, " ".join(coordinates)))
    return Chart(label, top, unit, lines)


def _nice(value: float) -> float:
    """A round number at or above ``value`` for the chart's top edge (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 0.0
    scale = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale
