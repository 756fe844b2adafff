"""Per-model statistics: what a request's outcome adds, and how workers' snapshots add up."""

from __future__ import annotations

import orjson

from modelport.serving.stats import FailureReason, ModelStats


def test_outcomes_move_their_counters_and_failures_count_by_reason() -> None:
    stats = ModelStats("m", "1")
    stats.record_success(5_000, queue_ns=1_000, input_ns=200, infer_ns=3_000, output_ns=300)
    stats.record_failure(FailureReason.REJECTED)
    stats.record_failure(FailureReason.OTHER, 700)
    stats.record_failure(FailureReason.OTHER, 900)
    assert (stats.success.count, stats.success.ns, stats.queue.ns, stats.compute_infer.ns) == (1, 5_000, 1_000, 3_000)
    assert (stats.fail.count, stats.fail.ns) == (3, 1_600)
    assert stats.failures_by_reason == {FailureReason.REJECTED: 1, FailureReason.OTHER: 2}
    assert sum(stats.request_seconds.counts) == 4 and sum(stats.queue_seconds.counts) == 1


def test_snapshots_travel_as_json_and_add_up() -> None:
    """Workers send snapshots over their control sockets as JSON; reasons arrive as strings."""
    one, two = ModelStats("m", "1"), ModelStats("m", "1")
    one.record_failure(FailureReason.BACKEND, 10)
    two.record_failure(FailureReason.BACKEND, 20)
    two.record_failure(FailureReason.REJECTED)
    two.record_success(50, queue_ns=5, input_ns=1, infer_ns=40, output_ns=2)
    snapshots = [orjson.loads(orjson.dumps(stats.snapshot())) for stats in (one, two)]
    assert snapshots[1]["failures_by_reason"] == {"BACKEND": 1, "REJECTED": 1}
    total = ModelStats.combined(snapshots)
    assert total.failures_by_reason == {FailureReason.BACKEND: 2, FailureReason.REJECTED: 1}
    assert all(type(reason) is FailureReason for reason in total.failures_by_reason)
    assert (total.fail.count, total.fail.ns, total.success.count) == (3, 30, 1)
