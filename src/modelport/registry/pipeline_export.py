"""``modelport pipeline export --triton DIR``: a registered pipeline as the Triton model repository
that runs it, where one exists.

A Triton ensemble runs every step on every row, so a pipeline has an equivalent only when no step
has a ``when:`` and every output comes from one tensor; otherwise the export is refused, naming
the step or output that has none. The repository holds the ensemble (its steps pinned to the
versions the pipeline pins) and each step's model at its pinned version, with the config it was
registered with (its name set to the model's) or, without one, the config Triton completes.
Nothing is overwritten: a model folder already in DIR refuses the export before anything is
written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelport.core.errors import ConflictError, ValidationError
from modelport.core.files import disk_errors
from modelport.registry.flavors.pipelines import PIPELINE
from modelport.registry.models import ModelRegistry
from modelport.registry.pipelines import registered_pipeline
from modelport.runtime import flavor_catalog
from modelport.runtime.config import ModelConfig, TensorConfig, load_config
from modelport.runtime.pbtxt import render_pbtxt
from modelport.schema.model_config import ENSEMBLE_PLATFORM, EnsembleScheduling, EnsembleStep
from modelport.schema.pipeline import PipelineSpec

CONFIG_FILES = ("config.pbtxt", "config.yaml", "config.yml")


def export_triton(models: ModelRegistry, ref: str, to: Path) -> list[Path]:
    """Write pipeline ``ref`` and its steps' models into ``to`` as a Triton model repository;
    returns the model folders written."""
    info = models.get(ref)
    if info.flavor != PIPELINE:
        raise ValidationError(f"model {info.ref} is a {info.flavor} model, not a pipeline")
    registered = registered_pipeline(models.path(info.ref), info.details)
    spec, pins = registered.spec, dict(registered.pins)
    renamed = _renamed(info.ref, spec)
    folders = {info.name: to / info.name, **{model: to / model for model, _ in pins.values()}}
    taken = sorted(str(folder) for folder in folders.values() if folder.exists())
    if taken:
        raise ConflictError(f"--triton: {taken[0]} already exists; refusing to overwrite it")
    with disk_errors(to):
        step_configs = {pin: _write_model(models, *pin, to) for pin in dict.fromkeys(pins.values())}
        batch = min((config.max_batch_size for config in step_configs.values() if config is not None), default=0)
        ensemble = _ensemble(info.name, spec, pins, renamed, batch)
        (to / info.name / "1").mkdir(parents=True)  # Triton's (empty) version folder of an ensemble
        (to / info.name / "config.pbtxt").write_text(render_pbtxt(ensemble.to_dict()))
    return list(folders.values())


def check_unconditional(option: str, ref: str, spec: PipelineSpec, target: str, kind: str) -> None:
    """Refuse a pipeline that ``target`` (a ``kind`` of graph running every step on every row, each
    output from one tensor, every step a served model) cannot express, naming the step or output;
    ``option`` starts the line."""
    for step in spec.steps:
        if step.python is not None:
            raise ValidationError(
                f"{option}: pipeline {ref}: step {step.name!r} runs Python ({step.python}) from the pipeline's "
                f"code; {target} runs served models only, so this pipeline has no {kind} equivalent"
            )
        if step.when is not None:
            raise ValidationError(
                f"{option}: pipeline {ref}: step {step.name!r} runs only where {step.when.describe()}; "
                f"{target} runs every step on every row, so this pipeline has no {kind} equivalent"
            )
    for output in spec.outputs:
        if len(output.alternatives) > 1:
            raise ValidationError(
                f"{option}: pipeline {ref}: output {output.name!r} takes each row from the first of "
                f"{', '.join(output.alternatives)}; {target} output comes from one tensor"
            )


def _renamed(ref: str, spec: PipelineSpec) -> dict[str, str]:
    """Pipeline tensor → the ensemble's name for it: an output's source takes the output's name."""
    check_unconditional("--triton", ref, spec, "a Triton ensemble", "ensemble")
    renamed: dict[str, str] = {}
    inputs = {tensor.name for tensor in spec.inputs}
    for output in spec.outputs:
        source = output.alternatives[0]
        if source in inputs or source in renamed:
            raise ValidationError(
                f"--triton: pipeline {ref}: output {output.name!r} is tensor {source!r}, which is "
                + ("a pipeline input" if source in inputs else "another output too")
                + "; a Triton ensemble output is written by a step, once"
            )
        renamed[source] = output.name
    return renamed


def _write_model(models: ModelRegistry, name: str, version: int, to: Path) -> ModelConfig | None:
    """The step model's files under ``to/name/version/`` and its config (named ``name``) beside them."""
    info = models.get(f"{name}:{version}")
    content = models.path(info.ref)
    folder = to / name / str(version)
    folder.mkdir(parents=True)
    config: ModelConfig | None = None
    if content.is_dir():
        for entry in sorted(content.iterdir()):
            if entry.name in CONFIG_FILES:
                config = config or _named(load_config(entry), name, info.flavor)
            elif entry.is_dir():
                shutil.copytree(entry, folder / entry.name)
            else:
                shutil.copyfile(entry, folder / entry.name)
    else:
        shutil.copyfile(content, folder / content.name)
    if config is None:  # Triton completes the rest from the model file, as it does for any model
        flavor = flavor_catalog.get(info.flavor)
        written = {"name": name}
        if flavor is not None and flavor.triton_platform:
            written["platform"] = flavor.triton_platform
        if not content.is_dir():
            written["default_model_filename"] = content.name
        (to / name / "config.pbtxt").write_text(render_pbtxt(written))
        return None
    (to / name / "config.pbtxt").write_text(render_pbtxt(config.to_dict()))
    return config


def _named(config: ModelConfig, name: str, flavor: str) -> ModelConfig:
    """The registered config as Triton needs it: the model's name, and its platform or backend
    (from the registered flavor) when the config leaves them to modelport."""
    if config.platform is None and config.backend is None and config.flavor is None:
        return config.replace(name=name, flavor=flavor)
    return config.replace(name=name)


def _ensemble(
    name: str, spec: PipelineSpec, pins: dict[str, tuple[str, int]], renamed: dict[str, str], batch: int
) -> ModelConfig:
    def tensor(tensor_name: str) -> str:
        return renamed.get(tensor_name, tensor_name)

    def dims(shape: list[int]) -> tuple[int, ...]:
        return tuple(shape[1:]) if batch > 0 else tuple(shape)

    return ModelConfig(
        name=name,
        platform=ENSEMBLE_PLATFORM,
        max_batch_size=batch,
        inputs=[TensorConfig(name=t.name, datatype=t.datatype, dims=dims(t.shape)) for t in spec.inputs],
        outputs=[TensorConfig(name=t.name, datatype=t.datatype, dims=dims(t.shape)) for t in spec.outputs],
        ensemble_scheduling=EnsembleScheduling(
            steps=[
                EnsembleStep(
                    model_name=pins[step.name][0],
                    model_version=pins[step.name][1],
                    input_map={key: tensor(value) for key, value in step.inputs.items()},
                    output_map={key: tensor(value) for key, value in step.outputs.items()},
                )
                for step in spec.steps
            ]
        ),
    )
