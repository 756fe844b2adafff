"""Registering a pipeline: its steps' references pinned to versions, its edges checked, and the
lineage back from a step model to the pipelines that pin it.

A pipeline file names its steps' models as people think of them (``small@prod``); what is
registered must not change when ``prod`` moves, so registration resolves every reference, in the
registering transaction, and stores the versions in the version's ``details["steps"]`` (step →
``NAME:VERSION``). The pipeline's edges are checked then against the pinned versions' signatures
(:func:`modelport.runtime.pipeline.plan_pipeline`), so a mistyped tensor is refused before
anything is stored. The same pins are the lineage: :func:`pipelines_using` is a usage check of
the registry (a pinned version is not deleted) and what ``model show`` lists.

A pipeline with Python steps names a ``code:`` folder beside its file. The registered version is
then the file and that folder, as one unit (:func:`pipeline_content`): the code is snapshotted as
a deployment's is (:class:`~modelport.registry.code_ignore.CodeIgnore` says what is left out), laid
out as it is beside the file, so the file's ``code:`` still points at it; ``details["definition"]``
names the file in the version's folder. Each step's module is looked for and imported (in a child
process) before anything is stored.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.names import parse_ref
from modelport.registry.code_ignore import CodeIgnore
from modelport.registry.flavors.pipelines import read_pipeline
from modelport.registry.manifest import Manifest, scan
from modelport.runtime import flavor_catalog
from modelport.runtime.pipeline import RegisteredPipeline, StepModel, plan_pipeline
from modelport.runtime.pipeline_code import check_functions
from modelport.schema.pipeline import PIPELINE_KIND
from modelport.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from modelport.store.schema import ModelVersion

STEPS = "steps"
"""``details`` key of a registered pipeline: step name → the ``NAME:VERSION`` it runs."""
DEFINITION = "definition"
"""``details`` key of a pipeline registered with its code: the pipeline file's name in the version's folder."""


class Resolver(Protocol):
    def __call__(self, session: Session, ref: str) -> ModelVersion: ...


def pin_steps(session: Session, resolve: Resolver, path: Path, name: str) -> dict[str, Any]:
    """The ``details`` of pipeline ``name`` registered from ``path``: each step's model resolved
    (in ``session``, the registering transaction) and the edges checked against their signatures."""
    spec = read_pipeline(path)
    pins: dict[str, tuple[str, int]] = {}
    models: dict[str, StepModel] = {}
    for index, step in enumerate(spec.steps):
        if step.model is None:  # a Python step: its tensors are declared (runtime.pipeline.step_models)
            continue
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
    definition = {DEFINITION: path.name} if spec.code is not None else {}
    return {STEPS: {step: f"{model}:{version}" for step, (model, version) in pins.items()}, **definition}


def pipeline_content(path: Path, name: str, manifest: Manifest, workspace_root: Path) -> Manifest:
    """What registering pipeline file ``path`` stores: the file alone (``manifest``), or, when it
    names a ``code:`` folder, the file and the folder's files under the name of the file's folder,
    after each Python step's module was found and imported (outside the registering transaction)."""
    spec = read_pipeline(path)
    if spec.code is None:
        return manifest
    code = path.parent / spec.code
    if not code.is_dir():
        raise ValidationError(f"{path}: code: {code} is not a folder")
    check_functions(name, spec, code)
    prefix = "" if spec.code == "." else f"{spec.code}/"
    files = [
        replace(entry, path=f"{prefix}{entry.path}")
        for entry in scan(code, "code", skip=CodeIgnore(code, workspace_root)).files
    ]
    if path.name not in {entry.path for entry in files}:
        files.insert(0, replace(manifest.files[0], path=path.name))
    return Manifest(path.parent.resolve().name, True, tuple(files))


def registered_pipeline(content: Path, details: dict[str, Any]) -> RegisteredPipeline:
    """A registered pipeline read from its materialized ``content`` (its file, or its folder
    holding the file and its code), with the versions registration pinned."""
    file = content / details[DEFINITION] if DEFINITION in details else content
    if not file.is_file():
        raise ValidationError(f"{content}: the pipeline file {file.name} is missing")
    spec = read_pipeline(file)
    return RegisteredPipeline(spec, pinned(details), None if spec.code is None else file.parent / spec.code)


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
