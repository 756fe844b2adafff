"""MLflow model folders: the ``MLmodel`` file's flavors, version and signature."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ValidationError
from modelport.runtime.flavor_info import FlavorInfo, Signature, TensorSpec, is_shape, version_text

_MLFLOW_COLUMN_TYPES = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",  # travels as ISO-8601 text
}


def mlflow_model(folder: Path) -> FlavorInfo | None:
    """The MLflow model in ``folder``, or None without an ``MLmodel`` file; a bad one is an error."""
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        return None
    try:
        doc = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{mlmodel}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValidationError(f"{mlmodel}: expected a YAML mapping at the top level")
    flavors = doc.get("flavors")
    details: dict = {
        "format": "mlflow",
        "flavors": _json_safe(flavors) if isinstance(flavors, dict) else {},
    }
    unsupported: dict[str, str] = {}
    signature = None
    if isinstance(doc.get("signature"), dict):
        sig = doc["signature"]
        signature = Signature(
            mlflow_specs(sig.get("inputs"), "input", mlmodel, unsupported),
            mlflow_specs(sig.get("outputs"), "output", mlmodel, unsupported),
        )
    if unsupported:
        details["unsupported_io"] = unsupported
    return FlavorInfo("mlflow", version_text(doc.get("mlflow_version")), signature, details)


def mlflow_specs(raw: Any, kind: str, mlmodel: Path, unsupported: dict[str, str]) -> tuple[TensorSpec, ...]:
    """Read one side of an MLflow signature: a JSON string (as MLflow writes it) or a list."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{mlmodel}: signature.{kind}s is not valid JSON ({exc})") from exc
    if not isinstance(raw, list):
        raise ValidationError(f"{mlmodel}: signature.{kind}s must be a list of columns or tensors")
    specs = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, dict) else {}
        name = item.get("name")
        name = name if isinstance(name, str) and name else f"{kind}-{i}"
        spec = _mlflow_spec(item, name)
        if spec is None:
            unsupported[name] = str(item.get("type"))
        else:
            specs.append(spec)
    return tuple(specs)


def _mlflow_spec(item: dict, name: str) -> TensorSpec | None:
    if item.get("type") != "tensor":  # column-based: one value per row
        kind = item.get("type")
        datatype = _MLFLOW_COLUMN_TYPES.get(kind) if isinstance(kind, str) else None
        return TensorSpec(name, datatype, (-1,)) if datatype else None
    tensor = item.get("tensor-spec")
    tensor = tensor if isinstance(tensor, dict) else {}
    datatype, shape = _numpy_datatype(tensor.get("dtype")), tensor.get("shape")
    return TensorSpec(name, datatype, tuple(shape)) if datatype and is_shape(shape) else None


def _numpy_datatype(name: Any) -> str | None:
    """The v2 datatype of a numpy dtype name as MLflow writes it ("float32", "object", "<U0")."""
    if not isinstance(name, str):
        return None  # np.dtype(None) would read as float64
    try:
        return datatype_of(np.dtype(name))
    except (TypeError, ValueError, ValidationError):  # not a dtype, or one with no v2 datatype
        return None


def _json_safe(value: Any) -> Any:
    """YAML can hold dates and non-finite floats; details must survive ``json.dumps``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)
