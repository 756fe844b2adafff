"""The batch engine: ``instance_count × max_concurrency_per_instance`` scoring hosts fed
mini-batches by one loop in the runner, whichever executor runs the hosts (local worker
processes, :mod:`modelport.batch.local_executor`, or Ray actors,
:mod:`modelport.batch.ray_executor`).

The loop owns every decision, so the rules read in one place, the same for every executor:

* a task (a mini-batch, or part of one) that raises, crashes its worker or runs past
  ``timeout`` is retried up to ``max_retries`` times; a worker past its deadline is killed and
  replaced (the replacement runs ``init()`` again);
* a task that still fails is split in two and each half gets one attempt, recursively, so
  that only the inputs that really fail are counted failed;
* ``run()`` returning fewer results than inputs counts the shortfall as failed items;
* once failed items exceed ``error_threshold`` (-1 = never) the job fails; so does an
  ``init()`` that fails ``3 × workers`` times (Azure's limit), or a script with no ``run``.

Mini-batches are read in input order, at most two per worker ahead of scoring, so memory stays
bounded whatever the input size. Each finished mini-batch is handed to ``JobHooks.finished``
after its output parts are in place.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pyarrow as pa

from modelport.batch.definitions import BatchSettings
from modelport.batch.inputs import InputPlan, iter_tables
from modelport.batch.local_executor import ProcessExecutor
from modelport.batch.output import part_name
from modelport.batch.worker import Message, Task, WorkerConfig, pack
from modelport.core.errors import ModelportError

log = logging.getLogger("modelport.batch.engine")
_TICK_S = 0.5
HostT = TypeVar("HostT")


class JobFailed(ModelportError):
    """The job cannot complete: error threshold exceeded, init keeps failing, unusable script.

    ``unfinished`` holds the mini-batches still open when the threshold tripped that had counted
    failures, so the job's record can name the inputs that tripped it (they stay to be scored on
    a resume)."""

    def __init__(self, message: str, unfinished: list[MiniBatchResult] | None = None) -> None:
        super().__init__(message)
        self.unfinished = unfinished or []


@dataclass
class MiniBatchResult:
    index: int
    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished_at: float = 0.0  # epoch seconds, for items/s
    parts: list[int] = field(default_factory=list)  # output parts in place, by first item


class JobHooks(Protocol):
    """What the engine needs from the job around it (see :mod:`modelport.batch.runner`)."""

    def finished(self, result: MiniBatchResult) -> None:
        """A mini-batch is fully scored and its parts are in place."""

    def tick(self) -> None:
        """Called about twice a second; raises to stop the job (cancelled, ownership lost)."""

    def item_errors(self, items: list[str], error: str) -> None:
        """Items counted failed, with the reason (for the job's error log)."""


class Executor(Protocol[HostT]):
    """Where the scoring hosts live. It only starts, feeds, watches and kills them; what a
    reply, a death or a deadline means is the engine's to decide."""

    def start(self, number: int) -> HostT:
        """Start worker slot ``number``'s host; it answers ``ready`` (or an init error) once loaded."""

    def send(self, host: HostT, task: Task) -> None:
        """Give an idle, ready host one task."""

    def receive(self, hosts: list[HostT], timeout: float) -> list[tuple[HostT, Message]]:
        """Replies that arrive within ``timeout`` seconds; ``("lost", reason)`` for a host that died."""

    def kill(self, host: HostT) -> None:
        """Stop ``host`` now, whatever it is doing."""

    def close(self, idle: list[HostT], busy: list[HostT]) -> None:
        """End of the job: stop every host and release what the executor holds."""


@dataclass
class _Piece:
    minibatch: int
    start: int
    stop: int
    failures: int = 0


@dataclass
class _Open:
    """A mini-batch being scored: its data and the pieces of it still out."""

    index: int
    start: int
    data: list[str] | pa.Table
    outstanding: int = 1
    result: MiniBatchResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = MiniBatchResult(self.index)

    def items(self, piece: _Piece) -> list[str] | pa.Table:
        offset, length = piece.start - self.start, piece.stop - piece.start
        return self.data[offset : offset + length] if isinstance(self.data, list) else self.data.slice(offset, length)


@dataclass(eq=False)  # identity: a replaced worker is a different one
class _Worker(Generic[HostT]):
    number: int
    host: HostT
    ready: bool = False
    piece: _Piece | None = None
    task_id: int = 0
    deadline: float = 0.0


class Engine(Generic[HostT]):
    def __init__(
        self,
        plan: InputPlan,
        settings: BatchSettings,
        pending: list[tuple[int, int, int]],
        executor: Executor[HostT],
        parts_dir: Path | None,
        part_suffix: str,
        hooks: JobHooks,
        failed_before: int = 0,
    ) -> None:
        self.plan, self.settings, self.executor, self.hooks = plan, settings, executor, hooks
        self.parts_dir, self.part_suffix = parts_dir, part_suffix
        self._pending = pending
        self._failed = failed_before
        self._queue: deque[_Piece] = deque()
        self._open: dict[int, _Open] = {}
        self._source = self._read(pending)
        self._source_done = not pending
        self._workers: list[_Worker[HostT]] = []
        self._init_failures = 0
        self._task_ids = itertools.count(1)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Score every pending mini-batch; raises JobFailed (or what a hook raises) otherwise."""
        try:
            self._workers = [self._start(number) for number in range(self.settings.workers)]
            next_tick = 0.0
            while self._open or not self._source_done:
                now = time.monotonic()
                if now >= next_tick:
                    self.hooks.tick()
                    next_tick = now + _TICK_S
                self._dispatch()
                self._receive(min(self._next_deadline(), next_tick) - time.monotonic())
                self._expire()
        finally:
            self._stop_all()

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not worker.ready or worker.piece is not None:
                continue
            piece = self._next_piece()
            if piece is None:
                return
            worker.piece, worker.task_id = piece, next(self._task_ids)
            worker.deadline = time.monotonic() + self.settings.timeout
            self._open[piece.minibatch].result.attempts += 1
            part = self._temporary(piece)
            self.executor.send(
                worker.host,
                Task(
                    worker.task_id,
                    piece.start,
                    piece.stop,
                    pack(self._open[piece.minibatch].items(piece)),
                    self._segments(piece),
                    None if part is None else str(part),
                ),
            )

    def _next_piece(self) -> _Piece | None:
        if self._queue:
            return self._queue.popleft()
        if self._source_done or len(self._open) >= 2 * self.settings.workers:
            return None
        try:
            index, start, stop, data = next(self._source)
        except StopIteration:
            self._source_done = True
            return None
        self._open[index] = _Open(index, start, data)
        return _Piece(index, start, stop)

    def _receive(self, timeout: float) -> None:
        workers = {worker.host: worker for worker in self._workers}
        for host, message in self.executor.receive(list(workers), timeout):
            worker = workers[host]
            if worker in self._workers:  # not replaced while handling an earlier message
                self._handle(worker, message)

    def _handle(self, worker: _Worker[HostT], message: Message) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "fatal":
            raise JobFailed(message[1])
        elif kind == "init_error":
            self._init_failed(worker, message[1])
        elif kind == "lost":
            self._lost(worker, message[1])
        elif message[1] != worker.task_id or worker.piece is None:
            return  # a reply for a task already given up on
        elif kind == "done":
            piece, worker.piece = worker.piece, None
            self._succeeded(piece, message[2])
        else:
            piece, worker.piece = worker.piece, None
            self._failed_attempt(piece, message[2])

    def _expire(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.piece is not None and now >= worker.deadline:
                self._lost(worker, f"run() timed out after {self.settings.timeout:g} s")
            elif not worker.ready and now >= worker.deadline:
                self._init_failed(worker, f"init() did not finish within {self._init_timeout():g} s")

    def _next_deadline(self) -> float:
        deadlines = [w.deadline for w in self._workers if w.piece is not None or not w.ready]
        return min(deadlines, default=time.monotonic() + _TICK_S)

    # -- outcomes -----------------------------------------------------------------------------

    def _succeeded(self, piece: _Piece, returned: int) -> None:
        mini = self._open[piece.minibatch]
        size = piece.stop - piece.start
        if self.parts_dir is not None:
            self._temporary(piece).rename(self.parts_dir / part_name(piece.start, self.part_suffix))  # type: ignore[union-attr]
            mini.result.parts.append(piece.start)
        mini.result.succeeded += min(returned, size)
        if returned < size:
            self._count_failed(mini, piece, size - returned, f"run() returned {returned} results for {size} inputs")
        self._settle(mini)

    def _failed_attempt(self, piece: _Piece, error: str) -> None:
        mini = self._open[piece.minibatch]
        piece.failures += 1
        if piece.failures <= self.settings.max_retries:
            self._queue.appendleft(piece)
            return
        size = piece.stop - piece.start
        if size > 1:  # split: each half gets one attempt, then is split again if it fails
            middle = piece.start + size // 2
            once = self.settings.max_retries
            self._queue.extendleft(
                [_Piece(piece.minibatch, middle, piece.stop, once), _Piece(piece.minibatch, piece.start, middle, once)]
            )
            mini.outstanding += 1
            return
        self._count_failed(mini, piece, 1, error)
        self._settle(mini)

    def _count_failed(self, mini: _Open, piece: _Piece, count: int, error: str) -> None:
        items = self.plan.describe(piece.start, piece.stop)
        mini.result.failed += count
        mini.result.errors.append({"items": items, "error": error})
        self.hooks.item_errors(items, error)
        self._failed += count
        threshold = self.settings.error_threshold
        if threshold != -1 and self._failed > threshold:
            raise JobFailed(
                f"error_threshold {threshold} exceeded: {self._failed} items failed (last: {error})",
                [open_.result for open_ in self._open.values() if open_.result.errors],
            )

    def _settle(self, mini: _Open) -> None:
        mini.outstanding -= 1
        if mini.outstanding == 0:
            del self._open[mini.index]
            mini.result.finished_at = time.time()
            self.hooks.finished(mini.result)

    # -- workers ------------------------------------------------------------------------------

    def _start(self, number: int) -> _Worker[HostT]:
        return _Worker(number, self.executor.start(number), deadline=time.monotonic() + self._init_timeout())

    def _init_timeout(self) -> float:
        return 3 * self.settings.timeout + 30  # Azure's limit for a node stuck in init

    def _lost(self, worker: _Worker[HostT], error: str) -> None:
        """Kill ``worker``, fail its task if it had one, and start a replacement."""
        piece = worker.piece
        self._replace(worker, error)
        if piece is not None:
            self._failed_attempt(piece, error)
        elif not worker.ready:
            self._init_failed_count(error)

    def _init_failed(self, worker: _Worker[HostT], error: str) -> None:
        self._replace(worker, error)
        self._init_failed_count(error)

    def _init_failed_count(self, error: str) -> None:
        self._init_failures += 1
        if self._init_failures >= 3 * self.settings.workers:
            raise JobFailed(f"init() failed {self._init_failures} times; last: {error}")

    def _replace(self, worker: _Worker[HostT], error: str) -> None:
        log.warning("worker %d killed and replaced: %s", worker.number, error)
        self.executor.kill(worker.host)
        self._workers[self._workers.index(worker)] = self._start(worker.number)

    def _stop_all(self) -> None:
        self.executor.close(
            [w.host for w in self._workers if w.piece is None], [w.host for w in self._workers if w.piece is not None]
        )

    # -- data ---------------------------------------------------------------------------------

    def _read(self, pending: list[tuple[int, int, int]]) -> Iterator[tuple[int, int, int, list[str] | pa.Table]]:
        if self.plan.rows is None:
            for index, start, stop in pending:
                yield index, start, stop, self.plan.files[start:stop]
            return
        ranges = {index: (start, stop) for index, start, stop in pending}
        for index, table in iter_tables(self.plan, self.settings.mini_batch_size, set(ranges)):
            start, stop = ranges[index]
            yield index, start, stop, table

    def _segments(self, piece: _Piece) -> list[Any] | None:
        return None if self.plan.rows is None else self.plan.segments(piece.start, piece.stop)

    def _temporary(self, piece: _Piece) -> Path | None:
        if self.parts_dir is None:
            return None
        return self.parts_dir / (part_name(piece.start, self.part_suffix) + ".tmp")


class LocalEngine(Engine[Any]):
    """The engine on worker processes of this machine, the default ``--engine local``."""

    def __init__(
        self,
        plan: InputPlan,
        settings: BatchSettings,
        pending: list[tuple[int, int, int]],
        config: WorkerConfig,
        parts_dir: Path | None,
        part_suffix: str,
        hooks: JobHooks,
        failed_before: int = 0,
    ) -> None:
        super().__init__(plan, settings, pending, ProcessExecutor(config), parts_dir, part_suffix, hooks, failed_before)
