"""The local executor: a job's scoring hosts as worker processes on this machine.

Each host is a forked process running :func:`modelport.batch.worker.main`, fed tasks over a
pipe. A pipe that closes is a process that died; its exit code is the reason reported. Forking
(where the platform can) starts a worker in milliseconds with modelport already imported, where
``spawn`` starts an interpreter that imports the runner and the worker again (seconds per job).
Forking the runner is safe: its one other thread, the output's, appends no part while a fork is
under way (:mod:`modelport.batch.output`).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from modelport.batch.worker import Message, Task, WorkerConfig, main

_STOP_GRACE_S = 5.0


@dataclass(eq=False)  # identity: a replacement is a different process
class WorkerProcess:
    process: BaseProcess
    conn: Connection


class ProcessExecutor:
    """Starts, feeds, watches and kills local worker processes for :class:`~modelport.batch.engine.Engine`."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        forks = "fork" in multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork") if forks else multiprocessing.get_context("spawn")

    def start(self, number: int) -> WorkerProcess:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=main, args=(number, theirs, self.config), name=f"batch-worker-{number}")
        process.start()
        theirs.close()
        return WorkerProcess(process, ours)

    def send(self, host: WorkerProcess, task: Task) -> None:
        host.conn.send(task)

    def receive(self, hosts: list[WorkerProcess], timeout: float) -> list[tuple[WorkerProcess, Message]]:
        by_conn = {host.conn: host for host in hosts}
        replies: list[tuple[WorkerProcess, Message]] = []
        for conn in wait(list(by_conn), timeout=max(0.0, timeout)):
            host = by_conn[conn]  # type: ignore[index]
            try:
                replies.append((host, host.conn.recv()))
            except (EOFError, OSError):
                host.process.join(1)
                replies.append((host, ("lost", f"worker process exited with code {host.process.exitcode}")))
        return replies

    def kill(self, host: WorkerProcess) -> None:
        if host.process.is_alive():
            host.process.kill()
        host.process.join()
        host.conn.close()

    def close(self, idle: list[WorkerProcess], busy: list[WorkerProcess]) -> None:
        """Busy processes are killed; idle ones are told to stop and get a few seconds to exit."""
        for host in idle:
            try:
                host.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for host in busy:
            self.kill(host)
        deadline = time.monotonic() + _STOP_GRACE_S
        for host in idle:
            host.process.join(max(0.0, deadline - time.monotonic()))
            self.kill(host)
