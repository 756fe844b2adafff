"""The dashboard's pages: models, endpoints, an endpoint's traffic split, live traffic and keys,
and login (batch jobs and environments have modules of their own).

Each page shows the same view of an object that the CLI's ``--output json`` prints: models come
from the registry as ``model versions``/``model show`` read them, endpoints from the management
API's own views (:meth:`ManagementApi.endpoint_view`), and the traffic form is applied by
:meth:`ManagementApi.change_endpoint` from the ``--set`` item ``endpoint update --traffic`` makes,
so a split the CLI refuses is refused here in the same words, and nothing changes. Pages are read
without JavaScript; ``static/dashboard.js`` only previews a split while it is edited. Keys are
in a page only in the answer to the "reveal" form, never in a page read.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from modelport.batch.jobs import BatchJobs
from modelport.control import logs
from modelport.control.api import ManagementApi
from modelport.control.batch_sizes import BatchSizes
from modelport.control.catalog import EndpointRecord
from modelport.control.sessions import LOGIN_PATH, Session, Sessions, cookie_header
from modelport.core.errors import ModelportError, NotFoundError
from modelport.core.overrides import split_override
from modelport.dashboard.consume import snippets
from modelport.dashboard.environments import EnvironmentPages
from modelport.dashboard.guard import LOGIN_NONCE, DashboardGuard
from modelport.dashboard.jobs import JobPages
from modelport.dashboard.live import LiveView, live_view
from modelport.dashboard.monitoring import MonitoringPages
from modelport.dashboard.render import shown
from modelport.dashboard.swagger import SwaggerPages
from modelport.dashboard.testpanel import Answer, sample_request, send
from modelport.registry.environments import EnvironmentRegistry
from modelport.registry.models import ModelRegistry
from modelport.routing.history import TrafficHistory

PREFIX = "/ui/"
HOME = "/ui/endpoints"
HERE = Path(__file__).parent
TRAFFIC_FIELD = "traffic-"  # the traffic form's inputs: traffic-<deployment>
LOG_LINES = 40  # of each replica's console on the endpoint page


def dashboard(
    api: ManagementApi,
    models: ModelRegistry,
    environments: EnvironmentRegistry,
    jobs: BatchJobs,
    sessions: Sessions,
    history: TrafficHistory,
    batches: BatchSizes,
    root: Path,
) -> ASGIApp:
    """The dashboard as the daemon mounts it, at ``/`` and ``/ui/...``, behind its guard (``root``:
    the workspace's folder, where deployments' collected payload is)."""
    pages = Pages(api, models, sessions, history, batches)
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/ui", pages.home, methods=["GET"]),
        Route(PREFIX, pages.home, methods=["GET"]),
        Route(LOGIN_PATH, pages.login_page, methods=["GET"]),
        Route(LOGIN_PATH, pages.login, methods=["POST"]),
        Route("/ui/logout", pages.logout, methods=["POST"]),
        Route("/ui/models", pages.models_page, methods=["GET"]),
        Route("/ui/models/{name}", pages.model_page, methods=["GET"]),
        Route("/ui/models/{name}/alias", pages.set_alias, methods=["POST"]),
        Route("/ui/endpoints", pages.endpoints_page, methods=["GET"]),
        Route("/ui/endpoints/{endpoint}", pages.endpoint_page, methods=["GET"]),
        Route("/ui/endpoints/{endpoint}/live", pages.live_fragment, methods=["GET"]),
        Route("/ui/endpoints/{endpoint}/traffic", pages.set_traffic, methods=["POST"]),
        Route("/ui/endpoints/{endpoint}/keys", pages.reveal_keys, methods=["POST"]),
        Route("/ui/endpoints/{endpoint}/test", pages.test_request, methods=["POST"]),
        *JobPages(jobs, pages.render).routes(),
        *EnvironmentPages(environments, pages.render).routes(),
        *MonitoringPages(api.catalog, root, pages.render).routes(),
        *SwaggerPages(api.catalog, api.router, pages.render).routes(),
        Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={ModelportError: pages.on_error})
    return DashboardGuard(app, sessions)


class Pages:
    def __init__(
        self,
        api: ManagementApi,
        models: ModelRegistry,
        sessions: Sessions,
        history: TrafficHistory,
        batches: BatchSizes,
    ) -> None:
        self.api = api
        self.models = models
        self.sessions = sessions
        self.history = history
        self.batches = batches
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["shown"] = shown

    # -- signing in -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse(HOME, status_code=303)

    async def login_page(self, request: Request) -> Response:
        code = request.query_params.get("code")
        if code is not None:
            session = self.sessions.redeem(code)
            if session is not None:
                return self._signed_in(request, session)
            return self._login_form(
                request, "this login link was used already or has expired: run `modelport ui` again"
            )
        return self._login_form(request, None)

    async def login(self, request: Request) -> Response:
        session = self.sessions.login(request.state.form.get("token", "").strip())
        if session is None:
            return self._login_form(request, "that is not this workspace's token (`modelport token` prints it)")
        return self._signed_in(request, session)

    async def logout(self, request: Request) -> Response:
        self.sessions.end(request.state.session)
        answer = RedirectResponse(LOGIN_PATH, status_code=303)
        answer.headers["set-cookie"] = cookie_header(None, secure=_tls(request))
        return answer

    def _login_form(self, request: Request, error: str | None) -> Response:
        """The token form, with a fresh double-submit value in its form and in a cookie."""
        nonce = secrets.token_urlsafe(32)
        answer = self.render(
            request, "login.html", {"error": error, "nonce": nonce}, status=400 if error else 200, title="Sign in"
        )
        secure = "; Secure" if _tls(request) else ""
        answer.headers["set-cookie"] = (
            f"{LOGIN_NONCE}={nonce}; Path={LOGIN_PATH}; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
        )
        return answer

    def _signed_in(self, request: Request, session: Session) -> Response:
        answer = RedirectResponse(HOME, status_code=303)
        answer.headers["set-cookie"] = cookie_header(session, secure=_tls(request))
        return answer

    # -- models ---------------------------------------------------------------------------------

    async def models_page(self, request: Request) -> Response:
        summaries = await asyncio.to_thread(self.models.list)
        return self.render(request, "models.html", {"models": [m.to_dict() for m in summaries]}, title="Models")

    async def model_page(self, request: Request) -> Response:
        return await self._model(request)

    async def set_alias(self, request: Request) -> Response:
        """The alias form: ``model alias set NAME ALIAS VERSION``, refused in its words."""
        name = request.path_params["name"]
        form: dict[str, str] = request.state.form
        try:
            await asyncio.to_thread(self.models.set_alias, name, form.get("alias", "").strip(), form.get("version"))
        except ModelportError as exc:
            return await self._model(request, error=str(exc), status=exc.http_status, typed=form)
        return RedirectResponse(f"/ui/models/{name}", status_code=303)

    async def _model(
        self, request: Request, *, error: str | None = None, status: int = 200, typed: dict[str, str] | None = None
    ) -> Response:
        name = request.path_params["name"]
        infos = await asyncio.to_thread(self.models.versions, name)
        versions = [info.to_dict() for info in sorted(infos, key=lambda info: info.version, reverse=True)]
        context = {
            "name": name,
            "versions": versions,
            "used_by": await asyncio.to_thread(self._used_by, name),
            "pipelines": await asyncio.to_thread(self._pipelines, name, [info.version for info in infos]),
            "error": error,
            "typed": typed or {},
        }
        return self.render(request, "model.html", context, status=status, title=f"Model {name}")

    def _used_by(self, name: str) -> dict[int, list[str]]:
        """Which online deployments (``endpoint/deployment``) serve each version of model
        ``name``, their references (an alias included) resolved as they resolve now."""
        used: dict[int, list[str]] = {}
        for record in self.api.catalog.endpoints():
            for deployment in record.deployments:
                ref = deployment.spec.model
                if not isinstance(ref, str):
                    continue
                try:
                    info = self.models.get(ref)
                except ModelportError:
                    continue
                if info.name == name:
                    used.setdefault(info.version, []).append(f"{record.spec.name}/{deployment.spec.name}")
        return used

    def _pipelines(self, name: str, versions: list[int]) -> dict[int, list[str]]:
        """The registered pipelines pinning each version, as ``model show``'s ``used_by`` lists them."""
        return {version: self.models.pipelines_using(f"{name}:{version}") for version in versions}

    # -- endpoints ------------------------------------------------------------------------------

    async def endpoints_page(self, request: Request) -> Response:
        records = await asyncio.to_thread(self.api.catalog.endpoints)
        views = [self.api.endpoint_view(record, detail=True) for record in records]
        return self.render(request, "endpoints.html", {"endpoints": views}, title="Endpoints")

    async def endpoint_page(self, request: Request) -> Response:
        return await self._endpoint(request)

    async def live_fragment(self, request: Request) -> Response:
        """The live traffic section alone, for the page's script to swap in."""
        record = await asyncio.to_thread(self.api.catalog.endpoint, request.path_params["endpoint"])
        context = {"endpoint": record.spec, "traffic": await self._live(record.spec.name)}
        return self.render(request, "live.html", context, title="Live traffic")

    async def reveal_keys(self, request: Request) -> Response:
        return await self._endpoint(request, reveal=True)

    async def set_traffic(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        form: dict[str, str] = request.state.form
        text = " ".join(
            f"{key[len(TRAFFIC_FIELD) :]}={value.strip()}"
            for key, value in form.items()
            if key.startswith(TRAFFIC_FIELD) and value.strip()
        )
        try:
            await self.api.change_endpoint(name, {}, [split_override("traffic", text)])
        except ModelportError as exc:
            return await self._endpoint(request, error=str(exc), status=exc.http_status, typed=form)
        return RedirectResponse(f"/ui/endpoints/{name}", status_code=303)

    async def test_request(self, request: Request) -> Response:
        """The Test panel's form: the request goes through the router with the endpoint's key."""
        name = request.path_params["endpoint"]
        form: dict[str, str] = request.state.form
        record = await asyncio.to_thread(self.api.catalog.endpoint, name)
        key = record.keys[0] if record.spec.auth_mode == "key" else None
        tried = {"path": form.get("path", ""), "body": form.get("body", ""), "deployment": form.get("deployment", "")}
        try:
            answer = await send(
                self.api.router, name, tried["path"], tried["body"], key=key, deployment=tried["deployment"] or None
            )
        except ModelportError as exc:
            return await self._endpoint(request, error=str(exc), status=exc.http_status, tried=tried)
        return await self._endpoint(request, tried=tried, answer=answer)

    async def _endpoint(
        self,
        request: Request,
        *,
        reveal: bool = False,
        error: str | None = None,
        status: int = 200,
        typed: dict[str, str] | None = None,
        tried: dict[str, str] | None = None,
        answer: Answer | None = None,
    ) -> Response:
        name = request.path_params["endpoint"]
        record = await asyncio.to_thread(self.api.catalog.endpoint, name)
        refs = [d.spec.model for d in record.deployments if isinstance(d.spec.model, str)]
        model, signature = await asyncio.to_thread(self._signed_model, refs)
        keys = record.keys if reveal else None
        context = {
            "test": tried or {"path": "score", "body": sample_request(signature) or "{}", "deployment": ""},
            "snippets": snippets(
                self.api.base_url, name, key=keys[0] if keys else None, model=model, signature=signature
            ),
            "answer": answer,
            "endpoint": self.api.endpoint_view(record, detail=True),
            "keys": keys,
            "traffic": await self._live(name),
            "logs": await asyncio.to_thread(self._log_tails, record),
            "log_lines": LOG_LINES,
            "error": error,
            "typed": {key[len(TRAFFIC_FIELD) :]: value for key, value in (typed or {}).items()},
        }
        return self.render(request, "endpoint.html", context, status=status, title=f"Endpoint {name}")

    def _log_tails(self, record: EndpointRecord) -> dict[str, str]:
        """Each deployment's last :data:`LOG_LINES` lines, as ``deployment logs --lines`` prints them."""
        tails = {}
        for deployment in record.deployments:
            try:
                paths = self.api.log_paths(record.spec.name, deployment.spec.name)
            except NotFoundError:
                continue
            tails[deployment.spec.name] = logs.render(paths, LOG_LINES)
        return tails

    async def _live(self, endpoint: str) -> LiveView:
        return live_view(self.history, endpoint, await self.batches.view(endpoint))

    def _signed_model(self, refs: list[str]) -> tuple[str | None, dict[str, Any] | None]:
        """The name and signature of the first model of ``refs`` with a signature: what the Test
        and Consume panels build their requests from."""
        for ref in refs:
            try:
                info = self.models.get(ref)
            except ModelportError:
                continue
            if info.signature:
                return info.name, info.signature
        return None, None

    # -- plumbing -------------------------------------------------------------------------------

    async def on_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelportError)
        return self.render(request, "error.html", {"error": str(exc)}, status=exc.http_status, title="Error")

    def render(
        self, request: Request, template: str, context: dict[str, Any], *, title: str, status: int = 200
    ) -> Response:
        session: Session | None = getattr(request.state, "session", None)
        return self.templates.TemplateResponse(
            request,
            template,
            {**context, "title": title, "csrf": session.csrf if session else None, "path": request.url.path},
            status_code=status,
        )


def _tls(request: Request) -> bool:
    return request.url.scheme == "https"
