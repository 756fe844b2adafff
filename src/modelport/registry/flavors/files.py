"""One model file, recognised by its content (and, for ONNX and bare pickles, its name)."""

from __future__ import annotations

from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.registry.flavors.onnx import onnx_model
from modelport.registry.flavors.pickles import pickled_model
from modelport.registry.flavors.scripts import python_file
from modelport.registry.flavors.torch import torch_archive
from modelport.registry.flavors.trees import lightgbm_model, xgboost_model
from modelport.registry.flavors.types import FlavorInfo

_HEAD_BYTES = 256  # the first bytes, that every format below is told by


def sniff(path: Path, strict: bool) -> FlavorInfo:
    """Recognise one file by its content (and, for ONNX and bare pickles, its extension).

    A ``.onnx`` file that does not parse is an error when ``strict`` (detection would otherwise
    trust the name); under an explicit flavor it is just unrecognised bytes.
    """
    if path.suffix.lower() == ".onnx":
        try:
            return onnx_model(path)
        except ValidationError:
            if strict:
                raise
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    return (
        torch_archive(path, head)
        or pickled_model(path, head)
        or xgboost_model(path, head)
        or lightgbm_model(path, head)
        or python_file(path)
        or FlavorInfo("custom", None, None, {})
    )
