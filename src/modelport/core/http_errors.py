"""The error kinds only HTTP front ends raise, and the one builder of error responses.

Every front end answers an error as JSON in one of two shapes, as the servers it stands in for
do: ``{"error": "<one line>"}`` (the v2 protocol, the management API) or Azure ML's
``{"message": "<one line>"}`` (``/score`` and the other Azure routes). The scoring server, the
endpoint router and the replicas behind it build both here, so a client sees the same body
whichever of them refused its request.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from modelport.core.errors import ModelportError


class Unauthorized(ModelportError):
    """No valid key: the response asks for a bearer token."""

    http_status = 401
    headers: Mapping[str, str] = {"www-authenticate": "Bearer"}


class RequestTimeout(ModelportError):
    http_status = 408


class PayloadTooLarge(ModelportError):
    http_status = 413


class UnsupportedMediaType(ModelportError):
    http_status = 415


class TooManyRequests(ModelportError):
    """Admission refused: the target has as many requests in flight as it takes."""

    http_status = 429


class UnsupportedEncoding(ModelportError):
    http_status = 501


class BadGateway(ModelportError):
    """What a request was passed on to failed while answering it."""

    http_status = 502


class Unavailable(ModelportError):
    """Nothing is ready to answer the request now (not running, not ready, overloaded)."""

    http_status = 503


def error_response(
    status: int, message: str, *, azure: bool = False, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"error": message}``, or Azure's ``{"message": message}`` when ``azure``."""
    body = orjson.dumps({"message" if azure else "error": message})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def response_of(error: ModelportError, *, azure: bool = False) -> Response:
    """The response for ``error``: its status, its message and its headers (``Unauthorized``'s)."""
    return error_response(error.http_status, str(error), azure=azure, headers=getattr(error, "headers", None))
