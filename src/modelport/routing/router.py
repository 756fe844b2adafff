"""The router: ``/endpoints/<name>/score`` and ``/endpoints/<name>/v2/...`` to a replica and back.

One implementation for the daemon (``control.router`` feeds it the catalog's endpoints and the
supervisor's replicas) and the standalone router of a cluster (``routing.standalone`` feeds it
``router.yml``); what it needs of either is ``routing.backend``'s protocols.

One request, one straight line: endpoint → key check (401) → scoring route (404 for the rest of
a replica's routes: repository, statistics, metrics; see ``scoring_routes``) → body → deployment
(the pin header, else the traffic weights; a mirror copy is sent off on the side) → admission
(429 beyond the deployment's ``max_in_flight``: Azure's ``2 × max_concurrent_requests_per_instance ×
instance_count``, or ``max_instances`` when autoscaled) → replica with the fewest requests in flight (503 with the reason when none is ready) → proxied through one
shared pool of keep-alive connections (``routing.upstream_http``), within ``request_timeout_ms``
(408) → the replica's answer, marked with the deployment that gave it
(``azureml-model-deployment``); one line in the request log when there is one.

Every request of every endpoint pays this path, so it works on byte headers, with no request or
response objects, and the front ends answer it in their HTTP protocol (``routing.protocol``:
:meth:`Router.open` from the head, :meth:`Router.answer` once the body is in); the ASGI entry
(:meth:`Router.route`) serves what the protocol leaves to the app, requests pipelined behind
another (``bench/router_hop.py`` has what each costs).

The key comes before the route: without it every path of an endpoint answers the same 401, so
nobody without a key learns which routes the router passes; with it, a refused route answers 404
as if it did not exist.

A replica that refuses the connection has not seen the request, so it leaves the rotation and
the request goes to another replica; one that fails mid-answer fails only that request (502).
Mirror copies never delay or fail the caller: they run as separate tasks, are dropped when the
mirror deployment is at its limit, and their answers are discarded. Keys are compared in
constant time and never forwarded to replicas.

An endpoint is published as one immutable :class:`LiveEndpoint` (keys, split, mirror, and the
backend whose deployments serve it) and replaced as a whole: a request reads it once, when it
arrives, so a request in flight while the endpoint changes finishes on what it started with.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelport.core.errors import ModelportError, NotFoundError
from modelport.core.http_errors import (
    BadGateway,
    RequestTimeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_response,
    response_of,
)
from modelport.core.keys import authorized
from modelport.core.request_body import DEFAULT_MAX_BODY, asgi_chunks, check_declared, read_limited
from modelport.monitor.request_log import RequestLog
from modelport.routing.backend import Backend, Group, Upstream
from modelport.routing.metrics import RouterMetrics
from modelport.routing.scoring_routes import is_scoring_route
from modelport.routing.traffic import choose_deployment, least_outstanding, mirror_target
from modelport.routing.upstream_http import Answer, ConnectFailed, UpstreamFailed, UpstreamPool

log = logging.getLogger("modelport.control")

PIN_HEADERS = ("x-modelport-deployment", "azureml-model-deployment")
DEPLOYMENT_HEADER = "azureml-model-deployment"
_PIN_HEADERS = tuple(header.encode() for header in PIN_HEADERS)
_DEPLOYMENT_HEADER = DEPLOYMENT_HEADER.encode()
PREFIX = "/endpoints/"
# Hop-by-hop headers, and what must not cross: the caller's key, lengths recomputed per hop.
_REQUEST_DROP = {
    b"host",
    b"authorization",
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"upgrade",
    b"content-length",
    b"proxy-authorization",
    b"x-request-id",
    b"expect",  # the router took the whole body already: the replica has nothing to wait for
    *_PIN_HEADERS,
}
_RESPONSE_DROP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"content-length",
    b"date",
    b"server",
    _DEPLOYMENT_HEADER,  # the router says which deployment answered
}
_CLIENT_ID = b"x-ms-client-request-id"
# Probes and descriptions are not logged, as a replica's own request log leaves them out.
_UNLOGGED = frozenset({"v2", "v2/health/live", "v2/health/ready", "swagger.json"})


def proxy_session() -> UpstreamPool:
    """The router's one connection pool to the replicas."""
    return UpstreamPool()


