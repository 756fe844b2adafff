"""Per-model-version statistics in Triton's shape: one source for ``/stats``, gRPC
``ModelStatistics`` and the ``nv_inference_*`` Prometheus metrics.

Counters are updated from the event loop and worker threads, so every update takes a lock;
it is held for a few additions only.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from modelport.core.enums import StrEnum


class FailureReason(StrEnum):
    """Why a request failed: the ``reason`` label of Triton's ``nv_inference_request_failure``."""

    REJECTED = "REJECTED"  # refused before it reached the model (its queue was full)
    CANCELED = "CANCELED"  # the client went away (Triton's; not counted here yet)
    BACKEND = "BACKEND"  # the model or its batcher failed it
    OTHER = "OTHER"  # the request itself was wrong (a 400)


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Histogram:
    """Cumulative-by-rendering bucket counts, as Prometheus histograms are exposed: ``counts[i]``
    holds observations in ``(bounds[i-1], bounds[i]]``, the last slot those above every bound."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs ending with ``+Inf``, what ``_bucket`` samples show."""
        running, pairs = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return pairs


@dataclass
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


_COMPUTE = ("compute_input", "compute_infer", "compute_output")
_DURATIONS = ("success", "fail", "queue", *_COMPUTE)
_HISTOGRAMS = ("request_seconds", "queue_seconds", "batch_sizes")


@dataclass
class ModelStats:
    """What Triton reports per model version (extension_statistics)."""

    name: str
    version: str
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, BatchStats] = field(default_factory=dict)
    failures_by_reason: dict[FailureReason, int] = field(default_factory=dict)
    pending: int = 0
    request_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    queue_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    batch_sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_execution(self, batch_size: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One model execution over ``batch_size`` rows."""
        with self._lock:
            self.execution_count += 1
            self.inference_count += batch_size
            self.batch_sizes.observe(batch_size)
            batch = self.batches.setdefault(batch_size, BatchStats())
            batch.compute_input.add(input_ns)
            batch.compute_infer.add(infer_ns)
            batch.compute_output.add(output_ns)

    def record_success(self, total_ns: int, *, queue_ns: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One answered request; compute counts move together so perf_analyzer sees them equal."""
        with self._lock:
            self.last_inference_ms = int(time.time() * 1000)
            self.request_seconds.observe(total_ns / 1e9)
            self.queue_seconds.observe(queue_ns / 1e9)
            self.success.add(total_ns)
            self.queue.add(queue_ns)
            self.compute_input.add(input_ns)
            self.compute_infer.add(infer_ns)
            self.compute_output.add(output_ns)

    def record_failure(self, reason: FailureReason, total_ns: int = 0) -> None:
        """One failed request, ``total_ns`` after it arrived (0: refused before anything ran)."""
        with self._lock:
            self.last_inference_ms = int(time.time() * 1000)
            self.request_seconds.observe(total_ns / 1e9)
            self.fail.add(total_ns)
            self.failures_by_reason[reason] = self.failures_by_reason.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """Every counter as plain JSON, for adding up the statistics of several worker processes."""
        with self._lock:
            return {
                "name": self.name,
                "version": self.version,
                "last_inference_ms": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "durations": {key: [getattr(self, key).count, getattr(self, key).ns] for key in _DURATIONS},
                "batches": {
                    str(size): [[getattr(b, key).count, getattr(b, key).ns] for key in _COMPUTE]
                    for size, b in self.batches.items()
                },
                "failures_by_reason": {reason.value: count for reason, count in self.failures_by_reason.items()},
                "pending": self.pending,
                "histograms": {key: [list(getattr(self, key).counts), getattr(self, key).total] for key in _HISTOGRAMS},
            }

    @classmethod
    def combined(cls, snapshots: list[dict[str, Any]]) -> ModelStats:
        """The sum of several workers' snapshots of one model version."""
        total = cls(snapshots[0]["name"], snapshots[0]["version"])
        for snap in snapshots:
            total.last_inference_ms = max(total.last_inference_ms, snap["last_inference_ms"])
            total.inference_count += snap["inference_count"]
            total.execution_count += snap["execution_count"]
            total.pending += snap["pending"]
            for key, (count, ns) in snap["durations"].items():
                getattr(total, key).add(ns, count)
            for size, parts in snap["batches"].items():
                batch = total.batches.setdefault(int(size), BatchStats())
                for key, (count, ns) in zip(_COMPUTE, parts):
                    getattr(batch, key).add(ns, count)
            for name, count in snap["failures_by_reason"].items():
                reason = FailureReason(name)
                total.failures_by_reason[reason] = total.failures_by_reason.get(reason, 0) + count
            for key, (counts, value) in snap["histograms"].items():
                histogram = getattr(total, key)
                histogram.counts = [a + b for a, b in zip(histogram.counts, counts)]
                histogram.total += value
        return total

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            zero = Duration().to_dict()
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.to_dict(),
                    "fail": self.fail.to_dict(),
                    "queue": self.queue.to_dict(),
                    "compute_input": self.compute_input.to_dict(),
                    "compute_infer": self.compute_infer.to_dict(),
                    "compute_output": self.compute_output.to_dict(),
                    "cache_hit": zero,
                    "cache_miss": zero,
                },
                "response_stats": {},
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": b.compute_input.to_dict(),
                        "compute_infer": b.compute_infer.to_dict(),
                        "compute_output": b.compute_output.to_dict(),
                    }
                    for size, b in sorted(self.batches.items())
                ],
                "memory_usage": [],
            }
