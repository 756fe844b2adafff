"""Where the daemon listens (``--host``, ``--port``, TLS) and the names it answers to.

Loopback is the default and needs nothing more. Any other address puts the management API and
the endpoints on the network, where a bearer token sent in clear text is as good as none, so
it is refused unless the daemon serves TLS (``--tls-certfile``/``--tls-keyfile``) or the user
states with ``--insecure-expose`` that something else protects the traffic (a TLS-terminating
proxy, a private network). Replicas stay on loopback whatever the daemon binds.

The names a request may carry in its ``Host`` header are the loopback names, the bind address and
the ``--allowed-host`` values, each on the daemon's port unless given with one: a page on another
site that points its own DNS name at 127.0.0.1 (DNS rebinding) sends its name, and is refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ValidationError

DEFAULT_PORT = 7000
DEFAULT_HOST = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}  # noqa: S104 - what a wildcard bind is reached by locally


@dataclass(frozen=True)
class Binding:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure_expose: bool = False

    def check(self) -> None:
        """A ValidationError naming the option when this binding is refused."""
        if (self.certfile is None) != (self.keyfile is None):
            raise ValidationError("--tls-certfile/--tls-keyfile: give both or neither")
        for option, path in (("--tls-certfile", self.certfile), ("--tls-keyfile", self.keyfile)):
            if path is not None and not path.is_file():
                raise ValidationError(f"{option}: {path} is not a readable file")
        if not is_loopback(self.host) and self.certfile is None and not self.insecure_expose:
            raise ValidationError(
                f"--host {self.host}: not a loopback address, so the management API and the "
                "endpoints would be open to the network; serve TLS with --tls-certfile and "
                "--tls-keyfile, or pass --insecure-expose when something else protects the traffic"
            )
        for entry in self.allowed_hosts:
            name, port = split_host(entry)
            if not name or any(char in name for char in "/@ ") or port == 0:
                raise ValidationError(f"--allowed-host: {entry!r} is not HOST or HOST:PORT")

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    @property
    def url(self) -> str:
        """The address local clients reach the daemon at."""
        host = _WILDCARDS.get(self.host) or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{host}:{self.port}"

    def served(self) -> frozenset[tuple[str, int]]:
        """The (host, port) pairs a request's ``Host`` header may name, host names lowercase."""
        bound = f"[{self.host}]" if ":" in self.host else self.host
        pairs = {(name.lower(), self.port) for name in (*LOOPBACK_NAMES, bound)}
        for entry in self.allowed_hosts:
            name, port = split_host(entry)
            pairs.add((name.lower(), port or self.port))
        return frozenset(pairs)

    def args(self) -> list[str]:
        """The ``modelport up`` options that give this binding (for the background process)."""
        args = ["--host", self.host, "--port", str(self.port)]
        for entry in self.allowed_hosts:
            args += ["--allowed-host", entry]
        if self.certfile and self.keyfile:
            args += ["--tls-certfile", str(self.certfile), "--tls-keyfile", str(self.keyfile)]
        return args + (["--insecure-expose"] if self.insecure_expose else [])


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` (``[V6]:PORT`` for IPv6) as (host, port or None); port 0 when it is not a number."""
    if text.startswith("["):
        host, _, rest = text.partition("]")
        host, port = host + "]", rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if port is None:
        return host, None
    return host, int(port) if port.isdigit() and 0 < int(port) < 65536 else 0
