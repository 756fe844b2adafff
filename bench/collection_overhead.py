"""What observing requests costs: the same batch-1 v2 JSON load from wrk against one model served
plain, with the request log, and with the request log plus payload collection (10 % and 100 %
sampled, Parquet), measured in one run.

    python bench/collection_overhead.py [--duration 8] [--concurrency 1,16] [--rounds 3] [--model small]

All variants run at once (an idle server costs nothing) and take the load in turns, ``--rounds``
times, so that drift on a shared machine hits them alike; the table gives each variant's median
requests/s and its ratio to the plain server in the same round, and the server's CPU time per
request (``/proc``), which other load on the machine disturbs far less than throughput. Needs ``wrk``; everything binds
127.0.0.1; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from router_hop import cpu_seconds
from serve_http import MODELS, free_port, wait_ready, wrk

from modelport.samples import build_mlp_onnx

COLLECT = {"collections": {"model_inputs": {"enabled": True}, "model_outputs": {"enabled": True}}}


def variants(tmp: Path) -> dict[str, list[str]]:
    log = ["--request-log", str(tmp / "requests.jsonl")]
    return {
        "plain": [],
        "request log": log,
        "log + collect 10%": [
            *log,
            "--data-collector",
            json.dumps({**COLLECT, "sampling_rate": 0.1}),
            "--collect-dir",
            str(tmp / "c10"),
        ],
        "log + collect 100%": [
            *log,
            "--data-collector",
            json.dumps({**COLLECT, "sampling_rate": 1.0}),
            "--collect-dir",
            str(tmp / "c100"),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="small", choices=sorted(MODELS))
    args = parser.parse_args()
    sizes = MODELS[args.model]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_mlp_onnx(tmp / "repo" / "mlp" / "1" / "model.onnx", sizes=sizes)
        (tmp / "repo" / "mlp" / "config.pbtxt").write_text("max_batch_size: 64\ndynamic_batching { }\n")
        body = tmp / "body.json"
        x = np.random.default_rng(1).standard_normal(sizes[0]).astype(np.float32)
        body.write_text(
            json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, sizes[0]], "data": x.tolist()}]})
        )
        servers = {}
        try:
            for label, extra in variants(tmp).items():
                port = free_port()
                command = [
                    sys.executable,
                    "-m",
                    "modelport",
                    "serve",
                    str(tmp / "repo"),
                    "--http-port",
                    str(port),
                    "--no-grpc",
                    "--metrics-port",
                    str(free_port()),
                    *extra,
                ]
                servers[label] = (port, subprocess.Popen(command, stderr=subprocess.DEVNULL))
            for port, process in servers.values():
                wait_ready(f"http://127.0.0.1:{port}", process)
            results: dict[tuple[str, int], list[float]] = {}
            cpu: dict[tuple[str, int], list[float]] = {}
            for connections in (int(c) for c in args.concurrency.split(",")):
                for _ in range(args.rounds):
                    for label, (port, process) in servers.items():
                        before = cpu_seconds(process.pid)
                        run = wrk(f"http://127.0.0.1:{port}/v2/models/mlp/infer", body, connections, args.duration)
                        results.setdefault((label, connections), []).append(run["rps"])
                        cpu.setdefault((label, connections), []).append(
                            (cpu_seconds(process.pid) - before) / run["requests"] * 1e6
                        )
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(timeout=60)
    print(
        json.dumps(
            {
                f"{label} c={c}": {"rps": runs, "cpu_us_per_request": cpu[(label, c)]}
                for (label, c), runs in results.items()
            },
            indent=1,
        )
    )
    levels = sorted({c for _, c in results})
    print(
        "\n| variant | "
        + " | ".join(f"c={c} req/s (× plain) | c={c} server CPU µs/req (× plain)" for c in levels)
        + " |"
    )
    print("|---|" + "---|---|" * len(levels))
    for label in servers:
        cells = []
        for c in levels:
            ratios = [run / plain for run, plain in zip(results[(label, c)], results[("plain", c)])]
            cpu_ratio = statistics.median(cpu[(label, c)]) / statistics.median(cpu[("plain", c)])
            cells.append(
                f"{statistics.median(results[(label, c)]):,.0f} ({statistics.median(ratios):.3f}) | "
                f"{statistics.median(cpu[(label, c)]):.0f} ({cpu_ratio:.3f})"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
