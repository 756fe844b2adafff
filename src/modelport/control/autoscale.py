"""Autoscaling decisions, as pure functions of what was measured and when: how many replicas a
deployment with ``scale_settings.type: target_utilization`` should run. Kept apart from the
supervisor (which samples, starts and retires replicas) so the rules can be tested exactly.

The model is Kubernetes' HorizontalPodAutoscaler, so that a deployment scales the same way on
the local daemon and on a cluster (where its ``scale_settings`` become an HPA):

* **utilization** is requests in flight per ready replica, as a fraction of
  ``max_concurrent_requests_per_instance`` (what one replica is meant to take at once);
* **recommended** = ``ceil(ready × utilization / target)``, held to ``[min_instances,
  max_instances]``; a ratio within 10 % of 1 (the HPA's tolerance) keeps the current count, so
  noise around the target does not move replicas. ``ready × utilization`` is the load in
  replicas' worth, so replicas still starting count neither as capacity nor as load;
* **scale out at once** (the HPA's default scale-up window is 0): one polling interval above
  the target starts replicas;
* **scale in slowly** (the HPA's scale-down stabilization window, ``scale_down_delay``): the
  count drops only to the highest recommendation of the whole window, so the load must have
  stayed low for ``scale_down_delay`` seconds before a replica is retired, and a load that comes
  and goes keeps its replicas instead of flapping.

In flight is sampled ``SAMPLES_PER_POLL`` times per polling interval and **averaged**. The mean
number in flight is the replicas' busy time per second (Little's law: arrival rate × latency),
which is what the target is about; the maximum of the samples would read a burst of N requests
arriving together (and gone 50 ms later) as N replicas' worth of sustained load, scale out for
it, and scale back in after the cool-down — the flapping the window is there to prevent. A
sustained load shows in the mean within one polling interval, so scale-out stays prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TOLERANCE = 0.1  # the HPA's default: |utilization / target − 1| within this keeps the count
SAMPLES_PER_POLL = 10

Recommendation = tuple[float, int]  # (monotonic time, recommended replicas)


def bounded(count: int, low: int, high: int) -> int:
    """``count`` held to ``[low, high]``."""
    return max(low, min(high, count))


def mean(samples: Sequence[int]) -> float:
    """The mean of the in-flight samples of one polling interval (0 with none)."""
    return sum(samples) / len(samples) if samples else 0.0


def utilization(in_flight: float, ready: int, per_replica: int) -> float:
    """Requests in flight per ready replica, as a fraction of what one replica takes at once
    (``max_concurrent_requests_per_instance``); ``ready`` must be positive."""
    return in_flight / (ready * per_replica)


def recommend(
    current: int, ready: int, used: float, target: float, low: int, high: int, tolerance: float = TOLERANCE
) -> int:
    """The replicas ``ready`` replicas at utilization ``used`` call for, for a ``target``
    utilization (both fractions), held to ``[low, high]``. Within ``tolerance`` of the target, or
    with no ready replica to measure, the ``current`` count stands."""
    if ready <= 0:
        return bounded(current, low, high)
    ratio = used / target
    if abs(ratio - 1) <= tolerance:
        return bounded(current, low, high)
    return bounded(math.ceil(round(ready * ratio, 6)), low, high)  # round: 1.4 / 0.7 is 2.0000000000000004


def stabilized(current: int, history: Sequence[Recommendation], now: float, delay: float) -> int:
    """The count to run now, from the recommendations so far (oldest first, this poll's last):
    more than ``current`` is taken at once; fewer only down to the highest recommendation in
    force during the last ``delay`` seconds — the one made before the window started counts
    too, since it held until the next, so a window with a gap in it is still covered."""
    newest = history[-1][1]
    if newest > current:
        return newest
    return min(current, max(count for _, count in prune(history, now, delay)))


def prune(history: Sequence[Recommendation], now: float, delay: float) -> list[Recommendation]:
    """The recommendations :func:`stabilized` still needs: those of the last ``delay`` seconds and
    the last one before them."""
    start = now - delay
    first = max((i for i, (at, _) in enumerate(history) if at <= start), default=0)
    return list(history[first:])


def scale_event(before: int, after: int, in_flight: float, ready: int, per_replica: int, target: float) -> str:
    """One line for ``deployment logs``: the change and the load that caused it, in requests
    in flight per ready replica against the target in the same unit."""
    direction = "out" if after > before else "in"
    load = in_flight / ready if ready else 0.0
    return (
        f"scaled {direction} {before} → {after}: {load:.1f} requests in flight per replica, "
        f"target {target * per_replica:.1f}"
    )
