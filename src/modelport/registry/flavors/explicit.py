"""An explicit flavor against what detection found: which flavors can load which format.

A pickle can be loaded by several frameworks, an ONNX graph only by ``onnx``, and anything by
``custom``; a flavor whose format identifies itself cannot be claimed for bytes that were not
recognised as it.
"""

from __future__ import annotations

from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.registry.flavors.pickle_walker import PICKLE_FRAMEWORKS
from modelport.registry.flavors.types import FlavorInfo

# Which flavors can load each recognised format ("custom" can load anything).
_LOADERS: dict[str, frozenset[str]] = {
    "onnx": frozenset({"onnx"}),
    "pickle": PICKLE_FRAMEWORKS,
    "joblib": PICKLE_FRAMEWORKS,
    "xgboost-json": frozenset({"xgboost"}),
    "xgboost-ubj": frozenset({"xgboost"}),
    "lightgbm-text": frozenset({"lightgbm"}),
    "torch-zip": frozenset({"torch"}),
    "mlflow": frozenset({"mlflow"}),
    "triton": frozenset({"triton"}),
    "python": frozenset({"python"}),
}
# Flavors whose format identifies itself, so unrecognised content cannot be one of them.
NEEDS = {
    "onnx": "is not an ONNX model",
    "mlflow": "is not an MLflow model folder (no MLmodel file)",
    "triton": "is not a Triton model repository (no <model>/<version>/ folders)",
    "python": "has no entry script (score.py, or a .py file defining init() and run())",
}


def accepts(info: FlavorInfo, wanted: str) -> bool:
    """Whether flavor ``wanted`` could load what ``info`` describes."""
    if wanted == "custom":
        return True
    fmt = info.details.get("format")
    return wanted not in NEEDS if fmt is None else wanted in _LOADERS[fmt]


def adopt(info: FlavorInfo, wanted: str | None, path: Path) -> FlavorInfo:
    """Apply an explicit flavor to a detection, or refuse when it cannot fit."""
    if wanted is None or wanted == info.flavor:
        return info
    if not accepts(info, wanted):
        raise misfit(path, wanted, info)
    # The detected framework's version says nothing about the wanted one, so it is dropped.
    details = {**info.details, "detected_flavor": info.flavor}
    return FlavorInfo(wanted, None, info.signature, details)


def misfit(path: Path, wanted: str, found: FlavorInfo | None) -> ValidationError:
    """The error for flavor ``wanted`` at ``path``: what was found instead, or what is missing."""
    fmt = found.details.get("format") if found else None
    if fmt is not None:
        return ValidationError(f"{path}: detected as {found.flavor} ({fmt}), which flavor {wanted!r} cannot load")
    return ValidationError(f"{path}: {NEEDS[wanted]}, so flavor {wanted!r} does not fit")
