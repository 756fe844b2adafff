"""Model folders: MLflow, Triton repositories and entry scripts first, else the one model file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from modelport.registry.flavors.explicit import NEEDS, accepts, adopt, misfit
from modelport.registry.flavors.files import sniff
from modelport.registry.flavors.mlflow import mlflow_model
from modelport.registry.flavors.scripts import python_folder
from modelport.registry.flavors.types import FlavorInfo


def detect_folder(folder: Path, wanted: str | None) -> FlavorInfo:
    """Folder layouts first (MLflow, Triton, entry script), then the one model file inside."""
    rejected: list[FlavorInfo] = []
    for probe in (mlflow_model, _triton_repository, python_folder):
        info = probe(folder)
        if info is not None and (wanted is None or accepts(info, wanted)):
            return adopt(info, wanted, folder)
        if info is not None:
            rejected.append(info)

    models = _model_files(folder, strict=wanted is None)
    fitting = [(name, info) for name, info in models if wanted is None or accepts(info, wanted)]
    # A recognised framework beats a bare pickle (labels.pkl beside model.onnx).
    chosen = [(name, info) for name, info in fitting if info.flavor != "custom"] or fitting
    if len(chosen) == 1:
        name, info = chosen[0]
        return adopt(replace(info, details={**info.details, "model_file": name}), wanted, folder)
    if chosen:  # several candidates: nothing tells which one is the model
        return FlavorInfo(wanted or "custom", None, None, {"model_files": [n for n, _ in chosen]})
    if wanted is None:
        return FlavorInfo("custom", None, None, {})
    rejected.extend(info for _, info in models)
    if rejected or wanted in NEEDS:
        raise misfit(folder, wanted, rejected[0] if rejected else None)
    return FlavorInfo(wanted, None, None, {})


def _model_files(folder: Path, strict: bool) -> list[tuple[str, FlavorInfo]]:
    """Top-level files whose content is a recognised model format, by name.

    Content decides, not the name, so README.md, config.yaml or requirements.txt never count,
    while an XGBoost ``model.json`` or a LightGBM ``model.txt`` does. Python files are left to
    the entry-script rule.
    """
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.suffix == ".py" or not entry.is_file():
            continue
        info = sniff(entry, strict)
        if "format" in info.details:
            found.append((entry.name, info))
    return found


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_triton_model(folder: Path) -> bool:
    """A Triton model folder holds numbered version folders (and usually config.pbtxt)."""
    subfolders = _subfolders(folder)
    versions = [p for p in subfolders if p.name.isascii() and p.name.isdigit()]
    return bool(versions) and ((folder / "config.pbtxt").is_file() or len(versions) == len(subfolders))


def _triton_repository(folder: Path) -> FlavorInfo | None:
    """One Triton model folder, or a repository whose every subfolder is one."""
    if _is_triton_model(folder):
        models = [folder.resolve().name]
    else:
        subfolders = _subfolders(folder)
        if not subfolders or not all(_is_triton_model(p) for p in subfolders):
            return None
        models = [p.name for p in subfolders]
    return FlavorInfo("triton", None, None, {"format": "triton", "models": models})
