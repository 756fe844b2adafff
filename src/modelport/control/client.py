"""Talk to a running daemon's management API: what the CLI (and scripts) use.

The daemon answers errors as ``{"error": "<one line>"}`` with the status of the
:class:`ModelportError` that caused them; the client raises the same kind again, so a refused
definition reads the same from the CLI as from inside the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx

from modelport.core.errors import ConflictError, ModelportError, NotFoundError, ValidationError

ENV_URL = "MODELPORT_URL"
DEFAULT_URL = "http://127.0.0.1:7000"
_KINDS: dict[int, type[ModelportError]] = {400: ValidationError, 404: NotFoundError, 409: ConflictError}


def daemon_url(url: str | None = None) -> str:
    """``url``, else ``$MODELPORT_URL``, else the default daemon address."""
    return (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")


class DaemonClient:
    def __init__(self, url: str | None = None) -> None:
        self.url = daemon_url(url)
        self._http = httpx.Client(base_url=self.url, timeout=None, trust_env=False)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer of ``METHOD /api/<path>``; a ModelportError for an error answer."""
        with closing(self._request(method, path, body, params)) as response:
            response.read()
            return response.json()

    def stream(self, path: str, params: dict[str, Any] | None = None) -> Iterator[bytes]:
        """A text answer chunk by chunk, as the daemon writes it (``logs --follow``)."""
        with closing(self._request("GET", path, None, params)) as response:
            yield from response.iter_bytes()

    def _request(self, method: str, path: str, body: dict[str, Any] | None,
                 params: dict[str, Any] | None) -> httpx.Response:
        try:
            response = self._http.send(self._http.build_request(method, f"/api/{path}", json=body, params=params),
                                       stream=True)
        except httpx.TransportError:
            raise ModelportError(f"no modelport daemon answers at {self.url}; start one with `modelport up` "
                                 f"(or point --url / ${ENV_URL} at it)") from None
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error(response)
        return response

    def close(self) -> None:
        self._http.close()


def _error(response: httpx.Response) -> ModelportError:
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        message = f"the daemon answered {response.status_code}: {response.text[:200]}"
    return _KINDS.get(response.status_code, ModelportError)(message)
