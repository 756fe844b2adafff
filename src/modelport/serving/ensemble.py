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
from typing import Any

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError
from modelport.protocol.types import InferenceRequest, InferInput, RequestedOutput
from modelport.registry.sources import ModelSource
from modelport.runtime.ensemble import Composing, EnsemblePlan, PlannedStep, plan_ensemble
from modelport.serving import inference
from modelport.serving.model import Execution, Servable

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

    def replan(self, configs: Composing) -> None:
        """Check the steps again against ``configs`` (a composing model was loaded again); raises
        :class:`ValidationError` when they no longer fit."""
        plan_ensemble(self.config, configs)

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

    async def _run(self, inputs: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """Every step, each started once the tensors it reads exist; the first failure cancels
        the steps still running. The plan has no cycle, so every step gets to run. Tensors are
        arrays here; a pipeline's carry the rows they hold (``serving.pipeline``)."""
        tensors = dict(inputs)
        waiting = list(self.plan.steps)
        running: dict[asyncio.Task[dict[str, Any]], PlannedStep] = {}
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

    async def _step(self, step: PlannedStep, tensors: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """One step: the tensors it reads, as they are, to its model."""
        return await self._call(step, {key: tensors[tensor] for key, tensor in step.inputs.items()}, request_id)

    async def _call(
        self, step: PlannedStep, inputs: dict[str, np.ndarray], request_id: str | None
    ) -> dict[str, np.ndarray]:
        """A request to the step's model (its scheduler, its statistics); its errors keep their
        kind and name the step."""
        try:
            model = self._resolve(step.model_name, step.version)
            request = InferenceRequest(
                request_id,
                [_tensor(key, array) for key, array in inputs.items()],
                [RequestedOutput(key) for key in step.outputs],
            )
            with inference.admitted(model):
                response = await inference.infer(model, request)
        except ModelportError as exc:  # serving's error kinds take their message alone
            raise type(exc)(f"{self._where(step)}: {exc}") from exc
        return {output.name: output.data for output in response.outputs}

    def _where(self, step: PlannedStep) -> str:
        return f"ensemble {self.name!r}: step {step.index} (model {step.model_name!r})"


def _tensor(name: str, array: np.ndarray) -> InferInput:
    return InferInput(name, datatype_of(array), tuple(array.shape), array)
