"""Reading a model's serving configuration from its folder, and laying overrides over it.

The configuration itself (:class:`ModelConfig` and its parts) is a definition of
:mod:`modelport.schema.model_config`; this module reads ``config.yaml`` or Triton's
``config.pbtxt`` (protobuf text, read against Triton's schema by :mod:`.pbtxt`) into it, names
the model after its folder when the file does not, and prefixes each error with the file
(``config.pbtxt: input[0].dims[0]: ...``). Completing a config from the loaded model is
:mod:`.completion`'s.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog  # noqa: F401  # installs the flavors' Triton names in the schema
from modelport.runtime.pbtxt import parse_pbtxt
from modelport.schema.model_config import (
    DynamicBatching,
    InstanceGroup,
    InstanceKind,
    ModelConfig,
    PolicyKind,
    TensorConfig,
    VersionPolicy,
    config_from_dict,
    normalize_datatype,
    override_config,
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot be read ({exc})") from None
