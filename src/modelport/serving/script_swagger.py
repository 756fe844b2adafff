"""Swagger 2.0 / OpenAPI 3 documents for a scoring script, as azmlinfsrv's ``swagger.py`` makes them.

The schemas come from the script's inference-schema decorators; a ``swagger2.json`` /
``swagger3.json`` beside the script wins, as it does in Azure ML.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.core.errors import NotFoundError, ValidationError

JSON_TYPE = "application/json"


class SwaggerNotFound(NotFoundError):
    """``/swagger.json?version=`` names a version that is unknown or not available for the script."""


_SWAGGER_ALIASES = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
_SCHEMA_VERSIONS = {"2": "2.0", "3": "3.0", "3.1": "3.1"}  # inference-schema's names
_USER_SWAGGER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}
UNDECORATED_SCHEMA: dict[str, Any] = {"type": "object", "example": {}}


def swagger_version(requested: str | None, supported: list[str]) -> str:
    canonical = _SWAGGER_ALIASES.get("2" if requested is None else requested)
    if canonical is None:
        raise SwaggerNotFound(
            f"Swagger version [{requested}] is not valid. Supported versions: [{', '.join(supported)}]."
        )
    return canonical


def build_swagger(version: str | None, input_schema: dict[str, Any], output_schema: dict[str, Any]) -> dict[str, Any]:
    """azmlinfsrv's generated document for ``version`` (None → 2) around the two schemas.

    Title, version and path prefix come from ``SERVICE_NAME``, ``SERVICE_VERSION`` and
    ``SERVICE_PATH_PREFIX``, as in azmlinfsrv's config.
    """
    canonical = swagger_version(version, sorted(_SCHEMA_VERSIONS))
    name = os.environ.get("SERVICE_NAME", "ML service")
    prefix = os.environ.get("SERVICE_PATH_PREFIX", "").strip("/")
    prefix = f"/{prefix}" if prefix else ""
    info = {
        "title": name,
        "description": f"API specification for the Azure Machine Learning service {name}",
        "version": os.environ.get("SERVICE_VERSION", "1.0"),
    }
    builder = _swagger2 if canonical == "2" else _openapi3
    document = builder(info, prefix, input_schema, output_schema)
    if canonical == "3.1":
        document["openapi"] = "3.1.0"
    return document


def script_swaggers(app_root: Path, run: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    """Every available version's document: a user file in the app root wins over generation, and a
    version inference-schema cannot express (v2 with mixed-type arrays) is left out."""
    input_schema, output_schema, versions = _run_schemas(run)
    documents = {}
    for canonical, filenames in _USER_SWAGGER_FILES.items():
        for filename in filenames:
            path = app_root / filename
            if path.is_file():
                try:
                    documents[canonical] = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise ValidationError(f"{path}: not valid JSON ({exc})") from None
                break
        else:
            if _SCHEMA_VERSIONS[canonical] in versions:
                documents[canonical] = build_swagger(canonical, input_schema, output_schema)
    return documents


def is_schema_decorated(run: Callable[..., Any]) -> bool:
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:  # not installed: no script can use its decorators
        return False
    return bool(is_schema_decorated(run))


def _run_schemas(run: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The input/output schemas inference-schema registered for run() and the swagger versions they allow."""
    if not is_schema_decorated(run):
        return UNDECORATED_SCHEMA, UNDECORATED_SCHEMA, list(_SCHEMA_VERSIONS.values())
    from inference_schema.schema_util import get_input_schema, get_output_schema, get_supported_versions

    return get_input_schema(run), get_output_schema(run), list(get_supported_versions(run))


def _error_schema_ref(ref: str) -> dict[str, Any]:
    return {"description": "The service failed to execute due to an error.", "schema": {"$ref": ref}}


_HEALTH_DESCRIPTION = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE_DESCRIPTION = "Run web service's model and get the prediction output"
_INPUT_DESCRIPTION = "The input payload for executing the real-time machine learning service."
_OUTPUT_DESCRIPTION = "The service processed the input correctly and provided a result prediction, if applicable."
_BEARER = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "For example: Bearer abc123",
}
_ERROR_RESPONSE = {"type": "object", "properties": {"message": {"type": "string"}}}


def _swagger2(info: dict[str, Any], prefix: str, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    error = _error_schema_ref("#/definitions/ErrorResponse")
    return {
        "swagger": "2.0",
        "info": info,
        "schemes": ["https"],
        "consumes": [JSON_TYPE],
        "produces": [JSON_TYPE],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Simple health check endpoint to ensure the service is up at any given point.",
                    "responses": {
                        "200": {
                            "description": _HEALTH_DESCRIPTION,
                            "schema": {"type": "string"},
                            "examples": {JSON_TYPE: "Healthy"},
                        },
                        "default": error,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _INPUT_DESCRIPTION,
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {"description": _OUTPUT_DESCRIPTION, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": error,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {"name": "version", "in": "query", "required": False, "type": "integer", "enum": [2, 3]}
                    ],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": error,
                    },
                }
            },
        },
        "definitions": {"ServiceInput": input_schema, "ServiceOutput": output_schema, "ErrorResponse": _ERROR_RESPONSE},
    }


def _openapi3(info: dict[str, Any], prefix: str, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    def content(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {media_type: {"schema": schema}}

    error = {
        "description": "The service failed to execute due to an error.",
        "content": content(JSON_TYPE, {"$ref": "#/components/schemas/ErrorResponse"}),
    }
    return {
        "openapi": "3.0.3",
        "info": info,
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Simple health check endpoint to ensure the service is up at any given point.",
                    "responses": {
                        "200": {
                            "description": _HEALTH_DESCRIPTION,
                            "content": content("text/plain", {"type": "string", "example": "Healthy"}),
                        },
                        "default": error,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": _INPUT_DESCRIPTION,
                        "content": content(JSON_TYPE, {"$ref": "#/components/schemas/ServiceInput"}),
                    },
                    "responses": {
                        "200": {
                            "description": _OUTPUT_DESCRIPTION,
                            "content": content(JSON_TYPE, {"$ref": "#/components/schemas/ServiceOutput"}),
                        },
                        "default": error,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "enum": [2, 3]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": content("text/plain", {"type": "string"}),
                        },
                        "default": error,
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": input_schema, "ServiceOutput": output_schema, "ErrorResponse": _ERROR_RESPONSE},
            "securitySchemes": {"Bearer": dict(_BEARER)},
        },
    }
