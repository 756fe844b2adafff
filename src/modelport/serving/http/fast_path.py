"""The inference route without the framework in the way.

``POST /v2/models/{m}[/versions/{v}]/infer`` is the request path that matters for speed, so it
is recognised with string operations and answered straight over ASGI, skipping Starlette's
middleware stack and its regex router (a third of the server's time per request when measured
with py-spy at 64 connections). Everything else — and any infer path that does not parse
cleanly — goes to the Starlette app, which serves the same handler for completeness.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.core.errors import ModelportError
from modelport.core.request_body import read_asgi
from modelport.serving.http.v2 import JSON_REPLY, V2Api

log = logging.getLogger("modelport.serving")
_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
# The request headers the infer path reads (ASGI header names are lower case): only these are
# decoded, instead of a dictionary of every header per request.
_READ = {
    name.encode(): name
    for name in ("content-length", "content-encoding", "inference-header-content-length", "accept-encoding")
}
_JSON_HEADER = (b"content-type", b"application/json")


def infer_target(path: str) -> tuple[str, str | None] | None:
    """``(model, version)`` of an infer path, or None when it is not one."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0] and parts[0] != "stats":
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2].isdigit():
        return parts[0], str(int(parts[2]))
    return None


class InferFastPath:
    def __init__(self, api: V2Api, app: ASGIApp) -> None:
        self.api = api
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = infer_target(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        headers = {}
        for key, value in scope["headers"]:
            name = _READ.get(key)
            if name is not None:
                headers[name] = value.decode("latin-1")
        try:
            body = await read_asgi(
                receive, headers.get("content-length"), headers.get("content-encoding"), self.api.max_body
            )
            payload, reply = await self.api.infer_bytes(target[0], target[1], headers, body)
            status = 200
        except ClientDisconnect:
            return
        except ModelportError as exc:
            status, payload, reply = exc.http_status, orjson.dumps({"error": str(exc)}), JSON_REPLY
        except Exception as exc:  # a bug: answer, log, keep serving
            log.exception("unhandled error on POST %s", scope["path"])
            status = 500
            payload = orjson.dumps({"error": f"internal error: {type(exc).__name__}: {exc}"})
            reply = JSON_REPLY
        if reply is JSON_REPLY:
            raw = [_JSON_HEADER, (b"content-length", b"%d" % len(payload))]
        else:
            raw = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in reply.items()]
            raw.append((b"content-length", b"%d" % len(payload)))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})
