"""A pipeline's graph, checked before it runs, and the per-row rules its executor follows.

:func:`plan_pipeline` is what registration and serving both call: the first with the step
models' registered signatures, the second with their completed configs (what they really take
and give), so a pipeline whose step no longer fits is refused when it loads too. The checks are
those of a Triton ensemble (:mod:`modelport.runtime.ensemble`) — every tensor read exists and is
written once, datatypes and shapes fit — plus the pipeline's own: steps read only what earlier
steps wrote (so there is no cycle to find), conditions are on numeric tensors, and every output
has each row from some tensor. Each refusal is one line naming the pipeline, the step and the
tensor.

The per-row rules are here too, pure so they are tested without a server:
:func:`condition_rows` says which rows a ``when:`` keeps, :func:`gather` picks rows out of a
tensor that has only some, and :func:`merge_first` builds an output from its ``from:`` tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import ValidationError
from modelport.runtime.config import ModelConfig
from modelport.runtime.ensemble import EnsemblePlan, PlannedStep
from modelport.schema.pipeline import Comparison, Condition, PipelineSpec, PipelineStep, Reduce

Shape = tuple[int, ...]

NOT_NUMERIC = ("BYTES",)


@dataclass(frozen=True)
class StepModel:
    """A step model's tensors by name: (v2 datatype, full shape with -1 for the rows). ``inputs``
    None: a Python step that did not declare its inputs takes the tensors it is given as they are."""

    ref: str
    inputs: Mapping[str, tuple[str, Shape]] | None
    outputs: Mapping[str, tuple[str, Shape]]
    optional: frozenset[str] = frozenset()

    @classmethod
    def from_python(cls, step: PipelineStep) -> StepModel:
        """A Python step: the tensors its ``signature`` declares."""
        assert step.signature is not None, "the definition requires a Python step's signature"
        declared = step.signature
        return cls(
            f"python {step.python}",
            {t.name: (t.datatype, tuple(t.shape)) for t in declared.inputs} if declared.inputs else None,
            {t.name: (t.datatype, tuple(t.shape)) for t in declared.outputs},
        )

    @classmethod
    def from_config(cls, ref: str, config: ModelConfig) -> StepModel:
        """A served model: its completed config; a model without a batch dim has no rows."""
        lead = (-1,) if config.max_batch_size > 0 else ()
        return cls(
            ref,
            {t.name: (t.datatype, lead + tuple(t.dims)) for t in config.inputs},
            {t.name: (t.datatype, lead + tuple(t.dims)) for t in config.outputs},
            frozenset(t.name for t in config.inputs if t.optional),
        )

    @classmethod
    def from_signature(cls, ref: str, signature: Mapping[str, object] | None) -> StepModel:
        """A registered model: its signature (v2 form, as registration read or was given it)."""
        if not signature:
            raise ValidationError(f"model {ref} has no signature; register it with --signature or --input-example")

        def tensors(kind: str) -> dict[str, tuple[str, Shape]]:
            listed = signature.get(kind) or []
            assert isinstance(listed, list)
            return {t["name"]: (t["datatype"], tuple(int(d) for d in t["shape"])) for t in listed}

        return cls(ref, tensors("inputs"), tensors("outputs"))


@dataclass(frozen=True)
class PipelinePlannedStep(PlannedStep):
    """An ensemble step with the pipeline's extras: its name, and the condition on its rows."""

    step: str = ""
    python: str | None = None  # MODULE:FUNCTION of a Python step (no model: model_name is "")
    when: Condition | None = None
    reads: frozenset[str] = field(default_factory=frozenset)  # every tensor it reads, condition's too

    @property
    def needs(self) -> frozenset[str]:
        return self.reads


