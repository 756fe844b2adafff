"""The published JSON Schemas: the files in docs/schemas/ are what the models give (like the gRPC
descriptors, a changed model without a regenerated file fails here), ``modelport schema`` prints
them, Azure's own example files validate against them, and the daemon's OpenAPI document uses
them for its definition requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelport.control.api import openapi_document
from modelport.schema.published import PUBLISHED, json_schema, render

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]


def test_docs_schemas_are_generated_from_the_models() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    assert {path.stem for path in (ROOT / "docs" / "schemas").glob("*.json")} == set(PUBLISHED)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_each_schema_is_valid_and_lets_editors_name_it(name: str) -> None:
    schema = json_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert "$schema" in schema["properties"]  # the line that points an editor at the file


def test_cli_prints_and_writes_the_published_schema(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "modelport", "schema", "deployment"], capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (ROOT / "docs" / "schemas" / "deployment.json").read_text(encoding="utf-8")
    target = tmp_path / "schemas" / "batch-deployment.json"
    written = subprocess.run(
        [sys.executable, "-m", "modelport", "schema", "batch-deployment", "--output", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == render(json_schema("batch-deployment"))
    unknown = subprocess.run(
        [sys.executable, "-m", "modelport", "schema", "workflow"], capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2 and "'workflow' is not one of" in unknown.stderr


AZURE_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../../model-1/model/
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
request_settings:
  request_timeout_ms: 3000
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
"""


@pytest.mark.parametrize(
    ("name", "text", "valid"),
    [
        ("deployment", AZURE_DEPLOYMENT, True),
        ("deployment", AZURE_DEPLOYMENT.replace("instance_count", "instance_cnt"), False),
        ("deployment", AZURE_DEPLOYMENT.replace("3000", "300000"), False),
        ("endpoint", "name: my-endpoint\nauth_mode: key\ntraffic:\n  blue: 100\n", True),
        ("endpoint", "name: my-endpoint\nauth_mode: key\ntrafic:\n  blue: 100\n", False),
        ("batch-endpoint", "name: mnist\ndefaults:\n  deployment_name: torch\nauth_mode: aad_token\n", True),
        (
            "batch-deployment",
            "name: d\nendpoint_name: e\nmodel: m:1\nmini_batch_size: 10\nresources:\n"
            "  instance_count: 2\nsettings:\n  retry_settings:\n    max_retries: 3\n",
            True,
        ),  # fmt: skip
        ("batch-deployment", "name: d\nendpoint_name: e\nsettings:\n  output_action: append\n", False),
    ],
)
def test_azure_files_validate_against_the_schemas(name: str, text: str, valid: bool) -> None:
    """What an editor shows: Azure's example files pass, a misspelt key or a value out of range does not."""
    errors = list(jsonschema.Draft202012Validator(json_schema(name)).iter_errors(yaml.safe_load(text)))
    assert (not errors) == valid, [error.message for error in errors]


def test_openapi_definition_requests_use_the_definition_schemas() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for body, model in (("EndpointDefinition", "EndpointSpec"), ("DeploymentDefinition", "DeploymentSpec")):
        reference = schemas[body]["properties"]["definition"]["anyOf"][0]["$ref"]
        assert reference == f"#/components/schemas/{model}"
        assert schemas[model]["additionalProperties"] is False
    references = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            references.update([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert {ref.rsplit("/", 1)[-1] for ref in references} <= set(schemas)  # every reference resolves
    assert "request_settings" in schemas["DeploymentSpec"]["properties"]
    assert json.dumps(document)  # serialisable as served
