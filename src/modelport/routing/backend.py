"""What the router needs of whatever runs the replicas, as protocols: the daemon's supervisor
(replicas it starts and probes) and the standalone router's configuration (a cluster's Service
URLs) both provide them, so one request path serves both.

The router reads and writes a few counters on these objects (requests in flight per deployment
and per replica, the round-robin turn) and takes a replica out of rotation when it refuses a
connection (``ready = False``, then ``recheck.set()`` asks its owner to probe it again soon);
everything else — starting, probing, restarting — is the owner's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol


class Upstream(Protocol):
    """One replica: where it answers, and what the router counts on it."""

    url: str
    outstanding: int  # requests sent to it and not yet answered
    ready: bool
    recheck: asyncio.Event


class Group(Protocol):
    """One deployment: its replicas in rotation and the limits the router enforces for it."""

    in_flight: int  # requests admitted and not yet answered (429 at max_in_flight)
    turn: int  # round-robin position among equally loaded replicas

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...  # ``endpoint/deployment``, for logs

    @property
    def max_in_flight(self) -> int: ...

    @property
    def request_timeout_ms(self) -> int: ...

    def serving(self) -> Sequence[Upstream]: ...

    def unready_reason(self) -> str: ...


class Backend(Protocol):
    """The deployments of the endpoints a router serves."""

    def group(self, endpoint: str, deployment: str) -> Group | None: ...
