"""The dashboard's monitoring pages: drift of a deployment's collected inputs against a baseline
the user names, and a profile saved by ``modelport profile --save`` with its trials.

Drift runs :func:`modelport.monitor.check.drift_check`, the very function ``monitor drift`` runs,
so the page shows the report ``--output json`` prints and refuses what the command refuses in its
words; the plots are the HTML report's own (``monitor.report.distribution_svg``: SVG with
presentation attributes only, which the dashboard's CSP allows), and the whole HTML report is a
download. Both pages are reads (GET forms, no CSRF token needed): they name files on the daemon's
host, which a signed-in user (the workspace's token) may read with the CLI anyway.

Profiles are not kept by the workspace: ``profile --save FILE`` writes them where the user says,
so the page reads the file it is given (the profiler itself is the CLI's alone).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelport.control.catalog import Catalog
from modelport.core.errors import ModelportError, ValidationError
from modelport.core.extras import require_extra
from modelport.core.files import read_json_file
from modelport.dashboard.render import Render
from modelport.schema.choices import CollectionName

PROFILE_KEYS = (  # the recommendation as `modelport profile` prints it under its trials
    "name",
    "state",
    "recommendedTrial",
    "recommendedCpu",
    "recommendedMemoryInGB",
    "latencyBudgetInMs",
    "measuredConcurrency",
    "measuredQueriesPerSecond",
    "latencyPercentile99InMs",
    "bestQueriesPerSecondWithinBudget",
    "verifiedQueriesPerSecond",
    "verifiedBestQueriesPerSecond",
    "verifiedRatio",
    "errorLogsUri",
)
TRIAL_KEYS = (
    "index",
    "phase",
    "settings",
    "maxBatchSize",
    "maxQueueDelayMicroseconds",
    "instanceCount",
    "concurrency",
    "queriesPerSecond",
    "latencyPercentile50InMs",
    "latencyPercentile99InMs",
    "cpu",
    "peakMemoryInMB",
    "totalQueries",
    "successQueries",
)


class MonitoringPages:
    def __init__(self, catalog: Catalog, root: Path, render: Render) -> None:
        self.catalog = catalog
        self.root = root
        self.render = render

    def routes(self) -> list[Route]:
        return [
            Route("/ui/monitoring", self.list_page, methods=["GET"]),
            Route("/ui/monitoring/profile", self.profile_page, methods=["GET"]),
            Route("/ui/monitoring/{endpoint}/{deployment}", self.drift_page, methods=["GET"]),
            Route("/ui/monitoring/{endpoint}/{deployment}/report.html", self.drift_download, methods=["GET"]),
        ]

    async def list_page(self, request: Request) -> Response:
        deployments = await asyncio.to_thread(self._deployments)
        return self.render(request, "monitoring.html", {"deployments": deployments}, title="Monitoring")

    async def drift_page(self, request: Request) -> Response:
        source = await asyncio.to_thread(self._source, request)
        asked = {key: request.query_params.get(key, "").strip() for key in ("baseline", "since")}
        context: dict[str, Any] = {"source": source, "asked": asked, "report": None, "error": None, "plots": {}}
        status = 200
        if asked["baseline"]:
            try:
                report, warnings = await asyncio.to_thread(self._check, source, asked)
            except ModelportError as exc:
                context["error"], status = str(exc), exc.http_status
            else:
                from modelport.monitor.report import distribution_svg

                context["report"], context["warnings"] = report.to_dict(), warnings
                context["plots"] = {column.name: Markup(distribution_svg(column)) for column in report.columns}
        return self.render(request, "drift.html", context, status=status, title=f"Drift of {source}")

    async def drift_download(self, request: Request) -> Response:
        """The report ``monitor drift --html`` writes, as a file to keep (its own inline style
        applies once opened from disk, not under the dashboard's CSP)."""
        source = await asyncio.to_thread(self._source, request)
        asked = {key: request.query_params.get(key, "").strip() for key in ("baseline", "since")}
        if not asked["baseline"]:
            raise ValidationError("baseline: name a Parquet, CSV or JSONL file or folder on the daemon's host")
        report, _ = await asyncio.to_thread(self._check, source, asked)
        from modelport.monitor.report import render_html

        filename = f"drift-{source.replace('/', '-')}.html"
        return Response(
            render_html(report),
            media_type="text/html",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    async def profile_page(self, request: Request) -> Response:
        file = request.query_params.get("file", "").strip()
        context: dict[str, Any] = {"file": file, "profile": None, "error": None}
        status = 200
        if file:
            try:
                context["profile"] = await asyncio.to_thread(read_profile, Path(file))
            except ModelportError as exc:
                context["error"], status = str(exc), exc.http_status
        context.update(summary_keys=PROFILE_KEYS, trial_keys=TRIAL_KEYS)
        return self.render(request, "profile.html", context, status=status, title="Profile")

    def _deployments(self) -> list[dict[str, Any]]:
        """Every online deployment, with the collections it has payload in."""
        listed = []
        for record in self.catalog.endpoints():
            for deployment in record.deployments:
                folder = self.root / "collected" / record.spec.name / deployment.spec.name
                collected = [c.value for c in CollectionName if (folder / c.value).is_dir()]
                listed.append(
                    {"endpoint": record.spec.name, "deployment": deployment.spec.name, "collected": collected}
                )
        return listed

    def _source(self, request: Request) -> str:
        """``ENDPOINT/DEPLOYMENT`` of the path, once it is known to exist (404 otherwise)."""
        endpoint, deployment = request.path_params["endpoint"], request.path_params["deployment"]
        self.catalog.endpoint(endpoint).deployment(deployment)
        return f"{endpoint}/{deployment}"

    def _check(self, source: str, asked: dict[str, str]) -> tuple[Any, list[str]]:
        require_extra("drift", "the drift page")
        from modelport.monitor.check import drift_check

        return drift_check(asked["baseline"], source, lambda: self.root, since=asked["since"] or None)


def read_profile(file: Path) -> dict[str, Any]:
    """A document ``profile --save`` wrote; anything else is refused in one line naming it."""
    document = read_json_file(file, "file")
    trials = document.get("trials") if isinstance(document, dict) else None
    if not isinstance(trials, list) or not all(isinstance(trial, dict) for trial in trials):
        raise ValidationError(f"file: {file} is not a profile (modelport profile --save writes one)")
    return document
