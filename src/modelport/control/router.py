"""The daemon's router: :class:`modelport.routing.router.Router` over the supervisor's replicas,
fed the catalog's endpoints.

The request path lives in ``routing`` so that the standalone router of a cluster runs the same
code; this module only turns an :class:`EndpointRecord` into what the router publishes, with the
supervisor as the backend (its ``DeploymentGroup`` and ``Replica`` are what ``routing.backend``
asks for).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from modelport.control.catalog import EndpointRecord
from modelport.control.supervisor import Supervisor
from modelport.routing.metrics import RouterMetrics
from modelport.routing.router import LiveEndpoint
from modelport.routing.router import Router as _Router
from modelport.routing.upstream_http import UpstreamPool


def live_endpoint(record: EndpointRecord, supervisor: Supervisor) -> LiveEndpoint:
    spec = record.spec
    return LiveEndpoint(
        spec.name,
        spec.auth_mode,
        record.keys,
        dict(spec.traffic),
        dict(spec.mirror_traffic),
        frozenset(d.spec.name for d in record.deployments),
        supervisor,
    )


class Router:
    """The ASGI app for ``/endpoints/<name>/...``, published to from the catalog's records."""

    def __init__(self, supervisor: Supervisor, http: UpstreamPool) -> None:
        self.supervisor = supervisor
        self.core = _Router(http)

    @property
    def metrics(self) -> RouterMetrics:
        return self.core.metrics

    def publish(self, record: EndpointRecord) -> None:
        self.core.publish(live_endpoint(record, self.supervisor))

    def withdraw(self, name: str) -> None:
        self.core.withdraw(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.core(scope, receive, send)
