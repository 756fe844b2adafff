"""The one module that touches uvicorn's internals; everything else uses the surface defined here.

modelport's front ends run uvicorn, but its public API (``Config``, ``Server.serve``) leaves out
three things the request path was measured to need:

- **Connection limits** (:mod:`modelport.core.connections`): a clock on request heads and bodies
  and a cap on open connections need the parser's callbacks (head begun, head complete, body
  bytes, message complete) and, to answer a stalled body with 408, the request cycle's
  ``response_started``/``disconnected``/``message_event``; the sweep leaves a connection alone
  while uvicorn's ``flow`` holds its reading back. Slow clients held descriptors until the
  process ran out of them (``tests/integration/test_slow_clients.py``).
- **Load shedding in the protocol** (:mod:`modelport.serving.http.protocol`): a refused inference
  request is answered right after its head, with a prepared 503 built on uvicorn's
  ``default_headers`` and no ASGI task; that needs the parser (method, keep-alive), the request
  target (``url``), ``expect_100_continue`` and the cycle, and ``on_response_complete`` to let
  the next request in. Under 4× overload this is what kept the p99 of admitted requests inside
  the target (``bench/README.md``, "Load shedding in the HTTP protocol").
- **Requests answered in the protocol, later** (:mod:`modelport.routing.protocol`): the endpoint
  router takes its requests at the head and answers them once a replica has, without ASGI (a
  scope, a task and messages per request: 6–15 % of the router's CPU, ``bench/router_hop.py``).
  Until then a :class:`Deferred` stands in uvicorn's ``cycle``, so that uvicorn's own pipelining
  queue, graceful shutdown (``keep_alive``) and disconnect handling apply, and the answer runs as
  one of uvicorn's ``tasks``, which a shutdown waits for; the body comes from the parser's
  callback.
- **One write per response** and **the acceptor** (:mod:`modelport.core.http_server`): the
  transport is wrapped before uvicorn sees it (head and body leave in one ``writelines``: the
  ``write`` system call was 29 % of the loop under overload), and every listening socket is
  watched by a second accept loop, which needs ``servers`` (the listening sockets) and a factory
  for uvicorn's protocol (``http_protocol_class``, ``lifespan.state``): libuv accepts one
  connection per loop turn, and under overload clients waited in the kernel's queue past their
  timeouts ("Every waiting connection accepted at once" in ``bench/README.md``).
  ``capture_signals`` is replaced because the owner stops its front ends together.

The names these rely on are listed in :data:`PROTOCOL_ATTRIBUTES`, :data:`CYCLE_ATTRIBUTES` and
:data:`SERVER_ATTRIBUTES`,
and ``tests/unit/test_uvicorn_adapter.py`` checks that the installed uvicorn has them, so an
upgrade that moves one fails in CI rather than in production. The versions this module was
tested with are :data:`SUPPORTED` (the same range as ``pyproject.toml``); importing it under
any other uvicorn fails at once with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from modelport.core.errors import ModelportError

SUPPORTED = SpecifierSet(">=0.29,<0.56")  # keep equal to pyproject.toml's uvicorn requirement

# What HttpToolsProtocol must have (a test checks each on the installed uvicorn).
PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
)
PROTOCOL_ATTRIBUTES = (
    "loop",
    "transport",
    "flow",
    "parser",
    "url",
    "headers",
    "scheme",
    "cycle",
    "tasks",
    "expect_100_continue",
    "server_state",
)
CYCLE_ATTRIBUTES = ("response_started", "response_complete", "disconnected", "message_event", "keep_alive")
SERVER_ATTRIBUTES = ("servers", "lifespan", "server_state", "config")


class DependencyVersionError(ModelportError):
    """An installed dependency is outside the versions modelport was tested with."""


def check_version(version: str) -> None:
    """Refuse a uvicorn outside :data:`SUPPORTED`: its internals may have moved."""
    if Version(version) not in SUPPORTED:
        raise DependencyVersionError(
            f"uvicorn {version} is installed, but modelport's HTTP servers need uvicorn{SUPPORTED}: "
            f"pip install 'uvicorn{SUPPORTED}'"
        )


check_version(uvicorn.__version__)


class _State(ServerState):
    """uvicorn's state shared by a server's connections, carrying the owner's ``shared`` object."""

    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.shared = shared


class Deferred:
    """Stands in for uvicorn's request cycle while a taken request waits for an answer that comes
    after an ``await`` (:meth:`HttpProtocol.defer`). With it in place uvicorn treats the request as
    one being answered: a request pipelined behind it is queued until it is answered, a graceful
    shutdown lets it finish and then closes the connection (``keep_alive``), and a client that
    leaves, or whose body stops coming, marks it ``disconnected``."""

    __slots__ = ("keep_alive", "disconnected", "response_complete", "message_event")

    response_started = False  # nothing is written before the whole answer

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.message_event = _NoWaiter()


