"""A scoring host and the local worker process that runs one.

:class:`Host` is one worker's scoring environment, whatever process holds it: a local worker
process (:func:`main`, fed over a pipe by :mod:`modelport.batch.local_executor`) or a Ray actor
(:mod:`modelport.batch.ray_executor`). It sets up the environment, loads the scorer once, then
scores one task per call, and answers every outcome with a :data:`Message` instead of raising,
so that both executors relay the same replies to the one loop in :mod:`modelport.batch.engine`.

The host never decides anything: retries, timeouts and splitting are the engine's. It reports
``ready`` after ``init()``, then ``done`` (with the number of results) or ``error`` for each
task; its stdout and stderr, tracebacks included, go to its own log file. A worker process dies
with the runner: a closed pipe ends it, and on Linux the kernel kills it when the runner dies
(``PR_SET_PDEATHSIG``), so a killed runner leaves no orphans.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

from modelport.batch.inputs import Segment
from modelport.batch.output import result_count, write_part
from modelport.batch.scoring import NoCodeScorer, ScriptError, ScriptScorer, StepModel


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a job gets; ``environment`` holds the ``AZUREML_*`` variables too."""

    script: str | None
    flavor: str | None
    model_path: str | None
    environment: dict[str, str]
    log_dir: str
    logging_level: str
    threads: int = 1  # framework threads per worker, for no-code models
    names: list[str] = field(default_factory=list)  # table file names, for no-code ``file_name``
    input_uri: str | None = None  # set when file inputs are remote and must be downloaded first
    download_dir: str | None = None
    steps: dict[str, StepModel] = field(default_factory=dict)  # a pipeline model's steps, by step name


@dataclass(frozen=True)
class Task:
    """One piece of a mini-batch: items ``[start, stop)`` of the input, as file paths or as
    rows in Arrow IPC form (see :func:`pack`)."""

    id: int
    start: int
    stop: int
    items: list[str] | pa.Buffer
    segments: list[Segment] | None
    part: str | None  # where to write the results; None for summary_only


def pack(items: list[str] | pa.Table) -> list[str] | pa.Buffer:
    """Rows for the pipe. Pickling a sliced table would send the whole buffers it slices (a
    65,536-row record batch for a 10-row mini-batch); the IPC stream holds only the slice."""
    if isinstance(items, list):
        return items
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, items.schema) as writer:
        writer.write_table(items)
    return sink.getvalue()


def _unpack(items: list[str] | pa.Buffer) -> list[str] | pa.Table:
    return items if isinstance(items, list) else pa.ipc.open_stream(items).read_all()


def describe(exc: BaseException) -> str:
    """An exception as one line: its type and first line of message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


Message = tuple[Any, ...]
"""A host's reply: ``("ready",)``, ``("fatal", error)`` (the script is unusable),
``("init_error", error)``, ``("done", task_id, count, seconds)`` or ``("error", task_id, error)``;
executors add ``("lost", reason)`` for a host that died."""


class Host:
    """One worker's scoring environment: ``init()`` once, then ``run(task)`` per task."""

    def __init__(self, number: int, config: WorkerConfig, place: str = "") -> None:
        """``place`` says where the host runs, for its log (a Ray node, say)."""
        self.number, self.config, self.place = number, config, place
        self.scorer: ScriptScorer | NoCodeScorer | None = None

    def init(self) -> Message:
        """Send output to the worker's log, set the ``AZUREML_*`` variables and load the scorer."""
        config = self.config
        log_path = Path(config.log_dir) / f"worker_{self.number:03d}.txt"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        os.environ.update(config.environment)
        if config.script:
            sys.argv = [config.script, "--logging_level", config.logging_level]
        print(f"worker {self.number} pid {os.getpid()}{self.place} starting", flush=True)
        try:
            self.scorer = _scorer(config)
        except ScriptError as exc:
            return ("fatal", str(exc))
        except BaseException as exc:
            traceback.print_exc()
            return ("init_error", describe(exc))
        return ("ready",)

    def run(self, task: Task) -> Message:
        """Score one task and write its part; a failure is a reply, with its traceback in the log."""
        assert self.scorer is not None, "init() first"
        began = time.perf_counter()
        try:
            items = _localize(_unpack(task.items), self.config)
            result = self.scorer.run(items, task.segments, self.config.names)
            count = result_count(result)
            if task.part is not None:
                write_part(result, Path(task.part))
            return ("done", task.id, count, time.perf_counter() - began)
        except Exception as exc:
            print(f"task {task.id} (items {task.start}..{task.stop - 1}) failed:", flush=True)
            traceback.print_exc()
            return ("error", task.id, describe(exc))


def main(number: int, conn: Connection, config: WorkerConfig) -> None:
    """A local worker process: one host, fed tasks over ``conn`` until ``None`` or a closed pipe."""
    _die_with_parent()
    host = Host(number, config)
    reply = host.init()
    conn.send(reply)
    if reply[0] != "ready":
        return
    while True:
        try:
            task: Task | None = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            conn.send(host.run(task))
        except (BrokenPipeError, OSError):
            return


def _scorer(config: WorkerConfig) -> ScriptScorer | NoCodeScorer:
    if config.script:
        return ScriptScorer(Path(config.script))
    assert config.flavor and config.model_path
    return NoCodeScorer(config.flavor, Path(config.model_path), config.threads, config.steps)


def _localize(items: list[str] | pa.Table, config: WorkerConfig) -> list[str] | pa.Table:
    """Remote input files are copied into the job folder first: scripts expect local paths."""
    if not isinstance(items, list) or config.input_uri is None:
        return items
    import fsspec

    fs, _ = fsspec.core.url_to_fs(config.input_uri)
    assert config.download_dir is not None
    local = []
    for remote in items:
        target = Path(config.download_dir) / remote.lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get(remote, str(target))
        local.append(str(target))
    return local


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
