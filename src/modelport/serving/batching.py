"""Server-side dynamic batching with Triton's semantics, plus an adaptive policy.

Requests of one model wait in a bounded queue; whenever a model instance is free, the
scheduler walks the queue in arrival order and forms a batch (concatenate on dim 0), runs it
once, and splits the outputs back to the callers:

* a batch stops before it would exceed ``max_batch_size`` or at a request whose non-batch
  shapes or dtypes differ (it cannot be concatenated);
* the longest prefix whose total is a preferred size goes out at once;
* otherwise the batch goes out when it is full, when the queue holds an incompatible request,
  when ``max_queue_delay_microseconds`` is 0, or when the oldest request has waited that long;
* a full queue (``max_queue_size``) answers 503 immediately and a request that waited past
  ``default_timeout_microseconds`` answers 503, so memory never grows without bound.

The adaptive policy (``latency_budget_ms``) replaces the two knobs: it keeps a running linear
model of batch cost (``cost(n) = fixed + per_row * n``), caps a batch at the largest size whose
cost fits half the budget, and never waits: a batch goes out as soon as an instance is free. At
load, what queues while the instance runs *is* the next batch, so batches grow with the load by
themselves; waiting for more rows only adds latency while the instance idles. (Measured in
``bench/adaptive.py``: every static delay came within noise of delay 0, and an earlier adaptive
policy that waited for its target size reached half the best static throughput, because with a
fixed number of requests in flight the target could never fill.)

What a request carries is up to its :class:`Parts`: named tensors batched on dim 0
(:class:`TensorParts`, the models) or one opaque item per request handed over as a list
(:class:`ItemParts`, batchable scoring scripts).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from modelport.core.errors import ModelportError
from modelport.runtime.config import DynamicBatching

In = TypeVar("In")
Out = TypeVar("Out")
Runner = Callable[[Any], Awaitable[Any]]


class Parts(Protocol[In, Out]):
    """How requests of one kind are measured, told apart, joined into a batch and split back."""

    def rows(self, inputs: In) -> int: ...

    def key(self, inputs: In) -> Hashable:
        """Requests batch together only when their keys are equal."""
        ...

    def join(self, parts: list[In]) -> Any: ...

    def split(self, outputs: Any, rows: list[int]) -> list[Out]: ...


class TensorParts:
    """Named arrays whose dim 0 is the batch: concatenated, and split back by row counts."""

    def rows(self, inputs: dict[str, np.ndarray]) -> int:
        return next(iter(inputs.values())).shape[0] if inputs else 1

    def key(self, inputs: dict[str, np.ndarray]) -> Hashable:
        """Everything but dim 0 must agree."""
        return tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(inputs.items()))

    def join(self, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def split(self, outputs: dict[str, np.ndarray], rows: list[int]) -> list[dict[str, np.ndarray]]:
        shares, offset = [], 0
        for count in rows:
            shares.append({name: array[offset:offset + count] for name, array in outputs.items()})
            offset += count
        return shares


class ItemParts:
    """One item per request: the batch is the list of items, the result a list of as many answers."""

    def rows(self, inputs: object) -> int:
        return 1

    def key(self, inputs: object) -> Hashable:
        return None

    def join(self, parts: list[object]) -> list[object]:
        return parts

    def split(self, outputs: list[object], rows: list[int]) -> list[object]:
        return list(outputs)


@dataclass(frozen=True)
class Batched(Generic[Out]):
    """One request's share of a batch, and where its time went (seconds)."""

    outputs: Out
    queued: float
    executed: float
    batch_size: int


class QueueRejected(ModelportError):
    """The queue is full or the request waited too long: Triton answers 503."""

    http_status = 503


@dataclass
class _Pending:
    inputs: Any
    rows: int
    key: Hashable
    future: asyncio.Future[Batched]
    enqueued: float = field(default_factory=time.perf_counter)


class CostModel:
    """Running least-squares fit of batch execution time against batch size (seconds)."""

    def __init__(self, decay: float = 0.98) -> None:
        self._decay = decay
        self._n = self._sx = self._sy = self._sxx = self._sxy = 0.0

    def observe(self, rows: int, seconds: float) -> None:
        d = self._decay
        self._n = self._n * d + 1
        self._sx = self._sx * d + rows
        self._sy = self._sy * d + seconds
        self._sxx = self._sxx * d + rows * rows
        self._sxy = self._sxy * d + rows * seconds

    def predict(self, rows: int) -> float:
        if self._n < 1:
            return 0.0
        mean_x, mean_y = self._sx / self._n, self._sy / self._n
        var = self._sxx / self._n - mean_x * mean_x
        slope = max(0.0, (self._sxy / self._n - mean_x * mean_y) / var) if var > 1e-12 else mean_y / max(mean_x, 1)
        return max(0.0, mean_y + slope * (rows - mean_x))


