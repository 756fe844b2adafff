"""A gRPC server whose completion queue is drained by one thread, with the handlers on the event loop.

**Why not ``grpc.aio``.** Its server costs the event loop, per unary RPC, four tasks, half a dozen
futures, an ``asyncio.wait`` over the call requests (it accepts one call per loop turn) and a
wake-up per completed operation; profiled under perf_analyzer, that machinery was ~70 % of the
loop's time on gRPC and made gRPC the slowest protocol (``bench/protocols.py``). grpcio's thread-pool
server is no cheaper (a pool thread per call, woken through the serving thread for every
operation). This server uses the layer both are built on (``grpc._cython.cygrpc``: the C core's
server, calls, batches of operations and completion queue, as in grpcio's own ``grpc._server``):
one thread waits on the completion queue with the GIL released and hands the loop one callback
per unary RPC, with the request bytes already read; the answer, its status and the close go back
to the C core in one batch from the loop, which needs no completion of its own.

The C core does the HTTP/2, flow control, message size limits (a message over the receive limit
ends the call with RESOURCE_EXHAUSTED before any handler runs) and keeps ``SO_REUSEPORT`` and the
other channel options; this module only routes calls. Every method is a coroutine taking the
parsed request (unary) or an async iterator of them (bidirectional streaming) and returning the
response or an async iterator of responses; an exception becomes the status ``on_error`` gives.
A client that cancels a unary call is not noticed before its answer is ready (the answer is then
dropped by the C core); a cancelled stream stops reading and ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # grpcio's own server layer, untyped

log = logging.getLogger(__name__)

Message = Any  # protobuf messages of a private pool: no static types to name
UnaryMethod = Callable[[Message], Awaitable[Message]]
StreamMethod = Callable[[AsyncIterator[Message]], AsyncIterator[Message]]
ErrorMapper = Callable[[str, Message, Exception], tuple[grpc.StatusCode, str]]

_NO_METADATA: tuple = ()
_NO_FLAGS = 0
_NOW = 0.0  # a poll deadline already past: return at once when nothing is ready
_MOST_PER_WAKE_UP = 64  # completions handed to the loop together, at most


@dataclass(frozen=True)
class Method:
    """One RPC: its name (for errors), how its request bytes parse, and its handler."""

    name: str
    parse: Callable[[bytes], Message]
    handler: UnaryMethod | StreamMethod
    streaming: bool = False


class _Ignored:
    """The tag of a batch whose completion needs no action (the final one of a call)."""

    def complete(self, event: Any) -> None:
        pass


_IGNORED = _Ignored()


class CompletionQueueServer:
    """Start with :meth:`start` after :meth:`bind`; stop with :meth:`stop` on the same loop."""

    def __init__(self, methods: dict[str, Method], options: list[tuple[str, Any]], on_error: ErrorMapper) -> None:
        self._methods = {path.encode(): method for path, method in methods.items()}
        self._on_error = on_error
        self._queue = cygrpc.CompletionQueue()
        self._server = cygrpc.Server(tuple(options), False)
        self._server.register_completion_queue(self._queue)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._ready: list[Callable[[], None]] = []  # for the loop, from the queue's thread
        self._stopped: asyncio.Future[None] | None = None

    def bind(self, address: str) -> int:
        """Listen on ``address``; the port bound (the real one for port 0), 0 when it could not."""
        return int(self._server.add_http2_port(address.encode()))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server.start()
        self._accept()
        self._thread = threading.Thread(target=self._poll, name="grpc-completion-queue", daemon=True)
        self._thread.start()

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let running ones finish for ``grace`` seconds, then cancel the rest."""
        if self._loop is None or self._stopped is not None:
            return
        self._stopping = True
        self._stopped = self._loop.create_future()
        self._server.shutdown(self._queue, _Shutdown(self))
        if grace is None or grace <= 0:
            self._server.cancel_all_calls()
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), grace)
        except asyncio.TimeoutError:
            self._server.cancel_all_calls()
            await self._stopped
        for task in list(self._tasks):
            task.cancel()
        self._server.destroy()
        self._queue.shutdown()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- the completion-queue thread -------------------------------------------------------------

    def _poll(self) -> None:
        """Wait on the queue (the GIL is released meanwhile), complete every event that is ready,
        then hand the loop what they produced in one wake-up.

        Handing requests over together is what lets the batcher see them together: one wake-up per
        request fed the loop (and so the model's queue) a request at a time, and batches averaged
        a third of the rows HTTP's did at 64 connections, each batch paying the model's fixed cost."""
        timeout = cygrpc.CompletionType.queue_timeout
        event = None
        while True:
            if event is None:
                event = self._queue.poll()
            completed = 0  # bounded: under constant load the queue need never run dry
            while event.completion_type != timeout and completed < _MOST_PER_WAKE_UP:
                if event.completion_type == cygrpc.CompletionType.queue_shutdown:
                    self._flush()
                    return
                try:
                    event.tag.complete(event)
                except Exception:  # noqa: BLE001 - one broken call must not stop the server
                    log.exception("gRPC: completing an operation failed")
                completed += 1
                event = self._queue.poll(_NOW)
            self._flush()
            if event.completion_type == timeout:
                event = None  # else it is taken but not completed: first thing next round

    def _flush(self) -> None:
        if self._ready:
            assert self._loop is not None  # started
            ready, self._ready = self._ready, []
            self._loop.call_soon_threadsafe(_run_all, ready)

    def _accept(self) -> None:
        self._server.request_call(self._queue, self._queue, _Accept(self))

    def _begin(self, event: Any) -> None:
        """A call arrived (in the queue's thread): ask for the next one, then read this one."""
        if not event.success:  # the server is shutting down
            return
        if not self._stopping:
            self._accept()
        call = event.call
        method = self._methods.get(event.call_details.method)
        if method is None:
            _finish(call, None, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        elif method.streaming:
            self._after(lambda: self._spawn(_Stream(self, call, method).run()))
        else:
            call.start_server_batch((cygrpc.ReceiveMessageOperation(_NO_FLAGS),), _UnaryRead(self, call, method))

    # -- the event loop --------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: Any, method: Method, data: bytes) -> None:
        request = None
        try:
            request = method.parse(data)
            response = await method.handler(request)  # type: ignore[misc]  # unary by construction
            payload = response.SerializeToString()
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            code, message = self._on_error(method.name, request, error)
            _finish(call, None, code, message)
        else:
            _finish(call, payload, grpc.StatusCode.OK, "")

    def _after(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the loop with the rest of this round's (called in the queue's thread)."""
        self._ready.append(work)


def _run_all(works: list[Callable[[], None]]) -> None:
    for work in works:
        work()


def _finish(call: Any, payload: bytes | None, code: grpc.StatusCode, details: str) -> None:
    """Send the initial metadata, the answer if any and the status, and receive the close, in one batch."""
    operations: tuple[Any, ...] = (cygrpc.SendInitialMetadataOperation(_NO_METADATA, _NO_FLAGS),)
    if payload is not None:
        operations += (cygrpc.SendMessageOperation(payload, _NO_FLAGS),)
    operations += (
        cygrpc.SendStatusFromServerOperation(_NO_METADATA, code.value[0], details.encode(), _NO_FLAGS),
        cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS),
    )
    call.start_server_batch(operations, _IGNORED)


class _Accept:
    def __init__(self, server: CompletionQueueServer) -> None:
        self._server = server

    def complete(self, event: Any) -> None:
        self._server._begin(event)


class _Shutdown:
    def __init__(self, server: CompletionQueueServer) -> None:
        self._server = server

    def complete(self, event: Any) -> None:
        stopped = self._server._stopped
        if stopped is not None:
            self._server._after(lambda: _settle(stopped))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _UnaryRead:
    """The request of a unary call has been read: answer it on the loop."""

    def __init__(self, server: CompletionQueueServer, call: Any, method: Method) -> None:
        self._server, self._call, self._method = server, call, method

    def complete(self, event: Any) -> None:
        data = event.batch_operations[0].message() if event.success else None
        if data is None:  # cancelled, or over the size limit: the C core has ended the call
            _finish(self._call, None, grpc.StatusCode.CANCELLED, "request not received")
            return
        server = self._server
        server._after(lambda: server._spawn(server._answer(self._call, self._method, data)))


class _Stream:
    """A bidirectional stream: requests read one at a time into a queue the handler iterates;
    responses written one at a time (the C core allows one write in flight per call)."""

    _END = object()

    def __init__(self, server: CompletionQueueServer, call: Any, method: Method) -> None:
        self._server, self._call, self._method = server, call, method
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._written: asyncio.Future[bool] | None = None
        self._sent_metadata = False

    async def run(self) -> None:
        self._read()
        code, details = grpc.StatusCode.OK, ""
        responses: Any = self._method.handler(self._incoming())
        try:
            async for response in responses:
                if not await self._write(response.SerializeToString()):
                    break  # the client went away
        except _Broken:
            pass
        except Exception as error:  # noqa: BLE001 - the stream ends with a status
            code, details = self._server._on_error(self._method.name, None, error)
        finally:
            await responses.aclose()
            _finish_stream(self._call, code, details, not self._sent_metadata)

    async def _incoming(self) -> AsyncIterator[Message]:
        while True:
            data = await self._requests.get()
            if data is self._END:
                return
            if data is None:
                raise _Broken
            yield self._method.parse(data)

    def _read(self) -> None:
        self._call.start_server_batch((cygrpc.ReceiveMessageOperation(_NO_FLAGS),), _StreamRead(self))

    def _received(self, event: Any) -> None:
        """In the queue's thread: queue the message (or the end) and read the next one."""
        data = event.batch_operations[0].message() if event.success else None
        if event.success and data is None:
            data = self._END
        self._server._after(lambda: self._requests.put_nowait(data))
        if event.success and data is not self._END:
            self._read()

    async def _write(self, payload: bytes) -> bool:
        assert self._server._loop is not None  # started
        self._written = self._server._loop.create_future()
        operations: tuple[Any, ...] = ()
        if not self._sent_metadata:
            operations = (cygrpc.SendInitialMetadataOperation(_NO_METADATA, _NO_FLAGS),)
            self._sent_metadata = True
        operations += (cygrpc.SendMessageOperation(payload, _NO_FLAGS),)
        self._call.start_server_batch(operations, _StreamWrite(self))
        return await self._written

    def _wrote(self, success: bool) -> None:
        written = self._written
        if written is not None and not written.done():
            written.set_result(success)


class _Broken(Exception):
    """The client cancelled the stream or it broke: nothing more can be sent."""


class _StreamRead:
    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    def complete(self, event: Any) -> None:
        self._stream._received(event)


class _StreamWrite:
    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    def complete(self, event: Any) -> None:
        success = bool(event.success)
        self._stream._server._after(lambda: self._stream._wrote(success))


def _finish_stream(call: Any, code: grpc.StatusCode, details: str, with_metadata: bool) -> None:
    operations: tuple[Any, ...] = ()
    if with_metadata:
        operations = (cygrpc.SendInitialMetadataOperation(_NO_METADATA, _NO_FLAGS),)
    operations += (
        cygrpc.SendStatusFromServerOperation(_NO_METADATA, code.value[0], details.encode(), _NO_FLAGS),
        cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS),
    )
    call.start_server_batch(operations, _IGNORED)