@dataclass(frozen=True)
class LiveEndpoint:
    """What the router knows of an endpoint; replaced as a whole whenever the endpoint changes."""

    name: str
    auth_mode: str
    keys: tuple[str, str]
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: frozenset[str]
    backend: Backend

    def group(self, deployment: str) -> Group | None:
        return self.backend.group(self.name, deployment)


@dataclass(frozen=True, slots=True)
class Head:
    """A request's line and headers, as the router reads them: ``path`` is the path requested
    (percent-decoded; the request log's), ``endpoint`` and ``route`` what the router makes of it
    (``route`` is the scoring path: ``score``, ``v2/...``); header names in lower case."""

    method: str
    path: str
    endpoint: str
    route: str
    query: bytes
    headers: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _Call:
    """The parts of a request every hop reuses: the endpoint, the scoring path (``score``,
    ``v2/...``) and query, the headers to send, the body."""

    endpoint: str
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def target(self) -> str:
        return f"/{self.path}?{self.query.decode('latin-1')}" if self.query else f"/{self.path}"


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line


@dataclass(slots=True)
class Reply:
    """What the router answers: the status, the headers and the body, and the deployment that gave
    it (empty when the router refused before choosing one)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    deployment: str = ""

    @classmethod
    def of(cls, response: Response) -> Reply:
        return cls(response.status_code, response.raw_headers, bytes(response.body))

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})

    def encoded(self, common: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
        """The whole HTTP/1.1 response: ``common`` (the server's ``date``) and the reply's headers,
        ``connection: close`` unless ``keep_alive``, then the body."""
        head = [_status_line(self.status)]
        for name, value in common:
            head += (name, b": ", value, b"\r\n")
        for name, value in self.headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        head.append(self.body)
        return b"".join(head)


class Exchange:
    """One request through the router, from its head (:meth:`Router.open`) to its answer
    (:meth:`Router.answer`): what the head decided, and when it came."""

    __slots__ = ("head", "request_id", "started_wall", "started", "endpoint", "first", "refusal")

    def __init__(self, head: Head) -> None:
        self.head = head
        self.request_id = str(uuid.uuid4())
        self.started_wall, self.started = time.time(), time.perf_counter_ns()
        self.endpoint: LiveEndpoint | None = None
        self.first: dict[bytes, bytes] = {}  # the first of repeated headers, as Starlette's would
        self.refusal: Reply | None = None

    def refuse(self, error: ModelportError) -> None:
        """Answer ``error`` instead of forwarding (a body over the limit, found while reading it)."""
        self.refusal = _answer(self.head.route, error)


class Router:
    def __init__(self, http: UpstreamPool, request_log: RequestLog | None = None) -> None:
        self.http = http
        self.request_log = request_log
        self.metrics = RouterMetrics()
        self.endpoints: dict[str, LiveEndpoint] = {}
        self._mirrors: set[asyncio.Task[Reply]] = set()

    def publish(self, endpoint: LiveEndpoint) -> None:
        self.endpoints[endpoint.name] = endpoint

    def withdraw(self, name: str) -> None:
        self.endpoints.pop(name, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app for ``/endpoints/<name>/<path>``; the daemon sends those paths here
        directly, past the management API's routing, to keep the hop short."""
        name, path = endpoint_target(scope["path"]) or ("", "")
        await self.route(scope, receive, send, name, path)

    async def route(self, scope: Scope, receive: Receive, send: Send, name: str, path: str) -> None:
        """Answer one request for ``path`` (``score``, ``v2/...``) of endpoint ``name`` over ASGI:
        the requests ``routing.protocol`` leaves to the app (those pipelined behind another)."""
        head = Head(scope["method"], scope["path"], name, path, scope["query_string"], scope["headers"])
        exchange = self.open(head)
        body = b""
        if exchange.refusal is None:
            try:
                body = await read_limited(asgi_chunks(receive), None, None, DEFAULT_MAX_BODY)
            except ClientDisconnect:
                return
            except ModelportError as exc:
                exchange.refuse(exc)
        reply = await self.answer(exchange, body)
        await reply.send(send)

    def open(self, head: Head) -> Exchange:
        """Start on a request from its head alone, before its body is read: the endpoint (404),
        the key (401), the route (404) and the declared length (413) are checked here, so that
        a refused request's body is never kept."""
        exchange = Exchange(head)
        try:
            endpoint = self.endpoints.get(head.endpoint)
            if endpoint is None:
                raise NotFoundError(f"endpoint {head.endpoint!r} does not exist")
            first = exchange.first = dict(reversed(head.headers))
            if endpoint.auth_mode == "key" and not authorized(_text(first.get(b"authorization")), endpoint.keys):
                raise Unauthorized("a valid key is required: Authorization: Bearer <key>")
            if not is_scoring_route(head.method, head.route):
                raise NotFoundError(
                    f"{head.method} /{head.route} is not a scoring route of endpoint {head.endpoint!r}; it "
                    "passes /score, /swagger.json and v2 health, metadata, ready, config and infer"
                )
            check_declared(_text(first.get(b"content-length")), DEFAULT_MAX_BODY)
            exchange.endpoint = endpoint
        except ModelportError as exc:
            exchange.refuse(exc)
        return exchange

    async def answer(self, exchange: Exchange, body: bytes) -> Reply:
        """The answer to a request :meth:`open` started, given its whole body (as sent: mirroring
        and retries need it); counted in the metrics and written to the request log."""
        if exchange.refusal is not None:
            return self.refused(exchange)
        try:
            reply = await self._dispatch(exchange, body)
        except ModelportError as exc:
            reply = _answer(exchange.head.route, exc)
        except Exception:
            head = exchange.head
            log.exception("router: unexpected error on %s %s", head.method, head.path)
            reply = Reply.of(error_response(500, "internal error in the router", azure=_azure(head.route)))
        self._record(exchange, reply)
        return reply

    def refused(self, exchange: Exchange) -> Reply:
        """The answer to a request refused before it was forwarded, counted and logged as
        :meth:`answer` does (no ``await``: nothing waits on a replica)."""
        reply = exchange.refusal
        assert reply is not None
        self._record(exchange, reply)
        return reply

    def _record(self, exchange: Exchange, reply: Reply) -> None:
        head = exchange.head
        if head.endpoint not in self.endpoints:  # unknown names would make a label per typo
            return
        latency_ns = time.perf_counter_ns() - exchange.started
        self.metrics.observe(head.endpoint, reply.deployment, reply.status, latency_ns / 1e9)
        if self.request_log is not None and head.route not in _UNLOGGED:
            model, version = _model_of(head.route)
            entry = (
                exchange.started_wall,
                exchange.request_id,
                head.endpoint,
                reply.deployment or None,
                model,
                version,
            )
            self.request_log.submit((*entry, head.method, head.path, reply.status, latency_ns, 0, 0))

    async def _dispatch(self, exchange: Exchange, body: bytes) -> Reply:
        """The deployment's answer: the pinned one, else the traffic split's (a mirror copy is
        sent off on the side)."""
        endpoint, head, first = exchange.endpoint, exchange.head, exchange.first
        assert endpoint is not None
        name = endpoint.name
        call = _Call(
            name, head.method, head.route, head.query, _forwarded_headers(head.headers, exchange.request_id), body
        )
        pinned = next((value for header in _PIN_HEADERS if (value := first.get(header))), None)
        deployment: str | None
        if pinned is not None:
            deployment = pinned.decode("latin-1")
            if deployment not in endpoint.deployments:
                raise NotFoundError(f"endpoint {name!r} has no deployment {deployment!r}")
        else:
            deployment = choose_deployment(endpoint.traffic, random.random())
            if deployment is None:
                raise NotFoundError(
                    f"endpoint {name!r} sends no traffic to any deployment; set its "
                    f"traffic or pin one with the {PIN_HEADERS[0]} header"
                )
            mirror = mirror_target(endpoint.mirror_traffic, random.random())
            if mirror is not None:
                self._mirror(endpoint, mirror, call)
        group = endpoint.group(deployment)
        if group is None:
            raise Unavailable(f"deployment {deployment!r} is not running")
        return await self._forward(group, call)

    def _mirror(self, endpoint: LiveEndpoint, deployment: str, call: _Call) -> None:
        group = endpoint.group(deployment)
        if group is None or group.in_flight >= group.max_in_flight:
            return  # a mirror never queues: at its limit, the copy is dropped
        task = asyncio.create_task(self._forward(group, call))
        self.metrics.mirrored.labels(endpoint.name, deployment).inc()
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _forward(self, group: Group, call: _Call) -> Reply:
        """One proxied call's answer, or its refusal, marked with the deployment."""
        try:
            reply = await self._admitted(group, call)
        except ModelportError as exc:
            reply = _answer(call.path, exc)
        reply.deployment = group.name
        reply.headers.append((_DEPLOYMENT_HEADER, group.name.encode()))
        return reply

    async def _admitted(self, group: Group, call: _Call) -> Reply:
        """Admission and timeout around one proxied call."""
        if group.in_flight >= group.max_in_flight:
            raise TooManyRequests(
                f"deployment {group.name!r} has {group.in_flight} requests in flight, "
                f"the most it takes (2 x max_concurrent_requests_per_instance x replicas)"
            )
        timeout_ms = group.request_timeout_ms
        in_flight = self.metrics.in_flight_of(call.endpoint, group.name)
        group.in_flight += 1
        in_flight.inc()
        try:
            return await self._send(group, call, asyncio.get_running_loop().time() + timeout_ms / 1000)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                f"deployment {group.name!r} did not answer within {timeout_ms} ms (request_settings.request_timeout_ms)"
            ) from None
        finally:
            group.in_flight -= 1
            in_flight.dec()

    async def _send(self, group: Group, call: _Call, deadline: float) -> Reply:
        """One replica's answer, before ``deadline`` (loop time; asyncio.TimeoutError after it)."""
        refused: list[Upstream] = []
        while True:
            candidates = [replica for replica in group.serving() if replica not in refused]
            replica = least_outstanding(candidates, group.turn)
            group.turn += 1
            if replica is None:
                raise Unavailable(group.unready_reason())
            replica.outstanding += 1
            try:
                answer = await self.http.request(
                    call.method, replica.url, call.target, call.headers, call.body, deadline
                )
                return _relay(answer, call.path)
            except ConnectFailed:  # nothing was sent: another replica can take it
                replica.ready = False
                replica.recheck.set()
                refused.append(replica)
            except UpstreamFailed as exc:
                log.warning("%s: replica %s failed while answering: %s", group.label, replica.url, exc)
                raise BadGateway(f"a replica of deployment {group.name!r} failed while answering") from None
            finally:
                replica.outstanding -= 1


