"""The dashboard's batch job pages: the list, one job (its mini-batches, errors by item, output
and log tail), and its cancel and resume forms.

Jobs are read and changed through :class:`BatchJobs`, the very calls ``job list|show|cancel|
resume`` make, so a page shows what ``job show -o json`` prints and an action the CLI refuses
(cancelling a finished job, resuming one whose runner lives) is refused here in the same words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from modelport.batch.jobs import BatchJobs
from modelport.core.errors import ModelportError
from modelport.dashboard.render import Render

LOG_TAIL_BYTES = 16 * 1024


class JobPages:
    def __init__(self, jobs: BatchJobs, render: Render) -> None:
        self.jobs = jobs
        self.render = render

    def routes(self) -> list[Route]:
        return [
            Route("/ui/jobs", self.list_page, methods=["GET"]),
            Route("/ui/jobs/{job}", self.job_page, methods=["GET"]),
            Route("/ui/jobs/{job}/cancel", self.cancel, methods=["POST"]),
            Route("/ui/jobs/{job}/resume", self.resume, methods=["POST"]),
        ]

    async def list_page(self, request: Request) -> Response:
        infos = await asyncio.to_thread(self.jobs.list)
        return self.render(request, "jobs.html", {"jobs": [info.to_dict() for info in infos]}, title="Batch jobs")

    async def job_page(self, request: Request) -> Response:
        return await self._job(request)

    async def cancel(self, request: Request) -> Response:
        return await self._act(request, self.jobs.cancel)

    async def resume(self, request: Request) -> Response:
        return await self._act(request, self.jobs.resume)

    async def _act(self, request: Request, action: Callable[[str], Any]) -> Response:
        job_id = request.path_params["job"]
        try:
            await asyncio.to_thread(action, job_id)
        except ModelportError as exc:
            return await self._job(request, error=str(exc), status=exc.http_status)
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)

    async def _job(self, request: Request, *, error: str | None = None, status: int = 200) -> Response:
        job_id = request.path_params["job"]
        info, minibatches, logs = await asyncio.to_thread(self._read, job_id)
        context = {"job": info, "minibatches": minibatches, "logs": logs, "error": error}
        return self.render(request, "job.html", context, status=status, title=f"Job {job_id}")

    def _read(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[tuple[str, str]]]:
        info = self.jobs.get(job_id)
        logs = [(str(path.relative_to(info.job_dir)), _tail(path)) for path in self.jobs.log_files(job_id)[:3]]
        return info.to_dict(), self.jobs.minibatches(job_id), logs


def _tail(path: Path) -> str:
    """The end of a log file: a job's logs can be large, a page shows what was written last."""
    with path.open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(size - LOG_TAIL_BYTES, 0))
        text = file.read().decode("utf-8", "replace")
    return text if size <= LOG_TAIL_BYTES else "…" + text
