"""The router's requests answered by the HTTP protocol itself, without ASGI.

Every request of every endpoint crosses the router, and most of what it cost over ASGI was the
server's per-request machinery rather than routing: a scope dictionary, a request task, the body
and the answer as messages, the answer's headers checked again on their way out
(``bench/router_hop.py``). Here the connection's protocol (uvicorn's httptools protocol, through
:mod:`modelport.core.uvicorn_adapter`) takes a router request when its head is read:
:meth:`Router.open <modelport.routing.router.Router.open>` checks the endpoint, the key, the
route and the declared length from the head alone; the body is gathered from the parser's
callbacks (a refused request's body is dropped as it comes); and the answer is written as one
buffer when the replica's is in.

What stays the server's: the connection limits (a head or body that stalls is cut, a body with a
408, as for any request), keep-alive, graceful shutdown (it waits for a request being answered,
then closes its connection), and requests pipelined behind one being answered, which uvicorn
queues and then hands to the ASGI app, where the router answers them as before.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

import httptools

from modelport.core.connections import LimitedProtocol
from modelport.core.http_errors import PayloadTooLarge
from modelport.core.request_body import DEFAULT_MAX_BODY, too_large
from modelport.core.uvicorn_adapter import Deferred, HttpProtocol
from modelport.routing.router import Exchange, Head, Reply, Router

#: A request path to the endpoint and the scoring route it names, or None for a path that is not
#: the router's.
Targets = Callable[[str], "tuple[str, str] | None"]
#: Whether a request's ``Host`` header (and whether it came over TLS) is one the server answers;
#: a request failing it is left to the app, which refuses it.
HostCheck = Callable[[bytes, bool], bool]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def router_protocol(router: Router, targets: Targets, host_ok: HostCheck | None = None) -> type[LimitedProtocol]:
    """A protocol class for a front end that answers the paths ``targets`` recognises through
    ``router`` itself, and everything else through its ASGI app."""

    class Routing(HttpProtocol):
        _exchange: Exchange | None = None
        _deferred: Deferred
        _parts: list[bytes]
        _size = 0

        def head_complete(self) -> bool:
            if self.answering:  # pipelined behind an answer not yet sent: uvicorn queues it
                return super().head_complete()
            url = httptools.parse_url(self.request_target)
            path = url.path.decode("latin-1")
            if "%" in path:
                path = unquote(path)
            where = targets(path)
            if where is None or (host_ok is not None and not host_ok(self._host(), self.secure)):
                return super().head_complete()
            self._deferred = self.defer()
            self._parts, self._size = [], 0
            head = Head(self.request_method.decode("ascii"), path, *where, url.query or b"", self.request_headers)
            exchange = self._exchange = router.open(head)
            refusal = exchange.refusal
            if refusal is not None and (self.expects_continue or refusal.status == PayloadTooLarge.http_status):
                self._refuse_now(exchange)
            elif self.expects_continue:
                self.transport.write(_CONTINUE)
            return True

        def taken_body(self, body: bytes) -> None:
            exchange = self._exchange
            if exchange is None or exchange.refusal is not None:
                return
            self._size += len(body)
            if self._size > DEFAULT_MAX_BODY:
                self._parts = []
                exchange.refuse(too_large(DEFAULT_MAX_BODY))
                self._refuse_now(exchange)
            else:
                self._parts.append(body)

        def _refuse_now(self, exchange: Exchange) -> None:
            """Answer a refusal before the body is in, and close: nobody should send that body
            (a client waiting for ``100 Continue``, a body over the limit), and what is left of
            it could not be told from a next request. Other refusals wait for the body, so that
            the connection stays open."""
            self._exchange = None
            self._deferred.keep_alive = False
            self.answer_deferred(self._deferred, self._encoder(router.refused(exchange)))

        def answer_taken(self) -> None:
            exchange, self._exchange = self._exchange, None
            if exchange is None:  # answered already, from its head
                return
            if exchange.refusal is not None:
                self.answer_deferred(self._deferred, self._encoder(router.refused(exchange)))
                return
            parts, self._parts = self._parts, []
            self.answer_later(self._deferred, self._answer(exchange, parts[0] if len(parts) == 1 else b"".join(parts)))

        async def _answer(self, exchange: Exchange, body: bytes) -> Callable[[bool], bytes]:
            return self._encoder(await router.answer(exchange, body))

        def _encoder(self, reply: Reply) -> Callable[[bool], bytes]:
            common = self.common_headers
            return lambda keep_alive: reply.encoded(common, keep_alive)

        def _host(self) -> bytes:
            for name, value in self.request_headers:
                if name == b"host":
                    return value
            return b""

    class Protocol(LimitedProtocol, Routing):
        """The limits' bookkeeping first: it sees every request, taken or not."""

    return Protocol
