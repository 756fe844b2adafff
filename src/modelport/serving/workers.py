"""``serve --workers N``: N server processes behind one HTTP port, one metrics port and one
gRPC port, supervised by the process that started them.

The parent binds the ports itself (so a busy port fails before anything starts), then forks
the workers. Each worker gets an HTTP socket of its own on the shared port (SO_REUSEPORT), made
just before it is forked and held by it alone: the kernel spreads connections evenly over the
live workers' sockets by address hash, where one shared socket lets the quickest ``accept`` win
(two workers took 47 and 17 of wrk's 64 connections, and the busier one's queue set the tail
latency). A worker not yet started or dead has no socket, so no connection waits for it; the
parent holds the port meanwhile with a bound, non-listening socket. The metrics port is one
shared socket; gRPC is shared with SO_REUSEPORT. The first worker starts alone: once it is ready the
models are known to load (and ONNX weights to be mapped, see ``share_weights``), and the others
follow; a worker that fails to start fails the server with its one error line. A worker that
dies later is started again. SIGTERM/SIGINT are passed on to every worker, which finish their
requests (graceful shutdown) before the parent exits.

The parent runs no event loop and no threads, so forking a replacement is always safe. Each
worker answers on a private Unix socket (readiness, statistics); any worker gathers its
siblings' statistics there, so ``/metrics`` and ``/v2/.../stats`` count the whole server
whichever process answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx

from modelport.core.errors import ModelportError
from modelport.core.sockets import listen
from modelport.serving.server import ServeOptions, WorkerSetup

READY_TIMEOUT_S = 600.0
RESTART_BACKOFF_S = 1.0


class Workers:
    def __init__(self, count: int, options: ServeOptions, start: Callable[[int, WorkerSetup], None]) -> None:
        self.count = count
        self.options = options
        self.start = start
        self.folder = Path(tempfile.mkdtemp(prefix="modelport-workers-"))
        self.controls = tuple(self.folder / f"worker-{index}.sock" for index in range(count))
        self.pids: dict[int, int] = {}  # pid → worker index
        self.stopping = False
        self._sockets: list[socket.socket] = []
        self._metrics: socket.socket | None = None

    def run(self, on_ready: Callable[[str], None] | None = None) -> int:
        """Serve until SIGTERM/SIGINT; the exit status of the server."""
        options = self.options
        try:
            # a plain bind first: SO_REUSEPORT alone would share the port with another such server
            listen(options.host, options.http_port, hold_only=True, option="--http-port").close()
            self._keep(listen(options.host, options.http_port, reuse_port=True, hold_only=True, option="--http-port"))
            if options.metrics_port is not None:
                self._metrics = self._keep(listen(options.host, options.metrics_port, option="--metrics-port"))
            if options.grpc_port is not None:  # holds the port while the workers share it
                self._keep(
                    listen(options.host, options.grpc_port, reuse_port=True, hold_only=True, option="--grpc-port")
                )
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_stop)
            if not self._start_all():
                self._stop_all()
                return 0 if self.stopping else 1  # a stop asked for during start-up is still a clean stop
            if on_ready is not None:
                on_ready(f"{self.count} workers")
            return self._supervise()
        finally:
            for sock in self._sockets:
                sock.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _keep(self, sock: socket.socket) -> socket.socket:
        self._sockets.append(sock)
        return sock

    def _start_all(self) -> bool:
        """The first worker alone, then the rest; False as soon as one fails to start."""
        first = self._spawn(0)
        if not self._wait_ready([first]):
            return False
        return self._wait_ready([self._spawn(index) for index in range(1, self.count)])

    def _spawn(self, index: int) -> int:
        self.controls[index].unlink(missing_ok=True)
        # Stop signals wait until the child has its own handlers: one that arrived in between
        # would run the parent's handler in the child and be lost.
        stops = {signal.SIGTERM, signal.SIGINT}
        http = listen(self.options.host, self.options.http_port, reuse_port=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        pid = os.fork()
        if pid == 0:  # the worker: serve, and never return into the parent's code
            code = 1
            try:
                for sig in stops:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                self.start(index, WorkerSetup(http, self._metrics, self.controls[index], self.controls))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except ModelportError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        http.close()  # the worker's alone: it closes with the worker
        self.pids[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        return pid

    def _wait_ready(self, pids: list[int]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(pids)
        while waiting and not self.stopping:
            for pid in list(waiting):
                ended, _ = os.waitpid(pid, os.WNOHANG)
                if ended:
                    self.pids.pop(pid, None)
                    return False
                if _ready(self.controls[self.pids[pid]]):
                    waiting.discard(pid)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return not waiting

    def _supervise(self) -> int:
        restarts: dict[int, float] = {}
        while self.pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = self.pids.pop(pid, None)
            if index is None or self.stopping:
                continue
            print(
                f"worker {index} exited ({os.waitstatus_to_exitcode(status)}); starting it again",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(max(0.0, restarts.get(index, 0.0) + RESTART_BACKOFF_S - time.monotonic()))
            restarts[index] = time.monotonic()
            if not self.stopping:
                self._spawn(index)
        return 0

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)

    def _stop_all(self) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.options.graceful_s + 5
        while self.pids and time.monotonic() < deadline:
            for pid in list(self.pids):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self.pids.pop(pid)
            time.sleep(0.05)
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _ready(control: Path) -> bool:
    if not control.exists():
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(control)), timeout=2) as client:
            return client.get("http://worker/ready").status_code == 200
    except httpx.HTTPError:
        return False
