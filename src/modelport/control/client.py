"""Talk to a running daemon's management API: what the CLI (and scripts) use.

The daemon answers errors as ``{"error": "<one line>"}`` with the status of the
:class:`ModelportError` that caused them; the client raises the same kind again, so a refused
definition reads the same from the CLI as from inside the daemon.

Where and with what: the URL given, else ``$MODELPORT_URL``, else the one the workspace's daemon
recorded in ``daemon/daemon.json``, else the default address; the token given, else
``$MODELPORT_TOKEN``, else the workspace's token file — the latter only when the URL is the
workspace's own daemon, so that pointing the CLI elsewhere never hands this workspace's token to
another server. A daemon serving TLS from this workspace is verified against the certificate it
recorded (pinned), whatever name it is reached by.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from modelport.control.auth import ENV_TOKEN, read_token
from modelport.control.binding import DEFAULT_HOST, DEFAULT_PORT, LOOPBACK_NAMES
from modelport.control.rundir import DaemonInfo, read_info
from modelport.core.errors import ConflictError, ModelportError, NotFoundError, ValidationError
from modelport.core.settings import resolve_settings

ENV_URL = "MODELPORT_URL"
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
_KINDS: dict[int, type[ModelportError]] = {400: ValidationError, 404: NotFoundError, 409: ConflictError}


@dataclass(frozen=True)
class Target:
    """A daemon to talk to: its URL, the token to send (if any), how to verify its TLS certificate."""

    url: str
    token: str | None
    verify: ssl.SSLContext | bool


def locate(url: str | None = None, token: str | None = None, workspace: str | os.PathLike[str] | None = None) -> Target:
    """The daemon and credentials for ``url`` (see the module's docstring for the order)."""
    root = resolve_settings(workspace).root
    local = read_info(root)
    chosen = (url or os.environ.get(ENV_URL) or (local.url if local else DEFAULT_URL)).rstrip("/")
    own = local is not None and same_daemon(chosen, local.url)
    token = token or os.environ.get(ENV_TOKEN) or (read_token(root) if own else None)
    return Target(chosen, token, tls_verification(local) if own and local else True)


def same_daemon(a: str, b: str) -> bool:
    """Whether two URLs reach the same listening socket: same scheme and port, and the same host
    or both loopback names."""
    first, second = urlsplit(a), urlsplit(b)
    loopback = {name.strip("[]") for name in LOOPBACK_NAMES}
    hosts = (first.hostname or "", second.hostname or "")
    return (first.scheme, first.port) == (second.scheme, second.port) and (
        hosts[0] == hosts[1] or (hosts[0] in loopback and hosts[1] in loopback)
    )


def tls_verification(info: DaemonInfo) -> ssl.SSLContext | bool:
    """For the workspace's own daemon under TLS: trust exactly the certificate it serves, by
    whatever name it is reached (127.0.0.1 rarely is on the certificate); else the system's CAs."""
    if not info.certfile:
        return True
    context = ssl.create_default_context(cafile=info.certfile)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the served certificate itself is the anchor
    return context


class DaemonClient:
    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        workspace: str | os.PathLike[str] | Path | None = None,
    ) -> None:
        target = locate(url, token, workspace)
        self.url, self.verify, self._token = target.url, target.verify, target.token
        headers = {"authorization": f"Bearer {target.token}"} if target.token else {}
        self._http = httpx.Client(
            base_url=self.url, timeout=None, trust_env=False, headers=headers, verify=target.verify
        )

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The decoded JSON answer of ``METHOD /api/<path>``; a ModelportError for an error answer."""
        with closing(self._request(method, path, body, params)) as response:
            response.read()
            return response.json()

    def stream(self, path: str, params: dict[str, Any] | None = None) -> Iterator[bytes]:
        """A text answer chunk by chunk, as the daemon writes it (``logs --follow``)."""
        with closing(self._request("GET", path, None, params)) as response:
            yield from response.iter_bytes()

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, Any] | None
    ) -> httpx.Response:
        try:
            response = self._http.send(
                self._http.build_request(method, f"/api/{path}", json=body, params=params), stream=True
            )
        except httpx.TransportError:
            raise ModelportError(
                f"no modelport daemon answers at {self.url}; start one with `modelport up` "
                f"(or point --url / ${ENV_URL} at it)"
            ) from None
        if response.status_code >= 400:
            response.read()
            response.close()
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> ModelportError:
        if response.status_code == 401:
            if self._token is None:
                return ModelportError(
                    f"the daemon at {self.url} needs a token and this workspace has none for it: "
                    f"run on the daemon's workspace (--workspace) or set ${ENV_TOKEN} "
                    "(`modelport token` on its workspace prints it)"
                )
            return ModelportError(
                f"the daemon at {self.url} refused the token (rotated? `modelport token` on its "
                f"workspace prints the current one)"
            )
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = f"the daemon answered {response.status_code}: {response.text[:200]}"
        return _KINDS.get(response.status_code, ModelportError)(message)

    def close(self) -> None:
        self._http.close()
