"""What detection reports: the result dataclasses, and the checks its fields share.

A flavor's detectors return a :class:`FlavorInfo` (see :mod:`.flavor_contract`), so these types
live beside the contract, below the registry that stores them. They are JSON-safe, because the
model registry stores signatures and details as JSON; values read out of model files pass
:func:`version_text` and :func:`is_shape` before they are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeGuard

from modelport.core.datatypes import DATATYPES
from modelport.core.errors import ValidationError


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output, described as the Open Inference Protocol (v2) does."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 marks a variable dimension

    def to_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "tensor") -> TensorSpec:
        """Rebuild from :meth:`to_dict`; ``where`` names the field in error messages."""
        if not isinstance(d, dict):
            raise ValidationError(f"{where}: expected an object with name, datatype and shape")
        name, datatype, shape = d.get("name"), d.get("datatype"), d.get("shape")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{where}.name: must be a non-empty string")
        if datatype not in DATATYPES:
            raise ValidationError(f"{where}.datatype: {datatype!r} is not one of {', '.join(DATATYPES)}")
        if not is_shape(shape):
            raise ValidationError(f"{where}.shape: must be a list of integers >= -1")
        return cls(name, datatype, tuple(shape))


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns, so servers can describe and check requests."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict:
        return {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Signature:
        """Rebuild from :meth:`to_dict`; a missing side means the model declares none."""
        if not isinstance(d, dict):
            raise ValidationError("signature: expected an object with inputs and outputs")
        sides = []
        for side in ("inputs", "outputs"):
            items = d.get(side, [])
            if not isinstance(items, list):
                raise ValidationError(f"signature.{side}: must be a list")
            sides.append(tuple(TensorSpec.from_dict(item, f"signature.{side}[{i}]") for i, item in enumerate(items)))
        return cls(*sides)


@dataclass(frozen=True)
class FlavorInfo:
    """What :func:`detect` learnt: everything in it is JSON-safe and came from the model's bytes."""

    flavor: str
    framework_version: str | None
    signature: Signature | None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "flavor": self.flavor,
            "framework_version": self.framework_version,
            "signature": self.signature.to_dict() if self.signature else None,
            "details": self.details,
        }


def version_text(value: Any) -> str | None:
    """A version the model recorded, if it reads as one: short printable text.

    Files can hold anything there; the registry stores at most 128 characters.
    """
    text = "" if value is None else str(value).strip()
    return text if 0 < len(text) <= 64 and text.isprintable() else None


def is_shape(shape: Any) -> TypeGuard[list[int] | tuple[int, ...]]:
    """Whether ``shape`` is a list or tuple of dims, each -1 (variable) or a size."""
    return isinstance(shape, (list, tuple)) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= -1 for n in shape
    )
