"""The job runner: ``python -m modelport.batch.runner JOB_ID TOKEN``, started detached by
``invoke`` and ``job resume`` (the CLI forks itself instead, :mod:`modelport.batch.forked`, when
the job runs in modelport's own Python).

It claims the job, prepares what the workers need (the verified model folder, the output
folder), removes output parts of mini-batches that are not done (a previous runner may have
died halfway through one), runs the engine over the rest on the job's engine (local worker
processes, or actors on the Ray cluster recorded with the job, so a resumed job runs where it
started), then joins the parts into the output file and records the outcome. Finished
mini-batches are written to the database in small groups, always after their parts are in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from modelport.batch.definitions import BatchSettings
from modelport.batch.engine import Engine, JobFailed, LocalEngine, MiniBatchResult
from modelport.batch.inputs import InputPlan
from modelport.batch.jobs import BatchJobs, LostOwnership
from modelport.batch.output import Assembly, part_start, part_suffix
from modelport.batch.scoring import StepModel
from modelport.batch.status import JobStatus
from modelport.batch.worker import WorkerConfig
from modelport.core.errors import ModelportError
from modelport.core.settings import resolve_settings
from modelport.registry.pipelines import DEFINITION as PIPELINE_DEFINITION
from modelport.registry.pipelines import STEPS as PIPELINE_STEPS
from modelport.registry.stores import WorkspaceStores
from modelport.schema.job import JobSpec

log = logging.getLogger("modelport.batch.runner")
_FLUSH_S = 0.5


class JobCanceled(Exception):
    """``job cancel`` asked this runner to stop."""


class _Hooks:
    """The engine's view of the job: buffered mini-batch records, heartbeat, error log, and the
    output being joined (``assembly``, None for ``summary_only``)."""

    def __init__(self, jobs: BatchJobs, job_id: str, token: str, error_log: Path) -> None:
        self.jobs, self.job_id, self.token, self.error_log = jobs, job_id, token, error_log
        self.assembly: Assembly | None = None
        self._buffer: list[MiniBatchResult] = []
        self._flushed = time.monotonic()

    def finished(self, result: MiniBatchResult) -> None:
        if self.assembly is not None:
            self.assembly.add(result.index, result.parts)
        self._buffer.append(result)
        log.info(
            "mini-batch %d: %d ok, %d failed, %d attempt(s)",
            result.index,
            result.succeeded,
            result.failed,
            result.attempts,
        )
        if time.monotonic() - self._flushed >= _FLUSH_S:
            self.flush()

    def tick(self) -> None:
        self.flush()
        if self.jobs.heartbeat(self.job_id, self.token) == JobStatus.CANCEL_REQUESTED:
            raise JobCanceled()

    def item_errors(self, items: list[str], error: str) -> None:
        log.warning("failed %s: %s", ", ".join(items), error)
        self.error_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.error_log, "a", encoding="utf-8") as handle:
            handle.write(f"{error}\n" + "".join(f"  {item}\n" for item in items))

    def flush(self) -> None:
        if self._buffer:
            self.jobs.finish_minibatches(self.job_id, self._buffer)
            self._buffer = []
        self._flushed = time.monotonic()


def run_job(ws: WorkspaceStores, job_id: str, token: str) -> None:
    jobs = BatchJobs(ws)
    job = jobs.claim(job_id, token)
    log.info("runner pid %d claimed job %s (status %s)", os.getpid(), job_id, job["status"])
    job_dir = Path(job["job_dir"])
    hooks = _Hooks(jobs, job_id, token, job_dir / "logs" / "user" / "error.txt")
    try:
        if job["status"] == JobStatus.NOT_STARTED:
            jobs.set_status(job_id, token, JobStatus.PREPARING)
        outcome = _run(ws, jobs, job, token, hooks)
        jobs.set_status(job_id, token, JobStatus.COMPLETED)
        _write_result(job_dir, JobStatus.COMPLETED, outcome)
        log.info("job %s Completed: %s", job_id, outcome)
    except JobCanceled:
        hooks.flush()
        jobs.set_status(job_id, token, JobStatus.CANCELED)
        _write_result(job_dir, JobStatus.CANCELED, "cancelled by request")
    except LostOwnership as exc:
        log.warning("%s; this runner stops", exc)
    except ModelportError as exc:  # JobFailed and anything the user can act on
        hooks.flush()
        if isinstance(exc, JobFailed):
            jobs.note_errors(job_id, exc.unfinished)
        jobs.set_status(job_id, token, JobStatus.FAILED, str(exc))
        _write_result(job_dir, JobStatus.FAILED, str(exc))
        log.error("job %s Failed: %s", job_id, exc)
    except Exception as exc:
        traceback.print_exc()
        message = f"internal error ({type(exc).__name__}: {exc})"
        jobs.set_status(job_id, token, JobStatus.FAILED, message)
        _write_result(job_dir, JobStatus.FAILED, message)


def _run(ws: WorkspaceStores, jobs: BatchJobs, job: dict[str, Any], token: str, hooks: _Hooks) -> str:
    job_id, job_dir, spec = job["id"], Path(job["job_dir"]), JobSpec.read(job["spec"])
    settings = BatchSettings.from_dict(spec.settings)
    plan = InputPlan.from_dict(job["plan"])
    config = _worker_config(ws, spec, settings, plan, job_dir)
    pending, failed_before = jobs.unfinished(job_id)
    suffix = part_suffix(settings.output_file_name)
    parts_dir = job_dir / "parts" if job["output_file"] else None
    if parts_dir is not None:
        done = _drop_unfinished_parts(parts_dir, {index for index, _, _ in pending}, settings.mini_batch_size)
        hooks.assembly = Assembly(parts_dir, Path(job["output_file"]), done, suffix)
    if job["status"] != JobStatus.RUNNING:
        jobs.set_status(job_id, token, JobStatus.RUNNING)
    log.info(
        "%d of %d mini-batches to score with %d worker(s) on the %s engine",
        len(pending),
        len(plan.minibatches(settings.mini_batch_size)),
        settings.workers,
        job["engine"],
    )
    engine: Engine[Any]
    if job["engine"] == "ray":
        from modelport.batch.ray_executor import RayExecutor  # imports Ray: Ray jobs only

        executor = RayExecutor(spec.ray_address, config, settings.workers)
        engine = Engine(plan, settings, pending, executor, parts_dir, suffix, hooks, failed_before)
    else:
        engine = LocalEngine(plan, settings, pending, config, parts_dir, suffix, hooks, failed_before)
    try:
        engine.run()
        hooks.flush()
        jobs.set_status(job_id, token, JobStatus.FINALIZING)
        info = jobs.get(job_id)
        summary = f"{info.items['succeeded']} items succeeded, {info.items['failed']} failed"
        if hooks.assembly is not None and parts_dir is not None:
            size = hooks.assembly.finish(job["overwrite"])
            shutil.rmtree(parts_dir, ignore_errors=True)
            summary += f"; wrote {job['output_file']} ({size} bytes)"
        return summary
    finally:
        if hooks.assembly is not None:
            hooks.assembly.close()


def _worker_config(
    ws: WorkspaceStores, spec: JobSpec, settings: BatchSettings, plan: InputPlan, job_dir: Path
) -> WorkerConfig:
    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    environment = {**settings.environment_variables, "AZUREML_BI_OUTPUT_PATH": str(output_dir)}
    model_path = None
    steps: dict[str, StepModel] = {}
    if spec.model:
        info, model_dir = ws.models.model_dir(spec.model)
        environment.update(AZUREML_MODEL_DIR=str(model_dir), MODELPORT_MODEL_DIR=str(model_dir))
        model_path = str(model_dir / info.root_name / info.details.get(PIPELINE_DEFINITION, ""))  # a pipeline's file
        for step, ref in dict(info.details.get(PIPELINE_STEPS) or {}).items():  # a pipeline: its pinned steps
            step_info, step_dir = ws.models.model_dir(ref)
            steps[step] = StepModel(step_info.ref, step_info.flavor, str(step_dir / step_info.root_name))
    remote = plan.rows is None and not plan.is_local
    return WorkerConfig(
        script=str(Path(spec.code) / spec.scoring_script) if spec.code and spec.scoring_script else None,
        flavor=spec.flavor,
        model_path=model_path,
        environment=environment,
        log_dir=str(job_dir / "logs" / "user" / "stdout"),
        logging_level=settings.logging_level,
        threads=max(1, (os.cpu_count() or 1) // settings.workers),
        names=plan.names if plan.rows is not None else [],
        input_uri=plan.uri if remote else None,
        download_dir=str(job_dir / "inputs") if remote else None,
        steps=steps,
    )


def _drop_unfinished_parts(parts_dir: Path, pending: set[int], mini_batch_size: int) -> dict[int, list[int]]:
    """Parts of mini-batches that are not done come from a runner that died: score them anew.
    Returns the parts kept (first items), by mini-batch."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    kept: dict[int, list[int]] = {}
    for part in parts_dir.iterdir():
        if part.name.endswith(".tmp") or part_start(part.name) // mini_batch_size in pending:
            part.unlink()
        else:
            start = part_start(part.name)
            kept.setdefault(start // mini_batch_size, []).append(start)
    return kept


def _write_result(job_dir: Path, status: JobStatus, detail: str) -> None:
    (job_dir / "logs" / "job_result.txt").write_text(f"{status}: {detail}\n", encoding="utf-8")


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main() -> None:
    configure_logging()
    job_id, token = sys.argv[1], sys.argv[2]
    with WorkspaceStores(resolve_settings()) as ws:  # the job's workspace, from the environment _spawn set
        run_job(ws, job_id, token)


if __name__ == "__main__":
    main()
