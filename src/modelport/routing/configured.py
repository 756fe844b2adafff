"""``router.yml`` as the router's backend: each deployment's URLs are its replicas.

On a cluster a URL is a Service (or a pod) that something else — Kubernetes — starts, probes and
restarts; the router only needs to know which URLs take requests. A URL is in rotation until it
refuses a connection (the request then goes to another URL: nothing was sent), and from then on
it is asked ``GET /v2/health/ready`` in the background until it answers ready.

A reload builds a new backend, but one :class:`UrlReplica` per URL lives across reloads (its
requests in flight and its place in or out of rotation carry over), and a deployment whose
settings did not change keeps its :class:`UrlGroup` (its requests in flight keep counting
against its limit); a URL no longer named anywhere stops being probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from modelport.routing.router import LiveEndpoint
from modelport.routing.upstream_http import ConnectFailed, UpstreamFailed, UpstreamPool
from modelport.schema.router_config import RoutedDeployment, RouterConfig

log = logging.getLogger("modelport.routing")

READY_PATH = "/v2/health/ready"
RECHECK_S = 0.5  # how often a URL out of rotation is asked whether it is ready again
PROBE_TIMEOUT_S = 2.0


class UrlReplica:
    """One URL of a deployment (``routing.backend.Upstream``)."""

    def __init__(self, url: str) -> None:
        self.url = _normal(url)
        self.outstanding = 0
        self.ready = True  # until it refuses a connection: a cluster's Service is expected to answer
        self.recheck = asyncio.Event()  # set by the router when the URL refused a connection


class UrlGroup:
    """One deployment of ``router.yml`` (``routing.backend.Group``)."""

    def __init__(self, endpoint: str, name: str, settings: RoutedDeployment, replicas: list[UrlReplica]) -> None:
        self.name = name
        self.label = f"{endpoint}/{name}"
        self.settings = settings
        self.max_in_flight = settings.max_in_flight
        self.request_timeout_ms = settings.request_timeout_ms
        self.replicas = replicas
        self.in_flight = 0
        self.turn = 0

    def serving(self) -> list[UrlReplica]:
        return [replica for replica in self.replicas if replica.ready]

    def unready_reason(self) -> str:
        urls = ", ".join(replica.url for replica in self.replicas)
        return (
            f"deployment {self.name!r} has no ready replica: {urls} refused connections "
            f"(rechecked with GET {READY_PATH})"
        )


class ConfiguredBackend:
    """The deployments of the one endpoint ``router.yml`` describes (``routing.backend.Backend``)."""

    def __init__(self, endpoint: str, groups: dict[str, UrlGroup]) -> None:
        self.endpoint = endpoint
        self.groups = groups

    def group(self, endpoint: str, deployment: str) -> UrlGroup | None:
        return self.groups.get(deployment) if endpoint == self.endpoint else None


class UrlReplicas:
    """Every URL the router knows, one :class:`UrlReplica` each, with the task that brings it
    back into rotation once it refused a connection."""

    def __init__(self, http: UpstreamPool) -> None:
        self.http = http
        self._replicas: dict[str, UrlReplica] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}

    def get(self, url: str) -> UrlReplica:
        replica = self._replicas.get(_normal(url))
        if replica is None:
            replica = self._replicas[_normal(url)] = UrlReplica(url)
            self._watchers[replica.url] = asyncio.create_task(self._watch(replica))
        return replica

    def keep_only(self, urls: Iterable[str]) -> None:
        """Stop probing the URLs not in ``urls`` (requests already sent to them finish)."""
        kept = {_normal(url) for url in urls}
        for url in [url for url in self._replicas if url not in kept]:
            del self._replicas[url]
            self._watchers.pop(url).cancel()

    async def close(self) -> None:
        watchers = list(self._watchers.values())
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        self._replicas.clear()
        self._watchers.clear()

    async def _watch(self, replica: UrlReplica) -> None:
        while True:
            await replica.recheck.wait()
            log.warning("%s refused a connection: out of rotation until GET %s answers 200", replica.url, READY_PATH)
            while not await self._ready(replica.url):
                await asyncio.sleep(RECHECK_S)
            replica.recheck.clear()
            replica.ready = True
            log.info("%s is ready: back in rotation", replica.url)

    async def _ready(self, url: str) -> bool:
        deadline = asyncio.get_running_loop().time() + PROBE_TIMEOUT_S
        with contextlib.suppress(ConnectFailed, UpstreamFailed, asyncio.TimeoutError):
            return (await self.http.request("GET", url, READY_PATH, [], b"", deadline)).status == 200
        return False


def _normal(url: str) -> str:
    """A URL as requests are appended to it: ``http://host:port/`` is ``http://host:port``."""
    return url.rstrip("/")


def configured_endpoint(
    config: RouterConfig, keys: tuple[str, str], replicas: UrlReplicas, previous: LiveEndpoint | None = None
) -> LiveEndpoint:
    """What the router publishes for ``config``; ``previous`` (the endpoint it replaces) lends
    its groups to the deployments whose settings are the same."""
    before = previous.backend.groups if previous is not None and isinstance(previous.backend, ConfiguredBackend) else {}
    groups: dict[str, UrlGroup] = {}
    for name, settings in config.deployments.items():
        kept = before.get(name)
        if kept is not None and kept.settings == settings and kept.label == f"{config.endpoint}/{name}":
            groups[name] = kept
        else:
            groups[name] = UrlGroup(config.endpoint, name, settings, [replicas.get(url) for url in settings.urls])
    replicas.keep_only(url for settings in config.deployments.values() for url in settings.urls)
    return LiveEndpoint(
        config.endpoint,
        config.auth_mode,
        keys,
        dict(config.traffic),
        dict(config.mirror_traffic),
        frozenset(config.deployments),
        ConfiguredBackend(config.endpoint, groups),
    )
