"""The same batch-1 load over HTTP v2 JSON, HTTP v2 binary tensors and gRPC, from one load
generator (Triton's perf_analyzer), against one ``modelport serve``, measured in one run.

    python bench/protocols.py [--concurrency 1,8,64] [--models small,medium] [--window-ms 4000]

Each model is served with dynamic batching (``max_batch_size: 64``, ``dynamic_batching {}``) by
``--workers`` server processes (default 1). perf_analyzer (``scripts/perf_analyzer.sh`` provides
it) sends random FP32 rows of the model's input shape, waits for stable windows, and reports
infer/s and p50/p99 client latency. Everything binds 127.0.0.1; every run is bounded by
perf_analyzer's own measurement windows (at most 10 per level) and a timeout.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from serve_http import MODELS, free_port, wait_ready

from modelport.samples import build_mlp_onnx

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {
    "http json": ["-i", "http", "--input-tensor-format", "json", "--output-tensor-format", "json"],
    "http binary": ["-i", "http", "--input-tensor-format", "binary", "--output-tensor-format", "binary"],
    "grpc": ["-i", "grpc"],
}


def perf_analyzer() -> str:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "perf_analyzer.sh"), str(ROOT / ".cache" / "perf_analyzer")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def measure(
    binary: str, model: str, url: str, flags: list[str], concurrency: int, window_ms: int, report: Path
) -> dict:
    """One level: stable within 25 % over 3 windows (a shared 2-core box is noisy), at most 10."""
    done = subprocess.run(
        [
            binary,
            "-m",
            model,
            "-u",
            url,
            *flags,
            "--concurrency-range",
            f"{concurrency}:{concurrency}",
            "-p",
            str(window_ms),
            "-s",
            "25",
            "--max-trials",
            "10",
            "-f",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=30 + 12 * window_ms / 1000,
    )
    if done.returncode != 0:
        raise SystemExit(f"perf_analyzer failed on {model} {flags} c={concurrency}: {done.stdout[-600:]}{done.stderr}")
    with open(report) as handle:
        row = next(csv.DictReader(handle))
    return {
        "infer_s": float(row["Inferences/Second"]),
        "p50_ms": int(row["p50 latency"]) / 1000,
        "p99_ms": int(row["p99 latency"]) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--models", default="small,medium")
    parser.add_argument("--window-ms", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    binary = perf_analyzer()
    results = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for model in args.models.split(","):
            build_mlp_onnx(tmp / "repo" / model / "1" / "model.onnx", sizes=MODELS[model])
            (tmp / "repo" / model / "config.pbtxt").write_text("max_batch_size: 64\ndynamic_batching { }\n")
        http, grpc = free_port(), free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelport",
                "serve",
                str(tmp / "repo"),
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
                "--metrics-port",
                str(free_port()),
                "--workers",
                str(args.workers),
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{http}", server)
            for model in args.models.split(","):
                for label, flags in PROTOCOLS.items():
                    url = f"127.0.0.1:{grpc if label == 'grpc' else http}"
                    for concurrency in (int(c) for c in args.concurrency.split(",")):
                        report = tmp / f"{model}-{label.replace(' ', '-')}-{concurrency}.csv"
                        row = measure(binary, model, url, flags, concurrency, args.window_ms, report)
                        results.append({"model": model, "protocol": label, "concurrency": concurrency, **row})
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps(results, indent=1))
    levels = sorted({r["concurrency"] for r in results})
    print("\n| model | protocol | " + " | ".join(f"c={c} infer/s (p50, p99 ms)" for c in levels) + " |")
    print("|---|---|" + "---|" * len(levels))
    for model in args.models.split(","):
        for label in PROTOCOLS:
            cells = [
                next(
                    f"{r['infer_s']:,.0f} ({r['p50_ms']:.2f}, {r['p99_ms']:.1f})"
                    for r in results
                    if (r["model"], r["protocol"], r["concurrency"]) == (model, label, c)
                )
                for c in levels
            ]
            print(f"| {model} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
