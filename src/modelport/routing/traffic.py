"""Traffic decisions, as pure functions of a random number: which deployment a request goes to,
whether it is mirrored, and which replica serves it. Kept apart from the router so the rules
can be tested exactly, without sockets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar


class _Loaded(Protocol):
    outstanding: int


R = TypeVar("R", bound=_Loaded)


def choose_deployment(traffic: Mapping[str, int], roll: float) -> str | None:
    """The deployment whose share of the weights ``roll`` (uniform in [0, 1)) falls in;
    None when no deployment has a positive weight (the router answers 404, as Azure does)."""
    live = [(name, weight) for name, weight in traffic.items() if weight > 0]
    point = roll * sum(weight for _, weight in live)
    for name, weight in live:
        if point < weight:
            return name
        point -= weight
    return live[-1][0] if live else None  # roll * total rounded up to total


def mirror_target(mirror_traffic: Mapping[str, int], roll: float) -> str | None:
    """The deployment a copy of this request goes to, if ``roll`` falls in its percentage."""
    for name, percent in mirror_traffic.items():
        if roll * 100 < percent:
            return name
    return None


def least_outstanding(replicas: Sequence[R], turn: int) -> R | None:
    """The replica with the fewest requests in flight; ties go round-robin by ``turn``, so an
    idle deployment still spreads its requests over all its replicas."""
    if not replicas:
        return None
    count = len(replicas)
    return min((replicas[(turn + i) % count] for i in range(count)), key=lambda replica: replica.outstanding)
