"""``azureml.ai.monitoring`` for scoring scripts served by modelport: Azure's data collector API
(``Collector(name=...).collect(df[, context])``), writing into the deployment's payload
collection (``data_collector`` in deployment.yml) instead of Azure storage.

A collection the deployment does not enable is a no-op, as in Azure. Whether a request is
collected is decided once per request (``sampling_rate``), so a request's inputs and outputs are
kept together; the returned context carries the request's id, which joins them. Only pandas
DataFrames are collected; anything else goes to ``on_error`` (or raises ``TypeError``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from modelport.monitor.collector import Collected, active
from modelport.monitor.trace import current_trace, next_request_id

__all__ = ["BasicCorrelationContext", "Collector"]


class BasicCorrelationContext:
    def __init__(self, id: str | None = None, headers: dict[str, str] | None = None, *, sampled: bool = True) -> None:
        self.id = id or str(uuid.uuid4())
        self.headers = headers or {}
        self.sampled = sampled

    def get_id(self) -> str:
        return self.id

    def get_headers(self) -> dict[str, str]:
        return self.headers


class Collector:
    def __init__(self, *, name: str, on_error: Callable[[Exception], Any] | None = None, **ignored: Any) -> None:
        self.name = name
        self.on_error = on_error
        collector = active()
        if collector is not None:
            collector.explicit = True  # the script decides what is collected from now on

    def collect(self, data: Any, correlation_context: BasicCorrelationContext | None = None) -> BasicCorrelationContext:
        context = correlation_context or _context()
        collector = active()
        if collector is None or self.name not in collector.settings.collections or not context.sampled:
            return context
        if not (hasattr(data, "columns") and hasattr(data, "to_numpy")):
            error = TypeError(
                f"Collector {self.name!r}: only pandas DataFrames are collected, got {type(data).__name__}"
            )
            if self.on_error is None:
                raise error
            self.on_error(error)
            return context
        frame = {"inputs": data} if self.name == "model_inputs" else {"outputs": data}
        collector.submit(Collected(context.get_id(), time.time(), **frame))
        return context


def _context() -> BasicCorrelationContext:
    """The current request's id and sampling decision; outside a request, a fresh id, sampled
    at the collector's rate."""
    trace = current_trace.get()
    if trace is not None:
        if not trace.request_id:
            trace.request_id = next_request_id()
        return BasicCorrelationContext(trace.request_id, sampled=trace.collect)
    collector = active()
    return BasicCorrelationContext(sampled=collector is not None and collector.sample())
