"""What every dashboard request passes before a page sees it, so a page added later is closed
until someone opens it on purpose.

In order: a state change from another origin is refused (403, the management API's own check);
without a live session a page read is sent to the login page (303) and anything else is refused
(401); a form is read bounded (413 past :data:`MAX_FORM`) and must carry the session's CSRF token
(403) — the login form, sent before there is a session, carries the random value of a short-lived
cookie the login page set instead (double submit). The session and the form are handed to the
page in ``request.state``. Every answer gets the headers of :data:`SECURITY_HEADERS`: no script,
style or image from anywhere but the daemon (a page may set its own policy: the Swagger page
allows ``data:`` images as well, still nothing from elsewhere), no framing, no referrer to other origins (a login
link's code never leaves in one), and nothing cached.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.control.guard import cross_origin, read_bounded, refuse
from modelport.control.sessions import LOGIN_PATH, Sessions, cookie_value

MAX_FORM = 64 * 1024
LOGIN_NONCE = "modelport_login"
PUBLIC_PREFIXES = ("/ui/static/",)
READS = frozenset({"GET", "HEAD"})
POLICY = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
CSP = b"content-security-policy"
SECURITY_HEADERS = [
    (CSP, POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make browsers send `Origin: null` on forms
    (b"cache-control", b"no-store"),
]


class DashboardGuard:
    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        foreign = cross_origin(scope)
        if foreign is not None:
            await refuse(send, 403, foreign, close=True)
            return
        path, method = scope["path"], scope["method"]
        session = self.sessions.find(scope)
        login = path == LOGIN_PATH
        if session is None and not login and not path.startswith(PUBLIC_PREFIXES):
            if method in READS:
                await send(
                    {"type": "http.response.start", "status": 303, "headers": [(b"location", LOGIN_PATH.encode())]}
                )
                await send({"type": "http.response.body", "body": b""})
            else:
                await refuse(send, 401, "sign in first: the dashboard needs the workspace's token (`modelport ui`)")
            return
        state = scope.setdefault("state", {})
        state["session"] = session
        if method not in READS:
            body = await read_bounded(receive, MAX_FORM)
            if body is None:
                await refuse(send, 413, f"form: over {MAX_FORM} bytes", close=True)
                return
            form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
            expected = session.csrf if session is not None else cookie_value(scope, LOGIN_NONCE) or ""
            given = form.get("csrf", "").encode("utf-8", "replace")
            if not (given and expected and hmac.compare_digest(given, expected.encode())):
                await refuse(send, 403, "form: the CSRF token is missing or wrong (reload the page and try again)")
                return
            state["form"] = form
        await self.app(scope, receive, send)


def _with_headers(send: Send) -> Send:
    """Adds :data:`SECURITY_HEADERS`; a page that sets its own CSP (the Swagger page) keeps it."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            own = any(name.lower() == CSP for name, _ in headers)
            message = {**message, "headers": [*headers, *(h for h in SECURITY_HEADERS if not (own and h[0] == CSP))]}
        await send(message)

    return sending
