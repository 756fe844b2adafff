"""What one request did, gathered along its path for the request log and payload collection.

The HTTP front end opens a :class:`RequestTrace` for each scoring request and puts it in a
context variable; :func:`modelport.serving.inference.infer`, which runs in the same task, fills
in the model, queue time and batch size (and the tensors, when the request was sampled for
collection). A context variable keeps these facts off every function signature in between, and
costs nothing when no trace is open.
"""

from __future__ import annotations

import itertools
import uuid
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


_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count(1)


def next_request_id() -> str:
    """A request id for a request that brought none: unique per process start and cheap (a
    counter after a random prefix), since every unlabelled request needs one."""
    return f"{_ID_PREFIX}-{next(_ids):08x}"
