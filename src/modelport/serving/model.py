"""A loaded model version: its completed config, its predictor instances and its statistics.

Each instance (``instance_group.count``) is a separate ``Predictor``; a request borrows a free
one in a worker thread (or, batched, in one of the batcher's threads), so instances run in
parallel while the event loop keeps serving. A run known to be shorter than that hop to a thread
borrows the instance on the event loop itself. An instance is the model itself, or a
``ProcessPredictor`` that runs it in a child process when the model's Python would hold the GIL.
"""

from __future__ import annotations

import asyncio
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.errors import ModelportError, ValidationError
from modelport.registry.sources import ModelSource
from modelport.runtime.completion import complete_config
from modelport.runtime.config import InstanceGroup, ModelConfig
from modelport.runtime.predictor import Predictor, check_inputs, load_predictor
from modelport.serving.batching import DynamicBatcher
from modelport.serving.process_instance import ProcessPredictor, runs_in_processes
from modelport.serving.stats import ModelStats

INLINE_LIMIT_NS = 50_000


class ModelUnavailable(ModelportError):
    """The model was unloaded while the request was on its way to it."""

    http_status = 503


class ModelExecutionError(ModelportError):
    """The model itself failed (not the request): a 500 naming model and request."""

    http_status = 500


@dataclass(frozen=True)
class Execution:
    """A finished model run: its outputs, where the time went (ns), and the rows of the
    execution it was part of (larger than the request's own when it was batched with others)."""

    outputs: dict[str, np.ndarray]
    queue_ns: int
    infer_ns: int
    batch_size: int


