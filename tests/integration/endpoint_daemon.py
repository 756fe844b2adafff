"""Helpers for the online endpoint tests: a ``modelport up`` daemon driven through the CLI, a
scoring script that says which deployment answered, and a time-bounded load generator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from conftest import PORT_TAKEN, Cli, free_port

from modelport import Workspace
from modelport.samples import build_mlp_onnx

# Says who answered (COLOR), which model folder it saw, and in which Python; sleeps or fails when
# asked; prints the request headers it got when PRINT_HEADERS is set; FAIL_INIT and FAIL_SECOND
# make init() fail (always, or from the second replica on).
SCORE_PY = """
import json
import os
import sys
import time

def init():
    global color
    color = os.environ.get("COLOR", "none")
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init refused on purpose")
    marker = os.environ.get("FAIL_SECOND")  # the first replica starts, the next one fails
    if marker:
        if os.path.exists(marker):
            raise RuntimeError("second replica refused on purpose")
        open(marker, "w").close()
    print(f"init {color}", flush=True)

def run(raw, request_headers):
    request = json.loads(raw or "{}")
    time.sleep(request.get("sleep", 0))
    if request.get("fail"):
        raise ValueError("asked to fail")
    if os.environ.get("PRINT_HEADERS"):
        print(f"headers {request_headers}", flush=True)
    print(f"scored by {color}", flush=True)
    return {"color": color, "model_dir": os.environ.get("AZUREML_MODEL_DIR"), "prefix": sys.prefix}
"""

# Short probes so that failures show within a second or two instead of Azure's minutes (5 s to start:
# a replica takes 2-3 s to import and load on a busy 2-core machine).
FAST_PROBES = {"initial_delay": 5, "period": 0.5, "timeout": 0.5, "failure_threshold": 2, "success_threshold": 1}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML
    return path


def write_code(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(textwrap.dedent(SCORE_PY))
    return folder


@contextmanager
def running_daemon(folder: Path) -> Iterator[Daemon]:
    """A daemon over a workspace in ``folder/ws`` holding ``mlp:1`` and ``mlp:2``, with the scoring
    script in ``folder/code``; stopped (replicas and all) afterwards."""
    write_code(folder / "code")
    with Workspace(folder / "ws") as ws:
        for seed in (0, 1):
            ws.models.register(build_mlp_onnx(folder / f"m{seed}" / "model.onnx", seed=seed), "mlp")
    daemon = Daemon(folder / "ws")
    daemon.up()
    try:
        yield daemon
    finally:
        daemon.down()


class Daemon:
    """``modelport up`` on a free port for one workspace, and the CLI pointed at it."""

    def __init__(self, home: Path, db_url: str | None = None) -> None:
        self.home = home
        self.cli = Cli(home, db_url)
        self._pick_port()

    def _pick_port(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cli.env["MODELPORT_URL"] = self.url

    def up(self) -> None:
        """Start the daemon; on another port when its port was taken in the meantime (three tries)."""
        for attempt in range(3):
            result = self.cli("up", "--port", str(self.port), timeout=240)
            if PORT_TAKEN not in result.stderr or attempt == 2:
                break
            self._pick_port()
        assert result.returncode == 0, f"modelport up: {result.stderr}"

    def down(self) -> None:
        """Stop the daemon and, should that fail, every replica it recorded."""
        self.cli("down", timeout=90)
        for record in self.replica_records():
            try:
                os.kill(record["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def replica_records(self) -> list[dict[str, Any]]:
        try:
            return json.loads((self.home / "daemon" / "replicas.json").read_text())
        except (OSError, ValueError):
            return []

    def token(self) -> str:
        """The workspace's management token, as the CLI reads it."""
        return (self.home / "daemon" / "token").read_text().strip()

    def api_headers(self) -> dict[str, str]:
        """What a client other than the CLI sends to the management API and the daemon's /metrics."""
        return {"authorization": f"Bearer {self.token()}"}

    def daemon_pid(self) -> int:
        return json.loads((self.home / "daemon" / "daemon.json").read_text())["pid"]

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.cli(*args, timeout=240)
        assert result.returncode == 0, f"modelport {' '.join(args)}: {result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json").stdout)

    def fails(self, *args: str) -> str:
        """The one error line of a command that must fail with exit code 1."""
        result = self.cli(*args, timeout=240)
        assert result.returncode == 1, f"modelport {' '.join(args)} should fail: {result.stdout} {result.stderr}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    def key(self, endpoint: str, which: str = "primaryKey") -> str:
        return self.json("endpoint", "get-credentials", "-n", endpoint)[which]

    def replicas(self, endpoint: str, deployment: str) -> list[dict[str, Any]]:
        return self.json("deployment", "show", "-e", endpoint, "-n", deployment)["replicas"]

    def score(
        self,
        endpoint: str,
        key: str | None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        return httpx.post(f"{self.url}/endpoints/{endpoint}/score", json=body or {}, headers=headers, timeout=timeout)

    def wait_ready(
        self,
        endpoint: str,
        deployment: str,
        count: int,
        timeout: float = 30,
        exclude_pids: frozenset[int] = frozenset(),
    ) -> list[dict[str, Any]]:
        """The deployment's replicas once ``count`` are ready (and none of ``exclude_pids``)."""
        deadline = time.monotonic() + timeout
        while True:
            replicas = self.replicas(endpoint, deployment)
            ready = [r for r in replicas if r["state"] == "ready" and r["pid"] not in exclude_pids]
            if len(ready) >= count:
                return replicas
            assert time.monotonic() < deadline, f"not {count} ready replicas within {timeout} s: {replicas}"
            time.sleep(0.2)


@dataclass
class Outcome:
    status: int
    deployment: str | None
    seconds: float
    body: dict[str, Any] = field(default_factory=dict)


class Load(threading.Thread):
    """Sends requests at ``rate`` per second (``concurrency`` at most in flight) for ``seconds``, or
    ``count`` requests as fast as ``concurrency`` allows; collects every outcome. Never runs longer
    than ``seconds`` (+ the request timeout), so a stuck router fails the test instead of hanging it."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        seconds: float,
        rate: float | None = None,
        count: int | None = None,
        concurrency: int = 8,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.seconds, self.rate = url, headers, seconds, rate
        self.count, self.concurrency, self.body = count, concurrency, body or {}
        self.outcomes: list[Outcome] = []

    def run(self) -> None:
        asyncio.run(self._drive())

    async def _drive(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            slots = asyncio.Semaphore(self.concurrency)
            start = time.monotonic()
            tasks = []
            sent = 0
            while time.monotonic() - start < self.seconds and (self.count is None or sent < self.count):
                if self.rate is not None:
                    await asyncio.sleep(max(0.0, start + sent / self.rate - time.monotonic()))
                await slots.acquire()
                tasks.append(asyncio.create_task(self._one(client, slots)))
                sent += 1
            await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, slots: asyncio.Semaphore) -> None:
        began = time.monotonic()
        try:
            response = await client.post(self.url, json=self.body, headers=self.headers)
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            outcome = Outcome(
                response.status_code, response.headers.get("azureml-model-deployment"), time.monotonic() - began, body
            )
        except httpx.HTTPError as exc:
            outcome = Outcome(-1, None, time.monotonic() - began, {"error": repr(exc)})
        finally:
            slots.release()
        self.outcomes.append(outcome)

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status != 200]


def scoring_headers(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


def log_lines(folder: Path) -> Iterator[str]:
    for file in sorted(folder.rglob("*.log")):
        yield from file.read_text("utf-8", "replace").splitlines()
