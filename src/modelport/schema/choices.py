"""The choices definitions offer, as enums whose values are what YAML and stored JSON hold.

Free of pydantic, so the CLI builds its options (``--engine``) and the payload collector its
settings from them without loading the definition models.
"""

from __future__ import annotations

from modelport.core.enums import StrEnum


class Choice(StrEnum):
    """One of a fixed set of values, written in YAML and stored in JSON as its value."""


class AuthMode(Choice):
    """How clients authenticate to an online endpoint: one of its two keys, or not at all."""

    KEY = "key"
    NONE = "none"


class ScaleType(Choice):
    """How a deployment's replica count is set: fixed at ``instance_count``, or by its load."""

    DEFAULT = "default"
    TARGET_UTILIZATION = "target_utilization"


class OutputAction(Choice):
    """What a batch job writes: every row's prediction, or only its summary."""

    APPEND_ROW = "append_row"
    SUMMARY_ONLY = "summary_only"


class LoggingLevel(Choice):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Engine(Choice):
    """Where a batch job's workers run: processes on this machine, or a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


class CollectionName(Choice):
    """What the data collector keeps of a request."""

    MODEL_INPUTS = "model_inputs"
    MODEL_OUTPUTS = "model_outputs"


class RollingRate(Choice):
    """How often the data collector starts a new file."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class FileFormat(Choice):
    PARQUET = "parquet"
    JSONL = "jsonl"
