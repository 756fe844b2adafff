"""What a newcomer runs into in the first hour of ``modelport serve``: a busy port, a no-code
``/score`` with more rows than ``max_batch_size``, an sklearn model scored with FP32 (tritonclient's
usual choice), and a model file served straight from its path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Cli, Server, free_port

from modelport.samples import build_mlp_onnx


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    build_mlp_onnx(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    return tmp_path / "repo"


@pytest.mark.parametrize("option", ["--http-port", "--metrics-port", "--grpc-port"])
def test_a_busy_port_is_one_line_naming_its_option(repo: Path, option: str) -> None:
    """It was uvicorn's 70-line traceback and exit 3 for the HTTP and metrics ports."""
    ports = {"--http-port": free_port(), "--metrics-port": free_port(), "--grpc-port": free_port()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[option]))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "modelport", "serve", str(repo), *(str(x) for pair in ports.items() for x in pair)],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"error: {option}: cannot listen on 127.0.0.1:{ports[option]} (Address already in use)"


def test_a_model_file_is_served_from_its_path_without_registering(tmp_path: Path) -> None:
    """``serve ./model.onnx`` refused a plain file ("register it"); MLflow serves a path."""
    model = build_mlp_onnx(tmp_path / "work" / "model.onnx")
    build_mlp_onnx(tmp_path / "work" / "other.onnx", seed=3)  # beside it, and never picked instead
    home = tmp_path / "home"
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    server = Server([str(model)], env=env, grpc=False)
    try:
        x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": x.ravel().tolist()}]}
        reply = httpx.post(f"{server.url}/v2/models/model/infer", json=body)
        assert reply.status_code == 200, reply.text
        expected = ort.InferenceSession(str(model)).run(None, {"input": x})[0]
        assert np.allclose(np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 4), expected)
    finally:
        assert server.stop() == 0
    assert f"serving {model} as model 'model' (not registered)" in server.proc.stderr.read()
    assert not home.exists()  # no workspace was made, nothing was registered


def test_a_model_folder_is_served_under_the_name_given(tmp_path: Path) -> None:
    folder = tmp_path / "fraud-model"
    build_mlp_onnx(folder / "model.onnx")
    (folder / "config.yaml").write_text("name: whatever\nmax_batch_size: 16\n")
    server = Server([str(folder), "--name", "fraud"], grpc=False)
    try:
        config = httpx.get(f"{server.url}/v2/models/fraud/config").json()
        assert config["name"] == "fraud" and config["max_batch_size"] == 16
    finally:
        assert server.stop() == 0
    assert f"serving {folder} as model 'fraud' (not registered)" in server.proc.stderr.read()


def test_a_path_that_is_no_model_is_one_error_line(sqlite_cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    result = sqlite_cli("serve", notes, "--no-grpc", "--http-port", free_port(), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: target: {notes}: not a model format modelport serves (onnx, sklearn, xgboost, lightgbm, torch, "
        "mlflow, a score.py)"
    ]
