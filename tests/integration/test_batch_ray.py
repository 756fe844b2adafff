"""Batch jobs on the Ray engine (issue 6, item 7), on a real two-node Ray cluster started here:
a head and a worker node, one CPU each, so a job's two workers are actors on two nodes.

Each test runs a job with ``--engine ray`` and holds it to what the local engine does: the
same output file, the same errors, the same attempts per mini-batch; a hung ``run()`` killed
and its actor replaced; a killed runner resumed on the same cluster.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import free_port, ok
from test_batch_jobs import Project, _images, _one_line_error, resume_after_kill

from modelport import Workspace
from modelport.batch.jobs import BatchJobs

if not shutil.which("ray", path=str(Path(sys.executable).parent)):
    if os.environ.get("CI"):
        pytest.fail(
            "ray is not installed: CI must run the Ray engine tests (pip install 'modelport[ray]')", pytrace=False
        )
    pytest.skip("ray is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
BAD = ["img_0007.png", "img_0100.png", "img_0199.png"]
_MARK = "MODELPORT_TEST_RAY_CLUSTER"  # in the environment of every process the cluster starts


@dataclass(frozen=True)
class RayCluster:
    address: str
    client_env: dict[str, str]  # what a driver needs to be let in


def _start_node(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``ray start --block`` in its own process group, on free ports for every service."""
    ports = [
        "--node-manager-port",
        "--object-manager-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                RAY,
                "start",
                "--block",
                "--num-cpus",
                "1",
                "--disable-usage-stats",
                *args,
                *(item for flag in ports for item in (flag, str(free_port()))),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_started(node: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _wait_for_cpus(address: str, env: dict[str, str], cpus: int) -> None:
    """Until the head counts the worker node's CPU too (a job's CPU check reads that count)."""
    deadline = time.monotonic() + 60
    while True:
        status = subprocess.run(
            [RAY, "status", "--address", address], env=env, capture_output=True, text=True, timeout=60
        )
        if f"/{cpus}.0 CPU" in status.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray cluster did not reach {cpus} CPUs:\n{status.stdout}{status.stderr}")
        time.sleep(0.5)


def _marked_pids(mark: str) -> list[int]:
    """Processes whose environment carries this cluster's mark: its nodes and their workers (Ray
    gives workers process groups and titles of their own, so neither finds them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"{_MARK}={mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _stop(nodes: list[subprocess.Popen[bytes]], mark: str) -> None:
    """What ``ray stop --force`` does (SIGKILL), but only to this cluster's processes: ``ray stop``
    kills every Ray process of the machine, other sessions' included."""
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):  # a node that failed to start may have no group left
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    deadline = time.monotonic() + 30
    while (left := _marked_pids(mark)) and time.monotonic() < deadline:
        time.sleep(0.5)  # workers exit by themselves once their raylet is gone
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _loopback_only() -> bool:
    import socket

    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Ray on Linux resolves 127.0.0.1 to the host's reachable address and binds the head on all
    interfaces (``--node-ip-address 127.0.0.1`` is overridden by Ray 2.60), so the cluster only
    starts inside a network namespace whose one interface is ``lo``: scripts/test.sh runs this
    module there, which keeps every byte of cluster traffic on loopback. The cluster also
    requires a token that only this test's drivers hold (recent Ray; older versions ignore it)."""
    if not _loopback_only():
        if os.environ.get("CI"):
            pytest.fail("the Ray tests must run in a loopback-only network namespace (scripts/test.sh)", pytrace=False)
        pytest.skip("run in a loopback-only network namespace: scripts/test.sh does")
    temp = Path(tempfile.mkdtemp(prefix="mpray-", dir="/tmp"))  # short: Ray's unix sockets live below it
    port, mark = free_port(), uuid.uuid4().hex
    client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    env = {**os.environ, **client_env, _MARK: mark, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{port}"
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(
            _start_node(
                env,
                temp / "head.log",
                "--head",
                "--port",
                str(port),
                "--include-dashboard",
                "false",
                "--dashboard-port",
                str(free_port()),
                "--ray-client-server-port",
                str(free_port()),
                "--temp-dir",
                str(temp),
            )
        )
        _wait_started(nodes[0], temp / "head.log")
        nodes.append(_start_node(env, temp / "worker.log", "--address", address))
        _wait_started(nodes[1], temp / "worker.log")
        _wait_for_cpus(address, env, 2)
        yield RayCluster(address, client_env)
    finally:
        _stop(nodes, mark)
        shutil.rmtree(temp, ignore_errors=True)


def _project(root: Path, cluster: RayCluster) -> Project:
    project = Project(root)
    project.cli.env.update(cluster.client_env)
    project.cli.env.pop("RAY_ADDRESS", None)
    return project


def _show(project: Project, job_id: str) -> dict:
    """What ``job show -o json`` prints, read in this process: a CLI start costs seconds here."""
    with Workspace(project.root / "ws") as ws:
        return json.loads(json.dumps(BatchJobs(ws).get(job_id).to_dict()))


def _invoke(
    project: Project, deployment: str, source: Path, output: Path, engine: str, cluster: RayCluster, *args: str
) -> dict:
    """Run a job to its end on ``engine``; its ``job show``."""
    chosen = ["--engine", engine] + (["--ray-address", cluster.address] if engine == "ray" else [])
    result = project.invoke(deployment, source, "--output-path", output, *chosen, *args, "--wait", "-o", "json")
    return _show(project, json.loads(ok(result))["id"])


def _runner_log(job: dict) -> str:
    return (Path(job["job_dir"]) / "logs" / "runner.txt").read_text()


def _worker_logs(job: dict) -> str:
    return "".join(p.read_text() for p in sorted((Path(job["job_dir"]) / "logs" / "user" / "stdout").glob("*.txt")))


def _minibatch_lines(job: dict) -> list[str]:
    """The runner's per-mini-batch record: items ok and failed, attempts."""
    return sorted(re.findall(r"mini-batch \d+: .*", _runner_log(job)))


def test_ray_job_writes_the_output_file_the_local_engine_writes(tmp_path: Path, ray_cluster: RayCluster) -> None:
    project = _project(tmp_path, ray_cluster)
    names = _images(tmp_path / "images", 200)
    project.deployment(
        "flaky",
        mini_batch_size=10,
        max_concurrency_per_instance=2,
        error_threshold=5,
        retry_settings={"max_retries": 1},
        environment_variables={"BAD": ",".join(BAD)},
    )

    local = _invoke(project, "flaky", tmp_path / "images", tmp_path / "local", "local", ray_cluster)
    on_ray = _invoke(project, "flaky", tmp_path / "images", tmp_path / "ray", "ray", ray_cluster)

    assert (local["status"], on_ray["status"]) == ("Completed", "Completed")
    assert (on_ray["engine"], on_ray["ray_address"]) == ("ray", ray_cluster.address)
    assert "on Ray node" in _worker_logs(on_ray) and "on Ray node" not in _worker_logs(local)
    output = (tmp_path / "ray" / "predictions.csv").read_bytes()
    assert output == (tmp_path / "local" / "predictions.csv").read_bytes()
    assert [row.split()[0] for row in output.decode().splitlines()] == [n for n in names if n not in BAD]
    assert on_ray["items"] == local["items"] == {"total": 200, "succeeded": 197, "failed": 3}
    assert on_ray["minibatches"] == local["minibatches"] == {"total": 20, "done": 17, "failed": 3, "pending": 0}
    assert on_ray["errors"] == local["errors"]
    assert sorted(item for error in on_ray["errors"] for item in error["items"]) == BAD
    assert _minibatch_lines(on_ray) == _minibatch_lines(local)  # same attempts: retried, then split, alike
    assert "mini-batch 0: 9 ok, 1 failed, 8 attempt(s)" in _minibatch_lines(on_ray)


def test_ray_no_code_tabular_job_matches_local(tmp_path: Path, ray_cluster: RayCluster) -> None:
    project = _project(tmp_path, ray_cluster)
    project.deployment("nocode", script=None, mini_batch_size=700, max_concurrency_per_instance=2)
    features = np.random.default_rng(2).standard_normal((3000, 32)).astype(np.float32)
    columns = {f"f{i}": features[:, i] for i in range(32)}
    (tmp_path / "table").mkdir()
    pq.write_table(pa.table(columns).slice(0, 2000), tmp_path / "table" / "a.parquet", row_group_size=300)
    pd.DataFrame(features[2000:], columns=list(columns)).to_csv(tmp_path / "table" / "b.csv", index=False)

    parquet = ("--set", "output_file_name=scores.parquet")
    local = _invoke(project, "nocode", tmp_path / "table", tmp_path / "local", "local", ray_cluster, *parquet)
    on_ray = _invoke(project, "nocode", tmp_path / "table", tmp_path / "ray", "ray", ray_cluster, *parquet)

    assert (local["status"], on_ray["status"]) == ("Completed", "Completed")
    assert "on Ray node" in _worker_logs(on_ray)
    scored = pq.read_table(tmp_path / "ray" / "scores.parquet")
    assert scored.num_rows == 3000 and scored.column("row").to_pylist() == list(range(2000)) + list(range(1000))
    assert scored.equals(pq.read_table(tmp_path / "local" / "scores.parquet"))


def test_ray_hung_run_kills_and_replaces_the_actor(tmp_path: Path, ray_cluster: RayCluster) -> None:
    project = _project(tmp_path, ray_cluster)
    names = _images(tmp_path / "images", 12)
    project.deployment(
        "hang",
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        environment_variables={"HANG": "img_0005.png"},
        retry_settings={"max_retries": 1, "timeout": 2},
    )
    began = time.monotonic()
    job = _invoke(project, "hang", tmp_path / "images", tmp_path / "out", "ray", ray_cluster)
    assert time.monotonic() - began < 90
    assert job["status"] == "Completed" and job["items"]["failed"] == 1 and "on Ray node" in _worker_logs(job)
    assert job["errors"] == [{"items": ["img_0005.png"], "error": "run() timed out after 2 s"}]
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert [row.split()[0] for row in rows] == [n for n in names if n != "img_0005.png"]
    assert "mini-batch 2: 1 ok, 1 failed, 4 attempt(s)" in _minibatch_lines(job)  # 1 + max_retries, then halves
    timeouts = re.findall(r"worker \d killed and replaced: run\(\) timed out", _runner_log(job))
    assert len(timeouts) == 3  # the whole twice, then the bad half: each hung actor killed, a new one started


def test_ray_job_killed_runner_resumes_on_the_cluster(tmp_path: Path, ray_cluster: RayCluster) -> None:
    project = _project(tmp_path, ray_cluster)
    job_id = resume_after_kill(
        project, functools.partial(_show, project), 0.4, 160, 4, "--engine", "ray", "--ray-address", ray_cluster.address
    )
    job = _show(project, job_id)
    assert (job["status"], job["engine"], job["ray_address"]) == ("Completed", "ray", ray_cluster.address)
    assert _runner_log(job).count("worker(s) on the ray engine") == 2  # the resumed runner used Ray too
    assert len(set(re.findall(r"on Ray node (\w+)", _worker_logs(job)))) == 2  # an actor per node, 1 CPU each


def test_ray_engine_refusals_are_one_line(tmp_path: Path, ray_cluster: RayCluster) -> None:
    project = _project(tmp_path, ray_cluster)
    _images(tmp_path / "images", 3)
    project.deployment("files")
    images = tmp_path / "images"

    closed = f"127.0.0.1:{free_port()}"
    _one_line_error(
        project.invoke("files", images, "--engine", "ray", "--ray-address", closed),
        f"--ray-address: no Ray cluster answers at {closed}",
    )
    _one_line_error(project.invoke("files", images, "--engine", "ray"), "--ray-address: give the Ray cluster's head")
    _one_line_error(
        project.invoke("files", images, "--ray-address", ray_cluster.address), "--ray-address: only with --engine ray"
    )
    without_ray = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; sys.modules['ray'] = None; "
            "runpy.run_module('modelport', run_name='__main__', alter_sys=True)",
            "batch-endpoint",
            "invoke",
            "-n",
            "ep",
            "-d",
            "files",
            "--input",
            str(images),
            "--engine",
            "ray",
            "--ray-address",
            ray_cluster.address,
        ],
        env=project.cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(without_ray, "Ray is not installed; pip install 'modelport[ray]'")
    assert json.loads(ok(project.cli("job", "list", "-o", "json"))) == []  # nothing recorded

    result = project.invoke(
        "files", images, "--engine", "ray", "--ray-address", ray_cluster.address, "--set", "instance_count=3", "--wait"
    )
    _one_line_error(result, "Failed", "has 2 CPUs; this job's 3 workers need one each")
