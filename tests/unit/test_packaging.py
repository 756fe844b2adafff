"""The pure parts of ``modelport package``: the entrypoint's command line, the Containerfile's
layer order, and the context's reproducible layout and digest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport.core.errors import ConflictError, ValidationError
from modelport.packaging import context
from modelport.packaging.containerfile import Recipe, render
from modelport.packaging.entrypoint import serve_command
from modelport.packaging.sources import HealthProbe

ROOT = "/opt/modelport"


def test_entrypoint_serves_the_packaged_model_on_all_interfaces_by_default() -> None:
    command = serve_command({"args": ["--request-timeout-ms", "5000"], "entry_script": None}, {}, [])
    assert command == [
        "serve",
        f"{ROOT}/model",
        "--host",
        "0.0.0.0",
        "--request-log",
        "-",
        "--request-timeout-ms",
        "5000",
    ]


def test_entrypoint_honours_azure_variables_ports_and_container_arguments() -> None:
    environ = {
        "MODELPORT_HOST": "127.0.0.1",
        "MODELPORT_HTTP_PORT": "9000",
        "WORKER_COUNT": "3",
        "AZUREML_ENTRY_SCRIPT": "other/score2.py",
        "AZUREML_MODEL_DIR": "/mnt/model",
        "MODELPORT_REQUEST_LOG": "",
    }
    command = serve_command({"args": ["--endpoint-name", "ep"], "entry_script": "score.py"}, environ, ["--no-grpc"])
    assert command == [
        "serve",
        "--entry-script",
        f"{ROOT}/code/other/score2.py",
        "--model-dir",
        "/mnt/model",
        "--host",
        "127.0.0.1",
        "--http-port",
        "9000",
        "--workers",
        "3",
        "--endpoint-name",
        "ep",
        "--no-grpc",
    ]


def _recipe(**changes: object) -> Recipe:
    fields: dict = {
        "base_image": "python:3.11-slim",
        "env": {"GREETING": 'say "hi"'},
        "labels": {"modelport.model.sha256": "ab" * 32},
        "probe": HealthProbe(),
        "has_code": True,
        "has_model": True,
    }
    return Recipe(**(fields | changes))


def test_containerfile_orders_layers_from_stable_to_model_and_runs_unprivileged() -> None:
    text = render(_recipe())
    lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    instructions = [line.split()[0] for line in lines]
    assert instructions.count("FROM") == 2
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies[-1] == "COPY model/ /opt/modelport/model/"  # the model is the last layer...
    assert instructions[-1] == "LABEL"  # ...and only the labels, which name it, come after
    assert "USER 10001:10001" in lines and "EXPOSE 8000 8001 8002" in lines
    assert 'GREETING="say \\"hi\\""' in text
    assert "--require-hashes -r /tmp/wheels/requirements.txt" in text
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert entrypoint == 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "modelport.packaging.entrypoint"]'


def test_containerfile_without_code_or_model_copies_neither() -> None:
    text = render(_recipe(has_code=False, has_model=False))
    assert "COPY code/" not in text and "COPY model/" not in text


def _tree(root: Path) -> None:
    (root / "b").mkdir(parents=True)
    (root / "b" / "x.txt").write_text("x")
    (root / "a.txt").write_text("a")


def test_digest_depends_on_content_not_on_timestamps_or_creation_order(tmp_path: Path) -> None:
    _tree(tmp_path / "one")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.txt").write_text("a")
    (tmp_path / "two" / "b").mkdir()
    (tmp_path / "two" / "b" / "x.txt").write_text("x")
    context.normalize(tmp_path / "one", 315532800)
    context.normalize(tmp_path / "two", 315532800)
    assert context.digest(tmp_path / "one") == context.digest(tmp_path / "two")
    assert os.stat(tmp_path / "one" / "b" / "x.txt").st_mtime == 315532800
    assert os.stat(tmp_path / "one" / "b" / "x.txt").st_mode & 0o777 == 0o644
    (tmp_path / "two" / "b" / "x.txt").write_text("y")
    assert context.digest(tmp_path / "one") != context.digest(tmp_path / "two")


def test_output_folder_must_be_new_or_empty(tmp_path: Path) -> None:
    context.check_output(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    context.check_output(tmp_path / "empty")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValidationError, match="is not a folder"):
        context.check_output(tmp_path / "file")
    _tree(tmp_path / "full")
    with pytest.raises(ConflictError, match="is not empty"):
        context.check_output(tmp_path / "full")


def test_source_date_epoch_sets_the_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert context.source_epoch() == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValidationError, match="SOURCE_DATE_EPOCH"):
        context.source_epoch()


def test_a_deployment_whose_script_calls_models_is_not_packaged(workspace, tmp_path: Path) -> None:  # noqa: ANN001
    from modelport.packaging.sources import from_file

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(data): return 1\n")
    definition = tmp_path / "deployment.yml"
    definition.write_text(
        "name: blue\nendpoint_name: ep\ncode_configuration: {code: code, scoring_script: score.py}\nmodels: [mlp:1]\n"
    )
    with pytest.raises(ValidationError, match="^models: an image packages one model, not the models a scoring"):
        from_file(workspace, definition)
