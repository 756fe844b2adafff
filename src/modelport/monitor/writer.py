"""A bounded queue drained by one background thread: how request logs and collected payloads
reach disk without the request waiting on a file.

``submit`` is called on the request path and only appends to a deque (or counts a drop when
the queue is full, so memory stays bounded under pressure); the thread wakes a few times a
second, takes everything queued and hands it to ``write`` as one batch. ``close`` drains what is
left, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("modelport.monitor")

T = TypeVar("T")
DEFAULT_CAPACITY = 20_000
DEFAULT_INTERVAL_S = 0.2


class BackgroundWriter(Generic[T]):
    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], None],
        *,
        capacity: int = DEFAULT_CAPACITY,
        interval_s: float = DEFAULT_INTERVAL_S,
        tick: Callable[[], None] | None = None,
        finish: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.dropped = 0
        self.written = 0
        self._write = write
        self._tick = tick
        self._finish = finish
        self._capacity = capacity
        self._interval_s = interval_s
        self._items: collections.deque[T] = collections.deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Queue ``item``; False (and one more drop counted) when the queue is full."""
        if len(self._items) >= self._capacity:
            self.dropped += 1
            return False
        self._items.append(item)
        return True

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._drain()
            self._call(self._tick)
        self._drain()
        self._call(self._finish)

    def _drain(self) -> None:
        batch = []
        while self._items:
            batch.append(self._items.popleft())
        if batch:
            try:
                self._write(batch)
                self.written += len(batch)
            except Exception:  # a full disk must not kill the thread: count the loss and go on
                self.dropped += len(batch)
                log.exception("%s: could not write %d records", self.name, len(batch))

    def _call(self, step: Callable[[], None] | None) -> None:
        if step is not None:
            try:
                step()
            except Exception:
                log.exception("%s: background step failed", self.name)
