"""Turn ``modelport serve`` targets into model sources: a folder laid out like a Triton model
repository, a model file or model folder served from its path as it is (nothing is registered,
as ``mlflow models serve -m PATH`` does), registered references (``NAME``, ``NAME:3``,
``NAME@prod``) whose files are materialised and verified by the registry first, or a registered
version packaged by ``modelport package`` (served as registered, with no workspace)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.registry.sources import (
    ModelSource,
    is_repository,
    source_from_path,
    source_from_registered,
    sources_from_repository,
)
from modelport.registry.stores import WorkspaceStores

PACKAGED_MODEL = "modelport-model.json"
"""Beside ``<name>/<version>/<root_name>`` in a packaged model folder: the registry's facts of it."""


def resolve_targets(
    targets: list[str],
    workspace: Callable[[], WorkspaceStores],
    name: str | None = None,
    note: Callable[[str], None] = lambda line: None,
) -> list[ModelSource]:
    """Repositories, then paths, then registry references (the workspace is opened only for those).

    A path is served under its file stem or folder name, or ``name`` when given (one path only);
    ``note`` is told, for each, what is served under which name."""
    paths = [
        target
        for target in targets
        if Path(target).exists() and not _repository(Path(target)) and not _packaged(Path(target))
    ]
    if name is not None and len(paths) != 1:
        raise ValidationError(f"--name: names the one model file or folder served from its path; {len(paths)} given")
    sources: list[ModelSource] = []
    for target in targets:
        path = Path(target)
        if target in paths:
            served = _served_name(path, name)
            sources += source_from_path(path, served)
            note(f"serving {target} as model {served!r} (not registered)")
        elif _packaged(path):
            sources += _packaged_sources(path)
        elif path.exists():
            sources += sources_from_repository(path)
        else:
            sources += _registered(workspace(), target)
    sources = _with_steps(sources, workspace)
    keys = [(source.name, source.version) for source in sources]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValidationError(f"target: model {twice[0][0]!r} version {twice[0][1]} is given twice")
    return sources


def _registered(workspace: WorkspaceStores, ref: str) -> list[ModelSource]:
    info, version_dir = workspace.models.model_dir(ref)
    return source_from_registered(
        info.name, info.version, info.flavor, version_dir, info.root_name, info.details, info.signature
    )


def _with_steps(sources: list[ModelSource], workspace: Callable[[], WorkspaceStores]) -> list[ModelSource]:
    """``sources`` and the step models their pipelines pin, each version once: a pipeline loads
    with its steps, as an ensemble with its composing models."""
    given = {(source.name, source.version) for source in sources}
    steps: list[ModelSource] = []
    for source in sources:
        for name, version in source.pipeline.pins.values() if source.pipeline else ():
            if (name, version) not in given:
                given.add((name, version))
                steps += _registered(workspace(), f"{name}:{version}")
    return sources + steps


def _repository(path: Path) -> bool:
    return path.is_dir() and is_repository(path)


def _packaged(path: Path) -> bool:
    return (path / PACKAGED_MODEL).is_file()


def _packaged_sources(folder: Path) -> list[ModelSource]:
    """A packaged version, served under its registered name and version with its signature; a
    pipeline's step versions are packaged beside it, so serving it opens no workspace."""
    try:
        facts = json.loads((folder / PACKAGED_MODEL).read_text(encoding="utf-8"))
        packaged = [facts, *facts.get("steps", [])]
        sources = []
        for model in packaged:
            name, version, flavor, root = str(model["name"]), int(model["version"]), model["flavor"], model["root_name"]
            validate_name(name, f"target: {folder / PACKAGED_MODEL}: name")
            version_dir = folder / name / str(version)
            sources += source_from_registered(
                name, version, flavor, version_dir, root, dict(model["details"]), model["signature"]
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValidationError(f"target: {folder / PACKAGED_MODEL}: not a packaged model ({exc})") from None
    return sources


def _served_name(path: Path, name: str | None) -> str:
    if name is not None:
        return validate_name(name, "--name")
    try:
        return validate_name(path.stem if path.is_file() else path.resolve().name, f"target {path}: model name")
    except ValidationError as exc:
        raise ValidationError(f"{exc}; serve it under another name with --name") from None
