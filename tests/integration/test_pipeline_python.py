"""A registered pipeline with Python steps around an ONNX classifier: a scaler before it and an
argmax → label lookup after it, from the pipeline's code folder. Registered as one unit (the file
and a snapshot of its code), checked at registration (a broken step refused naming it), served by
``modelport serve`` and by a batch deployment with answers equal to computing it here, and refused
by ``pipeline export`` in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from conftest import Cli, Server, ok

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import CASCADE_FEATURES, build_cascade, cascade_rows

PIPELINE = """\
kind: pipeline
code: steps
inputs: [{name: raw, datatype: FP32, shape: [-1, 16]}]
steps:
  - name: scale
    python: prepost:scale
    inputs: {x: raw}
    outputs: {scaled: x}
    signature:
      inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]
      outputs: [{name: scaled, datatype: FP32, shape: [-1, 16]}]
  - {name: classify, model: clf:1, inputs: {input: x}, outputs: {output: probs}}
  - name: label
    python: prepost:to_label
    inputs: {probabilities: probs}
    outputs: {label: label, name: name}
    signature:
      outputs:
        - {name: label, datatype: INT64, shape: [-1]}
        - {name: name, datatype: BYTES, shape: [-1]}
outputs:
  - {name: label, datatype: INT64, shape: [-1]}
  - {name: name, datatype: BYTES, shape: [-1]}
  - {name: probs, datatype: FP32, shape: [-1, 4]}
"""

PREPOST = """\
import numpy as np

from labels import NAMES  # a sibling module of the code folder

OFFSET, SCALE = 0.25, 1.5


def scale(inputs):
    return {"scaled": ((inputs["x"] - OFFSET) * SCALE).astype(np.float32)}


def to_label(inputs):
    label = inputs["probabilities"].argmax(axis=1).astype(np.int64)
    return {"label": label, "name": np.array([NAMES[i] for i in label], dtype=object)}
"""


@dataclass
class Setup:
    home: Path
    project: Path
    model: Path

    def reference(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The pipeline computed here, by hand, as registered (before the code changed on disk)."""
        scaled = ((rows - np.float32(0.25)) * np.float32(1.5)).astype(np.float32)
        probs = ort.InferenceSession(str(self.model)).run(None, {"input": scaled})[0]
        label = probs.argmax(axis=1)
        return {"probs": probs, "label": label, "name": np.array(["ant", "bee", "cat", "dog"])[label]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("pipeline-python")
    paths = build_cascade(root / "files", large_width=8)
    project = root / "project"
    steps = project / "steps"
    (steps / "__pycache__").mkdir(parents=True)
    (project / "pipeline.yaml").write_text(PIPELINE)
    (steps / "prepost.py").write_text(PREPOST)
    (steps / "labels.py").write_text('NAMES = ["ant", "bee", "cat", "dog"]\n')
    (steps / ".gitignore").write_text("*.tmp\n")
    (steps / "scratch.tmp").write_text("not code")
    (steps / "__pycache__" / "stale.pyc").write_bytes(b"\0")
    cli = Cli(root / "ws")
    ok(cli("model", "register", paths["small"], "--name", "clf"))
    registered = ok(cli("model", "register", project / "pipeline.yaml", "--name", "prepost"))
    assert "registered prepost:1 (pipeline" in registered
    # Editing the code after registration changes nothing registered: the version holds a snapshot.
    (steps / "prepost.py").write_text(PREPOST.replace("OFFSET, SCALE = 0.25, 1.5", "OFFSET, SCALE = 9.0, 9.0"))
    yield Setup(root / "ws", project, paths["small"] / "model.onnx")


@pytest.fixture(scope="module")
def server(setup: Setup) -> Iterator[Server]:
    srv = Server(["prepost"], Cli(setup.home).env, grpc=False)
    yield srv
    assert srv.stop() == 0


ROWS = cascade_rows(64, sure=0.7, seed=3)


def _body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "raw", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}


def test_the_version_holds_the_file_and_a_snapshot_of_its_code(setup: Setup) -> None:
    shown = json.loads(ok(Cli(setup.home)("model", "show", "prepost:1", "-o", "json")))
    assert shown["details"]["steps"] == {"classify": "clf:1"}  # only model steps are pinned
    assert shown["details"]["definition"] == "pipeline.yaml"
    assert sorted(f["path"] for f in shown["files"]) == [
        "pipeline.yaml",
        "steps/.gitignore",
        "steps/labels.py",
        "steps/prepost.py",
    ]  # the ignore file's *.tmp and __pycache__ are left out, as in a deployment's code snapshot


