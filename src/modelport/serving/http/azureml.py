"""Azure ML compatible routes: ``GET /`` (health), ``/score`` and ``/swagger.json``, as azmlinfsrv serves them.

``/score`` either runs a scoring script (:class:`~modelport.serving.scoring_script.ScriptHost`)
or, with no script, scores a repository model directly ("no-code", like Azure ML's MLflow
deployments): ``{"input_data": ...}`` or ``{"data": ...}`` becomes an ``InferenceRequest``.

Every route answers every verb itself so that a wrong one gets azmlinfsrv's JSON 405, and stamps
the id headers azmlinfsrv adds: ``x-request-id`` (a new UUID when absent), ``x-ms-request-id``,
``x-ms-client-request-id`` and ``TraceId``; an id longer than 100 characters is refused with 431.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from modelport.core.errors import ModelportError, NotFoundError, ValidationError
from modelport.core.json_body import json_object
from modelport.core.request_body import DEFAULT_MAX_BODY, read_body
from modelport.monitor.trace import current_trace
from modelport.protocol.datatypes import bf16_to_fp32, dtype_of, fp32_to_bf16
from modelport.protocol.types import InferenceRequest, InferInput, InferOutput
from modelport.serving.inference import admitted, infer
from modelport.serving.repository import ModelRepository
from modelport.serving.scoring_script import (
    FAILED_HEADER,
    INTERNAL_ERROR_MESSAGE,
    ScoreRequest,
    ScoreResponse,
    ScriptHost,
)
from modelport.serving.script_swagger import JSON_TYPE, UNDECORATED_SCHEMA, SwaggerNotFound, build_swagger

log = logging.getLogger(__name__)

HEADER_LIMIT = 100
METHOD_NOT_ALLOWED = "The method is not allowed for the requested URL."

Handler = Callable[[Request, str], Awaitable[Response]]
"""A route's work: the request and its ``x-request-id`` → the response (ids are added after)."""


def azureml_routes(
    host: ScriptHost | None,
    repository: ModelRepository | None,
    default_model: str | None,
    max_body: int = DEFAULT_MAX_BODY,
) -> list[BaseRoute]:
    """The azmlinfsrv routes: ``/`` always; ``/score`` and ``/swagger.json`` for a script (``host``)
    or, without one, for no-code scoring of ``default_model`` in ``repository`` (the only model
    when None). A ``/score`` body over ``max_body`` bytes is refused with 413, before any of it is
    read when its Content-Length says so."""
    routes: list[BaseRoute] = [Route("/", _Endpoint(_health, {"GET", "HEAD"}))]
    if host is not None:
        score, swagger = _script_score(host, max_body), _script_swagger(host)
    elif repository is not None:
        scorer = _NoCodeScorer(repository, _served_model(repository, default_model), max_body)
        score, swagger = scorer.score, _no_code_swagger
    else:
        return routes
    routes.append(Route("/score", _Endpoint(score, {"GET", "POST", "OPTIONS"})))
    routes.append(Route("/swagger.json", _Endpoint(swagger, {"GET", "HEAD"})))
    return routes


