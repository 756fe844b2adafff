"""The OpenAPI 3 document of the v2 HTTP API, served at ``/v2/openapi.json``.

Written out (not introspected) because the routes take raw bodies: the schemas here are the
protocol's, so generated clients and fuzzers see the real request and response shapes.
"""

from __future__ import annotations

from typing import Any

from modelport.core.datatypes import DATATYPES
from modelport.core.version import __version__

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_EMPTY_OK = {"200": {"description": "yes"}, "400": {"description": "no"}}


def _json(ref: str) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _model_paths(prefix: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    errors = {"400": _ERROR, "404": _ERROR}
    return {
        prefix: {
            "get": {
                "summary": "Model metadata",
                "parameters": params,
                "responses": {"200": _json("ModelMetadata"), **errors},
            }
        },
        f"{prefix}/ready": {
            "get": {"summary": "Model readiness", "parameters": params, "responses": {**_EMPTY_OK, "404": _ERROR}}
        },
        f"{prefix}/config": {
            "get": {
                "summary": "Model configuration (Triton JSON)",
                "parameters": params,
                "responses": {"200": {"description": "ModelConfig"}, **errors},
            }
        },
        f"{prefix}/stats": {
            "get": {
                "summary": "Model statistics",
                "parameters": params,
                "responses": {"200": _json("Statistics"), **errors},
            }
        },
        f"{prefix}/infer": {
            "post": {
                "summary": "Inference (JSON, or JSON header + binary tensors with Inference-Header-Content-Length)",
                "parameters": params
                + [
                    {
                        "name": "Inference-Header-Content-Length",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {"200": _json("InferenceResponse"), **errors, "413": _ERROR, "503": _ERROR, "500": _ERROR},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    model = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    }
    meta_tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _json("ServerMetadata")}}},
        "/v2/health/live": {"get": {"summary": "Server liveness", "responses": _EMPTY_OK}},
        "/v2/health/ready": {
            "get": {"summary": "Server readiness (all models loaded)", "responses": {**_EMPTY_OK, "400": _ERROR}}
        },
        "/v2/models/stats": {
            "get": {"summary": "Statistics of every loaded model", "responses": {"200": _json("Statistics")}}
        },
        "/v2/repository/index": {
            "post": {
                "summary": "Models known to the server and their state",
                "responses": {"200": {"description": "array of {name, version, state, reason}"}, "400": _ERROR},
            }
        },
        "/v2/repository/models/{model}/load": {
            "post": {
                "summary": "(Re)load a model",
                "parameters": [model],
                "responses": {"200": {"description": "loaded"}, "404": _ERROR},
            }
        },
        "/v2/repository/models/{model}/unload": {
            "post": {
                "summary": "Unload a model",
                "parameters": [model],
                "responses": {"200": {"description": "unloaded"}, "404": _ERROR},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        "/v2/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
    }
    paths.update(_model_paths("/v2/models/{model}", [model]))
    paths.update(_model_paths("/v2/models/{model}/versions/{version}", [model, version]))
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelport scoring server (Open Inference Protocol v2)", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "ServerMetadata": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array", "items": meta_tensor},
                        "outputs": {"type": "array", "items": meta_tensor},
                    },
                },
                "InferenceRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": tensor},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                            },
                        },
                    },
                },
                "InferenceResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "outputs": {"type": "array", "items": tensor},
                    },
                },
                "Statistics": {
                    "type": "object",
                    "properties": {"model_stats": {"type": "array", "items": {"type": "object"}}},
                },
            }
        },
    }
