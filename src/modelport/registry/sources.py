"""Where served models come from: registered references or a Triton-style repository folder.

Both end as ``ModelSource`` values — name, version, flavor, the folder holding the model files
and its config, if any — so loading never cares where a model came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import NotFoundError, ValidationError
from modelport.registry.flavors import detect
from modelport.registry.flavors.pipelines import PIPELINE
from modelport.registry.pipelines import registered_pipeline
from modelport.runtime import flavor_catalog
from modelport.runtime.config import ModelConfig, TensorConfig, load_config
from modelport.runtime.pipeline import RegisteredPipeline

CONFIG_FILES = ("config.yaml", "config.yml", "config.pbtxt")


@dataclass(frozen=True)
class ModelSource:
    """One model version ready to be loaded.

    ``path`` is the folder the flavor loads from; ``model_dir`` is what scoring scripts see
    as ``AZUREML_MODEL_DIR`` (the folder holding the registered file or folder);
    ``entry_script`` is set for the ``python`` flavor (a ``score.py`` with ``init``/``run``),
    ``pipeline`` for the ``pipeline`` flavor (its definition and pinned steps).
    """

    name: str
    version: int
    flavor: str
    path: Path
    config: ModelConfig | None
    model_dir: Path
    entry_script: Path | None = None
    pipeline: RegisteredPipeline | None = None


def read_config(folder: Path, name: str, *, strict: bool) -> ModelConfig | None:
    """The model's own config file beside its files (YAML preferred over pbtxt), if any.

    In a repository the config's name must match its folder (``strict``), as in Triton; a
    registered model is served under its registered name whatever its config says.
    """
    for filename in CONFIG_FILES:
        candidate = folder / filename
        if candidate.is_file():
            config = load_config(candidate)
            if config.name == name:
                return config
            if strict:
                raise ValidationError(f"{candidate}: name {config.name!r} does not match the model folder {name!r}")
            return config.replace(name=name)
    return None


def sources_from_repository(repo: Path) -> list[ModelSource]:
    """Every model of a Triton-style repository: ``<repo>/<model>/<version>/…`` + optional config.

    A folder that is itself one model (numeric version folders directly inside) works too.
    Versions are chosen by each model's ``version_policy`` (default: the latest one).
    """
    repo = Path(repo)
    if not repo.is_dir():
        raise ValidationError(f"model repository: {repo} is not a folder")
    model_dirs = (
        [repo]
        if _versions(repo)
        else sorted(d for d in repo.iterdir() if d.is_dir() and (_versions(d) or _stored_ensemble(d)))
    )
    if not model_dirs:
        raise ValidationError(f"model repository: {repo} holds no <model>/<version>/ folders")
    return [source for model_dir in model_dirs for source in _model_sources(model_dir)]


def is_repository(folder: Path) -> bool:
    """Whether ``folder`` is laid out as :func:`sources_from_repository` reads it: numbered version
    folders in it, or in at least one of its subfolders."""
    return bool(_versions(folder)) or any(child.is_dir() and _versions(child) for child in folder.iterdir())


def source_from_path(path: Path, name: str) -> list[ModelSource]:
    """A model file, or a model folder that is not a repository (an MLflow model, a scoring-script
    folder, a folder with one model file and an optional config), served as it is without being
    registered: version 1 under ``name``. A file is loaded as that very file, whatever lies
    beside it; scripts see the folder holding it as their model folder."""
    path = path.resolve()
    info = detect(path)
    if info.flavor == "custom":
        found = info.details.get("model_files")
        raise ValidationError(
            f"target: {path}: "
            + (
                f"holds several model files ({', '.join(found)}); serve one of them"
                if found
                else f"not a model format modelport serves ({', '.join(flavor_catalog.loadable_names())}, a score.py)"
            )
        )
    if info.flavor == PIPELINE:
        raise ValidationError(
            f"target: {path}: a pipeline is served once registered, which pins its steps' versions "
            f"(modelport model register {path} --name NAME)"
        )
    if path.is_file() and info.flavor != "python":
        return [ModelSource(name, 1, info.flavor, path, None, path.parent)]
    return source_from_registered(name, 1, info.flavor, path.parent, path.name, info.details)


def _versions(model_dir: Path) -> dict[int, Path]:
    """Numeric version folders; names with a leading 0 are ignored, as Triton does."""
    return {
        int(child.name): child
        for child in model_dir.iterdir()
        if child.is_dir() and child.name.isdigit() and not child.name.startswith("0")
    }


def _stored_ensemble(model_dir: Path) -> bool:
    """An ensemble folder as the registry gives it back: its config alone, since the store keeps
    files and Triton's version folder of an ensemble is empty."""
    return any((model_dir / name).is_file() for name in CONFIG_FILES) and bool(
        (config := read_config(model_dir, model_dir.name, strict=True)) and config.is_ensemble
    )


def _model_sources(model_dir: Path) -> list[ModelSource]:
    name = model_dir.name
    config = read_config(model_dir, name, strict=True)
    versions = _versions(model_dir) or {1: model_dir / "1"}  # a registered ensemble: its empty folder is not stored
    chosen = config.version_policy.select(versions) if config else [max(versions)]
    sources = []
    for version in chosen:
        folder = versions[version]
        flavor = (config.flavor if config else None) or detect(folder).flavor
        sources.append(ModelSource(name, version, flavor, folder, config, folder))
    return sources


def source_from_registered(
    name: str,
    version: int,
    flavor: str,
    version_dir: Path,
    root_name: str,
    details: dict,
    signature: dict | None = None,
) -> list[ModelSource]:
    """A registered version: a single file, a model folder (with optional config), a scoring
    script folder, or a repository. ``details`` are the registry's facts about the content;
    ``signature`` types a tabular model's input when no config file does."""
    content = version_dir / root_name
    if flavor == "triton":
        return sources_from_repository(content)
    if not content.exists():
        raise NotFoundError(f"model {name}:{version}: {content} is missing")
    if flavor == PIPELINE:
        try:
            pipeline = registered_pipeline(content, details)
        except ValidationError as exc:
            raise ValidationError(f"model {name}:{version}: {exc}") from None
        return [ModelSource(name, version, flavor, version_dir, None, version_dir, pipeline=pipeline)]
    if flavor == "python":
        script = content / details["entry_script"] if content.is_dir() else content
        return [ModelSource(name, version, flavor, script.parent, None, version_dir, script)]
    config = read_config(content, name, strict=False) if content.is_dir() else None
    if config is None:
        config = _signature_config(name, flavor, signature)
    return [ModelSource(name, version, flavor, content if content.is_dir() else version_dir, config, version_dir)]


def _signature_config(name: str, flavor: str, signature: dict | None) -> ModelConfig | None:
    """A tabular model's input as its registered signature states it (``model register
    --input-example`` / ``--signature``): its name and datatype (an FP32 example serves an FP32
    input, the framework casting inside) and its feature count, which loading checks against the
    model's own ``n_features_in_``. Other flavors describe their tensors themselves."""
    inputs = (signature or {}).get("inputs") or []
    if not flavor_catalog.is_tabular(flavor) or len(inputs) != 1:
        return None
    spec = inputs[0]
    return ModelConfig(
        name=name,
        flavor=flavor,
        inputs=[TensorConfig(name=spec["name"], datatype=spec["datatype"], dims=tuple(spec["shape"][1:]))],
    )
