"""What one request did, gathered along its path for the request log and payload collection.

The HTTP front end opens a :class:`RequestTrace` for each scoring request and puts it in a
context variable; :func:`modelport.serving.inference.infer`, which runs in the same task, fills
in the model, queue time and batch size (and the tensors, when the request was sampled for
collection). A context variable keeps these facts off every function signature in between, and
costs nothing when no trace is open.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RequestTrace:
    request_id: str
    collect: bool = False
    model: str | None = None
    version: str | None = None
    queue_ns: int = 0
    batch_size: int = 0
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None


current_trace: ContextVar[RequestTrace | None] = ContextVar("modelport_request_trace", default=None)