class DynamicBatcher:
    """One per batching model; ``submit`` is called on the event loop by every request."""

    def __init__(self, settings: DynamicBatching, max_batch_size: int, instances: int, runner: Runner,
                 on_batch: Callable[[int, float], None] | None = None, parts: Parts | None = None) -> None:
        self.parts: Parts = parts or TensorParts()
        self.settings = settings
        self.max_batch_size = max_batch_size
        self._preferred = frozenset(settings.preferred_batch_size)
        self._delay = settings.max_queue_delay_microseconds / 1e6
        self._timeout = settings.default_timeout_microseconds / 1e6 or None
        self._budget = settings.latency_budget_ms / 1000 if settings.latency_budget_ms else None
        self._runner = runner
        self._on_batch = on_batch
        self._instances = instances
        self._queue: deque[_Pending] = deque()
        self._previous: asyncio.Future[None] | None = None
        self.cost = CostModel()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, inputs: Any) -> Batched:
        if self.settings.max_queue_size and len(self._queue) >= self.settings.max_queue_size:
            raise QueueRejected("Exceeds maximum queue size")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._start(loop)
        pending = _Pending(inputs, self.parts.rows(inputs), self.parts.key(inputs), loop.create_future())
        self._queue.append(pending)
        self._arrival.set()
        return await pending.future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The scheduler and its primitives belong to the loop that serves the requests."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._queue.clear()
        self._arrival = asyncio.Event()
        self._slots = asyncio.Semaphore(self._instances)
        self._previous = None
        self._task = loop.create_task(self._schedule())

    def close(self) -> None:
        """Stop scheduling and fail what is still queued; callable from any thread."""
        if self._task is None:
            return
        try:
            self._task.get_loop().call_soon_threadsafe(self._shutdown)
        except RuntimeError:  # the loop is already closed: nothing is waiting any more
            pass

    def _shutdown(self) -> None:
        assert self._task is not None
        self._task.cancel()
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(QueueRejected("model unloaded"))

    # -- scheduling -----------------------------------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            asyncio.get_running_loop().create_task(self._dispatch(batch))

    async def _next_batch(self) -> list[_Pending]:
        while True:
            self._expire()
            if not self._queue:
                self._arrival.clear()
                await self._arrival.wait()
                continue
            batch, send_now = self._candidate()
            if send_now:
                return self._take(len(batch))
            wait = self._delay - (time.perf_counter() - self._queue[0].enqueued)
            if wait <= 0:
                return self._take(len(batch))
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def _candidate(self) -> tuple[list[_Pending], bool]:
        """The batch the queue head allows, and whether it should go out now."""
        batch: list[_Pending] = []
        total, best_preferred, stopped = 0, 0, False
        head = self._queue[0].key
        limit = self._adaptive_limit() if self._budget else self.max_batch_size
        for pending in self._queue:
            if total + pending.rows > limit or pending.key != head:
                stopped = True
                break
            batch.append(pending)
            total += pending.rows
            if total in self._preferred:
                best_preferred = len(batch)
        if not batch:  # the head alone exceeds the adaptive cap (never max_batch_size: checked earlier)
            return [self._queue[0]], True
        if self._budget:
            return batch, True
        if best_preferred:
            return batch[:best_preferred], True
        return batch, stopped or total >= self.max_batch_size or self._delay == 0

    def _adaptive_limit(self) -> int:
        """Largest batch whose predicted cost fits half the latency budget (at least 1)."""
        half = self._budget / 2
        size = self.max_batch_size
        while size > 1 and self.cost.predict(size) > half:
            size //= 2
        return size

    def _take(self, count: int) -> list[_Pending]:
        return [self._queue.popleft() for _ in range(count)]

    def _expire(self) -> None:
        if self._timeout is None:
            return
        now = time.perf_counter()
        while self._queue and now - self._queue[0].enqueued > self._timeout:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(QueueRejected("Request timeout expired"))

    async def _dispatch(self, batch: list[_Pending]) -> None:
        previous, done = self._previous, asyncio.get_running_loop().create_future()
        if self.settings.preserve_ordering:
            self._previous = done
        try:
            live = [p for p in batch if not p.future.done()]  # callers may have given up
            if not live:
                return
            started = time.perf_counter()
            try:
                outputs = await self._runner(self.parts.join([p.inputs for p in live]))
                shares = self.parts.split(outputs, [p.rows for p in live])
            except BaseException as exc:  # every caller in the batch gets the same error
                await _after(previous)
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                return
            elapsed = time.perf_counter() - started
            rows = sum(p.rows for p in live)
            self.cost.observe(rows, elapsed)
            if self._on_batch is not None:
                self._on_batch(rows, elapsed)
            await _after(previous)
            for pending, share in zip(live, shares):
                if not pending.future.done():
                    pending.future.set_result(Batched(share, started - pending.enqueued, elapsed, rows))
        finally:
            done.set_result(None)
            self._slots.release()


async def _after(previous: asyncio.Future[None] | None) -> None:
    if previous is not None:
        await asyncio.shield(previous)
