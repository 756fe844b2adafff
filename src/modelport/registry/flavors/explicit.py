"""An explicit flavor against what detection found: which flavors can load which format.

Each flavor lists the formats it loads (a pickle can be loaded by several frameworks, an ONNX
graph only by ``onnx``); ``custom`` loads anything. A self-describing flavor (one with
``required``) cannot be claimed for bytes that were not recognised as one of its formats.
"""

from __future__ import annotations

from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_contract import Flavor
from modelport.runtime.flavor_info import FlavorInfo

CUSTOM = "custom"  # what detection reports for content no flavor recognises; it stores anything


def accepts(info: FlavorInfo, wanted: str) -> bool:
    """Whether flavor ``wanted`` could load what ``info`` describes."""
    if wanted == CUSTOM:
        return True
    fmt = info.details.get("format")
    return not self_describing(wanted) if fmt is None else fmt in _flavor(wanted).formats


def self_describing(wanted: str) -> bool:
    """Whether content must be recognised as one of ``wanted``'s formats to be that flavor."""
    return wanted != CUSTOM and _flavor(wanted).required is not None


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
    if found is not None and fmt is not None:
        return ValidationError(f"{path}: detected as {found.flavor} ({fmt}), which flavor {wanted!r} cannot load")
    return ValidationError(f"{path}: {_flavor(wanted).required}, so flavor {wanted!r} does not fit")


def _flavor(name: str) -> Flavor:
    flavor = flavor_catalog.get(name)
    if flavor is None:  # detect() checks the name first
        raise ValidationError(f"flavor: {name!r} is not one of {', '.join(flavor_catalog.names())}")
    return flavor
