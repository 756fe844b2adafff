"""Replica counts per deployment on the daemon's ``/metrics``: running (starting or ready),
ready, and desired — what an autoscaled deployment is being moved to, ``instance_count``
otherwise. Read from the supervisor when scraped rather than kept in gauges that the supervisor
updates, so a deleted deployment leaves no stale series and no code path can forget an update.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelport.control.supervisor import Supervisor

LABELS = ["endpoint", "deployment"]


class ReplicaGauges(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        current = GaugeMetricFamily(
            "modelport_deployment_replicas", "Replicas a deployment runs, starting or ready", labels=LABELS
        )
        ready = GaugeMetricFamily("modelport_deployment_replicas_ready", "Replicas in rotation", labels=LABELS)
        desired = GaugeMetricFamily(
            "modelport_deployment_replicas_desired",
            "Replicas a deployment is being moved to (by its autoscaler, or instance_count)",
            labels=LABELS,
        )
        for (endpoint, deployment), group in sorted(self.supervisor.groups.items()):
            current.add_metric([endpoint, deployment], group.current())
            ready.add_metric([endpoint, deployment], len(group.serving()))
            desired.add_metric([endpoint, deployment], group.desired)
        yield from (current, ready, desired)
