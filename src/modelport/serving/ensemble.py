"""Serving a Triton ensemble: a checked plan of steps, each run by its own model.

A step runs as soon as the tensors it reads exist, so steps that do not depend on each other run
at the same time. Each step is one request to its composing model through ``inference.infer``
— that model's scheduler (dynamic batching, instances), its checks and its statistics — so the
steps of concurrent ensemble requests are batched together, step by step, as Triton's ensemble
scheduler does. Tensors pass between steps as the numpy arrays the steps returned: nothing is
encoded or copied on the way.

The ensemble's own statistics count each request once (``execution_count`` = requests,
``inference_count`` = rows, as Triton reports an ensemble); its compute time is the time its
steps took from the first to the last, queueing in the steps' schedulers included, which each
step's model reports apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError
from modelport.protocol.types import InferenceRequest, InferInput, RequestedOutput
from modelport.runtime.ensemble import EnsemblePlan, PlannedStep
from modelport.serving import inference
from modelport.serving.model import Execution, Servable
from modelport.serving.sources import ModelSource

Resolve = Callable[[str, "str | None"], Servable]
"""The repository's lookup of a loaded model version (None: the highest), raising when it is not ready."""


class EnsembleModel(Servable):
    """An ensemble version: its config (as written: Triton does not complete an ensemble's) and
    the plan :func:`modelport.runtime.ensemble.plan_ensemble` checked it into."""

    def __init__(self, source: ModelSource, plan: EnsemblePlan, resolve: Resolve) -> None:
        assert source.config is not None, "an ensemble is known by its config"
        super().__init__(source, source.config)
        self.plan = plan
        self._resolve = resolve

    @property
    def instance_count(self) -> int:
        """One: a long ``/score`` table runs through the steps one chunk at a time."""
        return 1

    async def execute(self, inputs: dict[str, np.ndarray], request_id: str | None) -> Execution:
        started = time.perf_counter_ns()
        tensors = await self._run(inputs, request_id)
        finished = time.perf_counter_ns()
        rows = next(iter(inputs.values())).shape[0] if self.batched and inputs else 1
        self.stats.record_execution(rows, 0, finished - started, 0)
        return Execution({name: tensors[name] for name in self.plan.outputs}, 0, finished - started, rows)

    async def _run(self, inputs: dict[str, np.ndarray], request_id: str | None) -> dict[str, np.ndarray]:
        """Every step, each started once the tensors it reads exist; the first failure cancels
        the steps still running. The plan has no cycle, so every step gets to run."""
        tensors = dict(inputs)
        waiting = list(self.plan.steps)
        running: dict[asyncio.Task[dict[str, np.ndarray]], PlannedStep] = {}
        try:
            while waiting or running:
                for step in [step for step in waiting if step.needs <= tensors.keys()]:
                    waiting.remove(step)
                    task = asyncio.ensure_future(self._step(step, tensors, request_id))
                    running[task] = step
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    step = running.pop(task)
                    outputs = task.result()
                    tensors.update({tensor: outputs[key] for key, tensor in step.outputs.items()})
        finally:
            for task in running:
                task.cancel()
        return tensors

    async def _step(
        self, step: PlannedStep, tensors: dict[str, np.ndarray], request_id: str | None
    ) -> dict[str, np.ndarray]:
        """One step as a request to its model; its errors keep their kind and name the step."""
        try:
            model = self._resolve(step.model_name, step.version)
            request = InferenceRequest(
                request_id,
                [_tensor(key, tensors[tensor]) for key, tensor in step.inputs.items()],
                [RequestedOutput(key) for key in step.outputs],
            )
            with inference.admitted(model):
                response = await inference.infer(model, request)
        except ModelportError as exc:  # serving's error kinds take their message alone
            raise type(exc)(f"ensemble {self.name!r}: step {step.index} (model {step.model_name!r}): {exc}") from exc
        return {output.name: output.data for output in response.outputs}


def _tensor(name: str, array: np.ndarray) -> InferInput:
    return InferInput(name, datatype_of(array), tuple(array.shape), array)
