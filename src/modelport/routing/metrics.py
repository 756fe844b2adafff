"""The router's Prometheus metrics: requests per endpoint, deployment and status code, their
latency, and requests in flight per deployment; served on the daemon's (or the standalone
router's) ``/metrics`` together with the process's CPU and memory.

Replicas expose their own ``nv_inference_*`` metrics on their metrics ports (``deployment
show`` lists them); this is the view from the front door, which counts what replicas never see
(401, 404, 429, 408, 503 from the router itself).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as _generate

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        labels = ["endpoint", "deployment"]
        self.requests = Counter(
            "modelport_endpoint_requests", "Requests answered by the router", [*labels, "code"], registry=self.registry
        )
        self.duration = Histogram(
            "modelport_endpoint_request_duration_seconds",
            "Time from request to answer at the router",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.mirrored = Counter(
            "modelport_endpoint_mirrored_requests", "Copies sent to a mirror deployment", labels, registry=self.registry
        )
        self.in_flight = Gauge(
            "modelport_endpoint_requests_in_flight",
            "Requests a deployment is answering",
            labels,
            registry=self.registry,
        )

        # Each series' child, looked up once: ``labels()`` takes a lock and builds its key on
        # every call, and the router calls it on every request.
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._in_flight: dict[tuple[str, str], Gauge] = {}

    def observe(self, endpoint: str, deployment: str, code: int, seconds: float) -> None:
        children = self._answered.get((endpoint, deployment, code))
        if children is None:
            children = (
                self.requests.labels(endpoint, deployment, str(code)),
                self.duration.labels(endpoint, deployment),
            )
            self._answered[endpoint, deployment, code] = children
        children[0].inc()
        children[1].observe(seconds)

    def in_flight_of(self, endpoint: str, deployment: str) -> Gauge:
        """The requests-in-flight gauge of one deployment."""
        gauge = self._in_flight.get((endpoint, deployment))
        if gauge is None:
            gauge = self._in_flight[endpoint, deployment] = self.in_flight.labels(endpoint, deployment)
        return gauge

    def render(self) -> bytes:
        return _generate(self.registry)
