"""Artifacts in object storage: fsspec's memory:// and a local S3-compatible server (moto)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport import Workspace
from modelport.core.errors import IntegrityError


def _round_trip(ws: Workspace, model: Path, tmp_path: Path) -> None:
    info = ws.models.register(model, "m")
    assert ws.models.download("m", tmp_path / "dl").read_bytes() == model.read_bytes()
    assert ws.models.path(f"m:{info.version}").read_bytes() == model.read_bytes()


def test_memory_root(tmp_path: Path, onnx_model: Path) -> None:
    import fsspec

    with Workspace(tmp_path / "ws", artifact_root="memory://modelport-test") as ws:
        _round_trip(ws, onnx_model, tmp_path)
        fs = fsspec.filesystem("memory")
        [blob] = [p for p in fs.find("/modelport-test") if "/sha256/" in p]
        data = bytearray(fs.cat_file(blob))
        data[10] ^= 1
        fs.pipe_file(blob, bytes(data))
        with pytest.raises(IntegrityError, match="model.onnx"):
            ws.models.download("m", tmp_path / "dl2")


@pytest.fixture
def s3_root(monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="models")
    yield "s3://models/prefix"
    server.stop()


def test_s3_root(tmp_path: Path, onnx_model: Path, s3_root: str) -> None:
    with Workspace(tmp_path / "ws", artifact_root=s3_root) as ws:
        _round_trip(ws, onnx_model, tmp_path)
        assert any("/sha256/" in key for key in ws.artifacts.fs.find("models/prefix"))
    assert not os.path.exists(tmp_path / "ws" / "artifacts")
