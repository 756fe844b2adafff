"""Registering a pipeline: its steps' references pinned to versions, its edges checked, and the
lineage back from a step model to the pipelines that pin it.

A pipeline file names its steps' models as people think of them (``small@prod``); what is
registered must not change when ``prod`` moves, so registration resolves every reference, in the
registering transaction, and stores the versions in the version's ``details["steps"]`` (step →
``NAME:VERSION``). The pipeline's edges are checked then against the pinned versions' signatures
(:func:`modelport.runtime.pipeline.plan_pipeline`), so a mistyped tensor is refused before
anything is stored. The same pins are the lineage: :func:`pipelines_using` is a usage check of
the registry (a pinned version is not deleted) and what ``model show`` lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.names import parse_ref
from modelport.registry.flavors.pipelines import read_pipeline
from modelport.runtime import flavor_catalog
from modelport.runtime.pipeline import StepModel, plan_pipeline
from modelport.schema.pipeline import PIPELINE_KIND
from modelport.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from modelport.store.schema import ModelVersion

STEPS = "steps"
"""``details`` key of a registered pipeline: step name → the ``NAME:VERSION`` it runs."""


class Resolver(Protocol):
    def __call__(self, session: Session, ref: str) -> ModelVersion: ...


def pin_steps(session: Session, resolve: Resolver, path: Path, name: str) -> dict[str, Any]:
    """The ``details`` of pipeline ``name`` registered from ``path``: each step's model resolved
    (in ``session``, the registering transaction) and the edges checked against their signatures."""
    spec = read_pipeline(path)
    pins: dict[str, tuple[str, int]] = {}
    models: dict[str, StepModel] = {}
    for index, step in enumerate(spec.steps):
        field = f"steps[{index}].model"
        try:
            row = resolve(session, step.model)
        except ModelportError as exc:
            raise type(exc)(f"pipeline {name!r}: {field}: {exc}") from None
        ref = f"{row.container.name}:{row.version}"
        if row.flavor not in flavor_catalog.loadable_names():
            raise ValidationError(
                f"pipeline {name!r}: {field}: model {ref} is a {row.flavor} model; a step runs a "
                f"{', '.join(flavor_catalog.loadable_names())} model"
            )
        try:
            models[step.name] = StepModel.from_signature(ref, row.signature)
        except ValidationError as exc:
            raise ValidationError(f"pipeline {name!r}: {field}: {exc}") from None
        pins[step.name] = (row.container.name, row.version)
    plan_pipeline(name, spec, pins, models)
    return {STEPS: {step: f"{model}:{version}" for step, (model, version) in pins.items()}}


def pinned(details: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """A registered pipeline's pins: step name → (model name, version)."""
    result = {}
    for step, ref in dict(details.get(STEPS) or {}).items():
        parsed = parse_ref(ref)
        assert parsed.version is not None, "registration pins versions"
        result[step] = (parsed.name, parsed.version)
    return result


def pipelines_using(session: Session, version: ModelVersion) -> list[str]:
    """The pipeline versions whose steps pin ``version`` (a usage check, and ``model show``'s lineage)."""
    ref = f"{version.container.name}:{version.version}"
    models, versions = tables.models.c, tables.model_versions.c
    rows = session.execute(
        select(models.name, versions.version, versions.details)
        .join(tables.models, models.id == versions.model_id)
        .where(versions.flavor == PIPELINE_KIND)
        .order_by(models.name, versions.version)
    )
    return [
        f"pipeline {name}:{number}"
        for name, number, details in rows
        if ref in dict((details or {}).get(STEPS) or {}).values()
    ]
