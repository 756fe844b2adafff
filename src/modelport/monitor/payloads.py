"""Turning what a request carried into table columns, one row per instance.

A v2 tensor ``x`` of shape ``[N, F]`` becomes columns ``x_0 … x_{F-1}`` (``[N]`` or ``[N, 1]``:
one column ``x``), so collected inputs line up with a training table and drift can compare them
feature by feature. A row wider than :data:`MAX_FLAT` values (an image, say) stays one list
column. Azure ``/score`` bodies are JSON: records (``[{...}]``), rows (``[[...]]``) or columns
(``{"a": [...]}``), bare or under ``data`` / ``input_data``; anything else is kept whole as one
``payload`` text column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

MAX_FLAT = 1024
_WRAPPERS = ("data", "input_data", "inputs", "instances")


def tensor_columns(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Columns of equal length from named tensors that share dim 0; otherwise one row holding
    each tensor flattened (a model without a batch dim)."""
    arrays = {name: _plain(np.asarray(value)) for name, value in tensors.items()}
    rows = {array.shape[0] if array.ndim else 1 for array in arrays.values()}
    if len(rows) != 1 or any(array.ndim == 0 for array in arrays.values()):
        return {name: [array.reshape(-1).tolist()] for name, array in arrays.items()}
    columns: dict[str, Any] = {}
    for name, array in arrays.items():
        flat = array.reshape(array.shape[0], -1)
        if flat.shape[1] == 1 and array.ndim <= 2:
            columns[name] = flat[:, 0]
        elif flat.shape[1] <= MAX_FLAT:
            columns.update({f"{name}_{j}": flat[:, j] for j in range(flat.shape[1])})
        else:
            columns[name] = list(flat)
    return columns


def json_columns(body: bytes, name: str) -> dict[str, Any]:
    """Columns from a JSON body; ``name`` labels values that come without names (``input``,
    ``prediction``)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"payload": [body.decode("utf-8", "replace")]}
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _WRAPPERS:
        value = next(iter(value.values()))
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        keys = list(dict.fromkeys(key for item in value for key in item))
        return {key: [_scalar(item.get(key)) for item in value] for key in keys}
    if isinstance(value, dict) and value and all(isinstance(item, list) for item in value.values()):
        if len({len(item) for item in value.values()}) == 1:
            return {key: [_scalar(v) for v in item] for key, item in value.items()}
    if isinstance(value, list) and value:
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            array = None
        if array is not None and array.dtype.kind in "biufU":
            return tensor_columns({name: array})
    return {"payload": [orjson.dumps(value).decode()]}


def row_count(columns: Mapping[str, Any]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _plain(array: np.ndarray) -> np.ndarray:
    """BYTES tensors as text; everything else as it is."""
    if array.dtype == object:
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v), otypes=[object]
        )(array)
    return array


def _scalar(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else value