class _NoWaiter:
    """The cycle's event, which uvicorn sets to wake a reader of the body; nobody waits here."""

    __slots__ = ()

    def set(self) -> None:
        pass


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, seen through hooks and read-only views.

    Subclasses extend the hooks (calling ``super()``) instead of uvicorn's own callbacks; a
    request for which :meth:`head_complete` returns True is the subclass's to answer: uvicorn
    never sees it (no ASGI task; its body goes to :meth:`taken_body`) and :meth:`answer_taken`
    is called once it has been read. ``loop`` and ``transport`` are the connection's loop and
    (wrapped) transport; ``shared`` is what the server was given for all its connections."""

    _taken = False

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: _State,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.shared = server_state.shared

    # --- hooks ----------------------------------------------------------------------------------

    def wrap(self, transport: asyncio.Transport) -> asyncio.Transport:
        """The transport uvicorn writes to (and closes): ``transport`` or a wrapper of it."""
        return transport

    def opened(self) -> None:
        """The connection was accepted and uvicorn has set it up."""

    def closed(self) -> None:
        """The connection is gone (called before uvicorn tidies up)."""

    def head_started(self) -> None:
        """A request's first bytes arrived."""

    def head_complete(self) -> bool:
        """A request's head was read; True to answer it here rather than through the app."""
        return False

    def body_received(self) -> None:
        """Body bytes arrived."""

    def taken_body(self, body: bytes) -> None:
        """Body bytes of a taken request (dropped unless a subclass keeps them)."""

    def message_complete(self) -> None:
        """The whole request was read."""

    def answer_taken(self) -> None:
        """Answer the request :meth:`head_complete` took, then call :meth:`finish_taken`."""
        raise NotImplementedError

    def response_sent(self) -> None:
        """A response has been sent whole (the app's, or a taken request's)."""

    # --- views and actions ----------------------------------------------------------------------

    @property
    def answering(self) -> bool:
        """A request of this connection is with the app and its response is not complete."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    @property
    def expects_continue(self) -> bool:
        """The request asked for ``100 Continue`` before sending its body."""
        return self.expect_100_continue

    @property
    def request_headers(self) -> list[tuple[bytes, bytes]]:
        """The request's headers as uvicorn collected them: names in lower case, in order."""
        return self.headers

    @property
    def secure(self) -> bool:
        """The connection came over TLS."""
        return self.scheme == "https"

    @property
    def request_method(self) -> bytes:
        return self.parser.get_method()

    @property
    def request_target(self) -> bytes:
        """The request target as sent (path and query)."""
        return self.url

    @property
    def keeps_alive(self) -> bool:
        """The connection stays open after this request (HTTP version and ``Connection`` header)."""
        return self.parser.should_keep_alive()

    @property
    def common_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's headers for every response (``date``, ``server``); renewed, as a new list, every second."""
        return self.server_state.default_headers

    @property
    def reading_paused(self) -> bool:
        """uvicorn holds back reading from this connection (pipelining, a full request queue)."""
        return self.flow.read_paused

    def abandon(self) -> bool:
        """Give up on the request being answered if its response has not begun, as when its client
        leaves (the app's answer goes nowhere); False when there is none or it has begun."""
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            return False
        cycle.disconnected = True
        cycle.message_event.set()
        return True

    def finish_taken(self, keep_alive: bool) -> None:
        """A taken request has been answered: wait for the next one, or close the connection."""
        if keep_alive:
            self.on_response_complete()
        else:
            self.transport.close()

    def defer(self) -> Deferred:
        """From :meth:`head_complete`, for a request it takes that will be answered later, by
        :meth:`answer_later` or :meth:`answer_deferred`."""
        deferred = Deferred(self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive())
        self.cycle = deferred  # type: ignore[assignment]  # what uvicorn reads of a cycle (CYCLE_ATTRIBUTES)
        return deferred

    def answer_later(self, deferred: Deferred, answer: Coroutine[Any, Any, Callable[[bool], bytes]]) -> None:
        """Answer a deferred request with what ``answer`` gives: a function of ``keep_alive`` that
        returns the whole response. It runs as one of uvicorn's request tasks, so that a graceful
        shutdown waits for it."""
        task = self.loop.create_task(self._answer_when_ready(deferred, answer))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer_when_ready(
        self, deferred: Deferred, answer: Coroutine[Any, Any, Callable[[bool], bytes]]
    ) -> None:
        self.answer_deferred(deferred, await answer)

    def answer_deferred(self, deferred: Deferred, response: Callable[[bool], bytes]) -> None:
        """Send a deferred request's whole response (unless its client has left) and let the
        next request in, or close the connection when it is not to be kept alive."""
        deferred.response_complete = True
        if deferred.disconnected or self.transport.is_closing():
            return
        keep_alive = deferred.keep_alive
        self.transport.write(response(keep_alive))
        self.finish_taken(keep_alive)

    # --- uvicorn's callbacks, translated ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(self.wrap(transport))
        self.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_started()

    def on_headers_complete(self) -> None:
        self._taken = self.head_complete()
        if not self._taken:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_received()
        if self._taken:
            self.taken_body(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.message_complete()
        if self._taken:
            self._taken = False
            self.answer_taken()
        else:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        self.response_sent()
        super().on_response_complete()


class Server(uvicorn.Server):
    """uvicorn's server, leaving signals to its owner, with hooks at start-up and shut-down.

    ``shared`` goes to every connection's protocol (:attr:`HttpProtocol.shared`)."""

    def __init__(self, config: uvicorn.Config, shared: Any) -> None:
        super().__init__(config)
        self.server_state = _State(shared)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.after_startup()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.before_shutdown()
        await super().shutdown(sockets)

    def after_startup(self) -> None:
        """The server listens (see :meth:`listening_sockets`)."""

    def before_shutdown(self) -> None:
        """The server is about to stop listening."""

    def listening_sockets(self) -> list[socket.socket]:
        return [listening for server in self.servers for listening in server.sockets]

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        """A new connection's protocol, as uvicorn makes it for the connections it accepts."""
        return functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]  # typed as asyncio.Protocol by uvicorn
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The TLS context uvicorn wraps accepted connections in, if any."""
        return self.config.ssl
