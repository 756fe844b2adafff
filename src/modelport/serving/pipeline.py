"""Serving a registered pipeline: the ensemble executor, with steps that run on some rows only.

A pipeline runs as an ensemble does (:mod:`modelport.serving.ensemble`): each step is a request
to its model through that model's scheduler, so the steps of concurrent pipeline requests are
batched together. What it adds is rows. Each tensor of a request carries the rows it holds
(:class:`~modelport.runtime.pipeline.Rows`); a step runs on the rows every tensor it reads has,
narrowed by its ``when:``, so only those rows are gathered and sent to its model (a step with no
row left is not called at all), and its outputs hold those rows. An output is built, row by row,
from the first of its ``from:`` tensors that has the row: the answer comes back in request order.

A cascade thus sends every row to the small model and only the unsure rows to the large one, and
the large model's batches hold unsure rows of many requests at once.

A Python step (:mod:`modelport.runtime.pipeline_code`) runs its function on the step's rows in a
worker thread, so a slow function does not hold the event loop; its modules are imported when the
pipeline loads, and a module that no longer imports fails the load naming the step.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from modelport.core.errors import ValidationError
from modelport.registry.sources import ModelSource
from modelport.runtime.config import ModelConfig, TensorConfig
from modelport.runtime.ensemble import Composing, PlannedStep
from modelport.runtime.pipeline import (
    PipelinePlan,
    PipelinePlannedStep,
    RegisteredPipeline,
    Rows,
    StepModel,
    pipeline_outputs,
    plan_pipeline,
    step_inputs,
    step_outputs,
    step_rows,
)
from modelport.runtime.pipeline_code import StepFunction, load_functions
from modelport.runtime.predictor import TensorMeta, check_inputs
from modelport.serving.ensemble import EnsembleModel, Resolve
from modelport.serving.model import Execution, Servable

PIPELINE_PLATFORM = "pipeline"
PYTHON_ONLY_BATCH = 1024  # the max_batch_size of a pipeline whose steps are all Python (no model bounds it)


class PipelineModel(EnsembleModel):
    """A pipeline version: a config made from its definition (batching as much as its steps
    do), and its plan, checked against the step models' completed configs."""

    plan: PipelinePlan

    def __init__(
        self,
        source: ModelSource,
        config: ModelConfig,
        plan: PipelinePlan,
        resolve: Resolve,
        functions: dict[str, StepFunction],
    ) -> None:
        Servable.__init__(self, source, config)
        self.plan = plan
        self._resolve = resolve
        self._functions = functions
        self._inputs = [TensorMeta(t.name, t.datatype, (-1, *t.dims)) for t in config.inputs]

    @classmethod
    def load(cls, source: ModelSource, configs: Composing, resolve: Resolve) -> PipelineModel:
        assert source.pipeline is not None, "a pipeline source carries its definition"
        plan, steps = _plan(source.name, source.pipeline, configs)
        spec = source.pipeline.spec
        config = ModelConfig(
            name=source.name,
            platform=PIPELINE_PLATFORM,
            max_batch_size=min((step.max_batch_size for step in steps), default=PYTHON_ONLY_BATCH),
            inputs=[TensorConfig(name=t.name, datatype=t.datatype, dims=tuple(t.shape[1:])) for t in spec.inputs],
            outputs=[TensorConfig(name=t.name, datatype=t.datatype, dims=tuple(t.shape[1:])) for t in spec.outputs],
        )
        return cls(source, config, plan, resolve, load_functions(source.name, spec, source.pipeline.code))

    def replan(self, configs: Composing) -> None:
        assert self.source.pipeline is not None
        _plan(self.name, self.source.pipeline, configs)

    async def execute(self, inputs: dict[str, np.ndarray], request_id: str | None) -> Execution:
        check_inputs(self._inputs, inputs)  # as declared: a bad request names the pipeline's tensor, not a step's
        started = time.perf_counter_ns()
        rows = next(iter(inputs.values())).shape[0]
        tensors = await self._run({name: Rows(array) for name, array in inputs.items()}, request_id)
        outputs = pipeline_outputs(self.plan, rows, tensors)
        finished = time.perf_counter_ns()
        self.stats.record_execution(rows, 0, finished - started, 0)
        return Execution(outputs, 0, finished - started, rows)

    async def _step(self, step: PlannedStep, tensors: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """The step on its rows only; not called at all when it has none."""
        assert isinstance(step, PipelinePlannedStep)
        rows = step_rows(step, tensors)
        if rows is not None and len(rows) == 0:
            return step_outputs(step, None, rows)
        inputs = step_inputs(step, tensors, rows)
        if step.python is not None:
            return step_outputs(step, await asyncio.to_thread(self._functions[step.step], inputs), rows)
        return step_outputs(step, await self._call(step, inputs, request_id), rows)

    def _where(self, step: PlannedStep) -> str:
        name = step.step if isinstance(step, PipelinePlannedStep) else str(step.index)
        return f"pipeline {self.name!r}: step {name!r} (model {step.model_name}:{step.version})"


def _plan(name: str, pipeline: RegisteredPipeline, configs: Composing) -> tuple[PipelinePlan, list[ModelConfig]]:
    """The plan against the loaded step models' configs, and those configs in step order."""
    models, chosen = {}, []
    for step in pipeline.spec.steps:
        if step.python is not None:  # its tensors are declared in the definition
            continue
        model, version = pipeline.pins[step.name]
        config = configs.get(model, {}).get(str(version))
        if config is None:
            raise ValidationError(f"pipeline {name!r}: step {step.name!r}: model {model}:{version} is not loaded")
        models[step.name] = StepModel.from_config(f"{model}:{version}", config)
        chosen.append(config)
    return plan_pipeline(name, pipeline.spec, pipeline.pins, models), chosen