class _Endpoint:
    """An ASGI endpoint (so Starlette routes every verb to it) applying azmlinfsrv's per-request rules."""

    def __init__(self, handler: Handler, methods: set[str]) -> None:
        self._handler = handler
        self._methods = frozenset(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ids, error = _request_ids(request.headers)
        if error is not None:
            response = _message(431, error)
        elif request.method not in self._methods:
            response = _message(405, METHOD_NOT_ALLOWED)
        else:
            try:
                response = await self._handler(request, dict(ids)["x-request-id"])
            except Exception:  # azmlinfsrv's catch-all: log it, answer a fixed 500
                log.exception("%s %s failed", request.method, request.url.path)
                response = _message(500, INTERNAL_ERROR_MESSAGE)
        for name, value in ids:
            response.headers[name] = value  # after run(), so a script cannot overwrite them
        trace_id = request.headers.get("traceid")
        if trace_id is not None:
            response.headers.append("TraceId", trace_id)
        await response(scope, receive, send)


def _new_request_id() -> str:
    """A fresh id, which the request log and payload collection then record too."""
    request_id = str(uuid.uuid4())
    trace = current_trace.get()
    if trace is not None and not trace.request_id:
        trace.request_id = request_id
    return request_id


def _request_ids(headers: Headers) -> tuple[list[tuple[str, str]], str | None]:
    """The id headers to echo, and the 431 reason when an id is too long (azmlinfsrv's rules).

    ``x-ms-request-id`` is deprecated: when absent it is filled from the client request id, else
    the request id; when present it also stands in for a missing ``x-ms-client-request-id``.
    """
    request_id = headers.get("x-request-id") or _new_request_id()
    if len(request_id) > HEADER_LIMIT:
        return [], f"x-request-id must not exceed {HEADER_LIMIT} characters"
    ids = [("x-request-id", request_id)]
    legacy = headers.get("x-ms-request-id", "")
    client = headers.get("x-ms-client-request-id", "")
    if legacy:
        client = client or legacy
    else:
        legacy = client or request_id
    if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
        return ids, f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters"
    ids.append(("x-ms-request-id", legacy))
    if client:
        ids.append(("x-ms-client-request-id", client))
    return ids, None


def _message(status: int, message: str) -> Response:
    """azmlinfsrv's error body ``{"message": ...}``."""
    body = json.dumps({"message": message})
    return Response(body, status_code=status, media_type=JSON_TYPE, headers={FAILED_HEADER: "False"})


def _json(document: Any) -> Response:
    return Response(orjson.dumps(document), media_type=JSON_TYPE)


async def _health(request: Request, request_id: str) -> Response:
    return Response("Healthy", media_type="text/plain")


# --- scoring script -------------------------------------------------------------------------------


def _script_score(host: ScriptHost, max_body: int) -> Handler:
    async def score(request: Request, request_id: str) -> Response:
        try:
            body = await read_body(request, max_body, decode=False)  # the script gets the bytes as sent
        except ModelportError as exc:
            return _message(exc.http_status, str(exc))
        headers = [(name.title(), value) for name, value in request.headers.items()]
        client = request.client.host if request.client else None
        result = await host.call(ScoreRequest(request.method, str(request.url), headers, body, client))
        return _starlette_response(result)

    return score


def _starlette_response(result: ScoreResponse) -> Response:
    if isinstance(result.body, bytes):
        response: Response = Response(result.body, status_code=result.status)
    else:
        response = StreamingResponse(result.body, status_code=result.status)
    for name, value in result.headers:
        response.headers.append(name, value)
    return response


def _script_swagger(host: ScriptHost) -> Handler:
    async def swagger(request: Request, request_id: str) -> Response:
        try:
            return _json(host.swagger(request.query_params.get("version")))
        except SwaggerNotFound as exc:
            return _message(404, str(exc))

    return swagger


async def _no_code_swagger(request: Request, request_id: str) -> Response:
    try:
        return _json(build_swagger(request.query_params.get("version"), UNDECORATED_SCHEMA, UNDECORATED_SCHEMA))
    except SwaggerNotFound as exc:
        return _message(404, str(exc))


# --- no-code scoring ------------------------------------------------------------------------------


def _served_model(repository: ModelRepository, default_model: str | None) -> str:
    names = repository.names
    if default_model is not None:
        if default_model not in names:
            raise NotFoundError(f"default_model: {default_model!r} is not in the repository ({', '.join(names)})")
        return default_model
    if len(names) != 1:
        raise ValidationError(
            f"default_model: the repository holds {len(names)} models ({', '.join(names)}); name the one /score serves"
        )
    return names[0]


class _NoCodeScorer:
    """``POST /score`` for a repository model without a script: JSON payload → v2 inference → JSON."""

    def __init__(self, repository: ModelRepository, model: str, max_body: int) -> None:
        self._repository = repository
        self._model = model
        self._max_body = max_body

    async def score(self, request: Request, request_id: str) -> Response:
        if request.method == "OPTIONS":
            return Response(b"", headers={FAILED_HEADER: "False"})
        if request.method != "POST":
            return _message(405, METHOD_NOT_ALLOWED)
        try:
            payload = json_object(await read_body(request, self._max_body), "body", '{"input_data": [[...]]}')
            model = self._repository.get(self._model)
            inputs = _payload_inputs(payload, model.metadata()["inputs"])
            with admitted(model):
                result = await infer(model, InferenceRequest(request_id, inputs), split=True)  # a table of any length
        except ModelportError as exc:
            return _message(exc.http_status, str(exc))
        return Response(_encode_outputs(result.outputs), media_type=JSON_TYPE)


def _payload_inputs(payload: dict[str, Any], specs: list[dict[str, Any]]) -> list[InferInput]:
    """The model inputs in an Azure ML / MLflow payload, cast to the datatypes in ``specs`` (v2 metadata).

    ``input_data`` (or ``data``) holds a list (the model's only input), a dict of named tensors,
    or a split DataFrame ``{"columns", "index", "data"}``: columns that name the model's inputs
    are one input each, otherwise the rows are the only input.
    """
    field = "input_data" if "input_data" in payload else "data" if "data" in payload else None
    if field is None:
        raise ValidationError(f'body: expected "input_data" (or "data"), got keys {sorted(payload)}')
    value = payload[field]
    by_name = {spec["name"]: spec for spec in specs}
    if isinstance(value, list):
        named = {_only_input(specs, field): value}
    elif isinstance(value, dict) and value and not set(value) <= set(by_name) and {"columns", "data"} <= set(value):
        named = _frame_columns(value, specs, field)
    elif isinstance(value, dict):
        named = value
    else:
        raise ValidationError(
            f"{field}: expected a list, a dict of named tensors or a split DataFrame, got {type(value).__name__}"
        )
    inputs = []
    for name, tensor in named.items():
        spec = by_name.get(name)
        if spec is None:
            raise ValidationError(f"{field}[{name!r}]: not an input of the model (it takes {', '.join(by_name)})")
        inputs.append(_tensor(tensor, spec, f"{field}[{name!r}]"))
    return inputs


def _only_input(specs: list[dict[str, Any]], field: str) -> str:
    if len(specs) != 1:
        names = ", ".join(spec["name"] for spec in specs)
        raise ValidationError(f"{field}: the model takes {len(specs)} inputs ({names}); send a dict of named tensors")
    return str(specs[0]["name"])


def _frame_columns(frame: dict[str, Any], specs: list[dict[str, Any]], field: str) -> dict[str, Any]:
    columns, rows = frame["columns"], frame["data"]
    if not isinstance(columns, list) or not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ValidationError(f'{field}: a split DataFrame needs "columns" (a list) and "data" (a list of rows)')
    ranks = {spec["name"]: len(spec["shape"]) for spec in specs}
    if len(set(columns)) != len(columns) or set(columns) != set(ranks):
        return {_only_input(specs, f"{field}.columns"): rows}
    named: dict[str, list[Any]] = {name: [] for name in columns}
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValidationError(f"{field}.data[{index}]: has {len(row)} values for {len(columns)} columns")
        for name, cell in zip(columns, row):
            for _ in range(ranks[name] - 1):  # one value per row; the input's other dims are 1
                cell = [cell]
            named[name].append(cell)
    return named


def _tensor(value: Any, spec: dict[str, Any], where: str) -> InferInput:
    """``value`` as the input's datatype: numbers are cast, BYTES elements become UTF-8 bytes."""
    datatype = spec["datatype"]
    try:
        if datatype == "BYTES":
            array = np.vectorize(_utf8, otypes=[object])(np.asarray(value, dtype=object))
        elif datatype == "BF16":
            array = fp32_to_bf16(np.asarray(value, dtype=np.float32))
        else:
            array = np.asarray(value, dtype=dtype_of(datatype))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(f"{where}: cannot be read as a {datatype} tensor ({exc})") from None
    return InferInput(spec["name"], datatype, tuple(array.shape), array)


def _utf8(element: Any) -> Any:
    return element.encode() if isinstance(element, str) else element


def _encode_outputs(outputs: list[InferOutput]) -> bytes:
    """One output → its rows as JSON; several → ``{name: rows}``. BF16 as floats, BYTES as text."""
    values = {out.name: bf16_to_fp32(out.data) if out.datatype == "BF16" else out.data for out in outputs}
    document = next(iter(values.values())) if len(values) == 1 else values
    return orjson.dumps(document, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
