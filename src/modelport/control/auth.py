"""The management API's credential: one random token per workspace, in ``daemon/token``.

``modelport up`` creates the token once (0600 inside the 0700 run folder) and every later start
reuses it, so the CLI and the SDK, run by the same user on the same workspace, read it from there
without being told anything; other clients get it from ``modelport token`` (or ``$MODELPORT_TOKEN``).
Rotating writes a new file beside the old one and renames it over it; the running daemon checks
the file's identity on every management request, so the old token stops working at once and no
restart is needed.

The dashboard plugs in as one more :class:`Credential`, with no change to the routes
(:mod:`modelport.control.sessions`): its login page takes the token once (or a one-time link from
``modelport ui``) and answers with a session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
under TLS, holding a random session id the daemon keeps in memory). ``SessionCookie`` admits a
request whose session is live and, on POST/PUT/PATCH/DELETE, whose ``X-CSRF-Token`` header equals
the session's CSRF token (compared in constant time). The guard accepts a request when any of its
credentials admits it, and its ``Host``/``Origin``/``Sec-Fetch-Site`` and content-type checks run
before any of them, for the cookie as for the bearer token; rotating the token ends the sessions
made with the old one.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Protocol

from starlette.types import Scope

from modelport.control.rundir import private_run_dir, run_dir
from modelport.core.errors import ModelportError

ENV_TOKEN = "MODELPORT_TOKEN"
TOKEN_BYTES = 32
PRIVATE_FILE = 0o600


def token_path(root: Path) -> Path:
    return run_dir(root) / "token"


def read_token(root: Path) -> str | None:
    """The workspace's token, or None when there is none this user may read."""
    try:
        return token_path(root).read_text().strip() or None
    except OSError:
        return None


def ensure_token(root: Path) -> str:
    """The workspace's token, made now if it has none. A token file others could read (made by
    hand, or copied with its mode lost) is replaced: it may have been read already."""
    path = token_path(root)
    private_run_dir(root)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        token = _write_new(path, replace=False)
        return token if token is not None else ensure_token(root)  # another process made it first
    except OSError as exc:
        raise ModelportError(f"token: cannot read {path} ({exc.strerror})") from None
    token = read_token(root)
    if token is None or mode & 0o077:
        return rotate_token(root)
    return token


def rotate_token(root: Path) -> str:
    """A new token in place of the old one, atomically (readers see the old file or the new one)."""
    private_run_dir(root)
    token = _write_new(token_path(root), replace=True)
    assert token is not None
    return token


def _write_new(path: Path, *, replace: bool) -> str | None:
    """A fresh token written to a private temporary file, then renamed over ``path`` (``replace``)
    or linked to it only if ``path`` does not exist yet (None then: someone else was first)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    temporary = path.with_name(f".token-{secrets.token_hex(4)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return None
    except OSError as exc:
        raise ModelportError(f"token: cannot write {path} ({exc.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return token


class Credential(Protocol):
    """One way a management request proves it comes from the workspace's owner."""

    def admits(self, scope: Scope) -> bool: ...


class BearerToken:
    """``Authorization: Bearer <token>`` against the token file as it is now. The file is read
    again whenever its inode, size or mtime changes (one stat per request), so a rotation takes
    effect on the next request; a missing or empty file admits nobody."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int, int] | None = None
        self._token = b""

    def admits(self, scope: Scope) -> bool:
        given = _bearer(scope)
        expected = self.current()
        return bool(given and expected) and hmac.compare_digest(given, expected)

    def current(self) -> bytes:
        """The token as the file holds it now (empty when there is none)."""
        try:
            info = os.stat(self.path)
            identity = (info.st_ino, info.st_size, info.st_mtime_ns)
            if identity != self._identity:
                self._token = self.path.read_bytes().strip()
                self._identity = identity
        except OSError:
            self._identity, self._token = None, b""
        return self._token


def _bearer(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            return credentials.strip() if scheme.lower() == b"bearer" else b""
    return b""
