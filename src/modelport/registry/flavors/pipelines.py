"""Pipeline files: a YAML document whose ``kind`` is ``pipeline`` (:mod:`modelport.schema.pipeline`).

YAML and the definition are imported when a ``.yaml`` file is looked at, not with the flavor
table, which serving any model imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelport.core.errors import ValidationError
from modelport.runtime.flavor_info import FlavorInfo, Signature, TensorSpec

if TYPE_CHECKING:
    from modelport.schema.pipeline import PipelineSpec

PIPELINE = "pipeline"  # the flavor, and the ``kind:`` of the file
_SUFFIXES = (".yaml", ".yml")


def pipeline_file(path: Path, head: bytes) -> FlavorInfo | None:
    """A ``.yaml``/``.yml`` file saying ``kind: pipeline``, checked as a pipeline (its steps' models
    are resolved by the registry, which has them)."""
    if path.suffix.lower() not in _SUFFIXES or b"kind" not in head:
        return None
    import yaml

    try:
        document = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict) or document.get("kind") != PIPELINE:
        return None
    spec = read_pipeline(path, document)
    signature = Signature(
        tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in spec.inputs),
        tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in spec.outputs),
    )
    return FlavorInfo(PIPELINE, None, signature, {"format": PIPELINE})


def read_pipeline(path: Path, document: object | None = None) -> PipelineSpec:
    """The pipeline in ``path`` (already read as ``document``), or a one-line error naming the file."""
    import yaml

    from modelport.schema.base import parse
    from modelport.schema.pipeline import PipelineSpec

    try:
        if document is None:
            document = yaml.safe_load(path.read_bytes())
        return parse(PipelineSpec, document).value
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc}") from None
