"""The definitions whose JSON Schemas are published: ``modelport schema NAME``, the files under
``docs/schemas/`` (which editors use to check YAML as it is typed) and the daemon's OpenAPI
document. One table, :data:`PUBLISHED`: a new definition is one line here.

A published schema is the model's own, so it cannot drift from what is read; it lists the
cloud-only keys (accepted and ignored) and ``$schema`` (the line that points an editor at it).
The table names each model's module rather than importing it, so that the CLI lists the names
without loading pydantic.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelport.schema.base import Definition

DIALECT = "https://json-schema.org/draft/2020-12/schema"

PUBLISHED = {  # name → "module:class"
    "endpoint": "modelport.schema.online:EndpointSpec",
    "deployment": "modelport.schema.online:DeploymentSpec",
    "batch-endpoint": "modelport.schema.batch:BatchEndpointSpec",
    "batch-deployment": "modelport.schema.batch:BatchDeploymentSpec",
    "data-collector": "modelport.schema.collector:DataCollector",
    "model-config": "modelport.schema.model_config:ModelConfig",
    "environment": "modelport.schema.environment:CondaEnvironment",
    "router": "modelport.schema.router_config:RouterConfig",
    "pipeline": "modelport.schema.pipeline:PipelineSpec",
}


def definition(name: str) -> type[Definition]:
    """The model published as ``name`` (a key of :data:`PUBLISHED`)."""
    module, _, cls = PUBLISHED[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the definition published as ``name``."""
    from modelport.schema.base import SCHEMA_KEY

    schema = definition(name).model_json_schema()
    schema["properties"] = {
        SCHEMA_KEY: {"type": "string", "description": "The JSON Schema of this file, for editors; not read."},
        **schema["properties"],
    }
    return {SCHEMA_KEY: DIALECT, **schema, "title": f"modelport {name}"}


def render(schema: dict[str, Any]) -> str:
    """A schema as the published files hold it: stable key order, one trailing newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def components(models: Iterable[type[Definition]]) -> dict[str, Any]:
    """``models`` and every definition they contain, keyed by class name, referring to each other
    as ``#/components/schemas/NAME``: the ``components.schemas`` of an OpenAPI document."""
    from pydantic.json_schema import models_json_schema

    _, schemas = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    return dict(schemas.get("$defs", {}))
