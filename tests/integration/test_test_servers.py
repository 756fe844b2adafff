"""The test suite's own server helper: a port taken between picking it and the server binding it
(another test process got there first) starts the server again on other ports."""

from __future__ import annotations

import socket
from pathlib import Path

import conftest
import httpx
import pytest
from conftest import Server

from modelport.samples import build_mlp_onnx


def test_a_taken_port_starts_the_server_again_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_mlp_onnx(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks = iter([taken])
        pick = conftest.free_port
        monkeypatch.setattr(conftest, "free_port", lambda: next(picks, None) or pick())
        server = Server([str(tmp_path / "repo")], grpc=False)
        try:
            assert f"cannot listen on 127.0.0.1:{taken}" in server.refused
            assert server.http_port != taken
            assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
        finally:
            assert server.stop() == 0
