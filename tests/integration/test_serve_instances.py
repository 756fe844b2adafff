"""Process instances through the real server: an MLflow pyfunc whose predict is Python code gets
one child process per instance (each answers with its own pid), a crashed instance fails only
the request it was running and is started again, and ONNX may ask for processes explicitly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Server

from modelport.samples import build_mlp_onnx

PYFUNC = '''
import os
import time

import mlflow.pyfunc
import numpy as np


class PidModel(mlflow.pyfunc.PythonModel):
    """Answers each row with the pid of the process that ran it; a negative input ends that process."""

    def predict(self, context, model_input, params=None):
        if (model_input < 0).any():
            os._exit(3)
        time.sleep(0.05)  # long enough for concurrent requests to meet two free instances
        return np.full(len(model_input), os.getpid(), dtype=np.int64)


mlflow.models.set_model(PidModel())
'''


@pytest.fixture(scope="module")
def pyfunc_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    root = tmp_path_factory.mktemp("pyfunc")
    code = root / "pid_model.py"
    code.write_text(PYFUNC)
    signature = ModelSignature(
        Schema([TensorSpec(np.dtype(np.float64), (-1, 4))]), Schema([TensorSpec(np.dtype(np.int64), (-1,))])
    )
    mlflow_pyfunc.save_model(str(root / "repo" / "pids" / "1"), python_model=str(code), signature=signature)
    return root / "repo"


def _infer(value: float) -> dict:
    return {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [value] * 4}]}


async def _pids(url: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        replies = await asyncio.gather(*(client.post(url, json=_infer(1.0)) for _ in range(count)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    return [r.json()["outputs"][0]["data"][0] for r in replies]


def test_pyfunc_instances_run_in_processes_of_their_own(pyfunc_model: Path) -> None:
    server = Server([str(pyfunc_model / "pids"), "--model-config", '{"instance_group": [{"count": 2}]}'], grpc=False)
    url = f"{server.url}/v2/models/pids/infer"
    try:
        config = httpx.get(f"{server.url}/v2/models/pids/config").json()
        pids = set()
        for _ in range(5):  # two free instances each take one of two concurrent requests
            pids |= set(asyncio.run(_pids(url, 2)))
            if len(pids) == 2:
                break
        assert len(pids) == 2 and server.proc.pid not in pids
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)

        crashed = httpx.post(url, json=_infer(-1.0), timeout=30)
        assert crashed.status_code == 500
        assert "exited with code 3" in crashed.json()["error"]
        after: set[int] = set()
        for _ in range(10):  # both instances answer again, one from a new process
            after |= set(asyncio.run(_pids(url, 2)))
            if len(after) == 2:
                break
        assert len(after) == 2 and after != pids
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    finally:
        assert server.stop() == 0
    assert config["instance_group"][0]["count"] == 2
    assert not any(Path(f"/proc/{pid}").exists() and _is_instance(pid) for pid in pids | after)


def test_onnx_instances_in_processes_answer_as_threads_do(tmp_path: Path) -> None:
    build_mlp_onnx(tmp_path / "mlp" / "1" / "model.onnx")
    (tmp_path / "mlp" / "config.pbtxt").write_text(
        "max_batch_size: 8\ndynamic_batching { }\ninstance_group [{ count: 2, kind: KIND_CPU, process: true }]\n"
    )
    server = Server([str(tmp_path)], grpc=False)
    try:
        config = httpx.get(f"{server.url}/v2/models/mlp/config").json()
        x = np.random.default_rng(2).standard_normal((3, 32)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 32], "data": x.ravel().tolist()}]}
        reply = httpx.post(f"{server.url}/v2/models/mlp/infer", json=body, timeout=30)
        bad = dict(body, inputs=[dict(body["inputs"][0], shape=[3, 4], data=[0.0] * 12)])
        refused = httpx.post(f"{server.url}/v2/models/mlp/infer", json=bad, timeout=30)
    finally:
        assert server.stop() == 0
    import onnxruntime as ort

    expected = ort.InferenceSession(str(tmp_path / "mlp" / "1" / "model.onnx")).run(None, {"input": x})[0]
    assert config["instance_group"][0]["process"] is True
    assert reply.status_code == 200
    assert np.allclose(np.array(reply.json()["outputs"][0]["data"]).reshape(3, 4), expected, atol=1e-6)
    assert refused.status_code == 400 and "shape [3, 4]" in refused.json()["error"]


def _is_instance(pid: int) -> bool:
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