def test_serve_answers_equal_the_pipeline_computed_by_hand(setup: Setup, server: Server) -> None:
    reply = httpx.post(f"{server.url}/v2/models/prepost/infer", json=_body(ROWS), timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    expected = setup.reference(ROWS)
    np.testing.assert_allclose(
        np.asarray(outputs["probs"]["data"], dtype=np.float32).reshape(outputs["probs"]["shape"]),
        expected["probs"],
        rtol=1e-5,
        atol=1e-6,
    )
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["data"] == expected["label"].tolist()
    assert outputs["name"]["datatype"] == "BYTES" and outputs["name"]["data"] == list(expected["name"])
    assert len(set(outputs["label"]["data"])) > 1  # the rows are told apart: the scaling was applied
    metadata = httpx.get(f"{server.url}/v2/models/prepost").json()
    assert metadata["inputs"] == [{"name": "raw", "datatype": "FP32", "shape": [-1, CASCADE_FEATURES]}]


BROKEN = {
    "missing function": (
        ("python: prepost:to_label", "python: prepost:to_labels"),
        "error: pipeline 'broken': step 'label' (python prepost:to_labels): module prepost has no function to_labels()",
    ),
    "missing module": (
        ("python: prepost:scale", "python: preprocess:scale"),
        "error: pipeline 'broken': step 'scale' (python preprocess:scale): module 'preprocess' is not in the code "
        "folder steps (preprocess.py)",
    ),
    "undeclared output": (
        ("outputs: {label: label, name: name}", "outputs: {label: label, title: name}"),
        "error: pipeline 'broken': step 'label' (python prepost:to_label): outputs 'title' (tensor 'name') is not an "
        "output of the signature (it has 'label', 'name')",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_python_step_is_refused_at_registration_naming_the_step(setup: Setup, case: str) -> None:
    (old, new), message = BROKEN[case]
    broken = setup.project / f"broken-{case.replace(' ', '-')}.yaml"
    broken.write_text(PIPELINE.replace(old, new, 1))
    refused = Cli(setup.home)("model", "register", broken, "--name", "broken")
    assert refused.returncode == 1
    assert refused.stderr.strip() == message


def test_a_step_whose_module_fails_to_import_is_refused_naming_the_step(setup: Setup) -> None:
    (setup.project / "steps" / "prepost.py").write_text("raise RuntimeError('no GPU here')\n")
    try:
        refused = Cli(setup.home)("model", "register", setup.project / "pipeline.yaml", "--name", "broken")
    finally:
        (setup.project / "steps" / "prepost.py").write_text(PREPOST)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: pipeline 'broken': step 'scale' (python prepost:scale): import of prepost failed: RuntimeError: no GPU here"
    )
    assert "broken" not in ok(Cli(setup.home)("model", "list"))  # nothing stored


def test_export_refuses_a_pipeline_with_python_steps_in_one_line(setup: Setup, tmp_path: Path) -> None:
    cli = Cli(setup.home)
    for option, target, kind in (
        ("--triton", "a Triton ensemble", "ensemble"),
        ("--kserve", "a KServe Sequence", "Sequence"),
    ):
        refused = cli("pipeline", "export", "prepost:1", option, tmp_path / option.strip("-"))
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"error: {option}: pipeline prepost:1: step 'scale' runs Python (prepost:scale) from the pipeline's "
            f"code; {target} runs served models only, so this pipeline has no {kind} equivalent"
        )
        assert not (tmp_path / option.strip("-")).exists()


def test_a_batch_deployment_scores_a_table_with_the_python_steps(setup: Setup, tmp_path: Path) -> None:
    with Workspace(setup.home) as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "prepost-batch"}).value)
        spec = {"name": "nocode", "endpoint_name": "prepost-batch", "model": "prepost:1"}
        endpoints.create_deployment(parse_deployment({**spec, "settings": {"mini_batch_size": 30}}, tmp_path).value)
    rows = cascade_rows(70, sure=0.7, seed=4)
    (tmp_path / "table").mkdir()
    columns = [f"f{i}" for i in range(CASCADE_FEATURES)]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "table" / "x.csv", index=False)
    ok(
        Cli(setup.home)(
            *("batch-endpoint", "invoke", "-n", "prepost-batch", "-d", "nocode", "--input", tmp_path / "table"),
            *("--input-type", "tabular", "--output-path", tmp_path / "out", "--wait"),
            timeout=300,
        )
    )
    scored = pd.read_csv(tmp_path / "out" / "predictions.csv", header=None, sep=" ")
    expected = setup.reference(rows)
    assert list(scored[0]) == list(range(70))  # rows in order
    assert list(scored[1]) == expected["label"].tolist()
    assert list(scored[2]) == list(expected["name"])


def test_a_packaged_pipeline_holds_its_steps_and_serves_without_a_workspace(setup: Setup, tmp_path: Path) -> None:
    context = tmp_path / "context"
    ok(Cli(setup.home)("package", "prepost:1", "--output-dir", context))
    facts = json.loads((context / "model" / "modelport-model.json").read_text())
    assert [(step["name"], step["version"]) for step in facts["steps"]] == [("clf", 1)]
    assert (context / "model" / "prepost" / "1" / "project" / "steps" / "prepost.py").is_file()
    srv = Server([str(context / "model")], {**Cli(tmp_path / "no-workspace").env}, grpc=False)
    try:
        reply = httpx.post(f"{srv.url}/v2/models/prepost/infer", json=_body(ROWS), timeout=30)
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
        assert outputs["label"] == setup.reference(ROWS)["label"].tolist()
    finally:
        assert srv.stop() == 0
    assert not (tmp_path / "no-workspace").exists()  # nothing was opened
