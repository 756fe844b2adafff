"""The request log and payload collection around the HTTP app, as one ASGI middleware.

Installed only when a server logs requests or collects payloads, so a plain ``serve`` pays
nothing. For each scoring request it opens a :class:`~modelport.monitor.trace.RequestTrace`
(which inference fills with model, queue time, batch size and, when sampled, the tensors),
notes the status as the response starts, and after the response hands one record to the request
log and, when sampled, one to the collector — both only queue it. ``/score`` bodies are kept
(as the bytes already in memory) only for sampled requests. Probes and metrics are not logged.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.monitor.collector import Collected, PayloadCollector
from modelport.monitor.request_log import RequestLog
from modelport.monitor.trace import RequestTrace, current_trace
from modelport.serving.metrics import observation_registry

UNLOGGED = frozenset({"/", "/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/swagger.json"})


@dataclass(frozen=True)
class Observing:
    """What a server records about its requests; the labels name the deployment it serves."""

    request_log: RequestLog | None = None
    collector: PayloadCollector | None = None
    endpoint: str | None = None
    deployment: str | None = None

    def registry(self) -> CollectorRegistry | None:
        return observation_registry(self.request_log, self.collector)

    def close(self) -> None:
        """Flush and stop the writers (after the server has stopped taking requests)."""
        for writer in (self.request_log, self.collector):
            if writer is not None:
                writer.close()


class Observer:
    def __init__(self, app: ASGIApp, observing: Observing) -> None:
        self.app = app
        self.request_log = observing.request_log
        self.collector = observing.collector
        self.labels = {"endpoint": observing.endpoint, "deployment": observing.deployment}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLOGGED:
            await self.app(scope, receive, send)
            return
        request_id = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        trace = RequestTrace(request_id, collect=self.collector is not None and self.collector.sample())
        keep_bodies = trace.collect and not scope["path"].startswith("/v2/")
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        status = 500

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def send_noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif keep_bodies and message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        started_wall, started = time.time(), time.perf_counter()
        token = current_trace.set(trace)
        try:
            await self.app(scope, receive_kept if keep_bodies else receive, send_noted)
        finally:
            current_trace.reset(token)
            latency_ms = (time.perf_counter() - started) * 1000
            trace.request_id = trace.request_id or str(uuid.uuid4())
            if self.request_log is not None:
                self.request_log.submit(self._line(scope, trace, status, started_wall, latency_ms))
            if trace.collect and status < 400 and self.collector is not None:
                self.collector.submit(Collected(
                    trace.request_id, started_wall, trace.version, trace.inputs, trace.outputs,
                    b"".join(request_body) if keep_bodies else None, b"".join(response_body) if keep_bodies else None,
                ))

    def _line(self, scope: Scope, trace: RequestTrace, status: int, started: float, latency_ms: float) -> dict[str, Any]:
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)) + f".{int(started % 1 * 1e6):06d}Z",
            "request_id": trace.request_id,
            **self.labels,
            "model": trace.model,
            "version": trace.version,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "queue_ms": round(trace.queue_ns / 1e6, 3),
            "batch_size": trace.batch_size,
        }
