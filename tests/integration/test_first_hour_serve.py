"""What a newcomer runs into in the first hour of ``modelport serve``: a busy port, a no-code
``/score`` with more rows than ``max_batch_size``, an sklearn model scored with FP32 (tritonclient's
usual choice), and a model file served straight from its path."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

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
