"""The classification extension: an output replaced by its top-k ``"value:index[:label]"`` strings.

Matches Triton (server ``src/classification.cc``): per batch row, the row's elements sorted by
value descending, at most ``k`` kept, each written as C++ ``std::to_string(value)`` (``%f`` for
floats, so ``"3.300000:1"``) plus ``:<label>`` when the output has a label for that index.
Ties keep the lower index first (Triton's unstable sort leaves them unspecified).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelport.core.datatypes import INTEGER_DATATYPES, datatype_of
from modelport.core.errors import ValidationError

# Triton supports the integer types and FP32/FP64; FP16 is added because half-precision
# models commonly emit FP16 scores and ranking them is unambiguous.
_CLASSIFIABLE = frozenset((*INTEGER_DATATYPES, "FP16", "FP32", "FP64"))


def classify(
    array: np.ndarray,
    class_count: int,
    labels: Sequence[str] | None = None,
    *,
    batched: bool = True,
) -> np.ndarray:
    """Top-``class_count`` classification of ``array`` as a BYTES (object) array.

    With ``batched`` (the model's first dimension is the batch), each row ``array[b]`` is
    ranked on its own and the result has shape ``[batch, min(k, row size)]``; otherwise the
    whole tensor is one row and the shape is ``[min(k, size)]``. ``labels[i]`` names class
    ``i`` (the model's label file); missing or empty labels are left off.
    """
    if type(class_count) is not int or class_count < 1:
        raise ValidationError(f"classification: class count must be a positive integer, got {class_count!r}")
    values = np.asarray(array)
    datatype = datatype_of(values)
    if datatype not in _CLASSIFIABLE:
        raise ValidationError(f"classification: not available for {datatype} outputs")
    if batched and values.ndim >= 1:
        lead = values.shape[:1]
        rows = values.reshape(values.shape[0], int(np.prod(values.shape[1:], dtype=np.int64)))
    else:
        lead = ()
        rows = values.reshape(1, values.size)
    k = min(class_count, rows.shape[1])
    order = _descending(rows)[:, :k]
    top = np.take_along_axis(rows, order, axis=1)
    text = "%f" if values.dtype.kind == "f" else "%d"
    names = list(labels or ())
    strings = [
        _entry(text % value, index, names)
        for value, index in zip(top.ravel().tolist(), order.ravel().tolist(), strict=True)
    ]
    result = np.empty(len(strings), dtype=object)
    result[:] = strings
    return result.reshape((*lead, k))


def _descending(rows: np.ndarray) -> np.ndarray:
    """Column indices of each row sorted by value descending, ties by ascending index."""
    width = rows.shape[1]
    return (width - 1) - np.argsort(rows[:, ::-1], axis=1, kind="stable")[:, ::-1]


def _entry(value: str, index: int, labels: list[str]) -> bytes:
    if index < len(labels) and labels[index]:
        return f"{value}:{index}:{labels[index]}".encode()
    return f"{value}:{index}".encode()
