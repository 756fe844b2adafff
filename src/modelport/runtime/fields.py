"""Checks for config fields that say which field failed: ``input[0].dims: 0 is not -1 or ...``.

Values come from YAML, protobuf text or Triton's JSON, so each check accepts every spelling
those give the same value (int64 fields as JSON strings, a repeated field given once) and
rejects the rest with a one-line reason. :func:`at` prefixes the reasons raised inside it with
the field's path, so nested config objects compose their paths without passing them down.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from modelport.core.errors import ValidationError


class FieldError(ValidationError):
    """A validation error that knows the field path it belongs to, so enclosing fields can prefix it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@contextmanager
def at(path: str) -> Iterator[None]:
    """Attribute validation errors raised inside to ``path``; nested paths join with dots."""
    try:
        yield
    except FieldError as exc:
        raise FieldError(f"{path}.{exc.path}", exc.reason) from None
    except ValidationError as exc:
        raise FieldError(path, str(exc)) from None


def describe(value: object) -> str:
    """A value for a message: scalars verbatim, containers by their type name only."""
    return f"{value!r}" if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def as_int(value: object, *, minimum: int | None = None) -> int:
    """An integer field, at least ``minimum``; digits in a string count (Triton's JSON int64)."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)  # Triton's JSON writes int64 fields as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"expected an integer, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{value} is less than {minimum}")
    return value


def as_positive_float(value: object) -> float:
    """A number above zero, as a float; a bool is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"expected a positive number, got {describe(value)}")
    return float(value)


def as_bool(value: object) -> bool:
    """A true/false field; anything else (0, 1, "true") is refused rather than guessed at."""
    if not isinstance(value, bool):
        raise ValidationError(f"expected true or false, got {describe(value)}")
    return value


def as_text(value: object) -> str:
    """A non-empty string field."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"expected a non-empty string, got {describe(value)}")
    return value


def as_dims(value: object) -> tuple[int, ...]:
    """Tensor dims: each -1 (variable) or a positive size."""
    dims = []
    for dim in as_sequence(value):
        dim = as_int(dim)
        if dim == 0 or dim < -1:
            raise ValidationError(f"{dim} is not -1 or a positive integer")
        dims.append(dim)
    return tuple(dims)


def as_mapping(value: object) -> Mapping[str, Any]:
    """A message field: a mapping of field names to values."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a mapping, got {describe(value)}")
    return value


def as_sequence(value: object) -> list[Any]:
    """Repeated fields: a list, or a single value given once (protobuf text allows both)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def single(value: object) -> Any:
    """A non-repeated field: protobuf text turns a field given twice into a list, which is refused."""
    if isinstance(value, list):
        raise ValidationError("given more than once; expected a single value")
    return value
