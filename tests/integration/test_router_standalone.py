"""``modelport router --config router.yml`` as a cluster runs it: a real router process in front
of two real ``modelport serve`` backends on loopback, its keys in files laid out as Kubernetes
mounts a Secret (``..data`` symlink), no daemon and no workspace.

The backends serve the same model name at different versions (blue answers ``model_version``
"1", green "2"), so every answer says which backend really gave it, independently of the
``azureml-model-deployment`` header the router adds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httptools
import httpx
import pytest
from conftest import Server, free_port

from modelport.samples import build_mlp_onnx

ENDPOINT = "fraud"
INFER = "/v2/models/mlp/infer"
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
VERSION_OF = {"blue": "1", "green": "2"}
PRIMARY, SECONDARY = "primary-key-0123456789abcdef", "secondary-key-0123456789abcdef"


def serve_version(root: Path, version: int) -> Server:
    build_mlp_onnx(root / "mlp" / str(version) / "model.onnx", seed=version)
    return Server([str(root)], grpc=False)


def write_keys(keys: Path, primary: str, secondary: str, generation: int) -> None:
    """The key files as the kubelet updates a Secret volume: a new timestamped folder, then the
    ``..data`` symlink swapped over to it in one rename; ``primary`` links through ``..data``."""
    folder = keys / f"..{generation}"
    folder.mkdir()
    (folder / "primary").write_text(primary + "\n")
    (folder / "secondary").write_text(secondary + "\n")
    staged = keys / "..data_tmp"
    staged.symlink_to(folder.name)
    os.replace(staged, keys / "..data")
    for name in ("primary", "secondary"):
        if not (keys / name).is_symlink():
            (keys / name).symlink_to(f"..data/{name}")


def write_atomically(path: Path, text: str) -> None:
    """Written beside, then renamed into the folder: the folder changes once, with the file."""
    staged = path.parent.parent / "staging"
    staged.write_text(text)
    os.replace(staged, path)


@dataclass(frozen=True)
class Urls:
    blue: str
    green: str
    dead: str  # nothing listens there: connections are refused

    def settings(self, blue: int, green: int) -> dict[str, Any]:
        return {
            "endpoint": ENDPOINT,
            "keys_dir": "keys",
            "traffic": {"blue": blue, "green": green},
            "deployments": {
                "blue": {"urls": [self.blue, self.dead], "max_in_flight": 64},
                "green": {"urls": [self.green], "max_in_flight": 64},
                "red": {"urls": [self.dead]},
            },
        }


@dataclass(frozen=True)
class Router:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path  # the router's stderr
    config: Path
    requests: Path  # its request log
    urls: Urls

    def reads(self) -> int:
        """How many times the router read its configuration again and applied it (or found it
        unchanged); refusals are not counted."""
        text = self.log.read_text()
        return text.count(" reloaded (traffic ") + text.count(" unchanged")

    def apply(self, settings: dict[str, Any]) -> None:
        """Rewrite the configuration (atomic rename) and wait until the router has read it."""
        before = self.reads()
        write_atomically(self.config, json.dumps(settings))
        wait_for(lambda: self.reads() > before, f"not read again: {self.log.read_text()}")


def wait_for(condition: Any, message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def start_router(config: Path, *args: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = config.with_name(f"router-{port}.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelport", "router", "--config", str(config), "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    root = tmp_path_factory.mktemp("standalone-router")
    with ThreadPoolExecutor(2) as pool:  # both backends start at once
        blue, green = pool.map(lambda version: serve_version(root / f"repo{version}", version), (1, 2))
    try:
        urls = Urls(blue.url, green.url, f"http://127.0.0.1:{free_port()}")
        folder = root / "config"
        (folder / "keys").mkdir(parents=True)
        write_keys(folder / "keys", PRIMARY, SECONDARY, 1)
        config = folder / "router.yml"
        config.write_text(json.dumps(urls.settings(80, 20)))
        requests = root / "requests.jsonl"
        proc, url, log = start_router(config, "--request-log", str(requests))
        try:
            yield Router(proc, url, log, config, requests, urls)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        assert blue.stop() == 0 and green.stop() == 0


def keyed(key: str = PRIMARY, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def infer(client: httpx.Client, path: str = INFER, **headers: str) -> tuple[int, str, str]:
    """Status, the deployment the router names, and the deployment whose backend answered."""
    answer = client.post(path, json=BODY, headers=keyed(**headers))
    if answer.status_code != 200:
        return answer.status_code, answer.headers.get("azureml-model-deployment", ""), answer.text
    version = answer.json()["model_version"]
    return 200, answer.headers["azureml-model-deployment"], {"1": "blue", "2": "green"}[version]


def spread(url: str, count: int, path: str = INFER, workers: int = 8, **headers: str) -> list[tuple[int, str, str]]:
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: infer(client, path, **headers), range(count)))


def test_the_split_holds_and_a_refusing_url_costs_no_request(router: Router) -> None:
    """80/20 over 1,000 requests (5 standard deviations: ±63); blue's second URL refuses
    connections, leaves the rotation, and no request fails for it."""
    answers = spread(router.url, 1000)
    assert {status for status, _, _ in answers} == {200}, Counter(answers).most_common(3)
    assert all(named == served for _, named, served in answers)  # the header names who answered
    counts = Counter(served for _, _, served in answers)
    assert abs(counts["blue"] - 800) <= 63, counts
    assert counts["blue"] + counts["green"] == 1000


def test_pin_headers_and_both_prefixes(router: Router) -> None:
    prefixed = f"/endpoints/{ENDPOINT}{INFER}"
    assert set(spread(router.url, 20, **{"x-modelport-deployment": "green"})) == {(200, "green", "green")}
    assert set(spread(router.url, 20, prefixed, **{"azureml-model-deployment": "blue"})) == {(200, "blue", "blue")}
    with httpx.Client(base_url=router.url, timeout=30) as client:
        status, named, text = infer(client, **{"x-modelport-deployment": "red"})
        assert (status, named) == (503, "red") and router.urls.dead in text and "GET /v2/health/ready" in text
        status, _, text = infer(client, **{"x-modelport-deployment": "purple"})
        assert status == 404 and "no deployment 'purple'" in text
        assert client.get("/v2/health/ready", headers=keyed()).status_code == 200
        assert client.get(f"/endpoints/{ENDPOINT}/v2/models/mlp", headers=keyed()).json()["name"] == "mlp"


def test_keys_routes_metrics_and_healthz(router: Router) -> None:
    with httpx.Client(base_url=router.url, timeout=30) as client:
        assert client.post(INFER, json=BODY).status_code == 401
        assert client.post(INFER, json=BODY, headers=keyed("wrong")).status_code == 401
        assert client.post(INFER, json=BODY, headers=keyed(SECONDARY)).status_code == 200
        # without a key every path answers the same; with one, what is not a scoring route is 404
        assert client.post("/v2/repository/index").status_code == 401
        assert client.post("/v2/repository/index", headers=keyed()).status_code == 404
        assert client.get("/v2/models/mlp/stats", headers=keyed()).status_code == 404
        assert client.get(f"/endpoints/other{INFER}", headers=keyed()).status_code == 404
        metrics = client.get("/metrics")
        assert metrics.status_code == 401 and metrics.headers["www-authenticate"].startswith("Bearer")
        text = client.get("/metrics", headers=keyed()).text
        assert f'modelport_endpoint_requests_total{{code="401",deployment="",endpoint="{ENDPOINT}"}}' in text
        assert re.search(f'_requests_total{{code="200",deployment="(blue|green)",endpoint="{ENDPOINT}"}}', text)
        health = client.get("/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
    # the log is written behind the requests: wait for this test's last logged one
    wait_for(
        lambda: router.requests.exists() and '"path":"/v2/models/mlp/stats"' in router.requests.read_text(), "no log"
    )
    lines = [json.loads(line) for line in router.requests.read_text().splitlines()]
    served = [line for line in lines if line["status"] == 200 and line["path"] == INFER]
    assert served and {line["endpoint"] for line in served} == {ENDPOINT}
    assert {line["deployment"] for line in served} <= {"blue", "green"} and served[0]["model"] == "mlp"
    assert any(line["status"] == 401 and line["deployment"] is None for line in lines)


class _Answers:
    """HTTP answers parsed off a raw connection as they come (httptools' callbacks)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.got: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = b""

    def on_message_begin(self) -> None:
        self._headers, self._body = {}, b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.got.append((self.parser.get_status_code(), self._headers, self._body))


def _raw(url: str, data: bytes, answers: int, then: bytes = b"") -> list[tuple[int, dict[str, str], bytes]]:
    """Send ``data`` as it is on one connection (``then`` after an interim answer) and read
    ``answers`` final answers back: status, headers and body of each, interim ones included."""
    host, port = url.removeprefix("http://").split(":")
    parsed = _Answers()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        while sum(1 for status, _, _ in parsed.got if status >= 200) < answers:
            chunk = sock.recv(65536)
            if not chunk:
                break
            interim = sum(1 for status, _, _ in parsed.got if status < 200)
            parsed.parser.feed_data(chunk)
            if sum(1 for status, _, _ in parsed.got if status < 200) > interim:
                sock.sendall(then)
    return parsed.got


def _request(path: str, body: bytes, *extra: bytes, key: str = PRIMARY) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\ncontent-type: application/json\r\n%s"
        b"content-length: %d\r\n\r\n%s" % (path.encode(), key.encode(), b"".join(extra), len(body), body)
    )


