"""An ensemble's graph, checked when the repository loads it: the plan its executor follows.

Triton checks an ensemble's steps when it loads the ensemble, after its composing models: a
mistyped tensor name, a datatype that does not match, a cycle, a tensor nobody reads are found
then, not by the first request. :func:`plan_ensemble` makes the same checks, and Triton's
``max_batch_size`` rule, against the composing models' completed configs (what they really take
and give), and refuses with one line naming the ensemble, the step (index and model) and the
tensor. It is pure — configs in, plan or :class:`ValidationError` out — so every refusal is
tested without a server.

Tensors are compared by their full shape: a model or ensemble with ``max_batch_size > 0`` has a
variable batch dim in front of its ``dims``; a -1 on either side fits any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelport.core.errors import ValidationError
from modelport.runtime.config import ModelConfig, TensorConfig
from modelport.schema.model_config import LATEST_VERSION, EnsembleStep


@dataclass(frozen=True)
class PlannedStep:
    """One step as the executor runs it: ``inputs``/``outputs`` map the composing model's tensor
    names to ensemble tensor names; ``version`` None is the highest loaded version."""

    index: int
    model_name: str
    version: str | None
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]

    @property
    def needs(self) -> frozenset[str]:
        """The ensemble tensors that must exist before the step can run."""
        return frozenset(self.inputs.values())


@dataclass(frozen=True)
class EnsemblePlan:
    """A checked ensemble: steps in the order they were written (the executor runs each as soon
    as the tensors it needs exist), and the ensemble's own input and output tensors."""

    name: str
    steps: tuple[PlannedStep, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def composing(self) -> tuple[tuple[str, str | None], ...]:
        """Every (model, version) the ensemble runs, once each."""
        return tuple(dict.fromkeys((step.model_name, step.version) for step in self.steps))


Composing = Mapping[str, Mapping[str, ModelConfig]]
"""The models an ensemble may use: name → loaded version → completed config."""


def plan_ensemble(config: ModelConfig, composing: Composing) -> EnsemblePlan:
    """The plan for ensemble ``config`` over the ``composing`` models; the first problem found
    is raised. The graph itself is checked first (as Triton does), then each step's model."""
    if config.ensemble_scheduling is None:
        raise ValidationError(f"model {config.name!r} is not an ensemble")
    steps = config.ensemble_scheduling.steps
    producers = _check_graph(config, steps)
    models = [_step_model(config, index, step, composing) for index, step in enumerate(steps)]
    _check_tensors(config, steps, models, producers)
    return EnsemblePlan(
        name=config.name,
        steps=tuple(
            PlannedStep(
                index,
                step.model_name,
                None if step.model_version == LATEST_VERSION else str(step.model_version),
                dict(step.input_map),
                dict(step.output_map),
            )
            for index, step in enumerate(steps)
        ),
        inputs=tuple(tensor.name for tensor in config.inputs),
        outputs=tuple(tensor.name for tensor in config.outputs),
    )


def _where(config: ModelConfig, index: int, step: EnsembleStep) -> str:
    return f"ensemble {config.name!r}: step {index} (model {step.model_name!r})"


# -- the graph -----------------------------------------------------------------------------------

ENSEMBLE_INPUT = -1
"""The "step" that produces the ensemble's own inputs."""


def _check_graph(config: ModelConfig, steps: list[EnsembleStep]) -> dict[str, int]:
    """Every tensor written once, read by someone, produced before it is read, and no cycle.
    Returns which step produces each tensor (:data:`ENSEMBLE_INPUT` for the ensemble's inputs)."""
    producers = {tensor.name: ENSEMBLE_INPUT for tensor in config.inputs}
    for index, step in enumerate(steps):
        for key, tensor in step.output_map.items():
            earlier = producers.get(tensor)
            if earlier is not None:
                by = "is an ensemble input" if earlier == ENSEMBLE_INPUT else f"is written by step {earlier} too"
                raise ValidationError(
                    f"{_where(config, index, step)}: output_map {key!r} writes tensor {tensor!r}, which {by}; "
                    "a tensor is produced once"
                )
            producers[tensor] = index
    readers: dict[str, int] = {}
    for index, step in enumerate(steps):
        for key, tensor in step.input_map.items():
            if tensor not in producers:
                raise ValidationError(
                    f"{_where(config, index, step)}: input_map {key!r} reads tensor {tensor!r}, which no step "
                    f"writes and is not an ensemble input ({_names(config.inputs)})"
                )
            readers.setdefault(tensor, index)
    _check_acyclic(config, steps, producers)
    outputs = {tensor.name for tensor in config.outputs}
    for declared in config.inputs:
        if declared.name not in readers:
            raise ValidationError(f"ensemble {config.name!r}: input {declared.name!r} is read by no step")
    for declared in config.outputs:
        if producers.get(declared.name, ENSEMBLE_INPUT) == ENSEMBLE_INPUT:
            raise ValidationError(f"ensemble {config.name!r}: output {declared.name!r} is written by no step")
    for index, step in enumerate(steps):
        for key, tensor in step.output_map.items():
            if tensor not in readers and tensor not in outputs:
                raise ValidationError(
                    f"{_where(config, index, step)}: output_map {key!r} writes tensor {tensor!r}, which no step "
                    f"reads and is not an ensemble output ({_names(config.outputs)})"
                )
    return producers


def _check_acyclic(config: ModelConfig, steps: list[EnsembleStep], producers: dict[str, int]) -> None:
    """Kahn's order over the steps; the steps left over lie on (or behind) a cycle, and following
    what they read from each other from the first of them finds one to name."""
    available = {tensor.name for tensor in config.inputs}
    left = dict(enumerate(steps))
    progress = True
    while left and progress:
        runnable = [index for index, step in left.items() if set(step.input_map.values()) <= available]
        for index in runnable:
            available.update(left.pop(index).output_map.values())
        progress = bool(runnable)
    if not left:
        return
    index = min(left)
    path: list[int] = []
    while index not in path:
        path.append(index)
        tensor = next(t for t in left[index].input_map.values() if t not in available)
        index = producers[tensor]
    cycle = path[path.index(index) :] + [index]
    first = cycle[0]
    tensor = next(t for t in steps[first].input_map.values() if producers.get(t) == cycle[1])
    loop = " → ".join(f"step {i}" for i in reversed(cycle))  # in the direction tensors flow
    raise ValidationError(
        f"{_where(config, first, steps[first])}: reads tensor {tensor!r}, which depends on its own output: "
        f"a cycle ({loop})"
    )


# -- the steps against their models --------------------------------------------------------------


def _step_model(config: ModelConfig, index: int, step: EnsembleStep, composing: Composing) -> ModelConfig:
    """The step's model config, after checking the model exists, batches enough, and has every
    tensor the step maps (and gets every input it requires)."""
    where = _where(config, index, step)
    versions = composing.get(step.model_name)
    if not versions:
        known = ", ".join(repr(name) for name in sorted(composing) if name != config.name) or "none"
        raise ValidationError(f"{where}: no such model in the repository (it has {known})")
    latest = step.model_version == LATEST_VERSION
    model = versions[max(versions, key=int)] if latest else versions.get(str(step.model_version))
    if model is None:
        served = ", ".join(sorted(versions, key=int))
        raise ValidationError(f"{where}: model_version {step.model_version} is not served (versions: {served})")
    if config.max_batch_size > 0 and model.max_batch_size < config.max_batch_size:
        raise ValidationError(
            f"{where}: the ensemble's max_batch_size is {config.max_batch_size}, but the model's is "
            f"{model.max_batch_size}; an ensemble batches at most what each step does"
        )
    for kind, mapping, tensors in (("input", step.input_map, model.inputs), ("output", step.output_map, model.outputs)):
        names = {tensor.name for tensor in tensors}
        for key, tensor in mapping.items():
            if key not in names:
                raise ValidationError(
                    f"{where}: {kind}_map {key!r} (tensor {tensor!r}) is not an {kind} of model "
                    f"{step.model_name!r} (it has {_names(tensors)})"
                )
    for tensor_config in model.inputs:
        if tensor_config.name not in step.input_map and not tensor_config.optional:
            raise ValidationError(f"{where}: input_map does not give the model's input {tensor_config.name!r}")
    return model


@dataclass(frozen=True)
class _Spec:
    """An ensemble tensor as its producer declares it: datatype and full shape."""

    datatype: str
    shape: tuple[int, ...]
    by: str


def _spec(tensor: TensorConfig, max_batch_size: int, by: str) -> _Spec:
    return _Spec(tensor.datatype, ((-1,) if max_batch_size > 0 else ()) + tuple(tensor.dims), by)


def _check_tensors(
    config: ModelConfig, steps: list[EnsembleStep], models: list[ModelConfig], producers: dict[str, int]
) -> None:
    """Each tensor's datatype and shape, as its producer declares it, fit what reads it: a step's
    input, or the ensemble's declared output."""
    specs = {tensor.name: _spec(tensor, config.max_batch_size, "the ensemble's input") for tensor in config.inputs}
    for index, (step, model) in enumerate(zip(steps, models)):
        declared = {tensor.name: tensor for tensor in model.outputs}
        for key, tensor in step.output_map.items():
            specs[tensor] = _spec(declared[key], model.max_batch_size, f"step {index}'s output {key!r}")
    for index, (step, model) in enumerate(zip(steps, models)):
        declared = {tensor.name: tensor for tensor in model.inputs}
        for key, tensor in step.input_map.items():
            wanted = _spec(declared[key], model.max_batch_size, f"the model's input {key!r}")
            _check_fit(
                f"{_where(config, index, step)}: input_map {key!r} reads tensor {tensor!r}", specs[tensor], wanted
            )
    for output in config.outputs:
        index = producers[output.name]
        wanted = _spec(output, config.max_batch_size, "the ensemble's output")
        _check_fit(f"{_where(config, index, steps[index])}: output {output.name!r}", specs[output.name], wanted)


def _check_fit(where: str, given: _Spec, wanted: _Spec) -> None:
    if given.datatype != wanted.datatype:
        raise ValidationError(
            f"{where}: the tensor is {given.datatype} as {given.by}, but {wanted.by} is {wanted.datatype}; an "
            "ensemble passes tensors unconverted"
        )
    fits = len(given.shape) == len(wanted.shape) and all(
        a == b or -1 in (a, b) for a, b in zip(given.shape, wanted.shape)
    )
    if not fits:
        raise ValidationError(
            f"{where}: the tensor has shape {list(given.shape)} as {given.by}, but {wanted.by} has "
            f"{list(wanted.shape)} (-1: any size; a batching model's first dim is its batch)"
        )


def _names(tensors: list[TensorConfig]) -> str:
    return ", ".join(repr(tensor.name) for tensor in tensors) or "none"
