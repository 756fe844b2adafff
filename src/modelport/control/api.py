"""The daemon's management REST API (``/api/...``) and its OpenAPI document (``/openapi.json``).

One table, :data:`OPERATIONS`, lists every operation once: the Starlette routes and the
OpenAPI paths are both made from it, so the document cannot drift from what is served.

Changes to one endpoint are serialised by a lock per endpoint name. A deployment is written to
the database only after its replicas are ready (create) or rolled (update): a definition whose
replicas cannot start is refused with the replica's own error line, the stored desired state
stays what was serving, and a model version registered inline for it is removed again.
Definitions arrive as the YAML mapping (``definition``), the ``--set`` overrides (``set``) and
the folder relative paths start from (``base_dir``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from modelport.control import logs
from modelport.control.catalog import Catalog, DeploymentRecord, EndpointRecord
from modelport.control.definitions import parse_deployment, parse_endpoint
from modelport.control.replica import request_log_path
from modelport.control.router import Router
from modelport.control.sessions import LINK_TTL_S, LOGIN_PATH, Sessions
from modelport.control.supervisor import ProvisioningState, Supervisor
from modelport.core.errors import ConflictError, NotFoundError, ValidationError
from modelport.core.json_body import json_object
from modelport.core.overrides import apply_overrides
from modelport.core.version import __version__
from modelport.routing.metrics import PROMETHEUS_TEXT
from modelport.schema.base import Definition
from modelport.schema.online import DeploymentSpec, EndpointSpec
from modelport.schema.published import components
from modelport.store.schema import utcnow


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: str  # the ManagementApi method's name
    summary: str
    body: str | None = None  # the request body's schema name
    status: int = 200


OPERATIONS = (
    Operation("GET", "/api/status", "status", "Daemon status: workspace, endpoints, replicas"),
    Operation("GET", "/api/endpoints", "list_endpoints", "List online endpoints"),
    Operation(
        "POST", "/api/endpoints", "create_endpoint", "Create an endpoint from its definition", "EndpointDefinition", 201
    ),
    Operation("GET", "/api/endpoints/{endpoint}", "show_endpoint", "Show an endpoint"),
    Operation(
        "PUT",
        "/api/endpoints/{endpoint}",
        "update_endpoint",
        "Update an endpoint: a new definition, or the stored one with `set` applied",
        "EndpointDefinition",
    ),
    Operation("DELETE", "/api/endpoints/{endpoint}", "delete_endpoint", "Delete an endpoint and its deployments"),
    Operation("GET", "/api/endpoints/{endpoint}/keys", "get_credentials", "The endpoint's primary and secondary keys"),
    Operation("POST", "/api/endpoints/{endpoint}/keys/regenerate", "regenerate_key", "Replace one key", "KeyChoice"),
    Operation("GET", "/api/endpoints/{endpoint}/deployments", "list_deployments", "List an endpoint's deployments"),
    Operation(
        "POST",
        "/api/endpoints/{endpoint}/deployments",
        "create_deployment",
        "Create a deployment; answers when its replicas are ready",
        "DeploymentDefinition",
        201,
    ),
    Operation(
        "GET",
        "/api/endpoints/{endpoint}/deployments/{deployment}",
        "show_deployment",
        "Show a deployment and its replicas",
    ),
    Operation(
        "PUT",
        "/api/endpoints/{endpoint}/deployments/{deployment}",
        "update_deployment",
        "Update a deployment (rolling: one new replica ready before an old one goes)",
        "DeploymentDefinition",
    ),
    Operation(
        "DELETE",
        "/api/endpoints/{endpoint}/deployments/{deployment}",
        "delete_deployment",
        "Delete a deployment that gets no traffic",
    ),
    Operation(
        "GET",
        "/api/endpoints/{endpoint}/deployments/{deployment}/logs",
        "deployment_logs",
        "Replica console logs or request logs (`lines`, `follow`, `requests`)",
    ),
    Operation(
        "POST",
        "/api/ui/login-links",
        "create_login_link",
        "A dashboard login link that works once, for a few minutes (`modelport ui`)",
        status=201,
    ),
)


NOT_RUNNING: dict[str, Any] = {  # the view of a stored deployment the daemon runs no replicas for
    "provisioning_state": ProvisioningState.NOT_RUNNING,
    "current_replicas": 0,
    "ready_replicas": 0,
    "desired_replicas": 0,
    "replicas": [],
}


class ManagementApi:
    def __init__(
        self, catalog: Catalog, supervisor: Supervisor, router: Router, base_url: str, sessions: Sessions
    ) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.supervisor = supervisor
        self.router = router
        self.base_url = base_url
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def routes(self) -> list[Route]:
        routes = [Route(op.path, self._endpoint(op), methods=[op.method]) for op in OPERATIONS]
        document = orjson.dumps(openapi_document())
        routes.append(Route("/openapi.json", lambda request: _raw_json(document), methods=["GET"]))
        routes.append(Route("/metrics", self.metrics, methods=["GET"]))
        return routes

    async def metrics(self, request: Request) -> Response:
        """The router's Prometheus metrics (replicas serve their own on their metrics ports)."""
        return Response(self.router.metrics.render(), media_type=PROMETHEUS_TEXT)

    def _endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        handler = getattr(self, op.handler)

        async def endpoint(request: Request) -> Response:
            result = await handler(request)
            return result if isinstance(result, Response) else _raw_json(orjson.dumps(result), op.status)

        return endpoint

    # -- endpoints ----------------------------------------------------------------------------

    async def status(self, request: Request) -> dict[str, Any]:
        records = await asyncio.to_thread(self.catalog.endpoints)
        return {
            "version": __version__,
            "url": self.base_url,
            "workspace": str(self.catalog.ws.root),
            "endpoints": [self.endpoint_view(record, detail=True) for record in records],
        }

    async def list_endpoints(self, request: Request) -> list[dict[str, Any]]:
        return [self.endpoint_view(record) for record in await asyncio.to_thread(self.catalog.endpoints)]

    async def show_endpoint(self, request: Request) -> dict[str, Any]:
        return self.endpoint_view(await self._record(request), detail=True)

    async def create_endpoint(self, request: Request) -> dict[str, Any]:
        body = await _body(request)
        spec, ignored = parse_endpoint(apply_overrides(body["definition"], body["set"]))
        async with self._locks[spec.name]:
            record = await asyncio.to_thread(self.catalog.create_endpoint, spec)
            self.router.publish(record)
        return {**self.endpoint_view(record), "ignored": ignored}

    async def update_endpoint(self, request: Request) -> dict[str, Any]:
        name, body = request.path_params["endpoint"], await _body(request)
        return await self.change_endpoint(name, body["definition"], body["set"])

    async def change_endpoint(self, name: str, definition: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
        """An endpoint update as ``PUT /api/endpoints/{name}`` makes it (the dashboard's traffic
        form too): ``definition`` or else the stored one, with ``overrides`` applied."""
        async with self._locks[name]:
            current = await asyncio.to_thread(self.catalog.endpoint, name)
            base = definition or current.spec.to_dict()
            spec, ignored = parse_endpoint(_same_name(apply_overrides(base, overrides), "name", name))
            record = await asyncio.to_thread(self.catalog.update_endpoint, spec)
            self.router.publish(record)
        return {**self.endpoint_view(record), "ignored": ignored}

    async def delete_endpoint(self, request: Request) -> dict[str, Any]:
        name = request.path_params["endpoint"]
        async with self._locks[name]:
            record = await asyncio.to_thread(self.catalog.delete_endpoint, name)
            self.router.withdraw(name)
            for deployment in record.deployments:
                await self.supervisor.remove(name, deployment.spec.name)
        return self.endpoint_view(record)

    async def get_credentials(self, request: Request) -> dict[str, str]:
        record = await self._record(request)
        return {"primaryKey": record.keys[0], "secondaryKey": record.keys[1]}

    async def regenerate_key(self, request: Request) -> dict[str, Any]:
        name, body = request.path_params["endpoint"], await _json(request)
        async with self._locks[name]:
            record = await asyncio.to_thread(self.catalog.regenerate_key, name, str(body.get("key", "")))
            self.router.publish(record)
        return {"endpoint": name, "regenerated": body["key"]}

    async def create_login_link(self, request: Request) -> dict[str, Any]:
        return {"url": f"{self.base_url}{LOGIN_PATH}?code={self.sessions.login_code()}", "expires_in": LINK_TTL_S}

    # -- deployments --------------------------------------------------------------------------

    async def list_deployments(self, request: Request) -> list[dict[str, Any]]:
        return [self._deployment_view(record) for record in (await self._record(request)).deployments]

    async def show_deployment(self, request: Request) -> dict[str, Any]:
        record = (await self._record(request)).deployment(request.path_params["deployment"])
        return self._deployment_view(record)

    async def create_deployment(self, request: Request) -> dict[str, Any]:
        endpoint, body = request.path_params["endpoint"], await _body(request)
        data = _same_name(apply_overrides(body["definition"], body["set"]), "endpoint_name", endpoint)
        spec, ignored = parse_deployment(data, body["base_dir"])
        async with self._locks[endpoint]:
            current = await asyncio.to_thread(self.catalog.endpoint, endpoint)
            if spec.name in {d.spec.name for d in current.deployments}:
                raise ConflictError(
                    f"deployment {spec.name!r} already exists in endpoint {endpoint!r}; "
                    "use deployment update to change it"
                )
            resolution = await asyncio.to_thread(self.catalog.resolve, spec)
            stored = False
            try:
                await self.supervisor.create(DeploymentRecord(resolution.spec, utcnow(), utcnow()))
                try:
                    record = await asyncio.to_thread(
                        self.catalog.save_deployment, resolution.spec, all_traffic=bool(body.get("all_traffic"))
                    )
                except BaseException:
                    await self.supervisor.remove(endpoint, spec.name)
                    raise
                stored = True
            finally:  # refused: what resolving registered for it goes again
                await asyncio.to_thread(self.catalog.release, resolution, refused=not stored)
            self.router.publish(await asyncio.to_thread(self.catalog.endpoint, endpoint))
        return {**self._deployment_view(record), "ignored": ignored}

    async def update_deployment(self, request: Request) -> dict[str, Any]:
        endpoint, name = request.path_params["endpoint"], request.path_params["deployment"]
        body = await _body(request)
        async with self._locks[endpoint]:
            current = (await asyncio.to_thread(self.catalog.endpoint, endpoint)).deployment(name)
            base = body["definition"] or current.spec.to_dict()
            data = _same_name(_same_name(apply_overrides(base, body["set"]), "endpoint_name", endpoint), "name", name)
            spec, ignored = parse_deployment(data, body["base_dir"])
            resolution = await asyncio.to_thread(self.catalog.resolve, spec)
            applied = False
            try:
                group = self.supervisor.group(endpoint, name)
                if group is None:
                    raise ConflictError(f"deployment {name!r} is not running in this daemon")
                await group.update(DeploymentRecord(resolution.spec, current.created_at, utcnow()))
                applied = True  # its replicas run it now, stored or not
                record = await asyncio.to_thread(self.catalog.save_deployment, resolution.spec)
            finally:  # refused or rolled back: what resolving registered for it goes again
                await asyncio.to_thread(self.catalog.release, resolution, refused=not applied)
            self.router.publish(await asyncio.to_thread(self.catalog.endpoint, endpoint))
        return {**self._deployment_view(record), "ignored": ignored}

    async def delete_deployment(self, request: Request) -> dict[str, Any]:
        endpoint, name = request.path_params["endpoint"], request.path_params["deployment"]
        async with self._locks[endpoint]:
            record = await asyncio.to_thread(self.catalog.delete_deployment, endpoint, name)
            self.router.publish(await asyncio.to_thread(self.catalog.endpoint, endpoint))
            await self.supervisor.remove(endpoint, name)
        return record.to_dict()

    async def deployment_logs(self, request: Request) -> Response:
        endpoint, name = request.path_params["endpoint"], request.path_params["deployment"]
        lines = _int_param(request, "lines", 100)
        paths = self.log_paths(endpoint, name, requests=request.query_params.get("requests") in ("1", "true"))
        if request.query_params.get("follow") in ("1", "true"):
            return StreamingResponse(logs.follow(paths, lines, request.is_disconnected), media_type="text/plain")
        return PlainTextResponse(logs.render(paths, lines))

    def log_paths(self, endpoint: str, name: str, *, requests: bool = False) -> list[Path]:
        """The files ``deployment logs`` reads: the deployment's event log, then each replica's
        console (``requests``: each replica's request log instead); 404 when there are none."""
        folder = self.supervisor.logs_dir / endpoint / name
        group = self.supervisor.group(endpoint, name)
        if group is not None and group.keepers:
            paths = [folder / f"replica-{keeper.slot}.log" for keeper in sorted(group.keepers, key=lambda k: k.slot)]
        else:  # not running (a failed create, say): whatever its replicas left
            paths = sorted(folder.glob("replica-*.log"))
        if requests:  # each replica's request log instead of its console
            paths = [request_log_path(path) for path in paths]
        elif (folder / logs.EVENTS_LOG).is_file():  # what the daemon did to it (scaling), first
            paths = [folder / logs.EVENTS_LOG, *paths]
        if not paths:
            raise NotFoundError(f"deployment {endpoint}/{name} has no logs")
        return paths

    # -- views --------------------------------------------------------------------------------

    async def _record(self, request: Request) -> EndpointRecord:
        return await asyncio.to_thread(self.catalog.endpoint, request.path_params["endpoint"])

    def endpoint_view(self, record: EndpointRecord, detail: bool = False) -> dict[str, Any]:
        """An endpoint as the API shows it (``detail``: with its deployments' views)."""
        view = record.to_dict()
        view["scoring_uri"] = f"{self.base_url}/endpoints/{record.spec.name}/score"
        view["openapi_uri"] = f"{self.base_url}/endpoints/{record.spec.name}/swagger.json"
        if detail:
            view["deployments"] = [self._deployment_view(d) for d in record.deployments]
        return view

    def _deployment_view(self, record: DeploymentRecord) -> dict[str, Any]:
        group = self.supervisor.group(record.spec.endpoint_name, record.spec.name)
        state = group.describe() if group else NOT_RUNNING
        return {**record.to_dict(), **state}


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return json_object(raw, "request body", '{"definition": {...}}') if raw else {}


async def _body(request: Request) -> dict[str, Any]:
    """A definition request: ``definition`` (a mapping or null), ``set`` (a list of KEY=VALUE),
    ``base_dir`` (a folder, the daemon's working folder when absent)."""
    data = await _json(request)
    definition, overrides = data.get("definition"), data.get("set") or []
    if definition is not None and not isinstance(definition, dict):
        raise ValidationError("definition: expected a mapping")
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ValidationError("set: expected a list of KEY=VALUE strings")
    base_dir = data.get("base_dir") or "."
    if not isinstance(base_dir, str) or "\0" in base_dir:
        raise ValidationError("base_dir: expected a folder path (a string)")
    return {**data, "definition": definition or {}, "set": overrides, "base_dir": Path(base_dir)}


def _same_name(data: dict[str, Any], key: str, expected: str) -> dict[str, Any]:
    """``data`` with ``key`` set to the name in the URL; a different one in the definition is refused."""
    given = data.get(key)
    if given not in (None, "", expected):
        raise ValidationError(f"{key}: {given!r} does not match {expected!r} in the request")
    return {**data, key: expected}


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise ValidationError(f"{name}: {text!r} is not a non-negative integer")
    return int(text)


def _raw_json(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="application/json")


# -- OpenAPI -----------------------------------------------------------------------------------

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`OPERATIONS`."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler,
            "parameters": [
                {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                for part in op.path.split("/")
                if part.startswith("{")
            ],
            "responses": {
                str(op.status): {"description": "OK", "content": {"application/json": {}}},
                "400": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
                "422": _ERROR,
            },
        }
        if op.body:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body}"}}},
            }
        if op.handler == "deployment_logs":
            entry["parameters"] += [
                {"name": "lines", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                {
                    "name": "requests",
                    "in": "query",
                    "schema": {"type": "boolean"},
                    "description": "the request logs (JSON lines) instead of the consoles",
                },
            ]
            entry["responses"][str(op.status)] = {"description": "OK", "content": {"text/plain": {}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    endpoint = _definition_request(EndpointSpec)
    deployment = _definition_request(DeploymentSpec)
    deployment["properties"]["all_traffic"] = {"type": "boolean"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelport daemon", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {
                **components([EndpointSpec, DeploymentSpec]),
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "EndpointDefinition": endpoint,
                "DeploymentDefinition": deployment,
                "KeyChoice": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {"key": {"type": "string", "enum": ["primary", "secondary"]}},
                },
            }
        },
    }


def _definition_request(model: type[Definition]) -> dict[str, Any]:
    """A definition request's body: the YAML mapping (``model``'s schema, though keys that ``set``
    or the URL supply may be missing from it), the overrides, and the folder paths start from."""
    return {
        "type": "object",
        "properties": {
            "definition": {
                "anyOf": [{"$ref": f"#/components/schemas/{model.__name__}"}, {"type": "null"}],
                "description": "the YAML definition as a mapping; null (update): the stored one",
            },
            "set": {"type": "array", "items": {"type": "string"}, "description": "KEY.PATH=VALUE overrides"},
            "base_dir": {"type": "string", "description": "folder relative paths start from"},
        },
    }