def test_the_router_speaks_http_as_a_server_does(router: Router) -> None:
    """The router answers its requests in its HTTP protocol (no ASGI): pipelined requests come
    back in order (the second is queued behind the first), ``Expect: 100-continue`` is honoured
    and, when the head is refused, answered at once; a declared body over the limit is 413;
    a chunked body is read whole."""
    body = json.dumps(BODY).encode()
    pinned = b"x-modelport-deployment: green\r\n"
    pipelined = _raw(
        router.url,
        _request(INFER, body) + _request(INFER, body, pinned) + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        3,
    )
    assert [status for status, _, _ in pipelined] == [200, 200, 200]
    assert pipelined[1][1]["azureml-model-deployment"] == "green" and pipelined[2][2] == b"ok\n"
    assert json.loads(pipelined[0][2])["model_name"] == "mlp"

    head = _request(INFER, b"", b"expect: 100-continue\r\n").replace(
        b"content-length: 0", b"content-length: %d" % len(body)
    )
    continued = _raw(router.url, head, 1, then=body)
    assert [status for status, _, _ in continued] == [100, 200]
    refused = _raw(router.url, head.replace(PRIMARY.encode(), b"wrong"), 1)
    assert [(status, headers.get("connection")) for status, headers, _ in refused] == [(401, "close")]

    too_large = _raw(router.url, _request(INFER, b"").replace(b"content-length: 0", b"content-length: 999999999999"), 1)
    assert too_large[0][0] == 413 and "limit" in too_large[0][2].decode()
    chunked = _request(INFER, b"").replace(b"content-length: 0\r\n", b"transfer-encoding: chunked\r\n")
    half = len(body) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    assert _raw(router.url, chunked + chunks, 1)[0][0] == 200


