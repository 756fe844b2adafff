"""Load shedding in the HTTP protocol: the loop-lag reading, and refusals answered by the protocol
on a real uvicorn server (keep-alive connections stay usable, ``Connection: close`` is honoured,
nothing but inference is refused)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from modelport.core.http_server import HttpServer
from modelport.core.sockets import listen
from modelport.registry.sources import sources_from_repository
from modelport.samples import build_mlp_onnx
from modelport.serving.http.app import build_app
from modelport.serving.http.protocol import http_protocol
from modelport.serving.http.shedding import LoopLag, Shedder
from modelport.serving.repository import ModelRepository

BODY = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,32],"data":[%s]}]}' % b",".join([b"0.5"] * 32)


def test_loop_lag_grows_while_the_loop_is_blocked() -> None:
    async def measure() -> tuple[float, float]:
        lag = LoopLag(interval=0.005)
        lag.start()
        await asyncio.sleep(0.05)
        idle = lag.seconds()
        time.sleep(0.2)  # blocks the loop: its timer cannot fire
        blocked = lag.seconds()
        lag.stop()
        return idle, blocked

    idle, blocked = asyncio.run(measure())
    assert blocked >= 0.15 and blocked > idle


class _Lag:
    """A settable loop-lag reading in place of the timer."""

    def __init__(self) -> None:
        self.value = 0.0

    def seconds(self) -> float:
        return self.value


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, _Lag]]:
    root = tmp_path_factory.mktemp("shedding")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    repository = ModelRepository(sources_from_repository(root))
    repository.load_all()
    shedder = Shedder(repository, max_lag_s=0.05)
    lag = _Lag()
    shedder.lag = lag  # type: ignore[assignment]
    listening = listen("127.0.0.1", 0)  # the kernel's choice, held from here on: no other process can take it
    port = listening.getsockname()[1]
    config = uvicorn.Config(build_app(repository), log_level="warning", lifespan="off", http=http_protocol(shedder))
    server = HttpServer(config)
    thread = threading.Thread(target=server.run, args=([listening],), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", lag
    server.should_exit = True
    thread.join(timeout=10)
    listening.close()
    repository.close()


def test_refusals_keep_the_connection_usable(served: tuple[str, _Lag]) -> None:
    url, lag = served
    with httpx.Client(timeout=10) as client:
        lag.value = 1.0
        refused = [client.post(f"{url}/v2/models/mlp/infer", content=BODY) for _ in range(3)]
        assert client.get(f"{url}/v2/health/ready").status_code == 200  # only inference is shed
        lag.value = 0.0
        answered = client.post(f"{url}/v2/models/mlp/infer", content=BODY)
        stats = client.get(f"{url}/v2/models/mlp/stats").json()["model_stats"][0]["inference_stats"]
    assert [r.status_code for r in refused] == [503] * 3
    assert all("overloaded" in r.json()["error"] for r in refused)
    assert answered.status_code == 200 and len(answered.json()["outputs"][0]["data"]) == 4
    assert stats["fail"]["count"] == 3


def test_refusal_honours_connection_close(served: tuple[str, _Lag]) -> None:
    url, lag = served
    lag.value = 1.0
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(
                b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
            )
            reply = b""
            while chunk := sock.recv(65536):  # the server closes: recv returns b""
                reply += chunk
    finally:
        lag.value = 0.0
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"connection: close" in head.lower()
    assert b"overloaded" in body


def test_unknown_models_are_left_to_the_app(served: tuple[str, _Lag]) -> None:
    url, lag = served
    lag.value = 1.0
    try:
        reply = httpx.post(f"{url}/v2/models/nope/infer", content=BODY, timeout=10)
    finally:
        lag.value = 0.0
    assert reply.status_code == 404


def test_shedding_off_never_refuses(tmp_path: Path) -> None:
    build_mlp_onnx(tmp_path / "mlp" / "1" / "model.onnx")
    repository = ModelRepository(sources_from_repository(tmp_path))
    repository.load_all()
    try:
        shedder = Shedder(repository, max_lag_s=None)
        shedder.lag = _Lag()  # type: ignore[assignment]
        shedder.lag.value = 10.0  # type: ignore[attr-defined]
        assert shedder.admit(b"/v2/models/mlp/infer")[0] is None
        assert shedder.admit(b"/score")[0] is None
    finally:
        repository.close()
