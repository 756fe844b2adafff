"""uvicorn's httptools protocol with two changes for the request path that matters for speed.

- Inference requests that the :class:`~modelport.serving.http.shedding.Shedder` refuses are
  answered by the protocol itself, right after their headers, with a prepared 503 and no ASGI
  task: under overload a refusal has to cost next to nothing (``bench/overload.py``).
- The writes of one event-loop turn leave as one ``send`` (:class:`_Coalescing`).

Everything else is uvicorn's protocol unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelport.serving.http.shedding import Shedder
from modelport.serving.model import ServedModel

_STATUS = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
_DIRECT = 64 * 1024  # writes this large go out at once, uncopied


class _Coalescing:
    """A transport whose writes within one turn of the event loop leave as one ``send``: uvicorn
    writes a response's head and body separately, and each write was a system call of its own —
    the largest single cost of the event loop under overload (py-spy: ``write`` 29 %)."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if len(data) >= _DIRECT:  # joining would copy it: what is pending goes first, then it alone
            self.write_now(data)
        elif self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` after whatever is pending, without waiting for the end of the turn."""
        self._flush()
        self._transport.write(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

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


def http_protocol(shedder: Shedder) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, answering the requests ``shedder`` refuses by itself."""

    refusals = _Refusals()

    class Protocol(HttpToolsProtocol):
        _refusal: bytes | None = None
        _holding: ServedModel | None = None
        _wire: _Coalescing

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._wire = _Coalescing(transport)
            super().connection_made(self._wire)  # type: ignore[arg-type]

        def on_headers_complete(self) -> None:
            # Answering out of turn would break HTTP pipelining, and a client waiting for
            # "100 Continue" gets the app's answer: both go the usual way.
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.expect_100_continue and self.parser.get_method() == b"POST":
                self._refusal, self._holding = shedder.admit(self.url)
                if self._refusal is not None:
                    return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._refusal is None:
                super().on_body(body)

        def on_message_complete(self) -> None:
            payload = self._refusal
            if payload is None:
                super().on_message_complete()
                return
            self._refusal = None
            keep_alive = self.parser.should_keep_alive()
            self._wire.write_now(refusals.response(self.server_state.default_headers, payload, keep_alive))
            if keep_alive:
                self.on_response_complete()
            else:
                self.transport.close()

        def on_response_complete(self) -> None:
            self._release()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._release()
            super().connection_lost(exc)

        def _release(self) -> None:
            if self._holding is not None:
                shedder.release(self._holding)
                self._holding = None

    return Protocol
