"""Flavor loaders, one module per framework, each exposing ``load(model_dir, config, *, device)``.

This package's own module holds what several flavors share: importing an optional framework
with an actionable error, finding the model file in a folder, reading thread settings, and
the single-input naming that tabular flavors (sklearn, xgboost, lightgbm) follow. It imports
no framework itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime.config import ModelConfig
from modelport.runtime.predictor import TensorMeta

# MLServer's default tensor names; its sklearn runtime names outputs after the method called.
DEFAULT_INPUT = "input-0"
DEFAULT_OUTPUT = "predict"
_CONFIG_FILES = frozenset({"config.pbtxt", "config.yaml", "config.yml"})


def import_framework(module: str, extra: str) -> ModuleType:
    """Import an optional framework, or say which modelport extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelportError(
            f"the {extra} flavor needs the {module} package, which is not installed: pip install 'modelport[{extra}]'"
        ) from None


def load_error(path: Path, what: str, exc: BaseException) -> ValidationError:
    """A load failure in one line: the file, what it would not load as, and the framework's first
    line of explanation (some append stack traces)."""
    lines = str(exc).strip().splitlines()
    return ValidationError(f"{path}: cannot be loaded as {what} ({lines[0] if lines else type(exc).__name__})")


def find_model_file(
    model_dir: Path,
    config: ModelConfig | None,
    *,
    flavor: str,
    default_names: Sequence[str],
    suffixes: Sequence[str],
) -> Path:
    """The model file: ``model_dir`` itself if a file, the config's ``default_model_filename``,
    a default name, or else the one file with a matching suffix (config and label files aside).
    """
    if model_dir.is_file():
        return model_dir
    if config is not None and config.default_model_filename:
        path = model_dir / config.default_model_filename
        if not path.exists():
            raise ValidationError(f"default_model_filename: {path} does not exist")
        return path
    for name in default_names:
        if (model_dir / name).exists():
            return model_dir / name
    skip = set(_CONFIG_FILES)
    if config is not None:
        skip.update(filter(None, [config.labels, *(t.label_filename for t in config.outputs)]))
    candidates = sorted(
        path for path in model_dir.iterdir()
        if path.is_file() and path.suffix in suffixes and path.name not in skip and not path.name.startswith(".")
    )  # fmt: skip
    if len(candidates) == 1:
        return candidates[0]
    wanted = f"{' or '.join(default_names)} or one *{' / *'.join(suffixes)} file"
    if not candidates:
        raise ValidationError(f"{model_dir}: no {flavor} model file found (looked for {wanted})")
    names = ", ".join(path.name for path in candidates)
    raise ValidationError(f"{model_dir}: several {flavor} model files ({names}); name one with default_model_filename")


def thread_count(config: ModelConfig | None, device: str) -> int | None:
    """Threads per instance: the instance group's ``threads``, else Triton's onnxruntime
    ``intra_op_thread_count`` parameter, else None (the framework's default, usually all cores).
    """
    if config is None:
        return None
    for group in config.instance_group:
        if group.kind == device and group.threads:
            return group.threads
    return int_parameter(config, "intra_op_thread_count")


def default_threads(config: ModelConfig | None, device: str, processes: int = 1) -> int:
    """Threads per instance when the config sets none: the cores this process may use, shared
    among every instance that runs at once (``processes`` server workers, each with its instances).
    More threads than cores only makes the instances and the HTTP front end preempt each other."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    instances = sum(group.count for group in config.instance_group if group.kind == device) if config else 1
    return max(1, cores // (processes * max(1, instances)))


def int_parameter(config: ModelConfig | None, key: str) -> int | None:
    """A positive integer from the config's string-valued ``parameters``, or None if absent."""
    if config is None or key not in config.parameters:
        return None
    text = config.parameters[key]
    if not text.isdigit() or int(text) < 1:
        raise ValidationError(f"parameters.{key}: {text!r} is not a positive integer")
    return int(text)


def tabular_input(config: ModelConfig | None, flavor: str, datatype: str, n_features: int | None) -> TensorMeta:
    """The one ``[batch, features]`` input of a tabular model.

    Its name and datatype come from the config when it lists the input (e.g. Triton FIL's
    ``input__0``), else ``input-0`` and the flavor's natural datatype.
    """
    name = DEFAULT_INPUT
    if config is not None and config.inputs:
        if len(config.inputs) > 1:
            raise ValidationError(f"input: {flavor} models take one input; the config lists {len(config.inputs)}")
        name, datatype = config.inputs[0].name, config.inputs[0].datatype
    return TensorMeta(name, datatype, (-1, n_features or -1))


def single_output_name(config: ModelConfig | None, flavor: str) -> str:
    """The name of a model's only output: the config's, else ``predict``."""
    if config is None or not config.outputs:
        return DEFAULT_OUTPUT
    if len(config.outputs) > 1:
        raise ValidationError(f"output: {flavor} models have one output; the config lists {len(config.outputs)}")
    return config.outputs[0].name
