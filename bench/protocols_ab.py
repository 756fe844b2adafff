"""gRPC against HTTP v2 binary tensors on one server, for two source trees in turns (A/B).

    python bench/protocols_ab.py --sides old=/path/to/old/src,new=src [--concurrency 8,64] [--rounds 3]

A shared, busy machine moves absolute figures by 2x between minutes, so the figure this reports
is the ratio of gRPC to HTTP binary measured back to back on the same server (pairs in
alternating order), next to the medians. Each round starts one ``modelport serve`` per side
(sides alternate which goes first), serving one model with ``max_batch_size: 64`` and
``dynamic_batching {}``; perf_analyzer (``scripts/perf_analyzer.sh``) sends batch-1 FP32 rows
for three windows per measurement. Everything binds 127.0.0.1 and every run has a timeout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from protocols import PROTOCOLS, perf_analyzer
from serve_http import MODELS, free_port, wait_ready

from modelport.samples import build_mlp_onnx


def measure(binary: str, model: str, port: int, protocol: str, concurrency: int, window_ms: int, report: Path) -> float:
    """Inferences per second over three windows, or 0.0 when perf_analyzer fails (reported)."""
    done = subprocess.run(
        [
            binary,
            "-m",
            model,
            "-u",
            f"127.0.0.1:{port}",
            *PROTOCOLS[protocol],
            "--concurrency-range",
            f"{concurrency}:{concurrency}",
            "-p",
            str(window_ms),
            "-s",
            "999",
            "--max-trials",
            "3",
            "-f",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=60 + 4 * window_ms / 1000,
    )
    if done.returncode != 0:
        print(f"perf_analyzer failed on {protocol} c={concurrency}: {done.stdout[-300:]}", file=sys.stderr)
        return 0.0
    with open(report) as handle:
        return float(next(csv.DictReader(handle))["Inferences/Second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", required=True, help="name=src,name=src: PYTHONPATH of each side")
    parser.add_argument("--concurrency", default="8,64")
    parser.add_argument("--model", default="small", choices=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=2, help="gRPC/HTTP pairs per level per round")
    parser.add_argument("--window-ms", type=int, default=1500)
    args = parser.parse_args()
    sides = [side.split("=", 1) for side in args.sides.split(",")]
    levels = [int(c) for c in args.concurrency.split(",")]
    binary = perf_analyzer()
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_mlp_onnx(tmp / "repo" / args.model / "1" / "model.onnx", sizes=MODELS[args.model])
        (tmp / "repo" / args.model / "config.pbtxt").write_text("max_batch_size: 64\ndynamic_batching { }\n")
        for round_ in range(args.rounds):
            for side, src in sides if round_ % 2 == 0 else sides[::-1]:
                http, grpc = free_port(), free_port()
                server = subprocess.Popen(
                    [sys.executable, "-m", "modelport", "serve", str(tmp / "repo"), "--http-port", str(http)]
                    + ["--grpc-port", str(grpc), "--metrics-port", str(free_port())],
                    env={**os.environ, "PYTHONPATH": os.path.abspath(src)},
                    stderr=subprocess.DEVNULL,
                )
                try:
                    wait_ready(f"http://127.0.0.1:{http}", server)
                    for concurrency in levels:
                        for pair in range(args.pairs):
                            order = ["grpc", "http binary"] if pair % 2 == 0 else ["http binary", "grpc"]
                            got = {
                                protocol: measure(
                                    binary,
                                    args.model,
                                    grpc if protocol == "grpc" else http,
                                    protocol,
                                    concurrency,
                                    args.window_ms,
                                    tmp / "report.csv",
                                )
                                for protocol in order
                            }
                            row = {"round": round_, "side": side, "concurrency": concurrency, **got}
                            row["load"] = round(os.getloadavg()[0], 1)
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                finally:
                    server.terminate()
                    server.wait(timeout=60)
    print(
        "\n| side | c | gRPC infer/s (median) | HTTP binary infer/s (median) | gRPC / HTTP binary, per pair (median) |"
    )
    print("|---|---|---|---|---|")
    for concurrency in levels:
        for side, _ in sides:
            pairs = [
                r
                for r in rows
                if (r["side"], r["concurrency"]) == (side, concurrency) and r["grpc"] and r["http binary"]
            ]
            if not pairs:
                continue
            ratios = sorted(r["grpc"] / r["http binary"] for r in pairs)
            print(
                f"| {side} | {concurrency} | {median(r['grpc'] for r in pairs):,.0f} | "
                f"{median(r['http binary'] for r in pairs):,.0f} | {median(ratios):.2f} "
                f"({ratios[0]:.2f}–{ratios[-1]:.2f}, {len(ratios)} pairs) |"
            )
    print(f"\nload average during the run: {min(r['load'] for r in rows)}–{max(r['load'] for r in rows)}")


if __name__ == "__main__":
    main()
