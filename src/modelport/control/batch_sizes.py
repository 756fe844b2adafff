"""The last 15 minutes of each deployment's batch sizes, read from its replicas' own ``/metrics``
(``modelport_inference_batch_size``: rows per model execution), kept in memory so the dashboard
shows them beside the router's traffic without Prometheus.

Every :data:`SAMPLE_S` seconds each serving replica's histogram ``_sum`` and ``_count`` (all its
models together) are read; a view is the difference between a fresh reading and the last sample at
or before the window's start, per replica, added up per deployment: the mean batch size over the
window is rows executed over executions. A replica's counters start at zero with its process, so
one that restarted (its pid changed, or a counter went down) counts from zero again; a replica
that does not answer a scrape is left out of that reading. Scoring scripts that do not batch
execute no model and have no histogram: their deployments show no batch size.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelport.control.supervisor import Supervisor
from modelport.routing.history import SAMPLE_S, WINDOW_S

FAMILY = "modelport_inference_batch_size"
SCRAPE_TIMEOUT_S = 2.0

ReplicaKey = tuple[str, str, int]  # endpoint, deployment, pid
Counts = tuple[float, float]  # rows executed, executions (the histogram's _sum and _count)
BatchPoint = tuple[float, float]  # (time.time(), mean batch size) of one sampling step with executions


@dataclass(frozen=True)
class Reading:
    at: float
    counts: dict[ReplicaKey, Counts]


@dataclass(frozen=True)
class Batches:
    """One deployment's model executions over the window and their mean size."""

    deployment: str
    executions: int
    rows: int
    series: list[BatchPoint] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return self.rows / self.executions if self.executions else None


def parse(text: str) -> Counts | None:
    """The batch-size histogram's sum and count in a replica's exposition, its models added up;
    None when it has none (a scoring script)."""
    rows = executions = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        if family.name != FAMILY:
            continue
        for sample in family.samples:
            if sample.name == f"{FAMILY}_sum":
                rows += sample.value
                found = True
            elif sample.name == f"{FAMILY}_count":
                executions += sample.value
    return (rows, executions) if found else None


class BatchSizes:
    def __init__(
        self,
        supervisor: Supervisor,
        client: httpx.AsyncClient,
        *,
        window_s: float = WINDOW_S,
        sample_s: float = SAMPLE_S,
    ) -> None:
        self.supervisor = supervisor
        self.client = client
        self.window_s = window_s
        self.sample_s = sample_s
        self.samples: deque[Reading] = deque()

    async def read(self, endpoint: str | None = None) -> Reading:
        """Every serving replica's counts now (of ``endpoint``'s deployments only, when given)."""
        replicas = [
            (endpoint_name, deployment, replica)
            for (endpoint_name, deployment), group in list(self.supervisor.groups.items())
            if endpoint is None or endpoint_name == endpoint
            for replica in group.serving()
        ]
        scraped = await asyncio.gather(*(self._scrape(replica.url) for _, _, replica in replicas))
        counts = {
            (endpoint_name, deployment, replica.pid): found
            for (endpoint_name, deployment, replica), found in zip(replicas, scraped)
            if found is not None
        }
        return Reading(time.time(), counts)

    async def _scrape(self, url: str) -> Counts | None:
        try:
            answer = await self.client.get(f"{url}/metrics", timeout=SCRAPE_TIMEOUT_S)
        except httpx.HTTPError:
            return None
        return parse(answer.text) if answer.status_code == 200 else None

    async def sample(self) -> None:
        reading = await self.read()
        self.samples.append(reading)
        while len(self.samples) > 1 and self.samples[1].at <= reading.at - self.window_s:
            self.samples.popleft()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await self.sample()
            await asyncio.sleep(self.sample_s)

    async def view(self, endpoint: str) -> dict[str, Batches]:
        """``endpoint``'s deployments with model executions in the window, up to this moment."""
        now = await self.read(endpoint)
        start = now.at - self.window_s
        baseline = next((s for s in reversed(self.samples) if s.at <= start), Reading(start, {}))
        points = [s for s in self.samples if s.at > start] + [now]
        deployments = sorted({key[1] for key in now.counts})
        views = {}
        for deployment in deployments:
            rows, executions = _delta(now, baseline, endpoint, deployment)
            series: list[BatchPoint] = []
            previous = baseline
            for point in points:
                step_rows, step_executions = _delta(point, previous, endpoint, deployment)
                if step_executions > 0:
                    series.append((point.at, step_rows / step_executions))
                previous = point
            views[deployment] = Batches(deployment, round(executions), round(rows), series)
        return views


def _delta(later: Reading, earlier: Reading, endpoint: str, deployment: str) -> Counts:
    """Rows and executions of ``endpoint/deployment``'s replicas between two readings; a replica absent
    from ``earlier``, or whose counters went down (restarted), counts from zero."""
    rows = executions = 0.0
    for key, (now_rows, now_executions) in later.counts.items():
        if key[:2] != (endpoint, deployment):
            continue
        then_rows, then_executions = earlier.counts.get(key, (0.0, 0.0))
        if now_executions < then_executions:
            then_rows, then_executions = 0.0, 0.0
        rows += now_rows - then_rows
        executions += now_executions - then_executions
    return rows, executions
