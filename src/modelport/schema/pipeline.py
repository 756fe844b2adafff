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

A step may run Python instead of a model: ``python: MODULE:FUNCTION`` names a function of a module
in the pipeline's ``code:`` folder (relative to the file, at or below its folder), as a scaler or
a label lookup around the models. The function takes a dict of the step's inputs (numpy arrays,
by the names of ``inputs``' keys, holding the step's rows) and returns a dict of arrays; as it has
no registered signature, its outputs are declared under ``signature.outputs`` (``inputs`` too,
optionally, to have them checked)::

    code: steps
    steps:
      - name: scale
        python: prepost:scale
        inputs: {x: raw}
        outputs: {scaled: x}
        signature:
          outputs: [{name: scaled, datatype: FP32, shape: [-1, 16]}]
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
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


_ENTRY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)")


def _entry(value: object) -> str:
    if not isinstance(value, str) or not _ENTRY.fullmatch(value):
        raise ValueError(f"{describe(value)} is not MODULE:FUNCTION (a module of the code folder, e.g. prepost:scale)")
    return value


def _code_folder(value: object) -> str:
    path = PurePosixPath(str(value)) if isinstance(value, str) and value.strip() else None
    if path is None or path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"{describe(value)} is not a folder at or below the pipeline file's (a relative path without '..'), "
            "so the registered version holds it as it is laid out"
        )
    return path.as_posix()


class StepSignature(Document):
    """A Python step's tensors as its function takes and gives them (the v2 form of ``--signature``)."""

    inputs: list[PipelineTensor] = []
    outputs: Annotated[list[PipelineTensor], Field(min_length=1)]


class PipelineStep(Document):
    """One step: a registered model or a Python function, the pipeline tensors its inputs read and
    its outputs write, and an optional condition on the rows it runs on."""

    name: Name
    model: NonEmpty | None = None
    python: Annotated[str | None, BeforeValidator(_entry)] = None
    inputs: Annotated[dict[str, TensorName], Field(min_length=1)]
    outputs: Annotated[dict[str, TensorName], Field(min_length=1)]
    signature: StepSignature | None = None
    when: Condition | None = None

    @model_validator(mode="after")
    def _runs_one_thing(self) -> PipelineStep:
        if (self.model is None) == (self.python is None):
            raise ValueError(
                f"step {self.name!r}: give exactly one of model (a registered model) and python (MODULE:FUNCTION)"
            )
        if self.python is not None and self.signature is None:
            raise ValueError(
                f"step {self.name!r}: a Python step ({self.python}) declares its outputs under signature.outputs"
            )
        if self.model is not None and self.signature is not None:
            raise ValueError(
                f"step {self.name!r}: signature is a Python step's; a model step's tensors are its registered model's"
            )
        return self

    @property
    def module(self) -> str:
        """A Python step's module (dotted, below the code folder)."""
        assert self.python is not None
        return self.python.partition(":")[0]

    @property
    def function(self) -> str:
        assert self.python is not None
        return self.python.partition(":")[2]


class PipelineSpec(Document):
    """A ``pipeline.yaml``: inputs, steps in the order they may run, outputs."""

    kind: Annotated[str, BeforeValidator(lambda value: _kind(value))] = PIPELINE_KIND
    description: str = ""
    code: Annotated[str | None, BeforeValidator(_code_folder)] = None
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
        python = next((step for step in self.steps if step.python is not None), None)
        if python is not None and self.code is None:
            raise ValueError(
                f"steps: step {python.name!r} runs {python.python}, but the pipeline names no code: folder to import it from"
            )
        return self

    @property
    def python_steps(self) -> list[PipelineStep]:
        return [step for step in self.steps if step.python is not None]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _kind(value: object) -> str:
    if value != PIPELINE_KIND:
        raise ValueError(f"expected {PIPELINE_KIND!r}, got {describe(value)}")
    return PIPELINE_KIND
