"""uvicorn's httptools protocol (through :mod:`modelport.core.uvicorn_adapter`) with two changes for the
request path that matters for speed.

- Inference requests that the :class:`~modelport.serving.http.shedding.Shedder` refuses are
  answered by the protocol itself, right after their headers, with a prepared 503 and no ASGI
  task: under overload a refusal has to cost next to nothing (``bench/overload.py``).
- A response's head and body leave in one ``send`` (:class:`_Coalescing`).

Everything else is uvicorn's protocol, under the connection limits every front end keeps
(:class:`~modelport.core.connections.LimitedProtocol`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelport.core.connections import LimitedProtocol
from modelport.core.uvicorn_adapter import HttpProtocol
from modelport.serving.http.shedding import Shedder
from modelport.serving.model import Servable

_STATUS = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
_DIRECT = 64 * 1024  # a write this large is not held back


class _Coalescing:
    """A transport that sends two writes in a row as one: uvicorn writes a response's head and
    its body separately, and each write was a system call of its own — the largest single cost
    of the event loop under overload (py-spy: ``write`` 29 %). A write is held until the next
    one, which takes it along at once; one that stays alone leaves at the end of the loop turn.
    (Holding every write until the end of the turn cost ~40 µs per answer at one connection.)"""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif len(data) >= _DIRECT:
            self._transport.write(data)
        else:
            self._held = data
            self._loop.call_soon(self._flush)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` after whatever is held, at once."""
        self._flush()
        self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refusals:
    """Whole 503 responses, built once per set of uvicorn's default headers (it renews them, with
    the ``Date``, every second) rather than once per refusal."""

    def __init__(self) -> None:
        self._defaults: list[tuple[bytes, bytes]] | None = None
        self._built: dict[tuple[bytes, bool], bytes] = {}

    def response(self, defaults: list[tuple[bytes, bytes]], payload: bytes, keep_alive: bool) -> bytes:
        if defaults is not self._defaults:
            self._defaults, self._built = defaults, {}
        built = self._built.get((payload, keep_alive))
        if built is None:
            head = [_STATUS]
            for name, value in defaults:
                head.extend((name, b": ", value, b"\r\n"))
            head.append(b"content-length: %d\r\n" % len(payload))
            if not keep_alive:
                head.append(b"connection: close\r\n")
            head.extend((b"\r\n", payload))
            built = self._built[(payload, keep_alive)] = b"".join(head)
        return built


def http_protocol(shedder: Shedder) -> type[LimitedProtocol]:
    """uvicorn's httptools protocol, answering the requests ``shedder`` refuses by itself."""

    refusals = _Refusals()

    class Shedding(HttpProtocol):
        _refusal: bytes | None = None
        _holding: Servable | None = None
        _wire: _Coalescing

        def wrap(self, transport: asyncio.Transport) -> asyncio.Transport:
            self._wire = _Coalescing(transport)
            return self._wire  # type: ignore[return-value]

        def head_complete(self) -> bool:
            # Answering out of turn would break HTTP pipelining, and a client waiting for
            # "100 Continue" gets the app's answer: both go the usual way.
            if not self.answering and not self.expects_continue and self.request_method == b"POST":
                self._refusal, self._holding = shedder.admit(self.request_target)
                if self._refusal is not None:
                    return True
            return super().head_complete()

        def answer_taken(self) -> None:
            payload, self._refusal = self._refusal, None
            assert payload is not None
            keep_alive = self.keeps_alive
            self._wire.write_now(refusals.response(self.common_headers, payload, keep_alive))
            self.finish_taken(keep_alive)

        def response_sent(self) -> None:
            self._release()
            super().response_sent()

        def closed(self) -> None:
            self._release()
            super().closed()

        def _release(self) -> None:
            if self._holding is not None:
                shedder.release(self._holding)
                self._holding = None

    class Protocol(LimitedProtocol, Shedding):
        """The limits' bookkeeping first: it sees every request, refused or not."""

    return Protocol
