"""Browser sessions for the dashboard: the workspace's token (or a one-time login link) exchanged
for a session cookie, and the :class:`SessionCookie` credential that admits such a browser.

A browser cannot be trusted to keep a bearer token out of reach of scripts, so the token is
typed once (or never: ``modelport ui`` asks the daemon for a login link, a random code that it
accepts once within :data:`LINK_TTL_S`) and the daemon answers with a random session id in a
cookie that scripts cannot read (``HttpOnly``), that no other site's page makes the browser send
(``SameSite=Strict``) and that travels only over TLS when the daemon serves TLS (``Secure``).

Every session holds its own CSRF token, which each of the dashboard's forms carries in a hidden
field and a script sends as ``X-CSRF-Token`` (compared in constant time): a request that only
the cookie vouches for changes nothing. Sessions live in the daemon's memory (a restart signs
everyone out) and remember which token they were made with: rotating the token ends them on
their next request, as it stops the old token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie

from starlette.types import Scope

from modelport.control.auth import BearerToken
from modelport.control.guard import STATE_CHANGING, header

LOGIN_PATH = "/ui/login"
COOKIE = "modelport_session"
CSRF_HEADER = b"x-csrf-token"
SESSION_TTL_S = 12 * 3600.0
LINK_TTL_S = 300.0
ID_BYTES = 32


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    token_digest: bytes  # of the token it was made with: a rotation ends it
    expires: float

    def csrf_matches(self, given: str | bytes) -> bool:
        given = given.encode("latin-1", "replace") if isinstance(given, str) else given
        return bool(given) and hmac.compare_digest(given, self.csrf.encode())


class Sessions:
    """The daemon's browser sessions and unredeemed login links, in memory."""

    def __init__(self, token: BearerToken) -> None:
        self.token = token
        self._sessions: dict[str, Session] = {}
        self._links: dict[str, float] = {}  # code -> expiry

    def login_code(self) -> str:
        """A new single-use code for ``/ui/login?code=``, good for :data:`LINK_TTL_S` seconds."""
        now = time.monotonic()
        self._links = {code: until for code, until in self._links.items() if until > now}
        code = secrets.token_urlsafe(ID_BYTES)
        self._links[code] = now + LINK_TTL_S
        return code

    def redeem(self, code: str) -> Session | None:
        """A session for a code given by :meth:`login_code`, once; None for any other code."""
        until = self._links.pop(code, None)
        if until is None or until <= time.monotonic():
            return None
        return self._open(self.token.current())

    def login(self, token: str) -> Session | None:
        """A session for the workspace's current token; None for anything else."""
        current = self.token.current()
        if not (token and current and hmac.compare_digest(token.encode("latin-1", "replace"), current)):
            return None
        return self._open(current)

    def find(self, scope: Scope) -> Session | None:
        """The live session the request's cookie names, made with the token as it is now."""
        session_id = cookie_value(scope, COOKIE)
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        if session.expires <= time.monotonic() or not hmac.compare_digest(
            session.token_digest, _digest(self.token.current())
        ):
            self._sessions.pop(session.id, None)
            return None
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _open(self, token: bytes) -> Session | None:
        if not token:
            return None
        now = time.monotonic()
        self._sessions = {key: s for key, s in self._sessions.items() if s.expires > now}
        session = Session(
            secrets.token_urlsafe(ID_BYTES), secrets.token_urlsafe(ID_BYTES), _digest(token), now + SESSION_TTL_S
        )
        self._sessions[session.id] = session
        return session


class SessionCookie:
    """A :class:`~modelport.control.auth.Credential` for the management API: a live session, and on
    a state change its CSRF token in ``X-CSRF-Token`` (the dashboard's scripts call the API so)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def admits(self, scope: Scope) -> bool:
        session = self.sessions.find(scope)
        if session is None:
            return False
        return scope["method"] not in STATE_CHANGING or session.csrf_matches(header(scope, CSRF_HEADER))


def cookie_header(session: Session | None, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that stores ``session`` (or, for None, removes the cookie)."""
    value, age = (session.id, int(SESSION_TTL_S)) if session else ("", 0)
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}" + ("; Secure" if secure else "")


def cookie_value(scope: Scope, name: str) -> str | None:
    raw = header(scope, b"cookie").decode("latin-1")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header names no session
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()
