"""Open Inference Protocol v2 over HTTP, with Triton's extensions (binary tensors,
classification, model repository, configuration, statistics) and its status codes.

Handlers only translate: the body is read with ``core.request_body.read_body`` (limit, gzip/deflate),
decoded by ``protocol.rest``, run by ``serving.inference.infer`` and encoded back.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.request_body import read_body
from modelport.core.version import __version__
from modelport.protocol.rest import decode_request, encode_response
from modelport.serving import inference
from modelport.serving.http.openapi import openapi_document
from modelport.serving.metrics import CONTENT_TYPE
from modelport.serving.repository import ModelRepository

if TYPE_CHECKING:
    from modelport.serving.telemetry import Telemetry

EXTENSIONS = ["classification", "binary_tensor_data", "model_repository", "model_configuration", "statistics"]
SERVER_NAME = "modelport"
# The headers of a JSON answer, one shared mapping (never changed) so that senders can tell it at once.
JSON_REPLY: Mapping[str, str] = MappingProxyType({"content-type": "application/json"})


class RequestTimeout(ModelportError):
    http_status = 503


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def empty(status: int = 200) -> Response:
    return Response(b"", status_code=status)


class V2Api:
    """The v2 routes over one repository; ``max_body`` and ``timeout_s`` are the server's limits."""

    def __init__(
        self, repository: ModelRepository, max_body: int, timeout_s: float | None, telemetry: Telemetry
    ) -> None:
        self.repository = repository
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.telemetry = telemetry

    def routes(self) -> list[BaseRoute]:
        model = "/v2/models/{model}"
        versioned = "/v2/models/{model}/versions/{version:int}"
        routes: list[BaseRoute] = [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2/models/stats", self.all_stats, methods=["GET"]),
            Route("/v2/repository/index", self.index, methods=["POST"]),
            Route("/v2/repository/models/{model}/load", self.load, methods=["POST"]),
            Route("/v2/repository/models/{model}/unload", self.unload, methods=["POST"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/v2/openapi.json", self.openapi, methods=["GET"]),
        ]
        for prefix in (model, versioned):
            routes += [
                Route(prefix, self.model_metadata, methods=["GET"]),
                Route(prefix + "/ready", self.model_ready, methods=["GET"]),
                Route(prefix + "/infer", self.infer, methods=["POST"]),
                Route(prefix + "/config", self.model_config, methods=["GET"]),
                Route(prefix + "/stats", self.model_stats, methods=["GET"]),
            ]
        return routes

    def _model(self, request: Request):  # noqa: ANN202 - ServedModel
        version = request.path_params.get("version")
        return self.repository.get(request.path_params["model"], None if version is None else str(version))

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())

    async def live(self, request: Request) -> Response:
        return empty()

    async def ready(self, request: Request) -> Response:
        """200, or Triton's 400 with the reason (Triton sends no body; clients read the status)."""
        reasons = self.repository.unready_reasons()
        return json_response({"error": "; ".join(reasons)}, 400) if reasons else empty()

    async def model_metadata(self, request: Request) -> Response:
        return json_response(self._model(request).metadata())

    async def model_ready(self, request: Request) -> Response:
        self._model(request)  # raises 404 unknown / 400 not ready
        return empty()

    async def model_config(self, request: Request) -> Response:
        return json_response(self._model(request).config.to_dict())

    async def model_stats(self, request: Request) -> Response:
        model = self._model(request)
        found = [s for s in await self.telemetry.models() if (s.name, s.version) == (model.name, model.version)]
        return json_response({"model_stats": [stats.to_dict() for stats in found]})

    async def all_stats(self, request: Request) -> Response:
        return json_response({"model_stats": [stats.to_dict() for stats in await self.telemetry.models()]})

    async def metrics(self, request: Request) -> Response:
        return Response(await self.telemetry.exposition(), media_type=CONTENT_TYPE)

    async def index(self, request: Request) -> Response:
        body = await read_body(request, self.max_body)
        ready_only = bool(_json_object(body, "repository index").get("ready", False))
        return json_response(self.repository.index(ready_only))

    async def load(self, request: Request) -> Response:
        _json_object(await read_body(request, self.max_body), "load")
        await asyncio.to_thread(self.repository.load, request.path_params["model"])
        return empty()

    async def unload(self, request: Request) -> Response:
        _json_object(await read_body(request, self.max_body), "unload")
        await asyncio.to_thread(self.repository.unload, request.path_params["model"])
        return empty()

    async def infer(self, request: Request) -> Response:
        version = request.path_params.get("version")
        body = await read_body(request, self.max_body)
        payload, headers = await self.infer_bytes(
            request.path_params["model"], None if version is None else str(version), request.headers, body
        )
        return Response(payload, headers=headers)

    async def infer_bytes(
        self, name: str, version: str | None, headers: Mapping[str, str], body: bytes
    ) -> tuple[bytes, Mapping[str, str]]:
        """The whole inference over raw bytes: shared by the routed handler and the fast path. The
        reply headers are :data:`JSON_REPLY` itself for a plain JSON answer."""
        model = self.repository.get(name, version)
        with inference.admitted(model):
            decoded = decode_request(body, headers.get("inference-header-content-length"))
            if self.timeout_s is None:
                result = await inference.infer(model, decoded)
            else:
                try:
                    result = await asyncio.wait_for(inference.infer(model, decoded), self.timeout_s)
                except asyncio.TimeoutError:
                    raise RequestTimeout(f"Request timeout expired after {self.timeout_s * 1000:.0f} ms") from None
            payload, header_length = encode_response(result, decoded.outputs, decoded.binary_data_output)
        accept = headers.get("accept-encoding")
        encoding = _pick_encoding(accept) if accept else None
        if header_length is None and encoding is None:
            return payload, JSON_REPLY
        reply = {"content-type": "application/json"}
        if header_length is not None:
            reply = {"content-type": "application/octet-stream", "inference-header-content-length": str(header_length)}
        if encoding == "gzip":
            payload = gzip.compress(payload, compresslevel=1)
        elif encoding == "deflate":
            payload = zlib.compress(payload, 1)
        if encoding:
            reply["content-encoding"] = encoding
        return payload, reply


def _json_object(body: bytes, what: str) -> dict:
    """Repository calls take an optional JSON object body (tritonclient posts an empty string)."""
    if not body.strip() or body.strip() == b'""':
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationError(f"{what}: body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{what}: body must be a JSON object")
    return data


def _pick_encoding(accept: str) -> str | None:
    """The best of gzip/deflate that ``Accept-Encoding`` allows (q > 0), else None (identity)."""
    weights: dict[str, float] = {}
    for part in accept.split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weights[coding.strip().lower()] = quality
    candidates = [(weights.get(c, 0.0), c) for c in ("gzip", "deflate")]
    best_q, best = max(candidates)
    return best if best_q > 0 else None
