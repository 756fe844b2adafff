"""Swagger UI for each endpoint's OpenAPI document, served by the daemon itself.

Swagger UI's own files come from the ``swagger-ui-bundle`` package (its ``dist`` files, vendored
there), mounted at ``/ui/swagger/`` behind the session like every page; ``static/swagger.js``
starts it (no inline script), with no validator badge (that would ask validator.swagger.io). The
document is the endpoint's ``/swagger.json``, fetched through the router in-process with the
endpoint's key (as the Test panel sends), with its server set to the endpoint's scoring base on
this daemon, so "Try it out" calls the endpoint here and never another origin. The page gets a
CSP of its own: the dashboard's, with ``data:`` images (Swagger UI's stylesheet draws its icons
so); that page alone is not counted in the dashboard's JavaScript budget (Swagger UI is ~1 MB).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from modelport.control.catalog import Catalog
from modelport.core.errors import ModelportError
from modelport.dashboard.guard import POLICY
from modelport.dashboard.render import Render
from modelport.routing.router import PREFIX

POLICY_WITH_ICONS = POLICY + "; img-src 'self' data:"
TIMEOUT_S = 30.0


class DocumentError(ModelportError):
    """The endpoint did not answer its OpenAPI document (no deployment, or it failed)."""

    http_status = 502


class SwaggerPages:
    def __init__(self, catalog: Catalog, router: ASGIApp, render: Render) -> None:
        self.catalog = catalog
        self.router = router
        self.render = render

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/ui/endpoints/{endpoint}/swagger", self.page, methods=["GET"]),
            Route("/ui/endpoints/{endpoint}/openapi.json", self.document, methods=["GET"]),
            Mount("/ui/swagger", StaticFiles(directory=swagger_ui_path), name="swagger"),
        ]

    async def page(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        await asyncio.to_thread(self.catalog.endpoint, name)  # 404 for an unknown endpoint
        answer = self.render(request, "swagger.html", {"name": name}, title=f"Endpoint {name}: OpenAPI")
        answer.headers["content-security-policy"] = POLICY_WITH_ICONS
        return answer

    async def document(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        record = await asyncio.to_thread(self.catalog.endpoint, name)
        key = record.keys[0] if record.spec.auth_mode == "key" else None
        return JSONResponse(served_here(await fetch_document(self.router, name, key), name))


async def fetch_document(router: ASGIApp, endpoint: str, key: str | None) -> dict[str, Any]:
    """``GET /endpoints/<endpoint>/swagger.json`` through ``router``, as a client would ask it."""
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    transport = httpx.ASGITransport(app=router, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon", timeout=TIMEOUT_S) as client:
        answer = await client.get(f"{PREFIX}{endpoint}/swagger.json", headers=headers)
    try:
        document = answer.json()
    except ValueError:
        document = None
    if answer.status_code != 200 or not isinstance(document, dict):
        raise DocumentError(f"endpoint {endpoint!r} did not answer its OpenAPI document ({answer.status_code})")
    return document


def served_here(document: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """``document`` with its server set to ``/endpoints/<endpoint>`` on this daemon: Swagger 2.0's
    ``basePath`` (and no ``host``: the page's own), OpenAPI 3's ``servers``."""
    base = f"{PREFIX}{endpoint}"
    if "swagger" in document:
        rest = {key: value for key, value in document.items() if key not in ("host", "schemes")}
        return {**rest, "basePath": base}
    return {**document, "servers": [{"url": base}]}
