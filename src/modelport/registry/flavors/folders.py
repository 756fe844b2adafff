"""Model folders: the flavors' folder layouts first (MLflow, entry scripts, Triton...), else the one model file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from modelport.registry.flavors.explicit import accepts, adopt, misfit, self_describing
from modelport.registry.flavors.files import sniff
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_info import FlavorInfo


def detect_folder(folder: Path, wanted: str | None) -> FlavorInfo:
    """Folder layouts first (each flavor's folder detectors), then the one model file inside."""
    rejected: list[FlavorInfo] = []
    for probe in flavor_catalog.folder_detectors():
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
    if rejected or self_describing(wanted):
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
