"""Batch jobs: submit, watch, cancel and resume them; the durable state the runner writes.

A job is a row plus one row per mini-batch, written in one transaction at submission, after
everything that can fail on bad input has been checked (so a refused job leaves nothing
behind). Its runner (:mod:`modelport.batch.runner`) is a detached process that *claims* the
job with a token: every heartbeat is conditional on that token, so a resumed job never has
two runners writing to it. A runner whose process is gone (or whose heartbeat stopped) shows
as ``NotResponding``; ``resume`` starts a new one, which scores only what is not done yet.

Statuses are :class:`~modelport.batch.status.JobStatus` (Azure ML's names).
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from modelport.batch.definitions import ENGINES, BatchSettings
from modelport.batch.endpoints import BatchEndpoints
from modelport.batch.inputs import InputPlan, resolve_input
from modelport.batch.output import check_free
from modelport.batch.status import TERMINAL, JobStatus, MiniBatchStatus
from modelport.core.errors import ConflictError, ModelportError, NotFoundError, ValidationError
from modelport.core.settings import ENV_ARTIFACT_ROOT, ENV_DB_URL, ENV_HOME
from modelport.registry.stores import WorkspaceStores
from modelport.schema.job import DeploymentSpec, JobSpec
from modelport.store.schema import BatchJob, BatchMiniBatch, utcnow

if TYPE_CHECKING:  # the CLI imports this module; the engine is the runner's
    from modelport.batch.engine import MiniBatchResult
    from modelport.batch.forked import ForkedRunner

log = logging.getLogger("modelport.batch")

_STALE_AFTER = timedelta(seconds=30)  # a heartbeat older than this means the runner is gone


class LostOwnership(ModelportError):
    """Another runner claimed the job (it was resumed): this one must stop touching it."""


@dataclass(frozen=True)
class JobInfo:
    id: str
    endpoint: str
    deployment: str
    status: JobStatus
    engine: str
    input: dict[str, Any]
    output_file: str | None
    settings: dict[str, Any]
    ray_address: str | None
    minibatches: dict[str, int]
    items: dict[str, int]
    items_per_second: float | None
    eta_seconds: float | None
    errors: list[dict[str, Any]]
    error: str | None
    runner_pid: int | None
    job_dir: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            data[key] = None if data[key] is None else data[key].isoformat() + "Z"
        return data


class BatchJobs:
    def __init__(self, workspace: WorkspaceStores, *, fork_runner: bool = False) -> None:
        """``fork_runner``: start local-engine runners in modelport's own Python as forks of this
        process (:mod:`modelport.batch.forked`) instead of new interpreters that import it all
        again (a second or more of every job's wall time). Only for a single-threaded caller,
        the CLI; the daemon's threads must not be forked."""
        self.ws = workspace
        self.db = workspace.db
        self._fork_runner = fork_runner and hasattr(os, "fork")
        self._forked: ForkedRunner | None = None  # the last runner this process forked

    def pause(self, seconds: float) -> None:
        """Sleep between polls of a job: ``seconds``, or less if the runner forked by this
        process exits meanwhile (the job it ran has ended)."""
        if self._forked is None:
            time.sleep(seconds)
        elif self._forked.wait(seconds):
            self._forked = None

    # -- user operations ----------------------------------------------------------------------

    def submit(
        self,
        endpoint: str,
        input_uri: str,
        *,
        deployment: str | None = None,
        input_type: str | None = None,
        output_path: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        overwrite: bool = False,
    ) -> JobInfo:
        """Check everything, record the job and its mini-batches, and start its runner."""
        ray_address = _engine_address(engine, ray_address)
        target = BatchEndpoints(self.ws).get_deployment(endpoint, deployment)
        spec = DeploymentSpec.read(target.spec)
        runner = self._runner_command(spec.environment, engine)  # may build the environment
        forked = self._fork(spec.environment, engine)  # imports the runner's code while the input is read
        try:
            settings = target.settings.override(overrides or {})
            no_code = spec.code is None
            plan = resolve_input(input_uri, input_type, tabular_default=no_code)
            if no_code and plan.kind != "tabular":
                raise ValidationError(
                    f"--input-type: deployment {target.name!r} has no scoring script and scores tables only; "
                    "use --input-type tabular or add a code_configuration"
                )
            job_id = f"batchjob-{uuid.uuid4().hex[:16]}"
            job_dir = self.ws.root / "jobs" / job_id
            output_dir = Path(output_path).absolute() if output_path else job_dir / "outputs"
            output_file = output_dir / settings.output_file_name if settings.output_action == "append_row" else None
            if output_file is not None:
                check_free(output_file, overwrite)
            token = uuid.uuid4().hex
            (job_dir / "logs").mkdir(parents=True)
            try:
                with self.db.session() as session:
                    session.add(
                        BatchJob(
                            id=job_id,
                            endpoint=endpoint,
                            deployment=target.name,
                            status=JobStatus.NOT_STARTED,
                            engine=engine,
                            spec=JobSpec(
                                **{
                                    **spec.to_json(),
                                    "settings": settings.to_dict(),
                                    "output_dir": str(output_dir),
                                    "ray_address": ray_address,
                                }
                            ).to_json(),
                            plan=plan.to_dict(),
                            output_file=None if output_file is None else str(output_file),
                            overwrite=overwrite,
                            job_dir=str(job_dir),
                            total_items=plan.total,
                            runner_token=token,
                            heartbeat_at=utcnow(),
                        )
                    )
                    session.flush()
                    rows = [
                        {
                            "job_id": job_id,
                            "index": index,
                            "start": start,
                            "stop": stop,
                            "status": MiniBatchStatus.PENDING,
                            "attempts": 0,
                            "succeeded_items": 0,
                            "failed_items": 0,
                            "errors": [],
                        }
                        for index, (start, stop) in enumerate(plan.minibatches(settings.mini_batch_size))
                    ]
                    session.execute(insert(BatchMiniBatch), rows)
            except BaseException:
                shutil.rmtree(job_dir, ignore_errors=True)
                raise
            self._spawn(runner, job_id, token, job_dir, forked)
        finally:
            if forked is not None:
                forked.abandon()  # the job was refused, or the runner has it already
        return self.get(job_id)

    def get(self, job_id: str) -> JobInfo:
        with self.db.session() as session:
            row = self._require(session, job_id)
            return self._info(session, row, with_errors=True)

    def list(self, endpoint: str | None = None) -> list[JobInfo]:
        with self.db.session() as session:
            query = select(BatchJob).order_by(BatchJob.created_at.desc())
            if endpoint is not None:
                query = query.where(BatchJob.endpoint == endpoint)
            return [self._info(session, row, with_errors=False) for row in session.scalars(query)]

    def cancel(self, job_id: str) -> JobInfo:
        """Ask the runner to stop; a job whose runner is gone is cancelled at once."""
        with self.db.session() as session:
            row = self._require(session, job_id)
            if row.status in TERMINAL:
                raise ConflictError(f"job {job_id}: already {row.status}")
            if _runner_alive(row):
                row.status = JobStatus.CANCEL_REQUESTED
            else:
                row.status, row.finished_at, row.runner_token = (
                    JobStatus.CANCELED,
                    utcnow(),
                    None,
                )
        return self.get(job_id)

    def resume(self, job_id: str) -> JobInfo:
        """Start a new runner for a job whose runner died; it scores only what is not done."""
        token = uuid.uuid4().hex
        with self.db.session() as session:
            row = self._require(session, job_id)
            if row.status in TERMINAL:
                raise ConflictError(f"job {job_id}: already {row.status}; only unfinished jobs resume")
            if _runner_alive(row):
                raise ConflictError(f"job {job_id}: its runner (pid {row.runner_pid}) is still running")
            spec = JobSpec.read(row.spec)
            _engine_address(row.engine, spec.ray_address)
            environment, engine = spec.environment, row.engine
        runner = self._runner_command(environment, engine)
        with self.db.session() as session:
            row = self._require(session, job_id)
            if _runner_alive(row):
                raise ConflictError(f"job {job_id}: its runner (pid {row.runner_pid}) is still running")
            row.runner_token, row.runner_pid, row.heartbeat_at = token, None, utcnow()
            job_dir = Path(row.job_dir)
        self._spawn(runner, job_id, token, job_dir, self._fork(environment, engine))
        return self.get(job_id)

    def resume_orphaned(self) -> builtins.list[str]:
        """What the daemon does when it starts: every unfinished job of this host whose runner
        died (a crash, a reboot) is resumed — or cancelled, if a cancel was asked for. The ids
        of the jobs resumed; a job that cannot resume (its Ray cluster gone, say) is logged."""
        with self.db.session() as session:
            rows = session.scalars(select(BatchJob).where(BatchJob.status.not_in(TERMINAL))).all()
            orphans = [
                (row.id, row.status)
                for row in rows
                if row.runner_host in (None, socket.gethostname()) and not _runner_alive(row)
            ]
        resumed = []
        for job_id, status in orphans:
            try:
                if status == JobStatus.CANCEL_REQUESTED:
                    self.cancel(job_id)
                else:
                    self.resume(job_id)
                    resumed.append(job_id)
            except ModelportError as exc:
                log.warning("job %s could not resume: %s", job_id, exc)
        return resumed

    def minibatches(self, job_id: str) -> builtins.list[dict[str, Any]]:
        """One row per mini-batch, in order: its item range, state, attempts and counts (the
        dashboard's view of a job; ``job show`` sums them)."""
        with self.db.session() as session:
            self._require(session, job_id)
            rows = session.scalars(
                select(BatchMiniBatch).where(BatchMiniBatch.job_id == job_id).order_by(BatchMiniBatch.index)
            )
            return [
                {
                    "index": row.index,
                    "items": [row.start, row.stop],
                    "status": row.status,
                    "attempts": row.attempts,
                    "succeeded": row.succeeded_items,
                    "failed": row.failed_items,
                }
                for row in rows
            ]

    def log_files(self, job_id: str) -> builtins.list[Path]:
        """The job's log files: runner log and result first, then errors, then per-worker output."""
        info = self.get(job_id)
        logs = Path(info.job_dir) / "logs"
        files = [p for p in sorted(logs.rglob("*")) if p.is_file()] if logs.exists() else []
        first = {"runner.txt": 0, "job_result.txt": 1, "error.txt": 2}
        return sorted(files, key=lambda p: (first.get(p.name, 3), str(p)))

    # -- runner side --------------------------------------------------------------------------

    def claim(self, job_id: str, token: str) -> dict[str, Any]:
        """Take the job for this process; the job's row as a dict."""
        with self.db.session() as session:
            row = self._require(session, job_id)
            if row.runner_token != token:
                raise LostOwnership(f"job {job_id}: claimed by another runner")
            row.runner_pid, row.runner_host, row.heartbeat_at = (
                os.getpid(),
                socket.gethostname(),
                utcnow(),
            )
            return {column.name: getattr(row, column.name) for column in BatchJob.__table__.columns}

    def heartbeat(self, job_id: str, token: str) -> JobStatus:
        """Record that the runner is alive; returns the job's status (CancelRequested stops it)."""
        with self.db.session() as session:
            done = session.execute(
                update(BatchJob)
                .where(BatchJob.id == job_id, BatchJob.runner_token == token)
                .values(heartbeat_at=utcnow())
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise LostOwnership(f"job {job_id}: claimed by another runner")
            return JobStatus(session.scalars(select(BatchJob.status).where(BatchJob.id == job_id)).one())

    def set_status(self, job_id: str, token: str, status: JobStatus, error: str | None = None) -> None:
        with self.db.session() as session:
            values: dict[str, Any] = {"status": status}
            if status == JobStatus.PREPARING:
                values["started_at"] = utcnow()
            if status in TERMINAL:
                values.update(finished_at=utcnow(), error=error, runner_token=None)
            session.execute(
                update(BatchJob).where(BatchJob.id == job_id, BatchJob.runner_token == token).values(**values)
            )

    def unfinished(self, job_id: str) -> tuple[builtins.list[tuple[int, int, int]], int]:
        """Mini-batches still to score (index, start, stop), and items failed in the finished ones."""
        with self.db.session() as session:
            pending = session.execute(
                select(BatchMiniBatch.index, BatchMiniBatch.start, BatchMiniBatch.stop)
                .where(
                    BatchMiniBatch.job_id == job_id,
                    BatchMiniBatch.status == MiniBatchStatus.PENDING,
                )
                .order_by(BatchMiniBatch.index)
            ).all()
            failed = session.scalar(
                select(func.coalesce(func.sum(BatchMiniBatch.failed_items), 0)).where(BatchMiniBatch.job_id == job_id)
            )
            return [(index, start, stop) for index, start, stop in pending], int(failed or 0)

    def finish_minibatches(self, job_id: str, results: builtins.list[MiniBatchResult]) -> None:
        """Record finished mini-batches (their parts are already in place), in one transaction."""
        with self.db.session() as session:
            session.execute(
                update(BatchMiniBatch),
                [
                    {
                        "job_id": job_id,
                        "index": r.index,
                        "status": MiniBatchStatus.FAILED if r.failed else MiniBatchStatus.DONE,
                        "attempts": r.attempts,
                        "succeeded_items": r.succeeded,
                        "failed_items": r.failed,
                        "errors": r.errors,
                        "finished_at": r.finished_at,
                    }
                    for r in results
                ],
            )

    def note_errors(self, job_id: str, results: builtins.list[MiniBatchResult]) -> None:
        """Record the errors of mini-batches left unfinished by a failed job, so ``show`` names
        the inputs that tripped it; they stay pending (a resume scores them again, and its
        outcome replaces these errors)."""
        if not results:
            return
        with self.db.session() as session:
            session.execute(
                update(BatchMiniBatch),
                [{"job_id": job_id, "index": r.index, "errors": r.errors} for r in results],
            )

    # -- helpers ------------------------------------------------------------------------------

    def _runner_command(self, environment: str | None, engine: str) -> builtins.list[str]:
        """The runner's interpreter: the deployment environment's virtualenv (built now), whose
        Python the local worker processes then inherit, or modelport's own."""
        if environment is not None and engine == "ray":
            raise ValidationError(
                f"environment: deployment environment {environment} cannot be applied on the Ray "
                "engine (its workers run in the cluster's Python); use --engine local, or "
                "install the packages on the cluster and drop the environment"
            )
        return self.ws.environments.module_command(environment, "modelport.batch.runner", "batch jobs")

    def _fork(self, environment: str | None, engine: str) -> ForkedRunner | None:
        """A runner forked from this process, when this caller forks and the job runs on the local
        engine in modelport's own Python (a Ray job's start-up is the cluster's; it is not forked)."""
        if not self._fork_runner or environment is not None or engine != "local":
            return None
        from modelport.batch.forked import ForkedRunner

        return ForkedRunner(self.ws)

    def _spawn(
        self, runner: builtins.list[str], job_id: str, token: str, job_dir: Path, forked: ForkedRunner | None
    ) -> None:
        """Start the job's runner detached from this process, so it outlives the CLI: hand the job
        to ``forked``, or start ``runner``."""
        settings = self.ws.settings
        workspace = {
            ENV_HOME: str(settings.root),
            ENV_DB_URL: settings.db_url,
            ENV_ARTIFACT_ROOT: settings.artifact_root,
        }
        if forked is not None:
            forked.start(job_id, token, job_dir / "logs" / "runner.txt", workspace)
            self._forked = forked
            return
        env = {**os.environ, **workspace}
        with open(job_dir / "logs" / "runner.txt", "ab") as log:
            subprocess.Popen(
                [*runner, job_id, token],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @staticmethod
    def _require(session: Session, job_id: str) -> BatchJob:
        row = session.get(BatchJob, job_id)
        if row is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        return row

    @staticmethod
    def _info(session: Session, row: BatchJob, *, with_errors: bool) -> JobInfo:
        rows = session.execute(
            select(
                BatchMiniBatch.status,
                BatchMiniBatch.succeeded_items,
                BatchMiniBatch.failed_items,
                BatchMiniBatch.finished_at,
            ).where(BatchMiniBatch.job_id == row.id)
        ).all()
        counts = {"total": len(rows), **{state.value: 0 for state in MiniBatchStatus}}
        for status, *_ in rows:
            counts[status] += 1
        succeeded = sum(r[1] for r in rows)
        failed = sum(r[2] for r in rows)
        rate = _steady_rate([(r[3], r[1] + r[2]) for r in rows if r[3] is not None])
        remaining = row.total_items - succeeded - failed
        errors: list[dict[str, Any]] = []
        if with_errors:
            for (found,) in session.execute(
                select(BatchMiniBatch.errors).where(BatchMiniBatch.job_id == row.id).order_by(BatchMiniBatch.index)
            ):
                errors.extend(found)
        plan = InputPlan.from_dict(row.plan)
        spec = JobSpec.read(row.spec)
        settings = BatchSettings.from_dict(spec.settings)
        status = JobStatus(row.status)
        if not status.terminal and not _runner_alive(row):
            status = JobStatus.NOT_RESPONDING
        return JobInfo(
            id=row.id,
            endpoint=row.endpoint,
            deployment=row.deployment,
            status=status,
            engine=row.engine,
            input={
                "uri": plan.uri,
                "type": plan.kind,
                "files": len(plan.files),
                "items": plan.total,
            },
            output_file=row.output_file,
            settings=settings.to_dict(),
            ray_address=spec.ray_address,
            minibatches=counts,
            items={"total": row.total_items, "succeeded": succeeded, "failed": failed},
            items_per_second=rate,
            eta_seconds=None if not rate or status.terminal else remaining / rate,
            errors=errors,
            error=row.error,
            runner_pid=row.runner_pid,
            job_dir=row.job_dir,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


def _engine_address(engine: str, address: str | None) -> str | None:
    """The Ray cluster address of a job on ``engine`` (None for local jobs), checked before a
    job is recorded or resumed: a missing Ray install or a cluster that does not answer is one
    line then, not a Failed job (nor a resumable job turned Failed)."""
    if engine not in ENGINES:
        raise ValidationError(f"--engine: {engine!r} is not available (use {', '.join(ENGINES)})")
    if engine != "ray":
        if address is not None:
            raise ValidationError("--ray-address: only with --engine ray")
        return None
    from modelport.batch.ray_executor import check_address  # imports Ray: Ray jobs only

    return check_address(address)


def _steady_rate(finished: list[tuple[float, int]]) -> float | None:
    """Items per second between the first and the last finished mini-batch: worker start-up
    (which precedes the first) is left out, as is the first mini-batch itself."""
    if len(finished) < 2:
        return None
    finished.sort()
    elapsed = finished[-1][0] - finished[0][0]
    return sum(items for _, items in finished[1:]) / elapsed if elapsed > 0 else None


def _runner_alive(row: BatchJob) -> bool:
    """Whether the job's runner still runs: its process, when it is on this host, else a fresh heartbeat."""
    fresh = row.heartbeat_at is not None and utcnow() - row.heartbeat_at < _STALE_AFTER
    if row.runner_token is None:
        return False
    if row.runner_pid is None or row.runner_host != socket.gethostname():
        return fresh
    return _process_running(row.runner_pid) and fresh


def _process_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
