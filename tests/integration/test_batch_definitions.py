"""Batch endpoint and deployment definitions through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ok

from modelport.samples import build_mlp_onnx

# The legacy-schema deployment.yml of Azure's MNIST batch example (settings at the root),
# with the folders it points at.
MNIST_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
name: mnist-torch-dpl
description: A deployment using Torch to solve the MNIST classification dataset.
endpoint_name: mnist-batch
model:
  name: mnist-classifier-torch
  path: model
code_configuration:
  code: code
  scoring_script: batch_driver.py
environment:
  name: batch-torch-py38
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  conda_file: environment/conda.yml
compute: azureml:batch-cluster
resources:
  instance_count: 1
max_concurrency_per_instance: 2
mini_batch_size: 10
output_action: append_row
output_file_name: predictions.csv
retry_settings:
  max_retries: 3
  timeout: 30
error_threshold: -1
logging_level: info
"""

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json
name: mnist-batch
description: A batch endpoint for scoring images from the MNIST dataset.
tags:
  type: deep-learning
auth_mode: aad_token
"""


def _one_line_error(result, *needles: str) -> None:  # noqa: ANN001
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _mnist_folder(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    build_mlp_onnx(root / "model" / "model.onnx")
    (root / "code").mkdir()
    (root / "code" / "batch_driver.py").write_text(
        "def init():\n    pass\n\ndef run(mini_batch):\n    return mini_batch\n"
    )
    (root / "environment").mkdir()
    (root / "environment" / "conda.yml").write_text(
        "name: batch\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n  - pip\n  - pip:\n    - numpy\n"
    )
    (root / "deployment.yml").write_text(MNIST_DEPLOYMENT)
    (root / "endpoint.yml").write_text(ENDPOINT)
    return root


def test_mnist_definitions_load_as_is(cli, tmp_path: Path) -> None:
    root = _mnist_folder(tmp_path / "mnist")
    created = cli("batch-endpoint", "create", "-f", root / "endpoint.yml", "-o", "json")
    endpoint = json.loads(ok(created))
    assert (endpoint["name"], endpoint["tags"], endpoint["ignored"]) == (
        "mnist-batch",
        {"type": "deep-learning"},
        ["auth_mode"],
    )  # $schema is accepted silently
    result = cli("batch-deployment", "create", "-f", root / "deployment.yml", "--set-default", "-o", "json")
    deployment = json.loads(ok(result))
    assert sorted(deployment["ignored"]) == ["compute", "environment.image"]
    assert deployment["model"] == "mnist-classifier-torch:1" and deployment["flavor"] == "onnx"
    assert deployment["environment"] == "batch-torch-py38:1"
    assert deployment["code"] == str((root / "code").resolve())
    assert deployment["settings"]["max_concurrency_per_instance"] == 2
    assert deployment["settings"]["max_retries"] == 3 and deployment["is_default"] is True
    # the inline model is registered once: the same content again reuses its version
    again = cli("batch-deployment", "create", "-f", root / "deployment.yml", "-n", "second", "-o", "json")
    assert json.loads(ok(again))["model"] == "mnist-classifier-torch:1"
    assert (
        "note: ignored cloud-only keys: environment.image, compute\n"  # in the order of the file
        in cli("batch-deployment", "create", "-f", root / "deployment.yml", "-n", "third").stderr
    )
    shown = json.loads(ok(cli("batch-endpoint", "show", "-n", "mnist-batch", "-o", "json")))
    assert shown["defaults"] == {"deployment_name": "mnist-torch-dpl"}
    assert shown["deployments"] == ["mnist-torch-dpl", "second", "third"]


def test_endpoint_and_deployment_lifecycle(cli, tmp_path: Path) -> None:
    root = _mnist_folder(tmp_path / "mnist")
    ok(cli("batch-endpoint", "create", "-n", "scoring", "--set", "description=first"))
    _one_line_error(cli("batch-endpoint", "create", "-n", "scoring"), "already exists")
    ok(
        cli(
            "batch-deployment",
            "create",
            "-f",
            root / "deployment.yml",
            "-e",
            "scoring",
            "-n",
            "blue",
            "--set",
            "mini_batch_size=4",
            "--set",
            "retry_settings.timeout=5",
        )
    )
    blue = json.loads(ok(cli("batch-deployment", "show", "-e", "scoring", "-n", "blue", "-o", "json")))
    assert (blue["settings"]["mini_batch_size"], blue["settings"]["timeout"]) == (4, 5.0)
    _one_line_error(
        cli("batch-endpoint", "update", "-n", "scoring", "--set", "defaults.deployment_name=green"),
        "defaults.deployment_name",
        "no deployment 'green'",
    )
    updated = json.loads(
        ok(
            cli(
                "batch-endpoint",
                "update",
                "-n",
                "scoring",
                "--set",
                "defaults.deployment_name=blue",
                "--set",
                "tags.team=risk",
                "-o",
                "json",
            )
        )
    )
    assert (updated["defaults"]["deployment_name"], updated["tags"], updated["description"]) == (
        "blue",
        {"team": "risk"},
        "first",
    )
    listed = json.loads(ok(cli("batch-deployment", "list", "-e", "scoring", "-o", "json")))
    assert [d["name"] for d in listed] == ["blue"]
    assert "scoring" in ok(cli("batch-endpoint", "list"))
    _one_line_error(cli("batch-deployment", "delete", "-e", "scoring", "-n", "blue", "--yes"), "is the default")
    ok(cli("batch-endpoint", "delete", "-n", "scoring", "--yes"))
    assert json.loads(ok(cli("batch-endpoint", "list", "-o", "json"))) == []
    _one_line_error(cli("batch-deployment", "list", "-e", "scoring"), "batch endpoint 'scoring' does not exist")


def test_bad_definitions_are_one_line_and_store_nothing(sqlite_cli, tmp_path: Path) -> None:
    cli = sqlite_cli  # parsing, not storage: one backend is enough
    root = _mnist_folder(tmp_path / "mnist")
    ok(cli("batch-endpoint", "create", "-f", root / "endpoint.yml"))
    _one_line_error(
        cli("batch-deployment", "create", "-f", root / "deployment.yml", "--set", "mini_batch_size=-5"),
        "mini_batch_size: -5 is less than 1",
    )
    _one_line_error(
        cli("batch-deployment", "create", "-f", root / "deployment.yml", "--set", "settings.foo=1"),
        "settings.foo: unknown key",
    )
    (root / "code" / "batch_driver.py").write_text("def init():\n    pass\n")
    _one_line_error(
        cli("batch-deployment", "create", "-f", root / "deployment.yml"),
        "batch_driver.py defines no run(mini_batch) function",
    )
    _one_line_error(
        cli("batch-deployment", "create", "-f", root / "deployment.yml", "-e", "nowhere"),
        "batch endpoint 'nowhere' does not exist",
    )
    assert json.loads(ok(cli("batch-deployment", "list", "-e", "mnist-batch", "-o", "json"))) == []
    assert json.loads(ok(cli("model", "list", "-o", "json"))) == []  # nothing registered on the way
