"""The last 15 minutes of the router's own metrics, kept in memory so the dashboard can draw live
traffic without Prometheus.

A sampler copies the cumulative counters of :class:`RouterMetrics` (requests by code, the latency
histogram) every :data:`SAMPLE_S` seconds; a view is the difference between a fresh reading and
the last sample at or before the window's start, so totals are exact (counters start at zero with
the process: a daemon younger than the window counts everything it answered). Latency percentiles
are read from the histogram's buckets as Prometheus' ``histogram_quantile`` reads them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from modelport.routing.metrics import LATENCY_BUCKETS_S, RouterMetrics

SAMPLE_S = 5.0
WINDOW_S = 15 * 60.0

Key = tuple[str, str]  # endpoint, deployment
Point = tuple[float, float, float | None]  # (time.time(), requests/s, p99 ms) of one sampling step


@dataclass(frozen=True)
class Totals:
    """Cumulative counts of one endpoint and deployment since the process started."""

    requests: int = 0
    errors: int = 0  # answers with a status of 400 or more, the router's own refusals included
    buckets: tuple[int, ...] = (0,) * len(LATENCY_BUCKETS_S)  # cumulative, as Prometheus' ``le``

    def minus(self, other: Totals) -> Totals:
        return Totals(
            self.requests - other.requests,
            self.errors - other.errors,
            tuple(a - b for a, b in zip(self.buckets, other.buckets)),
        )


@dataclass(frozen=True)
class Reading:
    at: float  # time.time()
    totals: dict[Key, Totals]


@dataclass(frozen=True)
class Traffic:
    """What happened to one endpoint and deployment in the window: totals and a series of rates."""

    endpoint: str
    deployment: str
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    window_s: float
    series: list[Point] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.window_s if self.window_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def read(metrics: RouterMetrics) -> Reading:
    """The router's counters now, by endpoint and deployment."""
    requests: dict[Key, int] = {}
    errors: dict[Key, int] = {}
    for family in metrics.requests.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = (sample.labels["endpoint"], sample.labels["deployment"])
            requests[key] = requests.get(key, 0) + int(sample.value)
            if int(sample.labels["code"]) >= 400:
                errors[key] = errors.get(key, 0) + int(sample.value)
    buckets: dict[Key, list[int]] = {}
    bounds = {str(float(bound)): index for index, bound in enumerate(LATENCY_BUCKETS_S)}
    for family in metrics.duration.collect():
        for sample in family.samples:
            index = bounds.get(sample.labels.get("le", ""))
            if sample.name.endswith("_bucket") and index is not None:
                key = (sample.labels["endpoint"], sample.labels["deployment"])
                buckets.setdefault(key, [0] * len(LATENCY_BUCKETS_S))[index] = int(sample.value)
    keys = requests.keys() | buckets.keys()
    totals = {
        key: Totals(requests.get(key, 0), errors.get(key, 0), tuple(buckets.get(key, [0] * len(LATENCY_BUCKETS_S))))
        for key in keys
    }
    return Reading(time.time(), totals)


def quantile(q: float, counts: tuple[int, ...], total: int) -> float | None:
    """The ``q`` quantile in seconds of a cumulative histogram holding ``total`` observations,
    linear within a bucket; the last finite bound when it falls past it; None without any."""
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in zip(LATENCY_BUCKETS_S, counts):
        if count >= rank:
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return LATENCY_BUCKETS_S[-1]


class TrafficHistory:
    """Samples of the router's counters over the last :data:`WINDOW_S` seconds."""

    def __init__(self, metrics: RouterMetrics, *, window_s: float = WINDOW_S, sample_s: float = SAMPLE_S) -> None:
        self.metrics = metrics
        self.window_s = window_s
        self.sample_s = sample_s
        self.started = time.time()
        self.samples: deque[Reading] = deque()

    def sample(self) -> None:
        reading = read(self.metrics)
        self.samples.append(reading)
        # keep one sample at or before the window's start: it is the baseline of the totals
        while len(self.samples) > 1 and self.samples[1].at <= reading.at - self.window_s:
            self.samples.popleft()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.sample_s)

    def view(self, endpoint: str) -> list[Traffic]:
        """One endpoint's traffic by deployment over the window, up to this moment."""
        now = read(self.metrics)
        start = now.at - self.window_s
        baseline = next((s for s in reversed(self.samples) if s.at <= start), None)
        since = baseline.at if baseline is not None else self.started
        points = [s for s in self.samples if s.at > start] + [now]
        keys = sorted(key for key in now.totals if key[0] == endpoint)
        views = []
        for key in keys:
            zero = baseline.totals.get(key, Totals()) if baseline is not None else Totals()
            delta = now.totals[key].minus(zero)
            series: list[Point] = []
            previous = Reading(since, baseline.totals if baseline is not None else {})
            for point in points:
                step = point.totals.get(key, Totals()).minus(previous.totals.get(key, Totals()))
                seconds = point.at - previous.at
                if seconds > 0:
                    p99 = quantile(0.99, step.buckets, step.requests)
                    series.append((point.at, step.requests / seconds, None if p99 is None else p99 * 1000))
                previous = point
            p50, p99 = (quantile(q, delta.buckets, delta.requests) for q in (0.5, 0.99))
            views.append(
                Traffic(
                    endpoint,
                    key[1],
                    delta.requests,
                    delta.errors,
                    None if p50 is None else p50 * 1000,
                    None if p99 is None else p99 * 1000,
                    max(now.at - since, math.ulp(1.0)),
                    series,
                )
            )
        return views
