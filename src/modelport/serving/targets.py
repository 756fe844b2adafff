"""Turn ``modelport serve`` targets into model sources: a folder laid out like a Triton model
repository, a model file or model folder served from its path as it is (nothing is registered,
as ``mlflow models serve -m PATH`` does), or registered references (``NAME``, ``NAME:3``,
``NAME@prod``) whose files are materialised and verified by the registry first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.registry.stores import WorkspaceStores
from modelport.serving.sources import (
    ModelSource,
    is_repository,
    source_from_path,
    source_from_registered,
    sources_from_repository,
)


def resolve_targets(
    targets: list[str],
    workspace: Callable[[], WorkspaceStores],
    name: str | None = None,
    note: Callable[[str], None] = lambda line: None,
) -> list[ModelSource]:
    """Repositories, then paths, then registry references (the workspace is opened only for those).

    A path is served under its file stem or folder name, or ``name`` when given (one path only);
    ``note`` is told, for each, what is served under which name."""
    paths = [target for target in targets if Path(target).exists() and not _repository(Path(target))]
    if name is not None and len(paths) != 1:
        raise ValidationError(f"--name: names the one model file or folder served from its path; {len(paths)} given")
    sources: list[ModelSource] = []
    for target in targets:
        path = Path(target)
        if target in paths:
            served = _served_name(path, name)
            sources += source_from_path(path, served)
            note(f"serving {target} as model {served!r} (not registered)")
        elif path.exists():
            sources += sources_from_repository(path)
        else:
            info, version_dir = workspace().models.model_dir(target)
            sources += source_from_registered(
                info.name, info.version, info.flavor, version_dir, info.root_name, info.details, info.signature
            )
    keys = [(source.name, source.version) for source in sources]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValidationError(f"target: model {twice[0][0]!r} version {twice[0][1]} is given twice")
    return sources


def _repository(path: Path) -> bool:
    return path.is_dir() and is_repository(path)


def _served_name(path: Path, name: str | None) -> str:
    if name is not None:
        return validate_name(name, "--name")
    try:
        return validate_name(path.stem if path.is_file() else path.resolve().name, f"target {path}: model name")
    except ValidationError as exc:
        raise ValidationError(f"{exc}; serve it under another name with --name") from None
