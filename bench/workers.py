"""``serve --workers N``: memory of N workers (PSS/USS summed over the processes, with and
without ``--share-weights``) and requests/s, measured in one run.

    python bench/workers.py [--workers 1,2,4] [--duration 8] [--concurrency 64]

Memory uses a large MLP (256→4096→4096→16, 70 MB of FP32 weights) so that weights dominate;
PSS (proportional set size) divides each shared page among the processes mapping it, so the sum
is what N workers really cost, and USS is what each holds alone. Throughput uses the small MLP
with batch-1 v2 JSON requests from wrk. Needs ``wrk`` and Linux; everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from serve_http import MODELS, free_port, wait_ready, wrk

from modelport.samples import build_mlp_onnx

LARGE = (256, 4096, 4096, 16)


def memory_mb(pids: list[int]) -> dict[str, float]:
    """Summed Pss and private (USS) memory of ``pids`` in MB (``/proc/<pid>/smaps_rollup``)."""
    total = {"pss": 0.0, "uss": 0.0}
    for pid in pids:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value, *_ = line.split()
            fields[key.rstrip(":")] = int(value) / 1024
        total["pss"] += fields["Pss"]
        total["uss"] += fields["Private_Clean"] + fields["Private_Dirty"]
    return total


def serve(repo: Path, workers: int, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "modelport",
        "serve",
        str(repo),
        "--http-port",
        str(port),
        "--no-grpc",
        "--metrics-port",
        str(free_port()),
        "--workers",
        str(workers),
        *extra,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    process.stderr.readline()  # "serving ... on ..." once every worker is ready
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process, port


def children(pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def body(width: int, rows: int = 1) -> dict:
    x = np.random.default_rng(1).standard_normal((rows, width)).astype(np.float32)
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, width], "data": x.ravel().tolist()}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    memory, speed = [], []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_mlp_onnx(tmp / "large" / "big" / "1" / "model.onnx", sizes=LARGE)
        build_mlp_onnx(tmp / "small" / "mlp" / "1" / "model.onnx", sizes=MODELS["small"])
        (tmp / "small.json").write_text(json.dumps(body(MODELS["small"][0])))
        for workers in counts:
            for share in ("--share-weights", "--no-share-weights"):
                process, port = serve(tmp / "large", workers, [share])
                try:
                    for _ in range(4 * workers):  # every worker runs the model at least once (new connections)
                        with httpx.Client() as client:
                            client.post(f"http://127.0.0.1:{port}/v2/models/big/infer", json=body(LARGE[0], 8))
                    time.sleep(1)
                    used = memory_mb([process.pid, *children(process.pid)])
                finally:
                    process.terminate()
                    process.wait(timeout=60)
                memory.append({"workers": workers, "weights": share.removeprefix("--"), **used})
            process, port = serve(tmp / "small", workers, [])
            try:
                run = wrk(
                    f"http://127.0.0.1:{port}/v2/models/mlp/infer", tmp / "small.json", args.concurrency, args.duration
                )
            finally:
                process.terminate()
                process.wait(timeout=60)
            speed.append(
                {"workers": workers, "rps": run["rps"], "p50_ms": run["p50_us"] / 1000, "p99_ms": run["p99_us"] / 1000}
            )
    print(json.dumps({"memory": memory, "speed": speed}, indent=1))
    one = next(row["pss"] for row in memory if row["workers"] == 1 and row["weights"] == "no-share-weights")
    print("\n| workers | weights | PSS MB (× one worker) | USS MB |\n|---|---|---|---|")
    for row in memory:
        print(f"| {row['workers']} | {row['weights']} | {row['pss']:.0f} ({row['pss'] / one:.2f}) | {row['uss']:.0f} |")
    print(f"\n| workers | small model c={args.concurrency} req/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for row in speed:
        print(f"| {row['workers']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
