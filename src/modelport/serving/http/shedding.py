"""Refusing inference the server cannot do in time, before the refusal costs anything.

Under overload the first thing to run out is the HTTP front end itself, one event loop per
worker: requests then wait in socket buffers, where no queue limit sees them, and a refusal made
inside the ASGI app has already paid for an ASGI task, a scope and the body handling — at 4× the
capacity those refusals alone kept the loop busier than the requests it served
(``bench/overload.py``). So inference requests (``POST /v2/models/.../infer`` and ``/score``)
are refused in the HTTP protocol, as soon as their headers are parsed, with a prepared 503 and
no ASGI task, when

- the event loop runs more than ``max_lag_s`` behind (:class:`LoopLag`), or
- the requests let through for the target model reach what its bounded queue can hold
  (dynamic batching's ``max_queue_size``).

Such a refusal counts as REJECTED in the model's statistics (it is not in the request log).
``http/protocol.py`` asks a :class:`Shedder` about every inference request.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from modelport.core.errors import ModelportError
from modelport.serving import inference
from modelport.serving.http.fast_path import infer_target
from modelport.serving.model import Servable
from modelport.serving.repository import ModelRepository


class LoopLag:
    """How late the event loop runs now: a timer re-arms itself every ``interval`` seconds, and
    the lag is the time since it last fired beyond that. Read on ``time.monotonic``, because the
    loop's own clock stands still within one iteration — exactly while the lag builds up."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self._last = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._last = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._last = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def seconds(self) -> float:
        """How far behind the loop runs now (0 until :meth:`start`)."""
        if self._timer is None:
            return 0.0
        return max(0.0, time.monotonic() - self._last - self.interval)


class Shedder:
    """Decides, from the request line alone, whether an inference request is refused, and counts
    the requests it let through for each model until they are answered."""

    def __init__(self, repository: ModelRepository, max_lag_s: float | None) -> None:
        self.repository = repository
        self.max_lag_s = max_lag_s
        self.lag = LoopLag()
        self._holding: dict[Servable, int] = {}
        limit = f"{max_lag_s * 1000:g} ms" if max_lag_s is not None else ""
        self._overloaded = {
            key: orjson.dumps({key: f"Server overloaded: it runs more than {limit} behind"})
            for key in ("error", "message")
        }
        self._queue_full = orjson.dumps({"error": "Exceeds maximum queue size"})

    def admit(self, raw_path: bytes) -> tuple[bytes | None, Servable | None]:
        """``(body of a 503, None)`` to refuse the request to ``raw_path``; otherwise ``(None,
        model)``, and the model (when the request is for one) is given to :meth:`release` once
        the request is answered.

        A model whose dynamic batching has a ``max_queue_size`` refuses here once the requests let
        through reach what it can hold (queue plus one batch per instance): those not yet decoded
        would find the queue full anyway, after paying for their decoding. Under overload a burst
        of hundreds arrives in one loop turn, before any of them is decoded."""
        path = raw_path.partition(b"?")[0].decode("latin-1")
        target = infer_target(path)
        if target is None:
            if path == "/score" and self._behind():
                return self._overloaded["message"], None
            return None, None
        try:
            model = self.repository.get(*target)
        except ModelportError:
            return None, None  # the app answers what is wrong with the name
        holding = self._holding.get(model, 0)
        limit = model.batcher.holds if model.batcher is not None else None
        if limit is not None and holding >= limit:
            inference.count_rejected(model)
            return self._queue_full, None
        if self._behind():
            inference.count_rejected(model)
            return self._overloaded["error"], None
        self._holding[model] = holding + 1
        return None, model

    def release(self, model: Servable) -> None:
        self._holding[model] -= 1

    def _behind(self) -> bool:
        return self.max_lag_s is not None and self.lag.seconds() > self.max_lag_s
