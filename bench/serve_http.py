"""Served vs. in-process: batch-1 v2 JSON requests from wrk against ``modelport serve``,
next to onnxruntime called directly in this process, measured in one run.

    python bench/serve_http.py [--duration 10] [--concurrency 1,64] [--models small,medium]

Each model is served twice by the same server: ``<model>`` with dynamic batching
(``max_batch_size: 64``, ``dynamic_batching {}``: whatever is queued when the instance frees
up goes as one batch) and ``<model>_direct`` without (one model run per request).

Needs ``wrk`` (Debian package). Everything binds 127.0.0.1; every load is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelport.samples import build_mlp_onnx

MODELS = {"small": (32, 64, 64, 4), "medium": (256, 1024, 1024, 1024, 16)}
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_process_rows_per_s(path: Path, width: int, seconds: float) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, width)).astype(np.float32)
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        session.run(None, {"input": x})
        count += 1
    return count / seconds


def wrk(
    url: str, body_file: Path, connections: int, seconds: int, rate: float | None = None, timeout_s: int = 10
) -> dict:
    """One wrk run POSTing ``body_file``; with ``rate``, wrk2 at that constant request rate, which
    counts each request's latency from when it was due, so a server that falls behind shows it."""
    tool = ["wrk2", "-R", str(round(rate))] if rate else ["wrk"]
    result = subprocess.run(
        [
            *tool,
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(HERE / "post.lua"),
            url,
        ],
        env={**os.environ, "BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next(row for row in result.stdout.splitlines() if row.startswith("BENCHJSON "))
    data = json.loads(line.removeprefix("BENCHJSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server not ready")


def in_turns(
    commands: dict[str, list[str]], path: str, body: Path, connections: int, seconds: int, rounds: int
) -> dict[str, list[dict]]:
    """Start every server command at once (an idle server costs nothing), then load each in turn with
    wrk, ``rounds`` times, so drift on a shared machine hits all variants alike. Each command is
    given free ``--http-port``/``--metrics-port`` and must serve ``path``."""
    servers: dict[str, tuple[int, subprocess.Popen]] = {}
    try:
        for label, command in commands.items():
            port = free_port()
            full = [*command, "--http-port", str(port), "--metrics-port", str(free_port())]
            servers[label] = (port, subprocess.Popen(full, stderr=subprocess.DEVNULL))
        for port, process in servers.values():
            wait_ready(f"http://127.0.0.1:{port}", process)
        runs: dict[str, list[dict]] = {}
        for _ in range(rounds):
            for label, (port, _process) in servers.items():
                runs.setdefault(label, []).append(wrk(f"http://127.0.0.1:{port}{path}", body, connections, seconds))
        return runs
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(timeout=60)


def print_ratios(runs: dict[str, list[dict]], base: str, title: str) -> None:
    """The raw runs as JSON, then a markdown table: medians of each variant over the rounds, and its
    requests/s as a ratio to ``base`` paired by round."""
    print(
        json.dumps(
            {
                label: [{k: r[k] for k in ("rps", "p50_us", "p99_us", "non2xx")} for r in rs]
                for label, rs in runs.items()
            },
            indent=1,
        )
    )
    print(f"\n| {title} | req/s | × {base} | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for label, rs in runs.items():
        ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(rs, runs[base]))
        print(
            f"| {label} | {statistics.median(r['rps'] for r in rs):,.0f} | {ratio:.2f} | "
            f"{statistics.median(r['p50_us'] for r in rs) / 1000:.1f} | "
            f"{statistics.median(r['p99_us'] for r in rs) / 1000:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--models", default="small,medium")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        for name in args.models.split(","):
            sizes = MODELS[name]
            path = build_mlp_onnx(repo / name / "1" / "model.onnx", sizes=sizes)
            (repo / name / "config.pbtxt").write_text("max_batch_size: 64\ndynamic_batching { }\n")
            direct = repo / f"{name}_direct"
            build_mlp_onnx(direct / "1" / "model.onnx", sizes=sizes)
            (direct / "config.yaml").write_text(
                f"max_batch_size: 0\ninput: [{{name: input, data_type: TYPE_FP32, dims: [-1, {sizes[0]}]}}]\n"
                f"output: [{{name: output, data_type: TYPE_FP32, dims: [-1, {sizes[-1]}]}}]\n"
            )
            body = Path(tmp) / f"{name}.json"
            x = np.random.default_rng(1).standard_normal(sizes[0]).astype(np.float32)
            body.write_text(
                json.dumps(
                    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, sizes[0]], "data": x.tolist()}]}
                )
            )
            rows.append({"model": name, "in_process_rows_s": in_process_rows_per_s(path, sizes[0], args.duration / 2)})
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
        ]
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{port}", server)
            for row in list(rows):
                direct = {**row, "model": f"{row['model']}_direct"}
                rows.insert(rows.index(row) + 1, direct)
                for entry in (row, direct):
                    url = f"http://127.0.0.1:{port}/v2/models/{entry['model']}/infer"
                    body = Path(tmp) / f"{row['model']}.json"
                    for connections in (int(c) for c in args.concurrency.split(",")):
                        entry[f"c{connections}"] = wrk(url, body, connections, args.duration)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps(rows, indent=2))
    print(
        "\n| model | in-process rows/s (batch 1) | "
        + " | ".join(f"served c={c} req/s (p50, p99 ms)" for c in args.concurrency.split(","))
        + " |"
    )
    print("|---|---|" + "---|" * len(args.concurrency.split(",")))
    for row in rows:
        cells = [
            f"{row[f'c{c}']['rps']:,.0f} ({row[f'c{c}']['p50_us'] / 1000:.2f}, {row[f'c{c}']['p99_us'] / 1000:.1f})"
            + (f" ⚠ {row[f'c{c}']['non2xx']} non-2xx" if row[f"c{c}"]["non2xx"] else "")
            for c in args.concurrency.split(",")
        ]
        print(f"| {row['model']} | {row['in_process_rows_s']:,.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
