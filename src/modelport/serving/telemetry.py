"""Where ``/metrics`` and the statistics routes get their numbers: this process
(:class:`LocalTelemetry`), or every worker process of ``serve --workers N``
(:class:`GatheredTelemetry`), so that counters are the server's, whichever process answers.

Each worker serves its :meth:`LocalTelemetry.snapshot` on a private Unix socket; gathering asks
all of them at scrape time and adds the snapshots up (:meth:`ModelStats.combined`, and
``script_metrics.combine`` for the scoring script's own metrics). A worker
that is being restarted is missing from one scrape: its counters restart from zero, which
Prometheus treats as the counter reset it is.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from modelport.core.connections import Connections
from modelport.serving.http.observe import Observing
from modelport.serving.metrics import observed_counts, render
from modelport.serving.repository import ModelRepository
from modelport.serving.script_metrics import REGISTRY, combine
from modelport.serving.stats import ModelStats


class Telemetry(Protocol):
    async def models(self) -> list[ModelStats]: ...

    async def exposition(self) -> bytes: ...


class LocalTelemetry:
    def __init__(
        self, repository: ModelRepository, observing: Observing, connections: Connections | None = None
    ) -> None:
        self.repository = repository
        self.observing = observing
        self.connections = connections

    async def models(self) -> list[ModelStats]:
        return [model.stats for model in self.repository.loaded()]

    async def exposition(self) -> bytes:
        return render(await self.models(), self._observed(), script=self._script())

    def snapshot(self) -> dict[str, Any]:
        return {
            "models": [model.stats.snapshot() for model in self.repository.loaded()],
            "observed": self._observed(),
            "process": own_process(),
            "script": self._script(),
        }

    def _script(self) -> dict[str, Any] | None:
        return REGISTRY.exposed(self.observing.endpoint, self.observing.deployment)

    def _observed(self) -> dict[str, float]:
        return observed_counts(self.observing.request_log, self.observing.collector, self.connections)


class GatheredTelemetry:
    def __init__(self, sockets: Sequence[Path]) -> None:
        self.sockets = list(sockets)
        self._clients: dict[Path, httpx.AsyncClient] = {}

    async def snapshots(self) -> list[dict[str, Any]]:
        replies = await asyncio.gather(*(self._ask(path) for path in self.sockets))
        return [reply for reply in replies if reply is not None]

    async def models(self) -> list[ModelStats]:
        return _combined(await self.snapshots())

    async def exposition(self) -> bytes:
        snapshots = await self.snapshots()
        observed: dict[str, float] = {}
        for snapshot in snapshots:
            for name, value in snapshot["observed"].items():
                observed[name] = observed.get(name, 0) + value
        return render(
            _combined(snapshots),
            observed,
            [snapshot["process"] for snapshot in snapshots],
            combine(snapshot["script"] for snapshot in snapshots),
        )

    async def _ask(self, path: Path) -> dict[str, Any] | None:
        client = self._clients.get(path)
        if client is None:
            client = self._clients[path] = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(path)), base_url="http://worker", timeout=5
            )
        try:
            reply = await client.get("/snapshot")
        except httpx.HTTPError:
            return None  # starting or restarting
        return reply.json() if reply.status_code == 200 else None


def _combined(snapshots: list[dict[str, Any]]) -> list[ModelStats]:
    by_version: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        for model in snapshot["models"]:
            by_version.setdefault((model["name"], model["version"]), []).append(model)
    return [ModelStats.combined(parts) for _, parts in sorted(by_version.items())]


def own_process() -> dict[str, float]:
    """This process's CPU seconds and resident bytes (Linux ``/proc``; zero elsewhere)."""
    times = os.times()
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        resident = 0
    return {"cpu_seconds": times.user + times.system, "resident_bytes": resident}
