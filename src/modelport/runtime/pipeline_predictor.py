"""A pipeline run in one process, step after step, each step's model a predictor of its own.

This is how a batch worker scores a mini-batch with a pipeline: the mini-batch is already the
batch, so no scheduler is needed between the steps, and a worker process holds no server. The rows
follow the same rules as in a served pipeline (:mod:`modelport.runtime.pipeline`): a step runs on
the rows its condition keeps, its model sees only those, and every output is merged back in row
order. Python steps run in the worker too, their modules imported from the pipeline's code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelport.runtime.pipeline import (
    RegisteredPipeline,
    Rows,
    StepModel,
    pipeline_outputs,
    plan_pipeline,
    step_inputs,
    step_outputs,
    step_rows,
)
from modelport.runtime.pipeline_code import load_functions
from modelport.runtime.predictor import Predictor, TensorMeta


class PipelinePredictor(Predictor):
    """``pipeline``'s steps on ``steps`` (step name → its pinned model, loaded), checked against
    what those predictors take and give when it is made."""

    batch_dim = True

    def __init__(self, name: str, pipeline: RegisteredPipeline, steps: Mapping[str, Predictor]) -> None:
        models = {
            step: StepModel(
                f"{model}:{version}",
                {meta.name: (meta.datatype, tuple(meta.shape)) for meta in steps[step].inputs},
                {meta.name: (meta.datatype, tuple(meta.shape)) for meta in steps[step].outputs},
            )
            for step, (model, version) in pipeline.pins.items()
        }
        self.plan = plan_pipeline(name, pipeline.spec, pipeline.pins, models)
        self._steps = dict(steps)
        self._functions = load_functions(name, pipeline.spec, pipeline.code)
        self.inputs = [TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in pipeline.spec.inputs]
        self.outputs = [TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in pipeline.spec.outputs]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        total = next(iter(inputs.values())).shape[0]
        tensors = {name: Rows(array) for name, array in inputs.items()}
        for step in self.plan.pipeline_steps:
            rows = step_rows(step, tensors)
            run = self._functions[step.step] if step.python is not None else self._steps[step.step].predict
            ran = None if rows is not None and len(rows) == 0 else run(step_inputs(step, tensors, rows))
            written = step_outputs(step, ran, rows)
            tensors.update({tensor: written[key] for key, tensor in step.outputs.items()})
        return pipeline_outputs(self.plan, total, tensors)

    def close(self) -> None:
        for predictor in self._steps.values():
            predictor.close()