@dataclass(frozen=True)
class PipelinePlan(EnsemblePlan):
    """A checked pipeline: the ensemble plan (steps, composing models) and where each output's
    rows come from, first tensor first."""

    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def pipeline_steps(self) -> tuple[PipelinePlannedStep, ...]:
        """The steps, typed as the pipeline's (every step of a pipeline plan is one)."""
        return tuple(step for step in self.steps if isinstance(step, PipelinePlannedStep))

    @property
    def composing(self) -> tuple[tuple[str, str | None], ...]:
        """The models the model steps run (a Python step runs none)."""
        return tuple(dict.fromkeys((s.model_name, s.version) for s in self.pipeline_steps if s.python is None))


Pins = Mapping[str, tuple[str, int]]
"""Model step name → the (model name, version) it runs."""


@dataclass(frozen=True)
class RegisteredPipeline:
    """A registered pipeline as serving loads it: its definition, the versions registration pinned,
    and the folder its Python steps import from (None: it has none)."""

    spec: PipelineSpec
    pins: Pins
    code: Path | None = None


def step_models(spec: PipelineSpec, models: Mapping[str, StepModel]) -> dict[str, StepModel]:
    """``models`` (the model steps') with each Python step's declared tensors added."""
    return {**models, **{step.name: StepModel.from_python(step) for step in spec.python_steps}}


def plan_pipeline(name: str, spec: PipelineSpec, pins: Pins, models: Mapping[str, StepModel]) -> PipelinePlan:
    """The plan of pipeline ``name``: ``pins`` and ``models`` are keyed by step name."""
    specs: dict[str, tuple[str, Shape, str]] = {
        t.name: (t.datatype, tuple(t.shape), "a pipeline input") for t in spec.inputs
    }
    complete = set(specs)  # tensors that have every row
    planned = []
    models = step_models(spec, models)
    for index, step in enumerate(spec.steps):
        model = models[step.name]
        where = f"pipeline {name!r}: step {step.name!r} ({'' if step.python else 'model '}{model.ref})"
        _check_inputs(where, step, model, specs)
        reads = set(step.inputs.values())
        if step.when is not None:
            reads.add(step.when.tensor)
            _check_condition(where, step.when, specs)
        for key, tensor in step.outputs.items():
            if key not in model.outputs:
                raise ValidationError(
                    f"{where}: outputs {key!r} (tensor {tensor!r}) is not an output of the "
                    f"{'signature' if step.python else 'model'} (it has {_names(model.outputs)})"
                )
            if tensor in specs:
                raise ValidationError(f"{where}: outputs {key!r} writes tensor {tensor!r}, which {specs[tensor][2]} is")
            datatype, shape = model.outputs[key]
            _check_rows(where, f"output {key!r}", shape)
            specs[tensor] = (datatype, shape, f"step {step.name!r}'s output {key!r}")
            if step.when is None and reads <= complete:
                complete.add(tensor)
        model_name, version = pins[step.name] if step.python is None else ("", 0)
        planned.append(
            PipelinePlannedStep(
                index,
                model_name,
                str(version),
                dict(step.inputs),
                dict(step.outputs),
                step=step.name,
                python=step.python,
                when=step.when,
                reads=frozenset(reads),
            )
        )
    for output in spec.outputs:
        _check_output(name, output.name, output.alternatives, (output.datatype, tuple(output.shape)), specs, complete)
    return PipelinePlan(
        name=name,
        steps=tuple(planned),
        inputs=tuple(t.name for t in spec.inputs),
        outputs=tuple(t.name for t in spec.outputs),
        sources={t.name: t.alternatives for t in spec.outputs},
    )


def _check_inputs(
    where: str, step: PipelineStep, model: StepModel, specs: Mapping[str, tuple[str, Shape, str]]
) -> None:
    for key, tensor in step.inputs.items():
        if tensor not in specs:
            raise ValidationError(
                f"{where}: inputs {key!r} reads tensor {tensor!r}, which is neither a pipeline input nor written "
                "by an earlier step"
            )
        if model.inputs is None:  # a Python step taking what it is given
            continue
        if key not in model.inputs:
            raise ValidationError(
                f"{where}: inputs {key!r} (tensor {tensor!r}) is not an input of the model (it has "
                f"{_names(model.inputs)})"
            )
        datatype, shape = model.inputs[key]
        _check_rows(where, f"input {key!r}", shape)
        _check_fit(f"{where}: inputs {key!r} reads tensor {tensor!r}", specs[tensor], (datatype, shape), "the model")
    for key in model.inputs or ():
        if key not in step.inputs and key not in model.optional:
            raise ValidationError(f"{where}: inputs does not give the model's input {key!r}")


