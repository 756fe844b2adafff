"""The router hop: the same v2 requests from wrk straight to a replica and through the endpoint
router (key check, traffic choice, admission, proxy), measured in one run.

    python bench/router_hop.py [--duration 10] [--concurrency 1,16] [--rounds 2]

Starts ``modelport up`` on a temporary workspace, deploys the small sample MLP (no-code ONNX, one
replica, ``max_concurrent_requests_per_instance: 64`` so that admission never refuses), then
alternates direct and routed runs ``--rounds`` times per concurrency so that drift on a shared
machine hits both sides alike. Besides wrk's figures it reads the CPU time the daemon and the
replica used during each run (``/proc``): the daemon's CPU per routed request is the hop's cost,
whatever else the machine is doing. Needs ``wrk`` and Linux; everything binds 127.0.0.1; every
run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from serve_http import free_port, wrk

from modelport import Workspace
from modelport.samples import build_mlp_onnx


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "modelport", *args], env=env, check=True, timeout=300, stdout=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        with Workspace(home) as ws:
            ws.models.register(build_mlp_onnx(Path(tmp) / "model.onnx"), "mlp")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_URL": url}
        cli(env, "up", "--port", str(port))
        try:
            cli(env, "endpoint", "create", "-n", "bench")
            cli(
                env,
                "deployment",
                "create",
                "-e",
                "bench",
                "-n",
                "onnx",
                "--set",
                "model=mlp:1",
                "--all-traffic",
                "--set",
                "request_settings.max_concurrent_requests_per_instance=64",
            )
            replica = httpx.get(f"{url}/api/endpoints/bench/deployments/onnx").json()["replicas"][0]
            pids = {
                "daemon": json.loads((home / "daemon" / "daemon.json").read_text())["pid"],
                "replica": replica["pid"],
            }
            key = httpx.get(f"{url}/api/endpoints/bench/keys").json()["primaryKey"]
            body = Path(tmp) / "body.json"
            x = np.random.default_rng(1).standard_normal(32).astype(np.float32)
            body.write_text(
                json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": x.tolist()}]})
            )
            targets = {
                "direct": (f"http://127.0.0.1:{replica['port']}/v2/models/mlp/infer", None),
                "router": (f"{url}/endpoints/bench/v2/models/mlp/infer", f"Bearer {key}"),
            }
            results: dict[tuple[int, str], list[dict]] = {}
            for connections in (int(c) for c in args.concurrency.split(",")):
                for _ in range(args.rounds):
                    for name, (target, authorization) in targets.items():
                        if authorization:
                            os.environ["AUTHORIZATION"] = authorization
                        before = {who: cpu_seconds(pid) for who, pid in pids.items()}
                        try:
                            run = wrk(target, body, connections, args.duration)
                        finally:
                            os.environ.pop("AUTHORIZATION", None)
                        assert run["non2xx"] == 0 and run["errors"] == 0, run
                        for who, pid in pids.items():
                            run[f"{who}_cpu_us"] = (cpu_seconds(pid) - before[who]) / run["requests"] * 1e6
                        results.setdefault((connections, name), []).append(run)
        finally:
            cli(env, "down")
    print(json.dumps({f"c{c} {name}": runs for (c, name), runs in results.items()}, indent=2))
    print(
        "\n| concurrency | direct req/s (p50, p99 ms) | router req/s (p50, p99 ms) | added p50 | throughput "
        "| router CPU / request | replica CPU / request |"
    )
    print("|---|---|---|---|---|---|---|")
    for connections in sorted({c for c, _ in results}):
        direct, routed = (_median(results[(connections, name)]) for name in ("direct", "router"))
        print(
            f"| {connections} | {_cell(direct)} | {_cell(routed)} | "
            f"+{(routed['p50_us'] - direct['p50_us']) / 1000:.2f} ms | {routed['rps'] / direct['rps']:.0%} | "
            f"{routed['daemon_cpu_us']:.0f} µs | {direct['replica_cpu_us']:.0f} µs |"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(runs: list[dict]) -> dict:
    keys = ("rps", "p50_us", "p99_us", "daemon_cpu_us", "replica_cpu_us")
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def _cell(run: dict) -> str:
    return f"{run['rps']:,.0f} ({run['p50_us'] / 1000:.2f}, {run['p99_us'] / 1000:.1f})"


if __name__ == "__main__":
    main()
