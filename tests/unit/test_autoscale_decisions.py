"""The autoscaler's decisions, exactly: utilization, the HPA's recommendation with its tolerance,
prompt scale-out and scale-in only after the cool-down, and the event line."""

from __future__ import annotations

import pytest

from modelport.control.autoscale import (
    bounded,
    mean,
    prune,
    recommend,
    scale_event,
    stabilized,
    utilization,
)


def test_utilization_is_in_flight_per_ready_replica_over_its_concurrency() -> None:
    assert utilization(8, 1, 1) == 8.0
    assert utilization(2.6, 2, 4) == pytest.approx(0.325)
    assert utilization(0, 3, 1) == 0.0
    assert mean([0, 1, 2, 3]) == 1.5
    assert mean([]) == 0.0


@pytest.mark.parametrize(
    ("current", "ready", "used", "expected"),
    [
        (1, 1, 8.0, 4),  # ceil(1 × 8 / 0.7) = 12, held to max 4
        (1, 1, 1.4, 2),  # 1.4 / 0.7 is exactly 2 (not 3 from 2.0000000000000004)
        (1, 1, 1.0, 2),  # ceil(1.43)
        (2, 2, 0.75, 2),  # ratio 1.07: within the 10 % tolerance
        (2, 2, 0.64, 2),  # ratio 0.91: within
        (2, 2, 0.6, 2),  # ratio 0.857: ceil(1.71) = 2
        (4, 4, 0.1, 1),  # ceil(0.57)
        (4, 4, 0.0, 1),  # idle: the minimum
        (3, 0, 5.0, 3),  # nothing ready to measure: the count stands
        (4, 2, 0.7, 4),  # on target, two still starting: the current count, not the ready one
        (3, 2, 1.4, 4),  # the ready ones measure the load: ceil(2 × 2) = 4
    ],
)
def test_recommend_follows_the_hpa_formula(current: int, ready: int, used: float, expected: int) -> None:
    assert recommend(current, ready, used, 0.7, 1, 4) == expected


def test_recommend_holds_to_the_bounds_and_the_tolerance() -> None:
    assert recommend(5, 5, 0.7, 0.7, 1, 3) == 3  # over max (max lowered by an update)
    assert recommend(1, 1, 0.7, 0.7, 2, 4) == 2  # under min
    assert recommend(2, 2, 0.76, 0.7, 1, 4) == 2  # ratio 1.086
    assert recommend(2, 2, 0.78, 0.7, 1, 4) == 3  # ratio 1.114
    assert recommend(2, 2, 0.78, 0.7, 1, 4, tolerance=0.2) == 2
    assert bounded(0, 1, 3) == 1 and bounded(9, 1, 3) == 3 and bounded(2, 1, 3) == 2


def test_scale_out_is_taken_at_once() -> None:
    history = [(0.0, 1), (10.0, 1), (10.5, 4)]
    assert stabilized(1, history, 10.5, 3.0) == 4


def test_scale_in_waits_for_the_whole_cool_down() -> None:
    # Scaled to 4 at t=10 (recorded); the load drops at t=12 and stays low.
    history = [(10.0, 4)] + [(12.0 + 0.5 * i, 1) for i in range(20)]
    for now in (12.0, 13.0, 14.0, 14.9):  # the 4 was in force within the last 3 s
        assert stabilized(4, [h for h in history if h[0] <= now], now, 3.0) == 4
    # At 15.0 the 1 (made at 12.0) has held for the whole window.
    assert stabilized(4, [h for h in history if h[0] <= 15.0], 15.0, 3.0) == 1


def test_scale_in_goes_to_the_highest_recommendation_of_the_window() -> None:
    history = [(0.0, 4), (5.0, 1), (6.0, 3), (7.0, 2), (8.0, 1)]
    assert stabilized(4, history, 8.0, 2.5) == 3  # 3 (at 6.0) was in force at 5.5
    assert stabilized(4, history, 8.0, 1.5) == 3  # 3 (at 6.0) was still in force at 6.5
    assert stabilized(4, history, 8.0, 0.5) == 2  # 2 (at 7.0) was in force at 7.5
    assert stabilized(2, history, 8.0, 2.5) == 2  # never scales out on old recommendations


def test_a_gap_in_the_history_does_not_shorten_the_cool_down() -> None:
    # Scaled out to 4, then no poll for a while (replicas starting): the 4 holds until the next.
    history = [(0.0, 1), (1.0, 4), (9.0, 1)]
    assert stabilized(4, history, 9.0, 3.0) == 4
    assert stabilized(4, [*history, (12.0, 1)], 12.0, 3.0) == 1  # 1 since t=9: a full window


def test_bursts_within_the_window_keep_the_replicas() -> None:
    # A load that comes and goes every 2 s never lets a 3 s window fall to 1: no flapping.
    history = [(float(t), 3 if t % 2 == 0 else 1) for t in range(0, 20)]
    for now in range(4, 20):
        assert stabilized(3, [h for h in history if h[0] <= now], float(now), 3.0) == 3


def test_prune_keeps_the_window_and_the_one_in_force_at_its_start() -> None:
    history = [(0.0, 4), (1.0, 3), (2.0, 2), (5.0, 1)]
    assert prune(history, 5.0, 3.0) == [(2.0, 2), (5.0, 1)]
    assert prune(history, 5.0, 3.5) == [(1.0, 3), (2.0, 2), (5.0, 1)]
    assert prune(history, 5.0, 10.0) == history
    assert prune([(0.0, 1)], 100.0, 3.0) == [(0.0, 1)]


def test_scale_event_names_the_change_and_the_load() -> None:
    assert scale_event(1, 3, 2.6, 1, 1, 0.7) == ("scaled out 1 → 3: 2.6 requests in flight per replica, target 0.7")
    assert scale_event(4, 1, 0.2, 4, 4, 0.7) == ("scaled in 4 → 1: 0.1 requests in flight per replica, target 2.8")
