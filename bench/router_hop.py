"""The router hop: the same v2 requests from wrk straight to a replica and through the endpoint
router (key check, traffic choice, admission, proxy), measured in one run.

    python bench/router_hop.py [--duration 10] [--concurrency 1,16] [--rounds 2] [--baseline OTHER/src] [--native]

Starts ``modelport up`` on a temporary workspace, deploys the small sample MLP (no-code ONNX, one
replica, ``max_concurrent_requests_per_instance: 64`` so that admission never refuses), then
alternates direct and routed runs ``--rounds`` times per concurrency so that drift on a shared
machine hits both sides alike. Besides wrk's figures it reads the CPU time the daemon and the
replica used during each run (``/proc``): the daemon's CPU per routed request is the hop's cost,
whatever else the machine is doing. Needs ``wrk`` and Linux; everything binds 127.0.0.1; every
run is bounded by --duration.

``--native`` adds nginx as a reverse proxy in front of the same replica (one process,
keep-alive upstream): the hop's cost in native code, for scale.

``--baseline`` names the ``src`` folder of another checkout (the code before a change): two more
targets join the turns, ``modelport router --config`` (the standalone router, the same request
path as the daemon's) in front of the same replica, once from this checkout and once from the
baseline, so that old and new code are measured in the same run, in turns, against one replica.

Each table's throughput is the median of the rounds' routed/direct ratios (their range in
brackets); answers the replica shed (503, on a busy machine) do not count as requests served.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from serve_http import free_port, wrk

from modelport import Workspace
from modelport.control.auth import read_token
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
    parser.add_argument("--baseline", type=Path, help="src folder of the code to compare with (standalone routers)")
    parser.add_argument(
        "--native",
        action="store_true",
        help="also nginx (one process, keep-alive upstream) as the native proxy's figure",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        with Workspace(home) as ws:
            ws.models.register(build_mlp_onnx(Path(tmp) / "model.onnx"), "mlp")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_URL": url}
        cli(env, "up", "--port", str(port))
        routers: list[subprocess.Popen[bytes]] = []
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
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {read_token(home)}"})
            replica = api.get("/api/endpoints/bench/deployments/onnx").json()["replicas"][0]
            pids = {
                "daemon": json.loads((home / "daemon" / "daemon.json").read_text())["pid"],
                "replica": replica["pid"],
            }
            key = api.get("/api/endpoints/bench/keys").json()["primaryKey"]
            body = Path(tmp) / "body.json"
            x = np.random.default_rng(1).standard_normal(32).astype(np.float32)
            body.write_text(
                json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": x.tolist()}]})
            )
            targets = {
                "direct": (f"http://127.0.0.1:{replica['port']}/v2/models/mlp/infer", None),
                "router": (f"{url}/endpoints/bench/v2/models/mlp/infer", f"Bearer {key}"),
            }
            if args.baseline is not None:
                sources = {"standalone": str(Path(__file__).resolve().parents[1] / "src"), "baseline": args.baseline}
                for name, source in sources.items():
                    router_port, proc = standalone(Path(tmp) / name, source, replica["port"], key)
                    routers.append(proc)
                    pids[name] = proc.pid
                    targets[name] = (f"http://127.0.0.1:{router_port}/v2/models/mlp/infer", f"Bearer {key}")
            if args.native:
                native_port, proc = nginx(Path(tmp) / "nginx", replica["port"])
                routers.append(proc)
                pids["nginx"] = proc.pid
                targets["nginx"] = (f"http://127.0.0.1:{native_port}/v2/models/mlp/infer", None)
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
                        assert run["errors"] == 0, (connections, name, run)
                        # a busy machine can make the replica shed (503): only answers count
                        run["rps"] = (run["requests"] - run["non2xx"]) / (run["duration_us"] / 1e6)
                        for who, pid in pids.items():
                            run[f"{who}_cpu_us"] = (cpu_seconds(pid) - before[who]) / run["requests"] * 1e6
                        run["router_cpu_us"] = run.get(f"{name}_cpu_us", run["daemon_cpu_us"])
                        results.setdefault((connections, name), []).append(run)
        finally:
            for proc in routers:
                proc.terminate()
                proc.wait(timeout=30)
            cli(env, "down")
    print(json.dumps({f"c{c} {name}": runs for (c, name), runs in results.items()}, indent=2))
    for router in [name for name in targets if name != "direct"]:
        print(f"\n{router}:")
        print(
            "| concurrency | direct req/s (p50, p99 ms) | routed req/s (p50, p99 ms) | added p50 | throughput "
            "| router CPU / request | replica CPU / request |"
        )
        print("|---|---|---|---|---|---|---|")
        for connections in sorted({c for c, _ in results}):
            direct, routed = (_median(results[(connections, name)]) for name in ("direct", router))
            ratios = [
                r["rps"] / d["rps"] for d, r in zip(results[(connections, "direct")], results[(connections, router)])
            ]
            print(
                f"| {connections} | {_cell(direct)} | {_cell(routed)} | "
                f"{(routed['p50_us'] - direct['p50_us']) / 1000:+.2f} ms | "
                f"{statistics.median(ratios):.0%} ({min(ratios):.0%}–{max(ratios):.0%}) | "
                f"{routed['router_cpu_us']:.0f} µs ({routed['router_cpu_us'] / direct['replica_cpu_us']:.2f}×) | "
                f"{direct['replica_cpu_us']:.0f} µs |"
            )


def standalone(folder: Path, source: str, replica_port: int, key: str) -> tuple[int, subprocess.Popen[bytes]]:
    """``modelport router --config`` from ``source`` in front of the replica, ready to serve."""
    (folder / "keys").mkdir(parents=True)
    (folder / "keys" / "primary").write_text(key)
    (folder / "keys" / "secondary").write_text(key)
    settings = {
        "endpoint": "bench",
        "keys_dir": "keys",
        "traffic": {"onnx": 100},
        "deployments": {"onnx": {"urls": [f"http://127.0.0.1:{replica_port}"], "max_in_flight": 128}},
    }
    (folder / "router.yml").write_text(json.dumps(settings))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport", "router", "--config", str(folder / "router.yml"), "--port", str(port)],
        env={**os.environ, "PYTHONPATH": source},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return port, proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the router from {source} did not start")


def nginx(folder: Path, replica_port: int) -> tuple[int, subprocess.Popen[bytes]]:
    """nginx as a reverse proxy in front of the replica: one process (no master, no workers to
    add up), keep-alive connections upstream, no access log; what a proxy costs in native code,
    with no key check, split or admission."""
    folder.mkdir(parents=True)
    port = free_port()
    (folder / "nginx.conf").write_text(
        f"""daemon off; master_process off; worker_processes 1; pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}; proxy_temp_path {folder}; fastcgi_temp_path {folder};
  uwsgi_temp_path {folder}; scgi_temp_path {folder};
  upstream replica {{ server 127.0.0.1:{replica_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://replica; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""
    )
    proc = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready")
            return port, proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"nginx did not start: {(folder / 'error.log').read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(runs: list[dict]) -> dict:
    keys = ("rps", "p50_us", "p99_us", "router_cpu_us", "replica_cpu_us")
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def _cell(run: dict) -> str:
    return f"{run['rps']:,.0f} ({run['p50_us'] / 1000:.2f}, {run['p99_us'] / 1000:.1f})"


if __name__ == "__main__":
    main()
