"""The router's in-memory traffic history: exact totals over the window, percentiles from the
latency histogram, and a baseline that moves with the window."""

from __future__ import annotations

import pytest

from modelport.routing.history import TrafficHistory, quantile
from modelport.routing.metrics import LATENCY_BUCKETS_S, RouterMetrics


def test_totals_and_percentiles_by_deployment() -> None:
    metrics = RouterMetrics()
    history = TrafficHistory(metrics)
    history.sample()
    for i in range(100):
        metrics.observe("bg", "blue", 503 if i < 5 else 200, 0.004)  # all in the (2.5 ms, 5 ms] bucket
    metrics.observe("bg", "green", 200, 0.7)
    metrics.observe("other", "x", 200, 0.001)
    blue, green = history.view("bg")
    assert (blue.deployment, blue.requests, blue.errors, blue.error_rate) == ("blue", 100, 5, 0.05)
    assert 2.5 < blue.p50_ms <= blue.p99_ms <= 5.0  # type: ignore[operator]
    assert (green.requests, green.p99_ms) == (1, pytest.approx(995.0))
    assert blue.series[-1][1] > 0  # the step since the last sample has them all


def test_the_window_drops_what_came_before_it() -> None:
    metrics = RouterMetrics()
    history = TrafficHistory(metrics, window_s=0.0)  # every sample is already at the window's start
    metrics.observe("bg", "blue", 200, 0.01)
    history.sample()
    metrics.observe("bg", "blue", 200, 0.01)
    history.sample()
    assert len(history.samples) == 1
    (blue,) = history.view("bg")
    assert blue.requests == 0


def test_quantile_reads_buckets_as_prometheus_does() -> None:
    counts = [0] * len(LATENCY_BUCKETS_S)
    assert quantile(0.5, tuple(counts), 0) is None
    counts[LATENCY_BUCKETS_S.index(0.1) :] = [10] * (len(LATENCY_BUCKETS_S) - LATENCY_BUCKETS_S.index(0.1))
    assert quantile(0.5, tuple(counts), 10) == pytest.approx(0.075)  # halfway through (0.05, 0.1]
    assert quantile(0.99, tuple(counts), 20) == LATENCY_BUCKETS_S[-1]  # past the last bound
