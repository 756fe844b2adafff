"""Keep each deployment's replicas running, probed, and replaced one at a time on update.

A :class:`Keeper` owns one replica slot: it starts (or adopts) the replica, polls readiness
until the replica answers, then probes readiness and liveness with the deployment's settings
(Azure's: ``/`` answering, readiness failing → out of rotation, liveness failing → restart).
Readiness is the replica's ``/v2/health/ready``, which is ready only while every model the
replica serves is loaded, so a model unloaded on the replica's own port takes the replica out of
rotation. ``failure_threshold`` is for probes that get no answer (a busy or stalled replica may
yet recover); a replica that answers "not ready" says so itself, and leaves at once.
A replica that exits leaves the rotation at once (its pidfd wakes the keeper) and is started
again after a backoff that grows while it keeps failing. A :class:`DeploymentGroup` is a
deployment's keepers; creating or updating it is *strict*: the first replica that fails to
start stops the operation with the reason from its console, and nothing that served before stops.

A deployment with ``scale_settings.type: target_utilization`` also has an autoscaler: a task
that samples the group's requests in flight, asks :mod:`modelport.control.autoscale` how many
replicas that calls for, and starts replicas (in rotation once ready, as always) or retires them
(out of rotation, drained, then stopped, so no request fails). It acts under the group's lock and
sits out while a create or update holds it; an update keeps the count it reached (held to the
new bounds), and a daemon started afresh starts at ``min_instances``.

The supervisor records every replica in ``replicas.json`` so that a daemon started after a crash
adopts the replicas still running instead of restarting them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from modelport.control import autoscale
from modelport.control.catalog import DeploymentRecord
from modelport.control.logs import record_event, tail_lines
from modelport.control.replica import START_MARK, LaunchPlan, Replica, ReplicaRecord, launch_plan
from modelport.core.enums import StrEnum
from modelport.core.errors import ModelportError
from modelport.schema.online import DeploymentSpec

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores

log = logging.getLogger("modelport.control")

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/"
STOP_GRACE_S = 15.0
BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 30)
HEALTHY_RESET_S = 30.0  # a replica up this long starts its backoff from the beginning again


class ProvisioningState(StrEnum):
    """A deployment as ``deployment show`` reports it (Azure's provisioning states)."""

    CREATING = "Creating"  # its first replicas are starting
    UPDATING = "Updating"  # rolling to a new revision, or scaling
    SUCCEEDED = "Succeeded"  # the last create or update finished (a failed update leaves its error)
    NOT_RUNNING = "NotRunning"  # stored, but the daemon holds no replicas for it


class ReplicaState(StrEnum):
    """A replica slot as ``deployment show`` reports it."""

    READY = "ready"  # in rotation
    UNREADY = "unready"  # running, out of rotation: its readiness probe fails
    STARTING = "starting"  # started, not ready yet
    RESTARTING = "restarting"  # no process: waiting out the backoff, or launching
    RETIRING = "retiring"  # draining before it stops


class Health(enum.Enum):
    """What one probe found."""

    UP = "up"  # answered 200
    DOWN = "down"  # answered otherwise: the replica itself says it cannot serve
    SILENT = "silent"  # no answer within the timeout, or no connection


@dataclass(frozen=True)
class ProbeResult:
    health: Health
    detail: str = ""  # why not UP: the replica's own reason when it gave one


class StartError(ModelportError):
    """A replica of a deployment being created or updated could not start; nothing else changed."""

    http_status = 422


class Keeper:
    """Keeps one replica of one deployment revision running until retired."""

    def __init__(
        self, group: DeploymentGroup, slot: int, revision: str, *, strict: bool, adopted: Replica | None = None
    ) -> None:
        self.group = group
        self.slot = slot
        self.revision = revision
        self.strict = strict
        self.replica = adopted
        self.restarts = 0
        self.last_error: str | None = None
        self.unready: str | None = None  # why a running replica is out of rotation
        self.first_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._retired = False
        self._task = asyncio.create_task(self._run(adopted))

    @property
    def serving(self) -> Replica | None:
        replica = self.replica
        return replica if replica is not None and replica.ready and not replica.retiring else None

    @property
    def state(self) -> ReplicaState:
        if self._retired:
            return ReplicaState.RETIRING
        if self.serving:
            return ReplicaState.READY
        if self.replica is None:
            return ReplicaState.RESTARTING
        return ReplicaState.UNREADY if self.unready else ReplicaState.STARTING

    def describe(self) -> dict[str, Any]:
        replica = self.replica
        return {
            "slot": self.slot,
            "state": self.state,
            "revision": self.revision,
            "restarts": self.restarts,
            "pid": replica.pid if replica else None,
            "port": replica.record.port if replica else None,
            "url": replica.url if replica else None,
            "metrics_url": f"{replica.url}/metrics" if replica else None,
            "outstanding": replica.outstanding if replica else 0,
            "unready": self.unready,
            "last_error": self.last_error,
        }

    async def _run(self, adopted: Replica | None) -> None:
        failures = 0
        replica = adopted
        while not self._retired:
            try:
                if replica is None:
                    replica = await self.group.launch(self.slot, self.revision)
                self.replica = replica
                self.group.supervisor.save_state()
                began = time.monotonic()
                reason = await self._watch(replica)
            except ModelportError as exc:  # no plan: bad environment, damaged model copy...
                reason, began = str(exc), time.monotonic()
            except Exception as exc:  # the process could not be started at all
                log.exception("%s: replica %d could not start", self.group.label, self.slot)
                reason, began = f"replica {self.slot} could not start: {type(exc).__name__}: {exc}", time.monotonic()
            if self._retired:
                return
            if replica is not None:
                replica.ready = False
            replica = self.replica = None
            self.unready = None
            self.group.supervisor.save_state()
            self.last_error = reason
            if not self.first_ready.done() and self.strict:
                self.first_ready.set_exception(StartError(reason))
                return
            log.warning("%s: %s", self.group.label, reason)
            failures = 0 if time.monotonic() - began > HEALTHY_RESET_S else failures + 1
            self.restarts += 1
            await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1] if failures else 0)

    async def _watch(self, replica: Replica) -> str:
        """Probe ``replica`` until it ends; returns why it ended (exit, or liveness failure)."""
        exited = asyncio.create_task(replica.wait_exit())
        probing = asyncio.create_task(self._probe(replica))
        try:
            await asyncio.wait([exited, probing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            probing.cancel()
        if not exited.done():  # the probes gave up on it: liveness, or it never became ready
            replica.signal(signal.SIGKILL)
            await exited
            return probing.result()
        code = replica.exit_code()
        started = "" if self.first_ready.done() else " before it was ready"
        if code is not None and code < 0:  # killed: its console says nothing about why
            return f"replica {self.slot} was killed by signal {-code}{started}"
        status = "exit status unknown" if code is None else f"exit code {code}"
        return f"replica {self.slot} exited{started} ({status}): {console_error(Path(replica.record.log))}"

    async def _probe(self, replica: Replica) -> str:
        """Poll readiness until the replica first answers (or its start-up time is up), then run
        both probes every ``period`` (the shorter of the two) until liveness gives up."""
        readiness = self.group.spec.readiness_probe
        limit = readiness.initial_delay + readiness.failure_threshold * readiness.period
        while (await self.group.supervisor.probe(replica, READY_PATH, readiness.timeout)).health is not Health.UP:
            if time.time() - replica.record.started_at > limit:
                return f"replica {self.slot} was not ready within {limit:g} s"
            await asyncio.sleep(0.1)
        replica.ready = True
        if not self.first_ready.done():
            self.first_ready.set_result(None)
        passed = failed = lost = 0
        while True:
            spec = self.group.spec  # settings changed by an update apply to running replicas
            readiness, liveness = spec.readiness_probe, spec.liveness_probe
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(replica.recheck.wait(), min(readiness.period, liveness.period))
            replica.recheck.clear()
            probe = self.group.supervisor.probe
            live_due = time.time() >= replica.record.started_at + liveness.initial_delay
            ready, alive = await asyncio.gather(
                probe(replica, READY_PATH, readiness.timeout),
                probe(replica, LIVE_PATH, liveness.timeout) if live_due else _up(),
            )
            passed, failed = (passed + 1, 0) if ready.health is Health.UP else (0, failed + 1)
            if ready.health is Health.DOWN or failed >= readiness.failure_threshold:
                if replica.ready:
                    log.warning("%s: replica %d left the rotation: %s", self.group.label, self.slot, ready.detail)
                replica.ready, self.unready = False, ready.detail
            elif passed >= readiness.success_threshold:
                replica.ready, self.unready = True, None
            lost = 0 if alive.health is Health.UP else lost + 1
            if lost >= liveness.failure_threshold:
                return f"replica {self.slot} failed {lost} liveness probes in a row; restarted"

    async def retire(self, drain_s: float) -> None:
        """Out of rotation, wait for its requests in flight (at most ``drain_s``), then stop it
        (SIGTERM lets the server finish what it has; SIGKILL after the grace period)."""
        self._retired = True
        replica = self.replica
        if replica is not None:
            replica.retiring = True
            deadline = time.monotonic() + drain_s
            while replica.outstanding and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            replica.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(replica.wait_exit()), STOP_GRACE_S)
            except asyncio.TimeoutError:
                replica.signal(signal.SIGKILL)
                await replica.wait_exit()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if not self.first_ready.done():
            self.first_ready.cancel()


async def _up() -> ProbeResult:
    return ProbeResult(Health.UP)


def _reason(body: bytes) -> str:
    """The one-line reason in a v2 (``error``) or Azure (``message``) error body, else ''."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    reason = next((data[key] for key in ("error", "message") if isinstance(data, dict) and key in data), "")
    return " ".join(str(reason).split())[:300]


def console_error(log_file: Path) -> str:
    """The line of a replica's console that says why it stopped: the last ``error:`` line since
    it started (modelport's CLI prints exactly one), else its last line; plus where the log is."""
    lines = tail_lines(log_file, 200)
    start = max((i for i, line in enumerate(lines) if line.startswith(START_MARK)), default=-1)
    lines = [line.strip() for line in lines[start + 1 :] if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return f"{(errors or lines or ['(no output)'])[-1]} (log: {log_file})"


class DeploymentGroup:
    """The keepers of one deployment, plus what the router counts for it."""

    def __init__(self, supervisor: Supervisor, record: DeploymentRecord) -> None:
        self.supervisor = supervisor
        self.spec = record.spec
        self.revision = record.revision
        self.keepers: list[Keeper] = []
        self.desired = record.spec.min_replicas  # what the group is made to run: scaling moves it
        self.in_flight = 0
        self.turn = 0
        self.state = ProvisioningState.CREATING
        self.error: str | None = None
        self._plans: dict[str, LaunchPlan] = {}
        self._specs: dict[str, DeploymentSpec] = {record.revision: record.spec}
        self.lock = asyncio.Lock()
        self._scaler: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        return f"{self.spec.endpoint_name}/{self.spec.name}"

    # What the router reads of a deployment (``routing.backend.Group``), from its current spec.
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_in_flight(self) -> int:
        return self.spec.max_in_flight

    @property
    def request_timeout_ms(self) -> int:
        return self.spec.request_settings.request_timeout_ms

    def serving(self) -> list[Replica]:
        return [replica for keeper in self.keepers if (replica := keeper.serving) is not None]

    def unready_reason(self) -> str:
        """Why no replica can take a request, for the router's 503."""
        if not self.keepers:
            return f"deployment {self.spec.name!r} has no replicas"
        states = [keeper.describe() for keeper in self.keepers]
        errors = [reason for state in states if (reason := state["unready"] or state["last_error"])]
        summary = ", ".join(f"replica {s['slot']} {s['state']}" for s in states)
        return f"deployment {self.spec.name!r} has no ready replica ({summary})" + (f": {errors[-1]}" if errors else "")

    def current(self) -> int:
        """Replicas running or starting, not those retiring (as an HPA counts pods, ready or not)."""
        return sum(keeper.state is not ReplicaState.RETIRING for keeper in self.keepers)

    def describe(self) -> dict[str, Any]:
        return {
            "provisioning_state": self.state,
            "error": self.error,
            "in_flight": self.in_flight,
            "current_replicas": self.current(),
            "ready_replicas": len(self.serving()),
            "desired_replicas": self.desired,
            "replicas": [keeper.describe() for keeper in self.keepers],
        }

    async def launch(self, slot: int, revision: str) -> Replica:
        if revision not in self._plans:
            self._plans[revision] = await asyncio.to_thread(launch_plan, self.supervisor.ws, self._specs[revision])
        log_file = self.supervisor.logs_dir / self.spec.endpoint_name / self.spec.name / f"replica-{slot}.log"
        return Replica.start(self._plans[revision], self.spec.endpoint_name, self.spec.name, revision, slot, log_file)

    def _free_slot(self) -> int:
        used = {keeper.slot for keeper in self.keepers}
        return next(slot for slot in range(len(used) + 1) if slot not in used)

    async def _start(self, revision: str) -> Keeper:
        """A new keeper that has a ready replica; StartError (and nothing left running) otherwise."""
        keeper = Keeper(self, self._free_slot(), revision, strict=True)
        self.keepers.append(keeper)
        try:
            await asyncio.shield(keeper.first_ready)
        except BaseException:
            await self._retire(keeper)
            raise
        keeper.strict = False  # from now on it is restarted when it dies
        return keeper

    async def _retire(self, keeper: Keeper) -> None:
        await keeper.retire(self.spec.request_settings.request_timeout_ms / 1000)
        if keeper in self.keepers:
            self.keepers.remove(keeper)
        self.supervisor.save_state()

    def adopt(self, replicas: Iterable[Replica]) -> None:
        """Keep running replicas of the current revision in their slots, start the missing ones
        (retrying until they start)."""
        by_slot = {replica.record.slot: replica for replica in replicas}
        for slot in range(self.desired):
            self.keepers.append(Keeper(self, slot, self.revision, strict=False, adopted=by_slot.get(slot)))
        self.state = ProvisioningState.SUCCEEDED
        self._follow_scale_settings()

    async def create(self) -> None:
        async with self.lock:
            try:
                for _ in range(self.desired):
                    await self._start(self.revision)
            except BaseException:
                await self.stop()
                raise
            self.state = ProvisioningState.SUCCEEDED
        self._follow_scale_settings()

    async def update(self, record: DeploymentRecord) -> None:
        """Move to ``record``: settings apply at once; a new revision replaces replicas one at a
        time, each new one ready before an old one is retired. If a new replica fails to start,
        the replicas already replaced are brought back to the old revision and StartError is raised.
        The count is the one the group runs now (an autoscaler's), held to the new definition's
        bounds: ``instance_count``, or ``[min_instances, max_instances]``."""
        async with self.lock:
            self.state, self.error = ProvisioningState.UPDATING, None
            self._specs[record.revision] = record.spec
            count = autoscale.bounded(self.desired, record.spec.min_replicas, record.spec.max_replicas)
            try:
                if record.revision == self.revision:
                    await self._scale(count)
                    await self._settled()
                else:
                    await self._roll(record, count)
            except StartError as exc:
                self.state, self.error = ProvisioningState.SUCCEEDED, str(exc)
                raise
            self.spec, self.revision, self.state = record.spec, record.revision, ProvisioningState.SUCCEEDED
            self.desired = count
        self._follow_scale_settings()

    async def _settled(self) -> None:
        """Wait for replicas still starting (a daemon restarted moments ago) to be ready, as a
        create waits: an update answers when the deployment serves, so a client that updates and
        then invokes is not refused. Bounded by the readiness probe's budget; a replica that never
        gets ready is its keeper's to report (it keeps restarting it)."""
        pending = [asyncio.shield(keeper.first_ready) for keeper in self.keepers if not keeper.first_ready.done()]
        if pending:
            probe = self.spec.readiness_probe
            await asyncio.wait(pending, timeout=probe.initial_delay + probe.period * probe.failure_threshold)

    async def _scale(self, count: int) -> None:
        started: list[Keeper] = []
        try:
            while len(self.keepers) < count:
                started.append(await self._start(self.revision))
        except StartError:
            for keeper in started:
                await self._retire(keeper)
            raise
        for keeper in sorted(self.keepers, key=lambda k: k.slot)[count:]:
            await self._retire(keeper)

    async def _roll(self, record: DeploymentRecord, count: int) -> None:
        old = sorted(self.keepers, key=lambda k: k.slot)
        started: list[Keeper] = []
        try:
            for index in range(count):
                started.append(await self._start(record.revision))
                if index < len(old):
                    await self._retire(old[index])
        except StartError:
            for _ in started[: len(old)]:  # undo: old revision back first, then the new one out
                with contextlib.suppress(StartError):
                    await self._start(self.revision)
            for keeper in started:
                await self._retire(keeper)
            raise
        for keeper in old[count:]:
            await self._retire(keeper)

    # -- autoscaling ------------------------------------------------------------------------------

    def _follow_scale_settings(self) -> None:
        """Start the autoscaler when the deployment is autoscaled and none runs; one that runs
        reads the settings afresh every poll, and ends once the deployment is no longer autoscaled."""
        if self.spec.scale_settings.autoscaled and (self._scaler is None or self._scaler.done()):
            self._scaler = asyncio.create_task(self._autoscale())
            self._scaler.add_done_callback(self._scaler_ended)

    def _scaler_ended(self, task: asyncio.Task[None]) -> None:
        """A failing autoscaler says so in the daemon's log (the replicas it runs keep running)."""
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: the autoscaler stopped", self.label, exc_info=error)

    async def stop_autoscaling(self) -> None:
        if self._scaler is not None:
            self._scaler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scaler
            self._scaler = None

    async def _autoscale(self) -> None:
        """Sample requests in flight through each polling interval, then move ``desired`` as
        :mod:`autoscale` decides. The history of recommendations starts from the count the group
        runs, and records each count reached, so the cool-down runs from the last change."""
        history: list[autoscale.Recommendation] = [(time.monotonic(), self.desired)]
        while self.spec.scale_settings.autoscaled:
            settings = self.spec.scale_settings
            samples = []
            for _ in range(autoscale.SAMPLES_PER_POLL):
                await asyncio.sleep(settings.polling_interval / autoscale.SAMPLES_PER_POLL)
                samples.append(self.in_flight)
            spec = self.spec
            ready = len(self.serving())
            if self.lock.locked() or not spec.scale_settings.autoscaled or not ready:
                continue  # a create or update is moving replicas (and keeps the count), or nothing to measure
            per_replica = spec.request_settings.max_concurrent_requests_per_instance
            target = spec.scale_settings.target_utilization_percentage / 100
            in_flight = autoscale.mean(samples)
            used = autoscale.utilization(in_flight, ready, per_replica)
            recommended = autoscale.recommend(self.desired, ready, used, target, spec.min_replicas, spec.max_replicas)
            now = time.monotonic()
            delay = spec.scale_settings.scale_down_delay
            history = autoscale.prune([*history, (now, recommended)], now, delay)
            desired = autoscale.stabilized(self.desired, history, now, delay)
            if desired != self.desired:
                event = autoscale.scale_event(self.desired, desired, in_flight, ready, per_replica, target)
                async with self.lock:
                    await self._resize(desired, event)
                history.append((time.monotonic(), self.desired))

    async def _resize(self, count: int, event: str) -> None:
        """Run ``count`` replicas: new ones start together and enter the rotation as each gets
        ready; surplus ones (those out of rotation first, then the highest slots) are retired
        together, each drained before it stops. A replica that fails to start is reported and the
        count is what did start; the next poll tries again if the load still calls for it."""
        before, self.desired = self.desired, count
        self.state = ProvisioningState.UPDATING
        try:
            active = [keeper for keeper in self.keepers if keeper.state is not ReplicaState.RETIRING]
            if count > len(active):
                results = await asyncio.gather(
                    *(self._start(self.revision) for _ in range(count - len(active))), return_exceptions=True
                )
                failed = [result for result in results if isinstance(result, BaseException)]
                if failed:
                    self.desired = self.current()
                    event = f"scale-out {before} → {count} failed, running {self.desired}: {failed[0]}"
            else:
                surplus = sorted(active, key=lambda keeper: (keeper.serving is not None, -keeper.slot))
                await asyncio.gather(*(self._retire(keeper) for keeper in surplus[: len(active) - count]))
        finally:
            self.state = ProvisioningState.SUCCEEDED
        log.info("%s: %s", self.label, event)
        try:
            record_event(self.supervisor.logs_dir / self.spec.endpoint_name / self.spec.name, event)
        except OSError as exc:  # a full disk must not stop the scaling
            log.warning("%s: the event log could not be written: %s", self.label, exc)

    async def stop(self) -> None:
        await self.stop_autoscaling()
        await asyncio.gather(*(self._retire(keeper) for keeper in list(self.keepers)))


class Supervisor:
    """Every deployment group of the daemon, the probe client and the adoption record."""

    def __init__(self, ws: WorkspaceStores, http: httpx.AsyncClient, run_dir: Path, logs_dir: Path) -> None:
        self.ws = ws
        self.http = http
        self.state_file = run_dir / "replicas.json"
        self.logs_dir = logs_dir
        self.groups: dict[tuple[str, str], DeploymentGroup] = {}

    def group(self, endpoint: str, deployment: str) -> DeploymentGroup | None:
        return self.groups.get((endpoint, deployment))

    async def probe(self, replica: Replica, path: str, timeout: float) -> ProbeResult:
        """GET ``path`` on ``replica``; a refusal's reason is the ``error`` or ``message`` its body names."""
        try:
            response = await asyncio.wait_for(self.http.get(replica.url + path), timeout)
        except (httpx.HTTPError, asyncio.TimeoutError):
            return ProbeResult(Health.SILENT, f"no answer to {path} within {timeout:g} s")
        if response.status_code == 200:
            return ProbeResult(Health.UP)
        return ProbeResult(Health.DOWN, _reason(response.content) or f"{path} answered {response.status_code}")

    async def create(self, record: DeploymentRecord) -> DeploymentGroup:
        """Start ``record``'s replicas and wait until all are ready (StartError: none left running)."""
        key = (record.spec.endpoint_name, record.spec.name)
        group = self.groups[key] = DeploymentGroup(self, record)
        try:
            await group.create()
        except BaseException:
            self.groups.pop(key, None)
            raise
        return group

    async def remove(self, endpoint: str, deployment: str) -> None:
        group = self.groups.pop((endpoint, deployment), None)
        if group is not None:
            await group.stop_autoscaling()  # not to wait for a scaling under way to finish
            async with group.lock:
                await group.stop()

    def restore(self, records: Iterable[DeploymentRecord]) -> None:
        """After a daemon (re)start: adopt the replicas a previous daemon left running where they
        still run the stored revision, start the others, and stop the ones nobody wants."""
        remembered = [ReplicaRecord(**item) for item in self._load_state()]
        wanted: set[str] = set()
        for record in records:
            spec = record.spec
            mine = [
                r
                for r in remembered
                if (r.endpoint, r.deployment, r.revision) == (spec.endpoint_name, spec.name, record.revision)
            ]
            replicas = [replica for r in mine if (replica := Replica.adopt(r)) is not None]
            group = DeploymentGroup(self, record)
            group.adopt(replicas)
            wanted |= {keeper.replica.record.id for keeper in group.keepers if keeper.replica is not None}
            self.groups[(spec.endpoint_name, spec.name)] = group
        for left in remembered:
            if left.id not in wanted and (stale := Replica.adopt(left)) is not None:
                stale.signal(signal.SIGTERM)
        self.save_state()

    async def shutdown(self) -> None:
        await asyncio.gather(*(group.stop() for group in self.groups.values()))
        self.groups.clear()
        self.save_state()

    def save_state(self) -> None:
        records = [
            keeper.replica.record.to_dict()
            for group in self.groups.values()
            for keeper in group.keepers
            if keeper.replica is not None
        ]
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_suffix(".partial")
        partial.write_text(json.dumps(records, indent=1))
        os.replace(partial, self.state_file)

    def _load_state(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
