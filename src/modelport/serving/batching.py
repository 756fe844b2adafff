"""Server-side dynamic batching with Triton's semantics, plus an adaptive policy.

Requests of one model wait in a bounded queue; whenever a model instance is free, its
scheduler thread walks the queue in arrival order and forms a batch (concatenate on dim 0),
runs it once, and splits the outputs back to the callers:

* a batch stops before it would exceed ``max_batch_size`` or at a request whose non-batch
  shapes or dtypes differ (it cannot be concatenated);
* the longest prefix whose total is a preferred size goes out at once;
* otherwise the batch goes out when it is full, when the queue holds an incompatible request,
  when ``max_queue_delay_microseconds`` is 0, or when the oldest request has waited that long;
* a full queue (``max_queue_size``) answers 503 immediately and a request that waited past
  ``default_timeout_microseconds`` answers 503, so memory never grows without bound.

The adaptive policy (``latency_budget_ms``) replaces the two knobs: it keeps a running linear
model of batch cost (``cost(n) = fixed + per_row * n``), caps a batch at the largest size whose
cost fits half the budget (and at a share of the requests in flight, so that the front end and
the model overlap), and never waits: a batch goes out as soon as an instance is free. At
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
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from modelport.core.errors import ModelportError
from modelport.runtime.config import DynamicBatching

In = TypeVar("In")
Out = TypeVar("Out")
Runner = Callable[[Any], Any]  # runs one joined batch, in a batcher thread


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
            shares.append({name: array[offset : offset + count] for name, array in outputs.items()})
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
    """One per batching model. ``submit`` queues a request from the event loop; one scheduler
    thread per model instance forms batches from the queue and runs them. The scheduling lives
    off the event loop so that a model keeps working while the loop is busy: under overload the
    loop spends its time refusing requests, and a scheduler on the loop only got to start the next
    batch once per (long) loop turn, leaving the model idle (``bench/overload.py``)."""

    def __init__(
        self,
        settings: DynamicBatching,
        max_batch_size: int,
        instances: int,
        runner: Runner,
        on_batch: Callable[[int, float], None] | None = None,
        parts: Parts | None = None,
        name: str = "model",
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.parts: Parts = parts or TensorParts()
        self.settings = settings
        self.max_batch_size = max_batch_size
        self._preferred = frozenset(settings.preferred_batch_size)
        self._delay = settings.max_queue_delay_microseconds / 1e6
        self._timeout = settings.default_timeout_microseconds / 1e6 or None
        self._budget = settings.latency_budget_ms / 1000 if settings.latency_budget_ms else None
        self._runner = runner
        self._on_batch = on_batch
        self._in_flight = in_flight
        self._queue: deque[_Pending] = deque()
        self._changed = threading.Condition()  # guards the queue, the cost model and ``_closed``
        self._closed = False
        self._order = _Turns() if settings.preserve_ordering else None
        self.cost = CostModel()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-batcher-{index}", daemon=True)
            for index in range(instances)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def full(self) -> bool:
        """Whether a request arriving now would be refused for want of queue space."""
        return bool(self.settings.max_queue_size) and len(self._queue) >= self.settings.max_queue_size

    @property
    def holds(self) -> int | None:
        """How many requests the model can hold at once, queued or running (None: no queue limit)."""
        if not self.settings.max_queue_size:
            return None
        return self.settings.max_queue_size + len(self._threads) * self.max_batch_size

    @property
    def idle(self) -> bool:
        """Nothing is queued (read without the lock: a hint, not a promise)."""
        return not self._queue

    async def submit(self, inputs: Any) -> Batched:
        loop = asyncio.get_running_loop()
        pending = _Pending(inputs, self.parts.rows(inputs), self.parts.key(inputs), loop.create_future(), loop)
        with self._changed:
            if self._closed:
                raise QueueRejected("model unloaded")
            if self.full:
                raise QueueRejected("Exceeds maximum queue size")
            self._queue.append(pending)
            self._changed.notify()
        return await pending.future

    def close(self) -> None:
        """Fail what is still queued, let the batches being run finish, and stop the threads."""
        with self._changed:
            self._closed = True
            while self._queue:
                self._queue.popleft().fail(QueueRejected("model unloaded"))
            self._changed.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    # -- scheduling (in the batcher's threads) -------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._changed:
                batch = self._next_batch()
                turn = self._order.take() if self._order is not None and batch else None
            if batch is None:
                return
            self._run(batch, turn)

    def _next_batch(self) -> list[_Pending] | None:
        """The next batch to run (called holding the lock), or None once the batcher is closed."""
        while not self._closed:
            self._expire()
            if not self._queue:
                self._changed.wait()
                continue
            batch, send_now = self._candidate()
            wait = 0.0 if send_now else self._delay - (time.perf_counter() - self._queue[0].enqueued)
            if wait <= 0:
                return self._take(len(batch))
            self._changed.wait(wait)
        return None

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
        """Largest batch whose predicted cost fits half the latency budget, and, when the server
        counts its requests in flight, no more than an even share of them among the instances
        and the front end (at least 1).

        The share keeps a pipeline: with 32 requests in flight and one instance, batches of all
        that is queued leave the front end idle while the model runs and the model idle while the
        front end answers and reads; batches of 16 overlap the two (``bench/adaptive.py``: batch
        <= 16 beat batch <= 64 by 1.1-1.2x at 32 in flight). The requests in flight are counted
        from decoding to answer, not in the queue, which shrinks with the batches."""
        assert self._budget is not None  # called only under the adaptive policy
        half = self._budget / 2
        size = self.max_batch_size
        while size > 1 and self.cost.predict(size) > half:
            size //= 2
        if self._in_flight is not None:
            size = min(size, -(-self._in_flight() // (len(self._threads) + 1)))
        return max(1, size)

    def _take(self, count: int) -> list[_Pending]:
        return [self._queue.popleft() for _ in range(count)]

    def _expire(self) -> None:
        if self._timeout is None:
            return
        now = time.perf_counter()
        while self._queue and now - self._queue[0].enqueued > self._timeout:
            self._queue.popleft().fail(QueueRejected("Request timeout expired"))

    def _run(self, batch: list[_Pending], turn: int | None) -> None:
        live = [p for p in batch if not p.future.done()]  # callers may have given up
        outcomes: list[tuple[_Pending, Any, BaseException | None]]
        started = time.perf_counter()
        try:
            if not live:
                outcomes = []
            else:
                outputs = self._runner(self.parts.join([p.inputs for p in live]))
                shares = self.parts.split(outputs, [p.rows for p in live])
                elapsed = time.perf_counter() - started
                rows = sum(p.rows for p in live)
                with self._changed:
                    self.cost.observe(rows, elapsed)
                if self._on_batch is not None:
                    self._on_batch(rows, elapsed)
                outcomes = [
                    (p, Batched(share, started - p.enqueued, elapsed, rows), None) for p, share in zip(live, shares)
                ]
        except BaseException as exc:  # noqa: BLE001 - every caller in the batch gets the same error
            outcomes = [(p, None, exc) for p in live]
        if self._order is not None and turn is not None:
            self._order.wait_for(turn)
        try:
            _settle(outcomes)
        finally:
            if self._order is not None and turn is not None:
                self._order.done()


@dataclass
class _Pending:
    inputs: Any
    rows: int
    key: Hashable
    future: asyncio.Future[Batched]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)

    def fail(self, error: BaseException) -> None:
        _settle([(self, None, error)])


class _Turns:
    """``preserve_ordering``: batches hand their answers back in the order they were taken."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._next_taken = self._next_done = 0

    def take(self) -> int:
        self._next_taken += 1
        return self._next_taken - 1

    def wait_for(self, turn: int) -> None:
        with self._turn:
            self._turn.wait_for(lambda: self._next_done == turn)

    def done(self) -> None:
        with self._turn:
            self._next_done += 1
            self._turn.notify_all()


def _settle(outcomes: list[tuple[_Pending, Any, BaseException | None]]) -> None:
    """Hand results to their callers' event loops, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
    for pending, result, error in outcomes:
        by_loop.setdefault(pending.loop, []).append((pending.future, result, error))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve(items: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
