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

    def observe(self, endpoint: str, deployment: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, deployment, str(code)).inc()
        self.duration.labels(endpoint, deployment).observe(seconds)

    def render(self) -> bytes:
        return _generate(self.registry)
