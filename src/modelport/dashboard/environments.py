"""The dashboard's environment pages: every environment's latest version, and one environment's
versions with their spec file and whether their virtualenv is built.

They read :class:`EnvironmentRegistry` as ``environment list|versions|show`` do, so each shows what
``--output json`` prints; building stays with ``environment build`` (minutes of pip, not a click).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelport.dashboard.render import Render
from modelport.registry.environments import EnvironmentRegistry


class EnvironmentPages:
    def __init__(self, environments: EnvironmentRegistry, render: Render) -> None:
        self.environments = environments
        self.render = render

    def routes(self) -> list[Route]:
        return [
            Route("/ui/environments", self.list_page, methods=["GET"]),
            Route("/ui/environments/{name}", self.environment_page, methods=["GET"]),
        ]

    async def list_page(self, request: Request) -> Response:
        infos = await asyncio.to_thread(self.environments.list)
        listed = [info.to_dict() for info in infos]
        return self.render(request, "environments.html", {"environments": listed}, title="Environments")

    async def environment_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        versions = await asyncio.to_thread(self._versions, name)
        return self.render(request, "environment.html", {"versions": versions}, title=f"Environment {name}")

    def _versions(self, name: str) -> list[dict[str, Any]]:
        infos = sorted(self.environments.versions(name), key=lambda info: info.version, reverse=True)
        return [
            {**info.to_dict(), "built": self.environments.built(info), "spec": self.environments.spec_text(info.ref)}
            for info in infos
        ]
