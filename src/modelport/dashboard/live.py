"""An endpoint's live traffic as the dashboard draws it: a row per deployment (requests, rate,
p50/p99 latency, error rate over the window) and the series as SVG polyline points.

The points are computed here, in the chart's own coordinates, so the template only places them:
the page needs no script to draw, and no inline style (the CSP forbids both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelport.routing.history import Point, Traffic, TrafficHistory

WIDTH, HEIGHT = 600.0, 120.0  # the chart's viewBox


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
    total: int
    errors: int
    window_s: float
    charts: list[Chart]


def live_view(history: TrafficHistory, endpoint: str) -> LiveView:
    rows = history.view(endpoint)
    window_s = history.window_s
    charts = [
        _chart("requests/s", "/s", rows, window_s, lambda point: point[1]),
        _chart("p99 latency", "ms", rows, window_s, lambda point: point[2]),
    ]
    shown_s = min(rows[0].window_s, window_s) if rows else 0.0
    return LiveView(rows, sum(row.requests for row in rows), sum(row.errors for row in rows), shown_s, charts)


def _chart(label: str, unit: str, rows: list[Traffic], window_s: float, pick: Callable[[Point], float | None]) -> Chart:
    values = [v for row in rows for point in row.series if (v := pick(point)) is not None]
    top = _nice(max(values, default=0.0))
    end = max((point[0] for row in rows for point in row.series), default=0.0)
    lines = []
    for row in rows:
        coordinates = []
        for point in row.series:
            v = pick(point)
            if v is None:
                continue
            x = WIDTH * (1 - (end - point[0]) / window_s)
            y = HEIGHT * (1 - v / top) if top else HEIGHT
            coordinates.append(f"{max(x, 0.0):.1f},{y:.1f}")
        lines.append(Line(row.deployment, " ".join(coordinates)))
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
