"""``/batch-endpoints/<name>/jobs``: clients start and watch a batch endpoint's jobs over HTTP.

Azure ML's batch endpoint is an HTTPS address that a client POSTs to, with a bearer token, to
start a scoring job. Here the daemon answers:

* ``POST /batch-endpoints/NAME/jobs`` — a JSON body with what ``modelport batch-endpoint invoke``
  takes (see :data:`FIELDS`); 202 with the job's id and its status URL (also ``Location``);
* ``GET /batch-endpoints/NAME/jobs`` — the endpoint's jobs, newest first;
* ``GET /batch-endpoints/NAME/jobs/JOB`` — one job: the document ``modelport job show -o json``
  prints.

One request, one straight line, as in the online router: endpoint (404) → key (401, either of the
endpoint's two keys) → route (404, 405) → body: ``application/json`` (415), at most
:data:`MAX_BODY` bytes (413), fields (400 naming the field) → :meth:`BatchJobs.submit`, the very
call ``invoke`` makes, so the job is recorded and its runner started exactly as from the CLI (and
resumed by the next daemon, should the runner die). The key comes before the route, so nobody
without one learns which routes exist; a job of another endpoint answers 404 as if it did not
exist. Keys are read from the database on every request, so a regenerated key takes effect at
once (batch endpoints are managed from the CLI, not through the daemon).

A key buys scoring, not the daemon's file system: over HTTP a job reads the input it names but
always writes into its own job folder, so ``output_path`` and ``overwrite`` (places on the
daemon's disk) and ``ray_address`` (where the daemon connects) stay with ``invoke``. A local input
path must be absolute: the daemon's working directory is not the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from modelport.batch.definitions import ENGINES
from modelport.batch.endpoints import BatchEndpoints
from modelport.batch.jobs import BatchJobs
from modelport.core.errors import ModelportError, NotFoundError, ValidationError
from modelport.core.json_body import json_object
from modelport.core.keys import authorized
from modelport.registry.stores import WorkspaceStores

log = logging.getLogger("modelport.control")

PREFIX = "/batch-endpoints/"
MAX_BODY = 1024 * 1024
REFUSED_OVER_HTTP = {
    "output_path": "jobs started over HTTP write into their own job folder; use `modelport batch-endpoint "
    "invoke --output-path` to write elsewhere",
    "overwrite": "jobs started over HTTP write a new output file in their own job folder",
    "ray_address": "the daemon uses $RAY_ADDRESS; use `modelport batch-endpoint invoke --ray-address` for another",
}
_CLOSE = [(b"connection", b"close")]  # the rest of the body is not read
_FLAG = re.compile(r"^--([a-z][a-z-]*)")  # a CLI flag leading an error message: the HTTP field it names


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: must be a non-empty string")
    return value


def _input(field: str, value: Any) -> str:
    uri = _text(field, value)
    if "://" not in uri and not uri.startswith("/"):
        raise ValidationError(
            f"{field}: {uri!r} is a relative path; give an absolute path or a URL "
            "(the daemon's working directory is not the caller's)"
        )
    return uri


def _settings(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f'{field}: must be a list of "SETTING=VALUE" strings, as invoke --set takes')
    for index, item in enumerate(value):
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"{field}[{index}]: {item!r} is not SETTING=VALUE")
    return value


def _engine(field: str, value: Any) -> str:
    if value not in ENGINES:
        raise ValidationError(f"{field}: {value!r} is not one of {', '.join(ENGINES)}")
    return value


FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "input": _input,  # required: folder, file, glob or fsspec URL
    "input_type": _text,  # uri_folder | uri_file | tabular
    "deployment": _text,  # default: the endpoint's defaults.deployment_name
    "set": _settings,  # ["mini_batch_size=5", ...]: invoke's --set
    "engine": _engine,
}


def parse_job_request(body: bytes) -> dict[str, Any]:
    """The body of ``POST .../jobs`` as :meth:`BatchJobs.submit` keyword arguments (``input``
    and ``set`` renamed); ValidationError naming the first bad field."""
    data = json_object(body, "request body", '{"input": "/data/images"}')
    for name in data:
        if name in REFUSED_OVER_HTTP:
            raise ValidationError(f"{name}: not accepted over HTTP: {REFUSED_OVER_HTTP[name]}")
        if name not in FIELDS:
            raise ValidationError(f"{name}: not a field of a job request (use {', '.join(FIELDS)})")
    if data.get("input") is None:
        raise ValidationError("input: required (a folder, file, glob or URL to score)")
    checked = {name: FIELDS[name](name, value) for name, value in data.items() if value is not None}
    overrides = {}
    for item in checked.pop("set", []):
        key, _, value = item.partition("=")
        overrides[key] = value
    return {"input_uri": checked.pop("input"), "overrides": overrides, **checked}


class BatchRouter:
    """The ASGI app for ``/batch-endpoints/...``; the daemon sends those paths here, past the
    management API's guard: these routes take an endpoint's key, not the workspace's token."""

    def __init__(self, workspace: WorkspaceStores, base_url: str) -> None:
        self.endpoints = BatchEndpoints(workspace)
        self.jobs = BatchJobs(workspace)
        self.base_url = base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"][len(PREFIX) :].split("/")
        try:
            status, document, headers = await self._handle(scope, receive, parts)
        except ModelportError as exc:
            status, document = exc.http_status, {"error": str(exc)}
            headers = list(exc.headers) if isinstance(exc, _Refusal) else []
        except Exception:
            log.exception("batch router: unexpected error on %s %s", scope["method"], scope["path"])
            status, document, headers = 500, {"error": "internal error in the batch router"}, []
        content = orjson.dumps(document)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _handle(self, scope: Scope, receive: Receive, parts: list[str]) -> tuple[int, Any, list]:
        name = parts[0]
        keys = await asyncio.to_thread(self._keys, name)
        if not authorized(_header(scope, b"authorization"), keys):
            raise _Refusal(
                401,
                f"a valid key of batch endpoint {name!r} is required: Authorization: Bearer <key> "
                "(`modelport batch-endpoint get-credentials` shows them)",
                [(b"www-authenticate", b"Bearer")],
            )
        method, route = scope["method"], parts[1:]
        if route == ["jobs"]:
            if method == "POST":
                return await self._start(scope, receive, name)
            if method == "GET":
                jobs = await asyncio.to_thread(self.jobs.list, name)
                return 200, [job.to_dict() for job in jobs], []
            raise _not_allowed(method, scope["path"], "GET, POST")
        if len(route) == 2 and route[0] == "jobs" and route[1]:
            if method != "GET":
                raise _not_allowed(method, scope["path"], "GET")
            job = await asyncio.to_thread(self.jobs.get, route[1])
            if job.endpoint != name:
                raise NotFoundError(f"job {route[1]!r} does not exist")
            return 200, job.to_dict(), []
        raise NotFoundError(
            f"{method} {scope['path']} is not a route of batch endpoint {name!r}; it has "
            f"{PREFIX}{name}/jobs (GET, POST) and {PREFIX}{name}/jobs/JOB (GET)"
        )

    def _keys(self, name: str) -> tuple[str, str]:
        try:
            return self.endpoints.keys(name)
        except ValidationError:  # not even a valid name: it names no endpoint
            raise NotFoundError(f"batch endpoint {name!r} does not exist") from None

    async def _start(self, scope: Scope, receive: Receive, name: str) -> tuple[int, Any, list]:
        kind = _header(scope, b"content-type").partition(";")[0].strip().lower()
        if kind != "application/json":
            raise _Refusal(415, f"Content-Type {kind or 'missing'}: a job request is application/json")
        request = parse_job_request(await _read_body(scope, receive))
        try:
            job = await asyncio.to_thread(self.jobs.submit, name, **request)
        except ValidationError as exc:  # the CLI's flag names, as the body's field names
            raise ValidationError(_FLAG.sub(lambda m: m[1].replace("-", "_"), str(exc))) from None
        url = f"{self.base_url}{PREFIX}{name}/jobs/{job.id}"
        log.info("batch endpoint %s: job %s started over HTTP", name, job.id)
        document = {
            "id": job.id,
            "name": job.id,
            "status": job.status,
            "endpoint": name,
            "deployment": job.deployment,
            "status_url": url,
        }
        return 202, document, [(b"location", url.encode())]


class _Refusal(ModelportError):
    """A refusal with its own status and headers (401, 405, 413, 415)."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.headers = headers or []


def _not_allowed(method: str, path: str, allowed: str) -> _Refusal:
    return _Refusal(405, f"{method} {path}: use {' or '.join(allowed.split(', '))}", [(b"allow", allowed.encode())])


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole body, refused (413) from its ``Content-Length`` or as soon as it passes the limit."""
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _Refusal(413, f"request body: {declared} bytes, over the limit of {MAX_BODY}", _CLOSE)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ValidationError("request body: the client left before sending it")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refusal(413, f"request body: over the limit of {MAX_BODY} bytes", _CLOSE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""
