"""A job's runner as a fork of the CLI that submits the job, started before the job exists.

A runner started as ``python -m modelport.batch.runner`` is a new interpreter that imports
everything the CLI already has (SQLAlchemy, the workspace, the definitions), then what its
workers need (the engine, the scoring code, pandas): more than a second of every job's wall
time. Forked instead, it has the CLI's imports already, and, forked *before* the CLI reads the
input and records the job, it imports the rest while the CLI does that. :meth:`ForkedRunner.start`
then hands it the recorded job; a job refused meanwhile :meth:`~ForkedRunner.abandon`\\ s it.

Only a single-threaded caller may fork (the CLI; never the daemon). No database connection may
cross the fork: SQLite's locks are per process, and a child holding even an unused connection
of its parent's loses writes, so the pool is closed first and each side then opens its own. The
child is detached like a started runner (its own session, stdin from /dev/null, output to the
job's runner log) and leaves with ``os._exit``, so nothing of the parent's (exit handlers,
buffered output) runs twice; a pipe it holds open until then tells the CLI it has ended.
"""

from __future__ import annotations

import json
import os
import select
import sys
import traceback
from pathlib import Path

from modelport.registry.stores import WorkspaceStores


class ForkedRunner:
    def __init__(self, ws: WorkspaceStores) -> None:
        ws.db.dispose()
        sys.stdout.flush()
        sys.stderr.flush()
        read, self._go = os.pipe()
        self._ended, alive = os.pipe()  # the child holds ``alive`` open until it exits
        if os.fork() == 0:
            os.close(self._go)
            os.close(self._ended)
            _child(ws, read)  # never returns
        os.close(read)
        os.close(alive)
        self._open = True

    def start(self, job_id: str, token: str, log_path: Path, environment: dict[str, str]) -> None:
        """Run job ``job_id`` with ``token``; ``environment`` is set first, as for a started runner."""
        with os.fdopen(self._go, "w", encoding="utf-8") as pipe:
            self._open = False
            json.dump([job_id, token, str(log_path), environment], pipe)

    def abandon(self) -> None:
        """No job for it: it exits."""
        if self._open:
            self._open = False
            os.close(self._go)
            os.close(self._ended)
            self._ended = -1

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the runner to exit, so that ``invoke --wait`` sees a job's
        end at once instead of at its next poll. True once it has exited; its worker processes,
        which hold the same pipe, are gone by then."""
        if self._ended < 0:
            return True
        if not select.select([self._ended], [], [], max(0.0, seconds))[0]:
            return False
        os.close(self._ended)
        self._ended = -1
        return True


def _child(ws: WorkspaceStores, go: int) -> None:
    code = 1
    try:
        os.setsid()
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        os.close(quiet)
        from modelport.batch.runner import (
            configure_logging,
            run_job,
        )  # the engine and the scoring code

        _warm_up()
        with os.fdopen(go, "rb") as pipe:
            message = pipe.read()
        if not message:
            code = 0
            return
        job_id, token, log_path, environment = json.loads(message)
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(environment)
        configure_logging()
        run_job(ws, job_id, token)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _warm_up() -> None:
    """pyarrow imports pandas on a worker's first table, and the runner imports the Parquet
    reader and writer on its first mini-batch: imported here once, while the CLI records the
    job, the runner starts feeding its workers sooner and every worker forked from it has them."""
    import pyarrow.parquet  # noqa: F401

    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
