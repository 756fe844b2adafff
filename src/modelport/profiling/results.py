"""What a trial measured: rounds of load against one server at one concurrency, and their summary.

A trial is measured in many short rounds, interleaved with the other trials' rounds, and
summarised by the median of each figure over its rounds: on a shared machine another job's burst
lands in one round of one trial rather than in a whole trial, and the median ignores it.
Comparisons between trials of one phase are *paired* (:func:`relative_qps`): the median of the
per-round ratios, since neighbouring windows see the same machine. On the 2-core development box,
with other test suites running, identical servers measured one after another differed by up to
±25 %, medians of interleaved 0.25 s rounds by up to ~12 %, and paired ratios by a few percent.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelport.profiling.grid import Settings
from modelport.profiling.load import PERCENTILES, LoadResult
from modelport.runtime.config import ModelConfig

MIN_SPREAD_ROUNDS = 4


@dataclass(frozen=True)
class Round:
    """One measured window: the load's outcome and what the server used meanwhile."""

    load: LoadResult
    cpu_cores: float | None
    peak_bytes: int | None


@dataclass(frozen=True)
class TrialResult:
    """One point of the profile: settings × concurrency, summarised over its rounds."""

    index: int
    phase: str  # "baseline", "grid" or "verify"
    settings: Settings | None  # None: a scoring script (nothing to tune but concurrency)
    concurrency: int
    qps: float
    latency_ms: dict[str, float | None]
    total: int
    succeeded: int
    cpu_cores: float | None
    peak_bytes: int | None
    rounds: tuple[float, ...]  # throughput of each round, in the order the rounds ran
    first_error: str | None = None

    @property
    def errors(self) -> int:
        return self.total - self.succeeded

    @property
    def p99(self) -> float | None:
        return self.latency_ms.get("p99")

    def meets(self, budget_ms: float) -> bool:
        """Every request answered 200 and the p99 latency is within ``budget_ms``."""
        return self.errors == 0 and self.succeeded > 0 and self.p99 is not None and self.p99 <= budget_ms

    def to_dict(self, base: ModelConfig | None = None) -> dict[str, Any]:
        """The trial as the profile document lists it (``base``: see :meth:`Settings.model_config`)."""
        return {
            "index": self.index,
            "phase": self.phase,
            "concurrency": self.concurrency,
            "maxBatchSize": self.settings.max_batch_size if self.settings else None,
            "maxQueueDelayMicroseconds": self.settings.max_queue_delay_us if self.settings else None,
            "instanceCount": self.settings.instance_count if self.settings else None,
            "settings": self.settings.label() if self.settings else "scoring script",
            "modelConfig": self.settings.model_config(base) if self.settings else None,
            "queriesPerSecond": round(self.qps, 1),
            **{_latency_key(key): _round(value) for key, value in self.latency_ms.items()},
            "totalQueries": self.total,
            "successQueries": self.succeeded,
            "cpu": _round(self.cpu_cores, 3),
            "peakMemoryInMB": None if self.peak_bytes is None else round(self.peak_bytes / 2**20, 1),
            "roundQueriesPerSecond": [round(qps, 1) for qps in self.rounds],
            "error": self.first_error,
        }


def summarise(
    index: int, phase: str, settings: Settings | None, concurrency: int, rounds: Sequence[Round]
) -> TrialResult:
    """The median of each figure over ``rounds`` (counts are summed, the memory peak is the max)."""
    if not rounds:
        raise ValueError("a trial needs at least one round")
    latencies = {key: _median([r.load.latency_ms()[key] for r in rounds]) for key in ("mean", *PERCENTILES)}
    peaks = [r.peak_bytes for r in rounds if r.peak_bytes is not None]
    errors = [r.load.first_error for r in rounds if r.load.first_error]
    return TrialResult(
        index=index,
        phase=phase,
        settings=settings,
        concurrency=concurrency,
        qps=statistics.median(r.load.qps for r in rounds),
        latency_ms=latencies,
        total=sum(r.load.total for r in rounds),
        succeeded=sum(r.load.succeeded for r in rounds),
        cpu_cores=_median([r.cpu_cores for r in rounds]),
        peak_bytes=max(peaks) if peaks else None,
        rounds=tuple(r.load.qps for r in rounds),
        first_error=errors[0] if errors else None,
    )


def relative_qps(trial: TrialResult, reference: TrialResult) -> float:
    """``trial``'s throughput as a fraction of ``reference``'s, paired by round: the median of the
    per-round ratios when both were measured in the same rounds (each round's windows are adjacent,
    so the machine's state cancels out of each ratio), else the ratio of the medians."""
    if len(trial.rounds) == len(reference.rounds) and all(trial.rounds) and all(reference.rounds):
        return statistics.median(mine / theirs for mine, theirs in zip(trial.rounds, reference.rounds))
    return trial.qps / reference.qps if reference.qps else 0.0


def spread(trial: TrialResult) -> float | None:
    """How much ``trial``'s throughput varied between its rounds: the interquartile range over the
    median (about 0.1 on a quiet 2-core box, 0.3 and more with another CPU-bound job running)."""
    if len(trial.rounds) < MIN_SPREAD_ROUNDS or trial.qps <= 0:
        return None
    q1, _, q3 = statistics.quantiles(trial.rounds, n=4)
    return (q3 - q1) / trial.qps


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _latency_key(key: str) -> str:
    return "averageLatencyInMs" if key == "mean" else f"latencyPercentile{key[1:]}InMs"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
