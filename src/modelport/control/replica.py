"""One replica: a ``modelport serve`` process on free loopback ports, its console in a log file.

:func:`launch_plan` decides what a deployment's replicas run (blocking work: the model version is
materialised and verified, the environment built); :class:`Replica` starts one process from a
plan, or adopts one a previous daemon started, and tells when it exits. Replicas run in their own
session and write straight to their log file, so they outlive a daemon that is killed and a new
daemon can adopt them (:meth:`Replica.adopt` checks the pid still is that replica).

A deployment with an environment runs in that environment's virtualenv (see
``EnvironmentRegistry.module_command``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.core.files import open_private, private_dir
from modelport.schema.online import DeploymentSpec

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores

HOST = "127.0.0.1"
START_MARK = "=== "  # begins the line a replica's log gets each time the replica starts
_recent_ports: list[int] = []


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a replica process of one deployment revision needs, port numbers aside."""

    command: tuple[str, ...]
    env: dict[str, str]
    cwd: str


def launch_plan(ws: WorkspaceStores, spec: DeploymentSpec) -> LaunchPlan:
    """The ``modelport serve`` command line of ``spec``'s replicas (blocking: may build a venv)."""
    if spec.code_configuration is not None:
        target = ["--entry-script", str(spec.code_configuration.script_path)]
        if spec.model is not None:
            target += ["--model-dir", str(ws.models.model_dir(str(spec.model))[1])]
        for ref in spec.models:  # served beside the script, which calls them (modelport.models)
            ws.models.model_dir(ref)  # verified now, so a damaged copy fails the deployment
            target.append(ref)
        cwd = spec.code_configuration.code
    else:
        ws.models.model_dir(str(spec.model))  # verified now, so a damaged copy fails the deployment
        target, cwd = [str(spec.model)], str(ws.root)
        if spec.config_overrides:
            target += ["--model-config", json.dumps(spec.config_overrides)]
    env = {
        **os.environ,
        "MODELPORT_HOME": str(ws.root),
        "MODELPORT_DB_URL": ws.settings.db_url,
        "MODELPORT_ARTIFACT_ROOT": ws.settings.artifact_root,
        "PYTHONUNBUFFERED": "1",
        **spec.environment_variables,
    }
    labels = ["--endpoint-name", spec.endpoint_name, "--deployment-name", spec.name]
    if spec.data_collector.enabled:
        labels += [
            "--data-collector",
            json.dumps(spec.data_collector.to_dict()),
            "--collect-dir",
            str(ws.root / "collected" / spec.endpoint_name / spec.name),
        ]
    python = ws.environments.module_command(
        None if spec.environment is None else str(spec.environment), "modelport", "replicas"
    )
    return LaunchPlan((*python, "serve", *target, "--host", HOST, "--no-grpc", *labels), env, cwd)


def request_log_path(console_log: Path) -> Path:
    """A replica's request log, beside its console log: ``replica-0.log`` → ``requests-0.jsonl``."""
    return console_log.with_name(console_log.stem.replace("replica-", "requests-") + ".jsonl")


def free_port() -> int:
    """A loopback port nobody listens on, not handed out by this process in its last 64 calls."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in _recent_ports:
            _recent_ports[:] = [*_recent_ports[-63:], port]
            return port


@dataclass(frozen=True)
class ReplicaRecord:
    """What the daemon remembers of a replica across its own restarts (``replicas.json``)."""

    id: str
    endpoint: str
    deployment: str
    revision: str
    slot: int
    pid: int
    port: int
    log: str
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Replica:
    """A running (or adopted) replica process and what the router needs to know of it."""

    def __init__(self, record: ReplicaRecord, process: subprocess.Popen[bytes] | None) -> None:
        self.record = record
        self.process = process
        self.ready = False
        self.retiring = False
        self.outstanding = 0
        self.recheck = asyncio.Event()  # set by the router when the replica refused a connection
        self.url = f"http://{HOST}:{record.port}"

    @classmethod
    def start(cls, plan: LaunchPlan, endpoint: str, deployment: str, revision: str, slot: int, log: Path) -> Replica:
        port = free_port()
        private_dir(log.parent)
        command = [
            *plan.command,
            "--http-port",
            str(port),
            "--metrics-port",
            str(free_port()),
            "--request-log",
            str(request_log_path(log)),
        ]
        with open_private(log) as console:
            console.write(
                f"{START_MARK}{time.strftime('%Y-%m-%d %H:%M:%S')} replica {slot} of {endpoint}/{deployment} "
                f"revision {revision} starting on port {port}\n".encode()
            )
            console.flush()
            process = subprocess.Popen(
                command,
                env=plan.env,
                cwd=plan.cwd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        record = ReplicaRecord(
            f"{deployment}-{slot}-{uuid.uuid4().hex[:6]}",
            endpoint,
            deployment,
            revision,
            slot,
            process.pid,
            port,
            str(log),
            time.time(),
        )
        return cls(record, process)

    @classmethod
    def adopt(cls, record: ReplicaRecord) -> Replica | None:
        """The replica ``record`` describes if its process still runs, else None."""
        try:
            command = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if b"serve" not in command or str(record.port).encode() not in command:
            return None  # the pid now belongs to another process
        return cls(record, None)

    @property
    def pid(self) -> int:
        return self.record.pid

    def exit_code(self) -> int | None:
        """The exit status of a replica this daemon started, once it has ended (None otherwise)."""
        return None if self.process is None else self.process.poll()

    async def wait_exit(self) -> None:
        """Return when the process has ended: a pidfd becomes readable at once (Linux), so a
        dead replica leaves the rotation immediately; elsewhere, polled every 100 ms."""
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            while self._alive():
                await asyncio.sleep(0.1)
            return
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        loop.add_reader(fd, lambda: None if ended.done() else ended.set_result(None))
        try:
            await ended
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        if self.process is not None:
            self.process.wait()  # reap it

    def _alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def signal(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