def endpoint_target(path: str) -> tuple[str, str] | None:
    """``/endpoints/<name>/<route>`` as ``(name, route)``; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    name, _, route = path[len(PREFIX) :].partition("/")
    return name, route


def _relay(answer: Answer, path: str) -> Reply:
    """The replica's answer as it came (encoding included), minus hop-by-hop headers."""
    status = answer.status
    headers = [(key.lower(), value) for key, value in answer.headers if key.lower() not in _RESPONSE_DROP]
    if path == "score" and status != 200:  # Azure's gateway: the container's failure is a failed dependency
        headers += [
            (b"ms-azureml-model-error-statuscode", str(status).encode()),
            (b"ms-azureml-model-error-reason", answer.reason or b"model error"),
        ]
        status = 424
    headers.append((b"content-length", b"%d" % len(answer.body)))
    return Reply(status, headers, answer.body)


def _forwarded_headers(raw: list[tuple[bytes, bytes]], request_id: str) -> list[tuple[bytes, bytes]]:
    """The caller's headers minus hop-by-hop ones and the key; the router's own ``x-request-id``
    (fresh per request, so the replica's log line and the router's share it) and the client's id
    cut to 40 characters, as Azure's gateway does."""
    headers = [(k, v[:40] if k == _CLIENT_ID else v) for k, v in raw if k not in _REQUEST_DROP]
    headers.append((b"x-request-id", request_id.encode()))
    return headers


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _azure(path: str) -> bool:
    """Replicas answer errors as ``{"error": ...}`` on v2 routes and Azure's ``{"message": ...}``
    elsewhere; so does the router in front of them."""
    return not path.startswith("v2")


def _answer(path: str, error: ModelportError) -> Reply:
    return Reply.of(response_of(error, azure=_azure(path)))


def _model_of(path: str) -> tuple[str | None, str | None]:
    """The model and version a ``v2/models/<model>[/versions/<version>]/...`` path names."""
    parts = path.split("/")
    if parts[:2] != ["v2", "models"] or len(parts) < 3:
        return None, None
    version = parts[4] if len(parts) > 4 and parts[3] == "versions" else None
    return parts[2], version
