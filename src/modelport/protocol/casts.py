"""Widening casts of request tensors to the datatype a model input declares.

Triton refuses any input whose datatype is not the model's. That is right for casts that lose
information, but it makes the commonest client choice fail for nothing: tritonclient sends
numpy's default float32 (FP32), and a scikit-learn model takes float64 (FP64). A cast that every
value survives exactly is therefore made, and only such a cast: to a wider float (FP16 → FP32 →
FP64, BF16 → FP32 / FP64), a wider signed integer (INT8 → … → INT64), or from an unsigned
integer to a wider one, signed or not. Every other mismatch (FP64 → FP32, INT64 → INT32,
INT64 → FP64, FP32 → INT32...) is refused naming the input, its datatype and the model's.
"""

from __future__ import annotations

import numpy as np

from modelport.core.datatypes import BF16, dtype_of
from modelport.core.errors import ValidationError
from modelport.protocol.datatypes import bf16_to_fp32

_FLOATS = ("FP16", "FP32", "FP64")
_SIGNED = ("INT8", "INT16", "INT32", "INT64")
_UNSIGNED = ("UINT8", "UINT16", "UINT32", "UINT64")


def _wider(ladder: tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {name: frozenset(ladder[index + 1 :]) for index, name in enumerate(ladder)}


def _unsigned() -> dict[str, frozenset[str]]:
    """An unsigned integer widens to a wider unsigned one, or to a signed one twice its size or more."""
    return {
        name: wider | frozenset(_SIGNED[index + 1 :]) for index, (name, wider) in enumerate(_wider(_UNSIGNED).items())
    }


WIDENING: dict[str, frozenset[str]] = {
    **_wider(_FLOATS),
    BF16: frozenset({"FP32", "FP64"}),
    **_wider(_SIGNED),
    **_unsigned(),
}
"""Datatype sent → the datatypes it is cast to exactly (UINT8 → INT16 and wider, and so on)."""


def widen(name: str, datatype: str, array: np.ndarray, expected: str | None) -> np.ndarray:
    """``array`` (input ``name``, sent as ``datatype``) as the model's ``expected`` datatype: the
    same array when they agree (or the model has no such input: the model's checks name it), a
    widened copy when that cast is exact, else a ValidationError."""
    if expected is None or datatype == expected:
        return array
    if expected not in WIDENING.get(datatype, ()):
        raise ValidationError(
            f"input {name!r}: datatype is {datatype}, but the model expects {expected} (only widening casts are "
            f"made: {_accepted(expected)})"
        )
    values = bf16_to_fp32(array) if datatype == BF16 else array
    return values.astype(dtype_of(expected))


def _accepted(expected: str) -> str:
    sources = sorted(source for source, targets in WIDENING.items() if expected in targets)
    return f"send {expected}" + (f" or {', '.join(sources)}" if sources else "")
