"""``pipeline.yaml``: registered models composed into one model, with steps that run only where needed.

A pipeline is registered like any model (flavor ``pipeline``) and served like one: v2 inputs in,
v2 outputs out. Its steps name registered models (``NAME:VERSION`` or ``NAME@ALIAS``, pinned to a
version when the pipeline is registered) and map their tensors to the pipeline's, as a Triton
ensemble's ``input_map``/``output_map`` do, but from the model's side::

    steps:
      - name: small
        model: small@prod
        inputs: {features: x}              # the model's input 'features' reads pipeline tensor x
        outputs: {probabilities: small_probs}
      - name: large
        model: large:3
        when: {tensor: small_probs, reduce: max, below: 0.9}
        inputs: {features: x}
        outputs: {probabilities: large_probs}

Every pipeline tensor has rows (its first dim, -1). A step's ``when`` is a condition per row on a
tensor written earlier: the step runs on the rows where it holds, and only those rows are sent to
its model. The condition language is deliberately small: ``reduce`` folds each row's values to one
number (``max``, ``min``, ``mean``, ``sum``; ``none`` for a tensor of one value per row), which is
compared with exactly one of ``below`` (<), ``at_most`` (<=), ``above`` (>), ``at_least`` (>=).
A step runs on the rows that every tensor it reads has, so a step after a conditional one runs
on that step's rows alone, without a condition of its own.

A pipeline output names where its rows come from: ``from: [large_probs, small_probs]`` takes each
row from the first of those tensors that has it (the large model's answer where it ran, the small
one's elsewhere). The last tensor listed must have every row; ``from`` defaults to the output's
own name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from modelport.core.datatypes import DATATYPES
from modelport.schema.choices import Choice
from modelport.schema.types import Document, Name, NonEmpty, describe, integer, number, one_of

PIPELINE_KIND = "pipeline"
"""The ``kind:`` a pipeline file starts with: what registration recognises it by."""

_TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


def _tensor_name(value: object) -> str:
    if not isinstance(value, str) or not _TENSOR_NAME.fullmatch(value):
        raise ValueError(f"{describe(value)} is not a tensor name (a letter or _, then letters, digits, '_', '.', '-')")
    return value


TensorName = Annotated[str, BeforeValidator(_tensor_name)]


def _shape(value: object) -> object:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a list of dims starting with -1 (the rows), got {describe(value)}")
    dims = [integer(dim) for dim in value]
    if dims[0] != -1:
        raise ValueError(f"the first dim is the rows and must be -1, got {dims[0]}")
    if any(dim < -1 or dim == 0 for dim in dims[1:]):
        raise ValueError("dims after the first are positive, or -1 for any size")
    return dims


def _datatype(value: object) -> str:
    text = str(value).upper() if isinstance(value, str) else value
    if text not in DATATYPES:
        raise ValueError(f"{describe(value)} is not a v2 datatype ({', '.join(DATATYPES)})")
    return str(text)


def _sources(value: object) -> object:
    return [value] if isinstance(value, str) else value


class PipelineTensor(Document):
    """A pipeline input: its name, v2 datatype, and shape (first dim -1: the rows)."""

    name: TensorName
    datatype: Annotated[str, BeforeValidator(_datatype)]
    shape: Annotated[list[int], BeforeValidator(_shape)]


class PipelineOutput(PipelineTensor):
    """A pipeline output; each row from the first tensor in ``from`` that has it (default: its name)."""

    sources: Annotated[list[TensorName], BeforeValidator(_sources), Field(alias="from", min_length=1)] = []

    @property
    def alternatives(self) -> tuple[str, ...]:
        return tuple(self.sources) or (self.name,)


class Reduce(Choice):
    """How a condition folds a row's values into the one number it compares."""

    MAX = "max"
    MIN = "min"
    MEAN = "mean"
    SUM = "sum"
    NONE = "none"  # the tensor holds one value per row


class Comparison(Choice):
    """The comparisons a condition may make; each is a key of :class:`Condition`."""

    BELOW = "below"
    AT_MOST = "at_most"
    ABOVE = "above"
    AT_LEAST = "at_least"


class Condition(Document):
    """``when:`` — per row, ``reduce`` of ``tensor``'s values compared with one threshold."""

    tensor: TensorName
    reduce: Annotated[Reduce, one_of(Reduce)] = Reduce.MAX
    below: Annotated[float | None, BeforeValidator(number)] = None
    at_most: Annotated[float | None, BeforeValidator(number)] = None
    above: Annotated[float | None, BeforeValidator(number)] = None
    at_least: Annotated[float | None, BeforeValidator(number)] = None

    @model_validator(mode="after")
    def _one_comparison(self) -> Condition:
        given = [kind for kind in Comparison if getattr(self, kind.value) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(kind.value for kind in Comparison)}"
                + (f" (got {', '.join(kind.value for kind in given)})" if given else "")
            )
        return self

    @property
    def comparison(self) -> tuple[Comparison, float]:
        kind = next(kind for kind in Comparison if getattr(self, kind.value) is not None)
        return kind, float(getattr(self, kind.value))

    def describe(self) -> str:
        kind, threshold = self.comparison
        return f"{self.reduce.value}({self.tensor}) {kind.value} {threshold:g}"


class PipelineStep(Document):
    """One step: a registered model, the pipeline tensors its inputs read and its outputs write,
    and an optional condition on the rows it runs on."""

    name: Name
    model: NonEmpty
    inputs: Annotated[dict[str, TensorName], Field(min_length=1)]
    outputs: Annotated[dict[str, TensorName], Field(min_length=1)]
    when: Condition | None = None


class PipelineSpec(Document):
    """A ``pipeline.yaml``: inputs, steps in the order they may run, outputs."""

    kind: Annotated[str, BeforeValidator(lambda value: _kind(value))] = PIPELINE_KIND
    description: str = ""
    inputs: Annotated[list[PipelineTensor], Field(min_length=1)]
    steps: Annotated[list[PipelineStep], Field(min_length=1)]
    outputs: Annotated[list[PipelineOutput], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineSpec:
        for field, names in (
            ("inputs", [tensor.name for tensor in self.inputs]),
            ("steps", [step.name for step in self.steps]),
            ("outputs", [tensor.name for tensor in self.outputs]),
        ):
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{field}: {twice[0]!r} is named twice")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _kind(value: object) -> str:
    if value != PIPELINE_KIND:
        raise ValueError(f"expected {PIPELINE_KIND!r}, got {describe(value)}")
    return PIPELINE_KIND