def _check_condition(where: str, when: Condition, specs: Mapping[str, tuple[str, Shape, str]]) -> None:
    if when.tensor not in specs:
        raise ValidationError(
            f"{where}: when.tensor {when.tensor!r} is neither a pipeline input nor written by an earlier step"
        )
    datatype, shape, _ = specs[when.tensor]
    if datatype in NOT_NUMERIC:
        raise ValidationError(f"{where}: when.tensor {when.tensor!r} is {datatype}; a condition compares numbers")
    if when.reduce is Reduce.NONE and any(dim != 1 for dim in shape[1:]):
        raise ValidationError(
            f"{where}: when.tensor {when.tensor!r} has shape {list(shape)}; reduce: none needs one value per row"
        )


def _check_output(
    name: str,
    output: str,
    alternatives: Sequence[str],
    wanted: tuple[str, Shape],
    specs: Mapping[str, tuple[str, Shape, str]],
    complete: set[str],
) -> None:
    where = f"pipeline {name!r}: output {output!r}"
    for tensor in alternatives:
        if tensor not in specs:
            raise ValidationError(f"{where}: from {tensor!r}, which is neither a pipeline input nor written by a step")
        _check_fit(f"{where}: from {tensor!r}", specs[tensor], wanted, "the pipeline's output")
    if alternatives[-1] not in complete:
        raise ValidationError(
            f"{where}: from {alternatives[-1]!r}, the last tensor listed, does not have every row (a conditional "
            "step writes it, or reads such a tensor); end from: with a tensor that does"
        )


def _check_rows(where: str, what: str, shape: Shape) -> None:
    if not shape or shape[0] != -1:
        raise ValidationError(
            f"{where}: the model's {what} has shape {list(shape)}, without rows; a pipeline step's model batches "
            "(its first dim is -1)"
        )


def _check_fit(where: str, given: tuple[str, Shape, str], wanted: tuple[str, Shape], by: str) -> None:
    datatype, shape, source = given
    if datatype != wanted[0]:
        raise ValidationError(
            f"{where}: the tensor is {datatype} as {source}, but {by} takes {wanted[0]}; tensors pass unconverted"
        )
    fits = len(shape) == len(wanted[1]) and all(a == b or -1 in (a, b) for a, b in zip(shape, wanted[1]))
    if not fits:
        raise ValidationError(
            f"{where}: the tensor has shape {list(shape)} as {source}, but {by} has {list(wanted[1])} (-1: any size)"
        )


def _names(tensors: Mapping[str, object]) -> str:
    return ", ".join(repr(name) for name in tensors) or "none"


# -- rows ----------------------------------------------------------------------------------------

_REDUCE: dict[Reduce, Callable[..., Any]] = {
    Reduce.MAX: np.max,
    Reduce.MIN: np.min,
    Reduce.MEAN: np.mean,
    Reduce.SUM: np.sum,
}
_COMPARE = {
    Comparison.BELOW: np.less,
    Comparison.AT_MOST: np.less_equal,
    Comparison.ABOVE: np.greater,
    Comparison.AT_LEAST: np.greater_equal,
}


def condition_rows(when: Condition, values: np.ndarray) -> np.ndarray:
    """Where ``when`` holds, one boolean per row of ``values`` (a row with no values: it does not)."""
    if values.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    flat = values.reshape(values.shape[0], -1).astype(np.float64, copy=False)
    if flat.shape[1] == 0:
        return np.zeros(values.shape[0], dtype=bool)
    folded = flat[:, 0] if when.reduce is Reduce.NONE else _REDUCE[when.reduce](flat, axis=1)
    kind, threshold = when.comparison
    return np.asarray(_COMPARE[kind](folded, threshold), dtype=bool)


