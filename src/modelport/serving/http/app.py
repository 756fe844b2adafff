"""The scoring server's ASGI application: v2 routes, Azure-ML-compatible routes when asked
for, and the one place errors become HTTP responses.

Errors on ``/v2`` paths use the v2 shape ``{"error": ...}``; elsewhere Azure ML's
``{"message": ...}``. A ``ModelportError`` keeps its status (400 for client mistakes); any
other exception is a 500 that is logged and never takes the server down.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from modelport.core.errors import ModelportError
from modelport.core.http_errors import error_response
from modelport.core.request_body import DEFAULT_MAX_BODY
from modelport.serving.http.fast_path import InferFastPath
from modelport.serving.http.observe import Observer, Observing
from modelport.serving.http.v2 import V2Api
from modelport.serving.repository import ModelRepository
from modelport.serving.telemetry import LocalTelemetry, Telemetry

log = logging.getLogger("modelport.serving")


def _error(request: Request, status: int, message: str) -> Response:
    return error_response(status, message, azure=not request.url.path.startswith("/v2"))


async def _on_modelport_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelportError)
    return _error(request, exc.http_status, str(exc))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(request, 500, f"internal error: {type(exc).__name__}: {exc}")


def build_app(
    repository: ModelRepository,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    timeout_s: float | None = None,
    extra_routes: list[BaseRoute] | None = None,
    observing: Observing | None = None,
    telemetry: Telemetry | None = None,
) -> ASGIApp:
    """The Starlette app for every route, fronted by the infer fast path, and by the request log
    and payload collection when the server has them. Statistics and metrics come from
    ``telemetry``: this process's by default."""
    observing = observing or Observing()
    api = V2Api(repository, max_body, timeout_s, telemetry or LocalTelemetry(repository, observing))
    app = InferFastPath(api, _starlette(api.routes() + list(extra_routes or [])))
    if observing.request_log is None and observing.collector is None:
        return app
    return Observer(app, observing)


def _starlette(routes: list[BaseRoute]) -> Starlette:
    return Starlette(
        routes=routes,
        exception_handlers={
            ModelportError: _on_modelport_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
