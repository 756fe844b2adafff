"""One model file, recognised by its content (and, for ONNX and bare pickles, its name)."""

from __future__ import annotations

from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_info import FlavorInfo

_HEAD_BYTES = 256  # the first bytes, that every format below is told by


def sniff(path: Path, strict: bool) -> FlavorInfo:
    """Recognise one file by the registered flavors' file detectors, in catalog order.

    A file that claims a format and is broken (a ``.onnx`` file that does not parse) is an
    error when ``strict`` (detection would otherwise trust the claim); under an explicit flavor
    it is just unrecognised bytes.
    """
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    for detector in flavor_catalog.file_detectors():
        try:
            info = detector(path, head)
        except ValidationError:
            if strict:
                raise
            continue
        if info is not None:
            return info
    return FlavorInfo("custom", None, None, {})
