"""The daemon process: management API, router and supervisor in one event loop.

``run`` serves in the foreground until SIGTERM/SIGINT, then stops every replica gracefully.
One daemon per workspace: it holds ``daemon/daemon.lock`` while it lives (the OS drops the lock
when the process dies, however it dies), and writes ``daemon/daemon.json`` (pid, url) for
``down`` and for local clients. On start it publishes the stored endpoints and hands the stored
deployments to the supervisor, which adopts replicas a killed predecessor left running, and
resumes the batch jobs whose runner died with the machine or the process. ``spawn`` starts it in
the background (its console in ``daemon/daemon.log``) and returns once it answers.

Every request passes :mod:`modelport.control.guard` first: the ``Host`` check for all, the
origin, token, content-type and size checks for the management API (``/api/...``, ``/metrics``);
the router and the batch router (``/batch-endpoints/...``) check their endpoints' own keys; the
dashboard (``/`` and ``/ui/...``) its browser sessions (:mod:`modelport.dashboard.guard`). It
listens where :class:`Binding` says (loopback unless told otherwise, with TLS when given a
certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from filelock import FileLock, Timeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelport.batch.jobs import BatchJobs
from modelport.control.api import ManagementApi
from modelport.control.auth import BearerToken, ensure_token, read_token, token_path
from modelport.control.batch_router import PREFIX as BATCH_PREFIX
from modelport.control.batch_router import BatchRouter
from modelport.control.batch_sizes import BatchSizes
from modelport.control.binding import Binding
from modelport.control.catalog import Catalog
from modelport.control.client import tls_verification
from modelport.control.guard import HostCheck, ManagementGuard
from modelport.control.logs import keep_rotated
from modelport.control.replica import Replica, ReplicaRecord
from modelport.control.router import Router
from modelport.control.rundir import DaemonInfo, forget_info, private_run_dir, read_info, run_dir
from modelport.control.scale_metrics import ReplicaGauges
from modelport.control.sessions import SessionCookie, Sessions
from modelport.control.supervisor import Supervisor
from modelport.core.errors import ConflictError, ModelportError
from modelport.core.http_server import front_end, run_loop
from modelport.core.sockets import listen
from modelport.dashboard.app import PREFIX as DASHBOARD_PREFIX
from modelport.dashboard.app import dashboard
from modelport.registry.stores import WorkspaceStores
from modelport.routing.history import TrafficHistory
from modelport.routing.protocol import router_protocol
from modelport.routing.router import PREFIX, endpoint_target, proxy_session

log = logging.getLogger("modelport.control")

START_TIMEOUT_S = 60.0


def run(ws: WorkspaceStores, binding: Binding) -> None:
    """Serve until SIGTERM/SIGINT (ConflictError when this workspace already has a daemon)."""
    binding.check()
    folder = private_run_dir(ws.root)
    ensure_token(ws.root)
    lock = FileLock(str(folder / "daemon.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConflictError(f"a modelport daemon already runs for workspace {ws.root} ({_pidfile(ws.root)})") from None
    try:
        # before anything else, so a port in use changes nothing
        listener = listen(binding.host, binding.port, option="--port")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        DaemonInfo(os.getpid(), binding.url, str(binding.certfile.absolute()) if binding.certfile else None).write(
            ws.root
        )
        with listener:
            run_loop(_serve(ws, listener, folder, binding))
    finally:
        forget_info(ws.root)
        lock.release()


async def _serve(ws: WorkspaceStores, listener: socket.socket, folder: Path, binding: Binding) -> None:
    url = binding.url
    async with (
        proxy_session() as proxy,
        httpx.AsyncClient(trust_env=False, limits=httpx.Limits(keepalive_expiry=2.0)) as probes,
    ):
        supervisor = Supervisor(ws, probes, folder, ws.root / "logs" / "endpoints")
        router = Router(supervisor, proxy)
        router.metrics.registry.register(ReplicaGauges(supervisor))
        catalog = Catalog(ws)
        token = BearerToken(token_path(ws.root))
        sessions = Sessions(token)
        api = ManagementApi(catalog, supervisor, router, url, sessions)
        management = ManagementGuard(
            Starlette(routes=api.routes(), exception_handlers={ModelportError: _on_error, Exception: _on_unexpected}),
            credentials=[token, SessionCookie(sessions)],
        )
        history = TrafficHistory(router.metrics)
        batches = BatchSizes(supervisor, probes)
        pages = dashboard(api, ws.models, ws.environments, BatchJobs(ws), sessions, history, batches, ws.root)

        batch = BatchRouter(ws, url)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope["path"] if scope["type"] == "http" else ""
            if path.startswith(PREFIX):
                await router(scope, receive, send)
            elif path.startswith(BATCH_PREFIX):
                await batch(scope, receive, send)
            elif path in ("/", "/ui") or path.startswith(DASHBOARD_PREFIX):
                await pages(scope, receive, send)
            else:
                await management(scope, receive, send)

        checked = HostCheck(app, binding.served())
        server = front_end(
            checked,
            http=router_protocol(router.core, endpoint_target, checked.allows),
            timeout_keep_alive=30,
            timeout_graceful_shutdown=10,  # log --follow streams never end
            ssl_certfile=str(binding.certfile) if binding.certfile else None,
            ssl_keyfile=str(binding.keyfile) if binding.certfile else None,
        )
        records = await asyncio.to_thread(catalog.endpoints)
        for record in records:
            router.publish(record)
        supervisor.restore(d for record in records for d in record.deployments)
        resumed = await asyncio.to_thread(BatchJobs(ws).resume_orphaned)
        if resumed:
            log.info("resumed batch jobs whose runner had died: %s", ", ".join(resumed))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        log.info("modelport daemon for %s on %s (%d endpoints)", ws.root, url, len(records))
        rotation = asyncio.create_task(keep_rotated(supervisor.logs_dir))
        sampling = [asyncio.create_task(history.run()), asyncio.create_task(batches.run())]
        try:
            await server.serve(sockets=[listener])
        finally:
            rotation.cancel()
            for task in sampling:
                task.cancel()
            log.info("stopping replicas")
            await supervisor.shutdown()


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelportError)
    return Response(orjson.dumps({"error": str(exc)}), status_code=exc.http_status, media_type="application/json")


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        orjson.dumps({"error": f"internal error: {type(exc).__name__}: {exc}"}),
        status_code=500,
        media_type="application/json",
    )


# -- from the CLI ------------------------------------------------------------------------------


def spawn(root: Path, binding: Binding) -> str:
    """Start the daemon for workspace ``root`` in the background; its URL once it answers.

    It is asked for its status only once it has written its own pid into ``daemon.json``, which
    it does after binding the port: the token is never sent to whatever else listened there."""
    folder = private_run_dir(root)
    if running(root):
        raise ConflictError(f"a modelport daemon already runs for workspace {root} ({_pidfile(root)})")
    ensure_token(root)
    console = folder / "daemon.log"
    with open(console, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelport", "--workspace", str(root), "up", "--foreground", *binding.args()],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = [line for line in console.read_text("utf-8", "replace").splitlines() if line.startswith("error:")]
            raise ModelportError(lines[-1][len("error: ") :] if lines else f"the daemon exited; see {console}")
        info = read_info(root)
        if info is not None and info.pid == process.pid:
            with contextlib.suppress(httpx.HTTPError, ValueError):  # not serving yet
                answer = httpx.get(
                    f"{info.url}/api/status",
                    headers={"authorization": f"Bearer {read_token(root)}"},
                    timeout=2,
                    trust_env=False,
                    verify=tls_verification(info),
                )
                if answer.json().get("workspace") == str(root):
                    return info.url
        time.sleep(0.1)
    process.kill()
    raise ModelportError(f"the daemon did not answer on {binding.url} within {START_TIMEOUT_S:.0f} s; see {console}")


def running(root: Path) -> bool:
    """Whether a daemon holds this workspace's lock right now."""
    lock = FileLock(str(run_dir(root) / "daemon.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def stop(root: Path, timeout: float = 60.0) -> str:
    """Stop the workspace's daemon (it stops its replicas), or, when none runs, the replicas a
    killed daemon left behind. Says what it did."""
    folder = run_dir(root)
    info = read_info(root)
    if running(root) and info is not None:
        pid = info.pid
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(root):
            os.kill(pid, signal.SIGKILL)
        return f"stopped the daemon (pid {pid})"
    try:
        remembered = json.loads((folder / "replicas.json").read_text())
    except (OSError, ValueError):
        remembered = []
    orphans = [replica for item in remembered if (replica := Replica.adopt(ReplicaRecord(**item))) is not None]
    for replica in orphans:
        replica.signal(signal.SIGTERM)
    return (
        f"no daemon was running; stopped {len(orphans)} replica(s) it had left" if orphans else "no daemon was running"
    )


def _pidfile(root: Path) -> str:
    info = read_info(root)
    return f"pid {info.pid}, {info.url}" if info else "pid unknown"
