"""A Triton ensemble run in one process, each step on its composing model's predictor.

This is how a batch worker scores a mini-batch with an ensemble: the mini-batch is already the
batch and a worker holds no server, so the steps run one after another on predictors, each as
soon as the tensors it reads exist (the plan has no cycle). The plan is the one serving checks
(:func:`modelport.runtime.ensemble.plan_ensemble`), against the composing models' completed
configs, so a repository that ``serve`` refuses is refused here with the same line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelport.runtime.config import ModelConfig
from modelport.runtime.ensemble import Composing, plan_ensemble
from modelport.runtime.predictor import Predictor, TensorMeta

Version = tuple[str, str]
"""A composing model version: (name, version)."""


class EnsemblePredictor(Predictor):
    """Ensemble ``config`` over ``steps`` (each loaded composing model version's predictor), whose
    completed configs are ``composing``."""

    batch_dim = True

    def __init__(self, config: ModelConfig, steps: Mapping[Version, Predictor], composing: Composing) -> None:
        self.plan = plan_ensemble(config, composing)
        self._steps = dict(steps)
        self._latest = {name: max(versions, key=int) for name, versions in composing.items()}
        lead = (-1,) if config.max_batch_size > 0 else ()
        self.inputs = [TensorMeta(t.name, t.datatype, lead + tuple(t.dims)) for t in config.inputs]
        self.outputs = [TensorMeta(t.name, t.datatype, lead + tuple(t.dims)) for t in config.outputs]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = dict(inputs)
        waiting = list(self.plan.steps)
        while waiting:
            step = next(step for step in waiting if step.needs <= tensors.keys())
            waiting.remove(step)
            version = step.version or self._latest[step.model_name]  # None: the highest loaded, as serving picks
            ran = self._steps[step.model_name, version].predict(
                {key: tensors[tensor] for key, tensor in step.inputs.items()}
            )
            tensors.update({tensor: ran[key] for key, tensor in step.outputs.items()})
        return {name: tensors[name] for name in self.plan.outputs}

    def close(self) -> None:
        for predictor in self._steps.values():
            predictor.close()