def test_a_rewritten_config_moves_traffic_without_a_failed_request(router: Router) -> None:
    """Four clients send requests for a bounded time while the file is replaced (atomic rename)
    with one that sends everything to green: no request fails, and once the router said it
    reloaded, blue gets nothing."""
    answers: list[tuple[float, int, str, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=router.url, timeout=30) as client:
            deadline = time.monotonic() + 15  # bounded whatever happens
            while not stop.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                answers.append((started, *infer(client)))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        router.apply(router.urls.settings(0, 100))
        moved = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    try:
        assert {status for _, status, _, _ in answers} == {200}, [a for a in answers if a[1] != 200][:3]
        assert any(served == "blue" for at, _, _, served in answers if at < moved)
        after = [served for at, _, _, served in answers if at > moved]
        assert len(after) > 20 and set(after) == {"green"}
    finally:
        router.apply(router.urls.settings(80, 20))


def test_swapped_key_files_apply_without_a_restart(router: Router) -> None:
    """The Secret's ``..data`` symlink moves to a folder with new keys: the old primary stops
    working, the new one works, with no signal and no restart."""
    with httpx.Client(base_url=router.url, timeout=30) as client:
        write_keys(router.config.parent / "keys", "rotated-primary-0123456789", SECONDARY, 2)
        wait_for(lambda: client.post(INFER, json=BODY, headers=keyed()).status_code == 401, "old key still works")
        assert client.post(INFER, json=BODY, headers=keyed("rotated-primary-0123456789")).status_code == 200
        write_keys(router.config.parent / "keys", PRIMARY, SECONDARY, 3)
        wait_for(lambda: client.post(INFER, json=BODY, headers=keyed()).status_code == 200, "key not restored")


def test_sighup_rereads_the_config(router: Router) -> None:
    """A change the file watch cannot see (same size, inode and mtime) is applied on SIGHUP."""
    stamp = router.config.stat()
    text = router.config.read_text()
    swapped = text.replace('"blue": 80, "green": 20', '"blue": 20, "green": 80')
    assert swapped != text and len(swapped) == len(text)
    with open(router.config, "r+") as file:  # in place: same inode
        file.write(swapped)
    os.utime(router.config, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    before = router.reads()
    try:
        time.sleep(1.5)  # past a poll: nothing seen
        assert router.reads() == before
        router.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: router.reads() > before, "SIGHUP did not reload")
        counts = Counter(served for _, _, served in spread(router.url, 200))
        assert counts["green"] > 120, counts  # 160 expected; 120 is 5 standard deviations below
    finally:
        router.apply(router.urls.settings(80, 20))


def test_a_broken_config_is_refused_and_the_old_one_keeps_serving(router: Router) -> None:
    before = router.log.read_text().count("still serving the previous configuration")
    broken = router.urls.settings(0, 100)
    broken["deployments"]["green"]["urls"] = []
    write_atomically(router.config, json.dumps(broken))
    wait_for(lambda: router.log.read_text().count("still serving the previous configuration") > before, "not refused")
    refusal = [line for line in router.log.read_text().splitlines() if "still serving" in line][-1]
    assert "deployments.green.urls" in refusal
    counts = Counter(served for status, _, served in spread(router.url, 100) if status == 200)
    assert counts["blue"] > 50 and sum(counts.values()) == 100, counts  # still 80/20, all answered
    router.apply(router.urls.settings(80, 20))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"endpoint": ENDPOINT, "keys_dir": "keys", "deployments": {"blue": {"url": ["http://x"]}}}, "url"),
        (
            {
                "endpoint": ENDPOINT,
                "auth_mode": "none",
                "traffic": {"blue": 90},
                "deployments": {"blue": {"urls": ["x"]}},
            },
            "traffic",
        ),
        ({"endpoint": ENDPOINT, "keys_dir": "missing", "deployments": {"blue": {"urls": ["x"]}}}, "keys_dir"),
    ],
)
def test_a_bad_config_at_start_is_one_line_and_exit_1(tmp_path: Path, settings: dict[str, Any], named: str) -> None:
    config = tmp_path / "router.yml"
    config.write_text(json.dumps(settings))
    result = subprocess.run(
        [sys.executable, "-m", "modelport", "router", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: ") and named in lines[0], result.stderr
