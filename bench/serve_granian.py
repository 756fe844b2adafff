"""The v2 infer route of ``modelport serve`` over granian's native HTTP core (RSGI), one process,
to measure against the uvicorn front end in turns (``bench/alternate.py``):

    python bench/serve_granian.py REPO PORT

REPO is a Triton-layout model repository (what ``modelport serve REPO`` takes). Requests to
``/v2/models/{m}[/versions/{v}]/infer`` go to the same ``V2Api.infer_bytes`` the scoring server's
infer fast path calls (decoding, batching, model, encoding); every other request gets 404. It is a
measuring rig, not a front end: none of the scoring server's connection limits, load shedding,
other routes or request log. Needs ``pip install granian`` (2.8); binds 127.0.0.1 only.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import orjson

from modelport.core.errors import ModelportError
from modelport.serving.http.fast_path import infer_target
from modelport.serving.http.observe import Observing
from modelport.serving.http.v2 import V2Api
from modelport.serving.repository import ModelRepository
from modelport.serving.targets import resolve_targets
from modelport.serving.telemetry import LocalTelemetry


def rsgi_app(api: V2Api) -> Any:
    """An RSGI application answering the infer route as the fast path does."""

    async def app(scope: Any, protocol: Any) -> None:
        target = infer_target(scope.path) if scope.method == "POST" else None
        if target is None:
            protocol.response_empty(404, [])
            return
        body = await protocol()
        try:
            payload, reply = await api.infer_bytes(target[0], target[1], scope.headers, body)
            status = 200
        except ModelportError as exc:
            status, payload, reply = (
                exc.http_status,
                orjson.dumps({"error": str(exc)}),
                {"content-type": "application/json"},
            )
        protocol.response_bytes(status, list(reply.items()), payload)

    return app


async def main(repository_path: str, port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    repository = ModelRepository(resolve_targets([repository_path], lambda: None))  # a folder: no workspace
    repository.load_all()
    api = V2Api(repository, 100 * 1024 * 1024, None, LocalTelemetry(repository, Observing()))
    gc.collect()
    gc.freeze()  # as modelport serve does once its models are loaded
    server = Server(
        rsgi_app(api), address="127.0.0.1", port=port, interface=Interfaces.RSGI, websockets=False, log_enabled=False
    )
    await server.serve()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
