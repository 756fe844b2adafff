"""Reading batch endpoint and deployment definitions (the models: :mod:`modelport.schema.batch`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.schema.base import Parsed, parse
from modelport.schema.batch import BatchDeploymentSpec, BatchEndpointSpec, BatchSettings
from modelport.schema.choices import Engine

__all__ = ["ENGINES", "BatchSettings", "parse_deployment", "parse_endpoint"]

ENGINES = tuple(engine.value for engine in Engine)


def parse_endpoint(data: Mapping[str, Any]) -> Parsed[BatchEndpointSpec]:
    return parse(BatchEndpointSpec, data)


def parse_deployment(data: Mapping[str, Any], base: Path) -> Parsed[BatchDeploymentSpec]:
    """Paths in ``data`` are relative to ``base``; the scoring script must exist."""
    return parse(BatchDeploymentSpec, data, context={"base": base})