class Servable:
    """What the front ends, ``inference`` and the statistics see of a served model version: its
    config, metadata, statistics and ``execute``. A model runs its own instances
    (:class:`ServedModel`); an ensemble runs other models (``serving.ensemble``)."""

    batcher: DynamicBatcher | None = None

    def __init__(self, source: ModelSource, config: ModelConfig) -> None:
        self.source = source
        self.name = source.name
        self.version = str(source.version)
        self.config = config
        self.stats = ModelStats(self.name, self.version)
        self.labels = {out.name: self._labels(out.label_filename or config.labels) for out in config.outputs}
        self.input_datatypes = {tensor.name: tensor.datatype for tensor in config.inputs}  # what requests widen to
        self.in_flight = 0  # requests between decoding and answer (``inference.admitted``)

    def _labels(self, filename: str | None) -> list[str] | None:
        if not filename:
            return None
        path = self.source.path.parent / filename
        if not path.is_file():
            path = self.source.path / filename
        try:
            return path.read_text().splitlines()
        except OSError:
            raise ValidationError(f"label_filename: {filename} not found beside model {self.name!r}") from None

    @property
    def instance_count(self) -> int:
        """How many requests it runs at once at most (``inference`` splits long tables by it)."""
        raise NotImplementedError

    @property
    def batched(self) -> bool:
        return self.config.max_batch_size > 0

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata: shapes lead with -1 when the model batches, as in Triton."""
        lead = [-1] if self.batched else []
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.config.platform or self.config.backend or self.source.flavor,
            "inputs": [
                {"name": t.name, "datatype": t.datatype, "shape": lead + list(t.dims)} for t in self.config.inputs
            ],
            "outputs": [
                {"name": t.name, "datatype": t.datatype, "shape": lead + list(t.dims)} for t in self.config.outputs
            ],
        }

    async def execute(self, inputs: dict[str, np.ndarray], request_id: str | None) -> Execution:
        """Run checked inputs (already widened to the config's datatypes) and account for the run."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the runs already submitted, then release what it holds."""


class ServedModel(Servable):
    """Requests reach the instances directly, or through a ``DynamicBatcher`` when the config
    asks for ``dynamic_batching`` on a model with a batch dimension."""

    def __init__(self, source: ModelSource, config: ModelConfig, instances: list[Predictor]) -> None:
        super().__init__(source, config)
        self._free: queue.SimpleQueue[Predictor] = queue.SimpleQueue()
        for instance in instances:
            self._free.put(instance)
        self._instances = instances
        self._executor = ThreadPoolExecutor(len(instances), thread_name_prefix=f"{self.name}-{self.version}")
        self._closed = False
        # Runs shorter than the hop to a worker thread (~30-100 µs: a small MLP takes a few) go
        # on the event loop itself; the running mean of run time (ns) decides, and moves them back
        # to threads if runs grow. Never for instances in child processes: their run is a wait.
        self._inline = not any(isinstance(instance, ProcessPredictor) for instance in instances)
        self._run_ns: float | None = None
        # With batching, only when a batch would go out at once anyway (no queue delay to honour).
        batching = config.dynamic_batching
        self._no_wait = batching is not None and (
            batching.latency_budget_ms is not None or batching.max_queue_delay_microseconds == 0
        )
        if config.dynamic_batching is not None and config.max_batch_size > 0:
            self.batcher = DynamicBatcher(
                config.dynamic_batching,
                config.max_batch_size,
                len(instances),
                self._run_batch,
                on_batch=self._record_batch,
                name=self.name,
                in_flight=lambda: self.in_flight,
            )

    @classmethod
    def load(cls, source: ModelSource) -> ServedModel:
        """Load every instance the (completed) config asks for."""
        first_device, first_in_process = _instance_specs(source.config, source.flavor)[0]
        first = _load_instance(source, first_device, first_in_process)
        try:
            config = complete_config(source.config, first, name=source.name, flavor=source.flavor)
            instances = [first] + _load_instances(source, _instance_specs(config, source.flavor)[1:])
        except BaseException:
            first.close()
            raise
        return cls(source, config, instances)

    @property
    def instance_count(self) -> int:
        return len(self._instances)

    async def execute(self, inputs: dict[str, np.ndarray], request_id: str | None) -> Execution:
        submitted = time.perf_counter_ns()
        if self.batcher is not None:
            check_inputs(self._instances[0].inputs, inputs)  # a bad request must not sink a batch
            ran = self._inline_run(inputs, request_id) if self._no_wait and self.batcher.idle else None
            if ran is None:
                batched = await self.batcher.submit(inputs)
                return Execution(
                    batched.outputs, int(batched.queued * 1e9), int(batched.executed * 1e9), batched.batch_size
                )
            outputs, started, finished = ran  # nothing to batch with, and cheaper than the hop
        else:
            outputs, started, finished = self._inline_run(inputs, request_id) or await self._in_thread(
                inputs, request_id
            )
        rows = next(iter(inputs.values())).shape[0] if self.batched and inputs else 1
        self.stats.record_execution(rows, 0, finished - started, 0)
        return Execution(outputs, started - submitted, finished - started, rows)

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batcher's runner, called in its threads."""
        outputs, _, _ = self._predict(inputs, None)
        return outputs

    def _record_batch(self, rows: int, seconds: float) -> None:
        self.stats.record_execution(rows, 0, int(seconds * 1e9), 0)

    def _inline_run(self, inputs: dict[str, np.ndarray], request_id: str | None) -> tuple[dict, int, int] | None:
        """Run right here on the event loop when runs are known to be shorter than the hop to a
        thread would be and an instance is free; None when the run must go elsewhere."""
        if self._closed:
            raise ModelUnavailable(f"model {self.name!r} version {self.version} was unloaded")
        if not self._inline or self._run_ns is None or self._run_ns >= INLINE_LIMIT_NS:
            return None
        try:
            instance = self._free.get_nowait()
        except queue.Empty:
            return None
        return self._run_on(instance, inputs, request_id)

    async def _in_thread(self, inputs: dict[str, np.ndarray], request_id: str | None) -> tuple[dict, int, int]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._predict, inputs, request_id)
        except RuntimeError:
            if self._closed:  # the executor refuses new work once the model is unloaded
                raise ModelUnavailable(f"model {self.name!r} version {self.version} was unloaded") from None
            raise

    def _predict(self, inputs: dict[str, np.ndarray], request_id: str | None) -> tuple[dict, int, int]:
        """Runs in a worker thread: waits for a free instance, then runs on it."""
        return self._run_on(self._free.get(), inputs, request_id)

    def _run_on(
        self, instance: Predictor, inputs: dict[str, np.ndarray], request_id: str | None
    ) -> tuple[dict, int, int]:
        """Run on a borrowed instance and give it back; returns outputs and start/end (ns)."""
        started = time.perf_counter_ns()
        try:
            outputs = instance.predict(inputs)
        except ModelportError:
            raise
        except Exception as exc:  # the model's own failure, reported with its context
            raise ModelExecutionError(
                f"model {self.name!r} version {self.version} failed on request {request_id or '-'}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._free.put(instance)
        finished = time.perf_counter_ns()
        if self._inline:
            elapsed = finished - started
            self._run_ns = elapsed if self._run_ns is None else self._run_ns + (elapsed - self._run_ns) / 8
        return outputs, started, finished

    def close(self) -> None:
        """Finish the runs already submitted, then release the instances."""
        self._closed = True
        if self.batcher is not None:
            self.batcher.close()
        self._executor.shutdown(wait=True)
        for instance in self._instances:
            instance.close()


def _instance_specs(config: ModelConfig | None, flavor: str) -> list[tuple[str, bool]]:
    """(device, in its own process) for every instance, group by group."""
    groups = config.instance_group if config is not None and config.instance_group else [InstanceGroup()]
    total = sum(group.count for group in groups)
    return [(group.kind, runs_in_processes(group, flavor, total)) for group in groups for _ in range(group.count)]


def _load_instance(source: ModelSource, device: str, in_process: bool) -> Predictor:
    if in_process:
        return ProcessPredictor(source.flavor, source.path, source.config, device=device)
    return load_predictor(source.flavor, source.path, source.config, device=device)


def _load_instances(source: ModelSource, specs: list[tuple[str, bool]]) -> list[Predictor]:
    """Thread instances load one after another in this process; process instances load side by
    side (each child imports and loads on its own core). All or nothing: a failure closes the rest."""
    loaded: list[Predictor] = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max(1, len(specs)), thread_name_prefix=f"load-{source.name}") as pool:
        children = [pool.submit(_load_instance, source, device, True) for device, separate in specs if separate]
        try:
            for device, separate in specs:
                if not separate:
                    loaded.append(_load_instance(source, device, False))
        except BaseException as exc:
            failure = exc
        for child in children:
            try:
                loaded.append(child.result())
            except BaseException as exc:
                failure = failure or exc
    if failure is not None:
        for instance in loaded:
            instance.close()
        raise failure
    return loaded
