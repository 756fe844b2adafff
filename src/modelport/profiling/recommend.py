"""Choosing the recommended trial and shaping the profile document (pure functions).

The choice: among trials that answered every request with a p99 latency within the budget, the
highest throughput sets the bar; the *cheapest* settings (fewest instances, then smallest batch,
then shortest queue delay, then lowest concurrency) within ``tolerance`` of that bar (paired by
round, see :func:`relative_qps`) are recommended. Two settings whose throughputs differ by less
than the measurement noise serve the load equally well, and the cheaper one uses less memory and
makes a lone request wait less; without the tolerance, a light model whose throughput no setting
changes would be "recommended" whichever large setting happened to measure highest. When no
trial meets the budget, the one with the lowest p99 is recommended and the state says so.

Resources get headroom: :data:`CPU_HEADROOM` × the cores the server used at the recommended
trial, :data:`MEMORY_HEADROOM` × its resident peak (model loading included), both rounded up to a
tenth (of a core, of a GiB) and at least one tenth, as Azure's profile answers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelport.core.enums import StrEnum
from modelport.core.errors import ModelportError
from modelport.profiling.results import TrialResult, relative_qps, spread
from modelport.runtime.config import ModelConfig

CPU_HEADROOM = 1.2
MEMORY_HEADROOM = 1.2
BUSY_SPREAD = 0.25  # a round-to-round spread above this: the machine was too busy to tell close settings apart


class ChoiceState(StrEnum):
    """The document's ``state``, in Azure's ``Model.profile`` spelling."""

    SUCCEEDED = "Succeeded"  # a trial met the p99 budget without errors
    BUDGET_NOT_MET = "LatencyBudgetNotMet"  # none did: the lowest p99 is recommended, with a warning


@dataclass(frozen=True)
class Choice:
    trial: TrialResult
    best: TrialResult | None  # the highest throughput within the budget (None: nothing met it)
    state: ChoiceState
    warnings: tuple[str, ...] = ()


def choose(trials: Sequence[TrialResult], budget_ms: float, tolerance: float = 0.05) -> Choice:
    """The recommended trial (see the module docstring); an error when no request succeeded."""
    within = [trial for trial in trials if trial.meets(budget_ms)]
    if within:
        best = max(within, key=lambda trial: trial.qps)
        good = [trial for trial in within if relative_qps(trial, best) >= 1 - tolerance]
        return Choice(min(good, key=_cost), best, ChoiceState.SUCCEEDED)
    answered = [trial for trial in trials if trial.p99 is not None]
    if not answered:
        reasons = sorted({trial.first_error for trial in trials if trial.first_error}) or ["no request finished"]
        raise ModelportError(f"profile: no trial answered a request ({reasons[0]})")
    clean = [trial for trial in answered if trial.errors == 0] or answered
    trial = min(clean, key=lambda t: (t.p99, -t.qps))
    warning = (
        f"no trial met the {budget_ms:g} ms p99 budget without errors; recommending the lowest p99 ({trial.p99:.1f} ms)"
    )
    return Choice(trial, None, ChoiceState.BUDGET_NOT_MET, (warning,))


def _cost(trial: TrialResult) -> tuple[Any, ...]:
    settings = trial.settings.cost() if trial.settings is not None else ()
    return (*settings, trial.concurrency, -trial.qps)


def with_headroom(value: float, factor: float) -> float:
    """``value × factor`` rounded up to a tenth, at least 0.1."""
    return max(0.1, math.ceil(round(value * factor * 10, 6)) / 10)


def profile_document(
    name: str,
    trials: Sequence[TrialResult],
    choice: Choice,
    *,
    budget_ms: float,
    base: ModelConfig | None,
    requested_cpu: float | None,
    requested_memory_gb: float | None,
    logs: str | None,
    verified: TrialResult | None = None,
    best_again: TrialResult | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Azure ML's ``Model.profile().get_details()`` fields, plus ``modelConfig`` (the recommended
    settings as overrides of the model's own config), ``trials`` and the verification."""
    chosen = choice.trial
    latency = chosen.latency_ms
    cpus = [t.cpu_cores for t in trials if t.cpu_cores is not None]
    peaks = [t.peak_bytes for t in trials if t.peak_bytes is not None]
    errors = [t.first_error for t in trials if t.first_error]
    compared = [t for t in trials if t.phase == chosen.phase] + [t for t in (verified, best_again) if t is not None]
    noise = _median([value for value in map(spread, compared) if value is not None])
    document: dict[str, Any] = {
        "name": name,
        "state": choice.state,
        "recommendedCpu": None if chosen.cpu_cores is None else with_headroom(chosen.cpu_cores, CPU_HEADROOM),
        "recommendedMemoryInGB": None
        if chosen.peak_bytes is None
        else with_headroom(chosen.peak_bytes / 2**30, MEMORY_HEADROOM),
        "recommendationLatencyInMs": _round(chosen.p99),
        "maxUtilizedMemoryInGB": round(max(peaks) / 2**30, 3) if peaks else None,
        "maxUtilizedCpu": round(max(cpus), 3) if cpus else None,
        "averageLatencyInMs": _round(latency.get("mean")),
        "latencyPercentile50InMs": _round(latency.get("p50")),
        "latencyPercentile90InMs": _round(latency.get("p90")),
        "latencyPercentile95InMs": _round(latency.get("p95")),
        "latencyPercentile99InMs": _round(latency.get("p99")),
        "latencyPercentile999InMs": _round(latency.get("p999")),
        "measuredQueriesPerSecond": round(chosen.qps, 1),
        "totalQueries": chosen.total,
        "successQueries": chosen.succeeded,
        "successRate": round(chosen.succeeded / chosen.total, 4) if chosen.total else 0.0,
        "requestedCpu": requested_cpu,
        "requestedMemoryInGB": requested_memory_gb,
        "error": errors[0] if errors else None,
        "errorLogsUri": logs,
        "latencyBudgetInMs": budget_ms,
        "measuredConcurrency": chosen.concurrency,
        "recommendedTrial": chosen.index,
        "bestQueriesPerSecondWithinBudget": None if choice.best is None else round(choice.best.qps, 1),
        "modelConfig": chosen.settings.model_config(base) if chosen.settings is not None else None,
        "roundSpread": noise,
        "warnings": [
            *choice.warnings,
            *warnings,
            *([_busy(noise)] if noise is not None and noise > BUSY_SPREAD else []),
        ],
        "trials": [trial.to_dict(base) for trial in trials],
    }
    if verified is not None and best_again is not None:
        document.update(verification(verified, best_again))
    return document


def verification(verified: TrialResult, best_again: TrialResult) -> dict[str, Any]:
    """The recommended settings served afresh (``verified``) against the best trial's settings
    measured in the same rounds (``best_again``): the ratio is what applying the recommendation
    keeps of the best throughput, free of the machine's drift between phases."""
    return {
        "verifiedQueriesPerSecond": round(verified.qps, 1),
        "verifiedLatencyPercentile99InMs": _round(verified.p99),
        "verifiedBestQueriesPerSecond": round(best_again.qps, 1),
        "verifiedRatio": round(relative_qps(verified, best_again), 3),
        "verifiedErrors": verified.errors,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _busy(noise: float) -> str:
    return (
        f"throughput varied by {noise:.0%} between rounds (interquartile range over median): the machine was "
        "busy, and settings closer than that are not told apart; profile for longer or on a quieter machine"
    )


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None