@dataclass(frozen=True)
class Rows:
    """A tensor of a pipeline request: ``data`` holds the rows listed in ``rows`` (sorted row
    numbers of the request), or every row when ``rows`` is None."""

    data: np.ndarray | None
    rows: np.ndarray | None = None

    def count(self, total: int) -> int:
        return total if self.rows is None else len(self.rows)


def common_rows(tensors: Sequence[Rows]) -> np.ndarray | None:
    """The rows every one of ``tensors`` has (None: all of them)."""
    found: np.ndarray | None = None
    for tensor in tensors:
        if tensor.rows is not None:
            found = tensor.rows if found is None else np.intersect1d(found, tensor.rows, assume_unique=True)
    return found


def gather(tensor: Rows, rows: np.ndarray | None) -> np.ndarray:
    """``tensor``'s values at ``rows`` (which it has; None: every row, which it then has)."""
    assert tensor.data is not None, "a tensor without rows is never gathered from"
    if rows is None:
        return tensor.data
    if tensor.rows is None:
        return tensor.data[rows]
    positions = np.searchsorted(tensor.rows, rows)
    if len(positions) == len(tensor.rows):
        return tensor.data
    return tensor.data[positions]


def step_rows(step: PipelinePlannedStep, tensors: Mapping[str, Rows]) -> np.ndarray | None:
    """The rows ``step`` runs on: those every tensor it reads has, where its ``when`` holds
    (None: every row; an empty array: none, and the step is not run)."""
    rows = common_rows([tensors[tensor] for tensor in step.reads])
    if step.when is None:
        return rows
    condition = tensors[step.when.tensor]
    if condition.data is None:  # the tensor has no row, so neither has the step (rows is empty)
        return rows
    holds = condition_rows(step.when, gather(condition, rows))
    if holds.all():
        return rows
    return np.flatnonzero(holds) if rows is None else rows[holds]


def step_inputs(
    step: PipelinePlannedStep, tensors: Mapping[str, Rows], rows: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The step model's inputs: its tensors' values at ``rows``."""
    return {key: gather(tensors[tensor], rows) for key, tensor in step.inputs.items()}


def step_outputs(
    step: PipelinePlannedStep, outputs: Mapping[str, np.ndarray] | None, rows: np.ndarray | None
) -> dict[str, Rows]:
    """The step's outputs by the model's names, as tensors holding ``rows`` (``outputs`` None: not run)."""
    return {key: Rows(None if outputs is None else outputs[key], rows) for key in step.outputs}


def pipeline_outputs(plan: PipelinePlan, total: int, tensors: Mapping[str, Rows]) -> dict[str, np.ndarray]:
    """Every output of the pipeline, each row from the first of its ``from:`` tensors that has it."""
    return {name: merge_first(total, [tensors[tensor] for tensor in plan.sources[name]]) for name in plan.outputs}


def merge_first(total: int, alternatives: Sequence[Rows]) -> np.ndarray:
    """Each of ``total`` rows from the first of ``alternatives`` that has it; the last has every
    row (the plan checked it), so every row is filled."""
    base = next(a for a in reversed(alternatives) if a.data is not None)
    assert base.data is not None
    if base.rows is None and all(a.rows is not None and len(a.rows) == 0 for a in alternatives[:-1]):
        return base.data
    merged = np.empty((total, *base.data.shape[1:]), dtype=base.data.dtype)
    filled = np.zeros(total, dtype=bool)
    for alternative in alternatives:
        if alternative.data is None:
            continue
        rows = np.arange(total) if alternative.rows is None else alternative.rows
        fresh = ~filled[rows]
        merged[rows[fresh]] = alternative.data[fresh]
        filled[rows[fresh]] = True
    if not filled.all():
        raise ValidationError(f"pipeline output: rows {np.flatnonzero(~filled)[:5].tolist()} have no value")
    return merged
