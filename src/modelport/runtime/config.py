"""Reading a model's serving configuration from its folder, and laying overrides over it.

The configuration itself (:class:`ModelConfig` and its parts) is a definition of
:mod:`modelport.schema.model_config`; this module reads ``config.yaml`` or Triton's
``config.pbtxt`` (protobuf text, read against Triton's schema by :mod:`.pbtxt`) into it, names
the model after its folder when the file does not, and prefixes each error with the file
(``config.pbtxt: input[0].dims[0]: ...``). Completing a config from the loaded model is
:mod:`.completion`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog  # noqa: F401  # installs the flavors' Triton names in the schema
from modelport.runtime.pbtxt import parse_pbtxt
from modelport.schema.base import parse
from modelport.schema.model_config import (
    DynamicBatching,
    InstanceGroup,
    InstanceKind,
    ModelConfig,
    PolicyKind,
    TensorConfig,
    VersionPolicy,
    normalize_datatype,
)

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "TABULAR_MAX_BATCH_SIZE",
    "DynamicBatching",
    "InstanceGroup",
    "InstanceKind",
    "ModelConfig",
    "PolicyKind",
    "TensorConfig",
    "VersionPolicy",
    "config_from_dict",
    "load_config",
    "load_config_pbtxt",
    "load_config_yaml",
    "normalize_datatype",
    "override_config",
]

# Triton's onnxruntime backend batches a config-less model whose every tensor starts with a
# variable dim up to this size (its --backend-config default-max-batch-size).
DEFAULT_MAX_BATCH_SIZE = 4
# Tabular flavors run any number of rows in one vectorised call, in a few values of memory a row,
# and pay a fixed cost per call: a config-less one batches up to what Triton's FIL backend
# documents for tree models, so that a large table is a few calls, not thousands of 4-row ones.
TABULAR_MAX_BATCH_SIZE = 32768

_QUEUE_POLICY = ("max_queue_size", "default_timeout_microseconds")  # Triton nests them in default_queue_policy


def load_config(path: Path) -> ModelConfig:
    """Load ``config.pbtxt`` (or any ``.pbtxt``) as protobuf text, anything else as YAML."""
    path = Path(path)
    return load_config_pbtxt(path) if path.suffix == ".pbtxt" else load_config_yaml(path)


def load_config_yaml(path: Path) -> ModelConfig:
    """Read a YAML config; the model name defaults to the folder the file is in."""
    path = Path(path)
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(f"{path}: not valid YAML{where}") from None
    return config_from_dict(data if data is not None else {}, str(path), default_name=path.resolve().parent.name)


def load_config_pbtxt(path: Path) -> ModelConfig:
    """Read Triton's ``config.pbtxt``; the model name defaults to the folder the file is in."""
    path = Path(path)
    data = parse_pbtxt(_read(path), str(path))
    return config_from_dict(data, str(path), default_name=path.resolve().parent.name)


def config_from_dict(data: object, source: str = "config", *, default_name: str | None = None) -> ModelConfig:
    """Build a config from parsed YAML, parsed protobuf text or Triton's JSON config.

    Repeated fields may be given once without brackets (protobuf text allows that), and both
    Triton (``input``, ``data_type``) and plural (``inputs``, ``datatype``) spellings work.
    """
    if isinstance(data, Mapping) and default_name is not None and not data.get("name"):
        data = {**data, "name": default_name}
    try:
        return parse(ModelConfig, data).value
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc}") from None


def override_config(
    config: ModelConfig | None, name: str, overrides: Mapping[str, Any], source: str = "model config"
) -> ModelConfig:
    """``config`` (or an empty one named ``name``) with ``overrides`` laid over it: mappings merge
    key by key (``dynamic_batching: {max_queue_delay_microseconds: 500}`` keeps the other
    batching fields), anything else replaces. Deployments and the profiler tune a model's
    batching and instances this way without editing the files registered with it."""
    if "name" in overrides:
        raise ValidationError(f"{source}: name: the served name cannot be overridden")
    base = config.to_dict() if config is not None else {"name": name}
    batching = overrides.get("dynamic_batching")
    if isinstance(batching, Mapping):  # the flat queue-policy shorthand, nested as to_dict renders it
        flat = {key: batching[key] for key in _QUEUE_POLICY if key in batching}
        nested = {key: value for key, value in batching.items() if key not in _QUEUE_POLICY}
        if flat:
            nested["default_queue_policy"] = {**nested.get("default_queue_policy", {}), **flat}
        overrides = {**overrides, "dynamic_batching": nested}
    return config_from_dict(_merged(base, overrides), source)


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        both_mappings = isinstance(current, Mapping) and isinstance(value, Mapping)
        result[key] = _merged(current, value) if both_mappings else value
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot be read ({exc})") from None
