"""Listening sockets bound before anything starts, so a port in use is a one-line error naming it."""

from __future__ import annotations

import socket

from modelport.core.errors import ModelportError


def listen(
    host: str, port: int, *, reuse_port: bool = False, hold_only: bool = False, option: str | None = None
) -> socket.socket:
    """A listening TCP socket on ``host:port`` that child processes can inherit. ``reuse_port``
    lets several sockets (one per process) bind the port, the kernel spreading connections over
    them; ``hold_only`` binds without listening, holding a port that other processes will share;
    ``option`` names the CLI option the port came from in the error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        prefix = f"{option}: " if option else ""
        raise ModelportError(f"{prefix}cannot listen on {host}:{port} ({exc.strerror})") from None
    if not hold_only:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock
