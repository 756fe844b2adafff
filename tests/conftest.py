"""Shared fixtures: workspaces on SQLite and on a real PostgreSQL server, and a CLI runner
that starts ``modelport`` as a subprocess, the way users run it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.samples import build_mlp_onnx

PG_ENV = "MODELPORT_TEST_PG_URL"
GOLDEN_INPUTS = Path(__file__).resolve().parent / "data" / "golden" / "inputs"


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests (.ci/run starts a server)")
        pytest.skip(f"{PG_ENV} not set: no PostgreSQL server to test against")
    return url


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = _pg_admin_url()
    assert url
    return url


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One fresh, empty metadata database per test, on each supported backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'modelport.db'}"
        return
    admin = _pg_admin_url()
    assert admin
    name, url = _create_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture
def workspace(tmp_path: Path, db_url: str):  # noqa: ANN201 - Workspace
    from modelport import Workspace

    ws = Workspace(tmp_path / "ws", db_url=db_url)
    yield ws
    ws.close()


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    return build_mlp_onnx(tmp_path / "models" / "model.onnx")


class Cli:
    """Runs ``python -m modelport`` against one workspace and returns the finished process."""

    def __init__(self, home: Path, db_url: str | None = None) -> None:
        self.env = {**os.environ, "MODELPORT_HOME": str(home)}
        self.env.pop("MODELPORT_DB_URL", None)
        if db_url:
            self.env["MODELPORT_DB_URL"] = db_url

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelport", *map(str, args)],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "modelport", *map(str, args)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    """The output of a CLI run that must exit ``code`` (0: succeed); its stderr tells why when not."""
    assert result.returncode == code, (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    return Cli(tmp_path / "ws", db_url)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    """The CLI on the embedded defaults only, for tests about the CLI itself rather than storage."""
    return Cli(tmp_path / "ws")


_RECENT_PORTS: list[int] = []  # the last ports free_port handed out in this process


def free_port() -> int:
    """A loopback port that is free now, picked below the kernel's ephemeral range: an outgoing
    connection takes its local port from that range, so none lands on this one before the server
    it is meant for binds it. Another test process may pick the same port in between; the
    servers started here (:class:`Server`) then start again on other ports."""
    import random
    import socket

    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    ephemeral = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    while True:
        port = random.randrange(20000, ephemeral)  # 10002-19999 is Ray's default range for its workers
        if port in _RECENT_PORTS:  # one server's ports are picked one after another: never twice
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _RECENT_PORTS[:] = [*_RECENT_PORTS[-63:], port]
            return port


PORT_TAKEN = "(Address already in use)"  # how `modelport serve` and `up` name a port someone else holds


class Server:
    """A ``modelport serve`` subprocess on free loopback ports, stopped with SIGTERM. A port taken
    between :func:`free_port` and the server's start is not a failure: it starts again (three tries)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, grpc: bool = True) -> None:
        self.refused = ""  # the last start's error when a port was taken
        for _ in range(3):
            if self._start(args, env, grpc):
                return
        raise RuntimeError(f"serve found its ports taken three times: {self.refused}")

    def _start(self, args: list[str], env: dict[str, str] | None, grpc: bool) -> bool:
        """Whether the server is ready; False when a port was taken, RuntimeError for anything else."""
        import time

        import httpx

        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        ports = ["--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port)]
        ports += ["--grpc-port", str(self.grpc_port)] if grpc else ["--no-grpc"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelport", "serve", *args, *ports],
            env=env or os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read()
                if PORT_TAKEN in stderr:
                    self.refused = stderr
                    return False
                raise RuntimeError(f"serve exited {self.proc.returncode}: {stderr}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("serve did not become ready within 60 s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def perf_analyzer() -> str:
    """Triton's perf_analyzer, provisioned by scripts/perf_analyzer.sh into .cache/."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        ["bash", str(root / "scripts" / "perf_analyzer.sh"), str(root / ".cache" / "perf_analyzer")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"perf_analyzer could not be provisioned: {result.stderr[-2000:]}")
        pytest.skip("perf_analyzer could not be provisioned")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def golden_model() -> Path:
    """The model the golden definitions (tests/data/golden/inputs) deploy, built where they name
    it: no binary is committed, and git ignores the file. Its sha256 depends on the ONNX
    serializer, so golden manifests hold ``MODEL_SHA256`` in its place."""
    path = GOLDEN_INPUTS / "model.onnx"
    if not path.exists():
        build_mlp_onnx(path.with_suffix(f".part-{os.getpid()}"), (4, 8, 2)).replace(path)  # workers race
    return path
