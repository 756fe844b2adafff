"""Triton model repositories: a model folder with numbered version folders, or a folder of them."""

from __future__ import annotations

from pathlib import Path

from modelport.runtime.flavor_info import FlavorInfo


def triton_repository(folder: Path) -> FlavorInfo | None:
    """One Triton model folder, or a repository whose every subfolder is one."""
    if _is_triton_model(folder):
        models = [folder.resolve().name]
    else:
        subfolders = _subfolders(folder)
        if not subfolders or not all(_is_triton_model(p) for p in subfolders):
            return None
        models = [p.name for p in subfolders]
    return FlavorInfo("triton", None, None, {"format": "triton", "models": models})


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_triton_model(folder: Path) -> bool:
    """A Triton model folder holds numbered version folders (and usually config.pbtxt)."""
    subfolders = _subfolders(folder)
    versions = [p for p in subfolders if p.name.isascii() and p.name.isdigit()]
    return bool(versions) and ((folder / "config.pbtxt").is_file() or len(versions) == len(subfolders))
