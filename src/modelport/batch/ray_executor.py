"""The Ray executor: a job's scoring hosts as Ray actors, one per worker slot, on a cluster.

Each actor holds one :class:`~modelport.batch.worker.Host`, the same one a local worker process
holds (``init()`` once per actor, ``run(task)`` per call), so the engine's rules apply unchanged:
the engine waits on the actors' replies with ``ray.wait(timeout=...)`` up to its next deadline,
and a hung actor is killed with ``ray.kill`` and replaced like a hung process. Ray retries
nothing itself (no actor restarts, no task retries): retries are the engine's to count.

An actor reserves one CPU and actors are spread over the nodes, so ``instance_count ×
max_concurrency_per_instance`` workers need that many CPUs in the cluster. Actors are owned by
the runner: when a runner dies, Ray ends its actors, and ``job resume`` starts new ones.

The cluster must see the runner's files at the same paths: the model folder, the scoring code,
local inputs, and the job folder where actors write output parts and logs (one machine, or a
shared filesystem), and modelport must be importable by the cluster's Python.

This module imports Ray: only Ray jobs import it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

from modelport.batch.worker import Host, Message, Task, WorkerConfig, describe
from modelport.core.errors import ModelportError, ValidationError

try:
    import ray
except ImportError:
    raise ValidationError("--engine ray: Ray is not installed; pip install 'modelport[ray]'") from None

_PROBE_TIMEOUT_S = 5.0


def check_address(address: str | None) -> str:
    """The cluster address a job uses (``--ray-address``, else ``$RAY_ADDRESS``), refused at once
    when nothing listens there: ``ray.init`` would wait about two minutes, then exit the process."""
    chosen = address or os.environ.get("RAY_ADDRESS")
    if not chosen:
        raise ValidationError("--ray-address: give the Ray cluster's head as HOST:PORT, or set RAY_ADDRESS")
    host, _, port = chosen.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValidationError(f"--ray-address: {chosen!r} is not HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ValidationError(f"--ray-address: no Ray cluster answers at {chosen} ({exc.strerror or exc})") from None
    return chosen


@ray.remote(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=0, max_task_retries=0)
class _HostActor:
    """One worker slot on the cluster: a :class:`Host` in the actor's own process."""

    def __init__(self, number: int, config: WorkerConfig) -> None:
        node = ray.get_runtime_context().get_node_id()
        self.host = Host(number, config, place=f" on Ray node {node}")

    def init(self) -> Message:
        return self.host.init()

    def run(self, task: Task) -> Message:
        return self.host.run(task)


@dataclass(eq=False)  # identity: a replacement is a different actor
class HostActor:
    actor: Any  # ray.actor.ActorHandle
    reply: Any = None  # the ObjectRef of the call awaited (init, then each run), None when idle


class RayExecutor:
    """Starts, feeds, watches and kills actors for :class:`~modelport.batch.engine.Engine`."""

    def __init__(self, address: str | None, config: WorkerConfig, workers: int) -> None:
        """Connect to the cluster and check it can hold ``workers`` actors at once."""
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except (Exception, SystemExit) as exc:  # ray.init exits the process when the cluster never answers
            raise ModelportError(f"Ray cluster at {address}: cannot connect ({describe(exc)})") from None
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            ray.shutdown()
            raise ModelportError(
                f"Ray cluster at {address} has {cpus:g} CPUs; this job's {workers} workers need one each "
                "(lower instance_count or max_concurrency_per_instance, or add nodes)"
            )
        self.config = replace(config, threads=1)  # the actor's one CPU, not the runner's machine

    def start(self, number: int) -> HostActor:
        actor = _HostActor.remote(number, self.config)  # type: ignore[attr-defined]
        return HostActor(actor, actor.init.remote())

    def send(self, host: HostActor, task: Task) -> None:
        host.reply = host.actor.run.remote(task)

    def receive(self, hosts: list[HostActor], timeout: float) -> list[tuple[HostActor, Message]]:
        awaited = {host.reply: host for host in hosts if host.reply is not None}
        if not awaited:  # nothing out: wait like a pipe with nothing to read
            time.sleep(max(0.0, timeout))
            return []
        ready, _ = ray.wait(list(awaited), num_returns=1, timeout=max(0.0, timeout))
        replies: list[tuple[HostActor, Message]] = []
        for ref in ready:
            host = awaited[ref]
            host.reply = None
            try:
                replies.append((host, ray.get(ref)))
            except ray.exceptions.RayError as exc:  # the actor died: killed, crashed, or its node went away
                replies.append((host, ("lost", f"Ray actor died ({describe(exc)})")))
        return replies

    def kill(self, host: HostActor) -> None:
        ray.kill(host.actor, no_restart=True)

    def close(self, idle: list[HostActor], busy: list[HostActor]) -> None:
        """Actors hold nothing to flush (a part is written before its reply), so all are killed."""
        for host in idle + busy:
            self.kill(host)
        ray.shutdown()
