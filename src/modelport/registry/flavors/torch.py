"""PyTorch archives: what ``torch.save`` and TorchScript write, recognised by their members."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from modelport.runtime.flavor_info import FlavorInfo

# What zipfile raises on a damaged archive (bad names decode to UnicodeDecodeError, a ValueError).
_BAD_ZIP = (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OSError, zlib.error)


def torch_archive(path: Path, head: bytes) -> FlavorInfo | None:
    """torch.save and TorchScript write zip archives: ``<name>/data.pkl`` plus tensor records."""
    if not head.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            prefixes = {n.removesuffix("data.pkl") for n in names if n.endswith("/data.pkl") and n.count("/") == 1}
            if len(prefixes) != 1:
                return None
            prefix = prefixes.pop()
            details: dict = {
                "format": "torch-zip",
                "torchscript": f"{prefix}constants.pkl" in names and any(n.startswith(f"{prefix}code/") for n in names),
            }
            # The archive's serialization format version; torch itself records no release.
            records = (f"{prefix}.data/version", f"{prefix}version")
            record = next((r for r in records if r in names), None)
            if record is not None:
                with archive.open(record) as f:
                    details["format_version"] = f.read(32).decode("ascii", "replace").strip()
    except _BAD_ZIP:
        return None  # a damaged archive of any kind: nothing to say about it
    return FlavorInfo("torch", None, None, details)
