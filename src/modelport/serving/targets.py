"""Turn ``modelport serve`` targets into model sources: a folder laid out like a Triton model
repository, or registered references (``NAME``, ``NAME:3``, ``NAME@prod``) whose files are
materialised and verified by the registry first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.serving.sources import ModelSource, source_from_registered, sources_from_repository
from modelport.workspace import Workspace


def resolve_targets(targets: list[str], workspace: Callable[[], Workspace]) -> list[ModelSource]:
    """Folders are repositories; anything else is a registry reference (opened lazily)."""
    sources: list[ModelSource] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            sources += sources_from_repository(path)
        elif path.exists():
            raise ValidationError(
                f"target: {target} is a file; register it (modelport model register) or put it in a "
                "<repo>/<model>/<version>/ folder"
            )
        else:
            info, version_dir = workspace().models.model_dir(target)
            sources += source_from_registered(
                info.name, info.version, info.flavor, version_dir, info.root_name, info.details
            )
    keys = [(source.name, source.version) for source in sources]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValidationError(f"target: model {twice[0][0]!r} version {twice[0][1]} is given twice")
    return sources
