"""Batch no-code scoring of a light model (4 features, logistic-regression-sized) vs. an
in-process loop: where per-row and fixed costs of the job show, not the model's.

    .venv/bin/python bench/batch_light.py --rows 1000000 --rounds 3 --old /tmp/modelport-old/src

Writes a Parquet table of ``--rows`` rows × 4 float32 features (seed 0, row groups of 100,000)
and a 4 → 2 softmax ONNX model (``build_mlp_onnx((4, 2), softmax=True)``), scores the table once
in this process (pyarrow ``iter_batches(--batch-size)`` → numpy → ``InferenceSession.run``, no
output), then as a batch job with the real CLI (``modelport batch-endpoint invoke --wait``,
``mini_batch_size`` = ``--batch-size``, ``--workers`` workers, Parquet output) and reports, per
job: the steady-state items/s that ``job show`` reports, the wall time of ``invoke --wait``, and,
over the CLI and every process under it (runner, workers), the CPU seconds they used (the
figure a loaded machine distorts least) and their peak memory (the sum of their proportional
set sizes), sampled every 20 ms. With ``--old SRC``, each round runs the job with that source
tree (``PYTHONPATH``) and then with this one, so old and new alternate on the same machine
load; the outputs of every job are compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from batch_tabular import in_process  # this folder's loop, the same in both benchmarks

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.batch.jobs import BatchJobs
from modelport.samples import build_mlp_onnx

_FEATURES = 4
_TICKS = os.sysconf("SC_CLK_TCK")


def write_table(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(_FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            block = rng.standard_normal((min(100_000, rows - start), _FEATURES)).astype(np.float32)
            writer.write_table(pa.table({f"f{i}": block[:, i] for i in range(_FEATURES)}))


class Sampler:
    """Peak of the summed memory (PSS) of ``pid`` and its descendants, and the CPU seconds they
    used (what a loaded machine does not distort as it does wall time), sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int, float]:
        """Peak PSS bytes, CPU seconds."""
        self._stop.set()
        self._thread.join()
        return self.peak, sum(self._cpu.values())

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            tree = _tree(self.pid)
            self.peak = max(self.peak, sum(_pss(pid) for pid in tree))
            for pid in tree:
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), _cpu(pid))


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _pss(pid: int) -> int:
    """Proportional set size: pages shared between processes (forked workers share their
    parent's) count once in the sum, split among those sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def setup(root: Path, model: Path, batch_size: int, workers: int) -> None:
    with Workspace(root / "ws") as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "bench"}).value)
        settings = {
            "mini_batch_size": batch_size,
            "max_concurrency_per_instance": workers,
            "output_file_name": "scores.parquet",
        }
        deployment = {"name": "onnx", "endpoint_name": "bench", "model": {"name": "lr", "path": str(model)}}
        endpoints.create_deployment(parse_deployment({**deployment, "settings": settings}, root).value)


def as_job(root: Path, src: Path, table: Path, out: Path) -> tuple[float, float, int, float, str]:
    """Steady-state items/s, wall seconds of ``invoke --wait``, peak memory (PSS) bytes, CPU
    seconds of all its processes, output sha256."""
    env = {**os.environ, "MODELPORT_HOME": str(root / "ws"), "PYTHONPATH": str(src)}
    env.pop("MODELPORT_DB_URL", None)
    invoke = ["batch-endpoint", "invoke", "-n", "bench", "-d", "onnx", "--input", str(table)]
    command = [sys.executable, "-m", "modelport", *invoke, "--output-path", str(out), "--wait", "-o", "json"]
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(process.pid)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - began
    peak, cpu = sampler.stop()
    if process.returncode != 0:
        raise SystemExit(f"invoke failed ({process.returncode}): {stderr.strip()}")
    import json

    job_id = json.loads(stdout)["id"]
    with Workspace(root / "ws") as ws:
        job = BatchJobs(ws).get(job_id)
    assert job.status == "Completed", job.status
    digest = hashlib.sha256((out / "scores.parquet").read_bytes()).hexdigest()
    return job.items_per_second or 0.0, wall, peak, cpu, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", type=Path, help="source tree (its src/) of the code to compare against")
    args = parser.parse_args()
    if args.old and not (args.old / "modelport").is_dir():
        parser.error(f"--old: {args.old} has no modelport package (give the tree's src/ folder)")
    new = Path(__file__).resolve().parent.parent / "src"
    sides = [("old", args.old.resolve()), ("new", new)] if args.old else [("new", new)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = build_mlp_onnx(root / "model.onnx", sizes=(_FEATURES, 2), softmax=True)
        table = root / "table.parquet"
        write_table(table, args.rows)
        setup(root, model, args.batch_size, args.workers)
        print(f"rows {args.rows:,}, batch size {args.batch_size:,}, job workers {args.workers}; {os.getloadavg()}")
        results: dict[str, list[tuple[float, float, int, float, str]]] = {name: [] for name, _ in sides}
        plain = []
        for round_ in range(args.rounds):
            plain.append(in_process(model, table, args.batch_size)[0])
            print(f"round {round_ + 1}: in-process loop {plain[-1]:,.0f} rows/s", flush=True)
            for name, src in sides:
                result = as_job(root, src, table, root / f"out-{name}-{round_}")
                results[name].append(result)
                rate, wall, peak, cpu, digest = result
                print(
                    f"round {round_ + 1}: {name}: steady {rate:,.0f} items/s ({rate / plain[-1]:.2f}× in-process), "
                    f"invoke --wait {wall:.2f} s, CPU {cpu:.2f} s, peak PSS {peak / 2**20:,.0f} MiB, "
                    f"output {digest[:12]}",
                    flush=True,
                )
    print(f"load after: {os.getloadavg()}")
    print(f"in-process loop median {statistics.median(plain):,.0f} rows/s")
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        print(
            f"{name}: median steady {rate:,.0f} items/s, median wall {wall:.2f} s, median CPU {cpu:.2f} s, "
            f"max peak PSS {peak / 2**20:,.0f} MiB"
        )
    digests = {r[4] for runs in results.values() for r in runs}
    print("outputs identical across sides and rounds" if len(digests) == 1 else f"OUTPUTS DIFFER: {digests}")
    if args.old:
        old, new_ = results["old"], results["new"]
        ratios = [n[0] / o[0] for o, n in zip(old, new_) if o[0]]
        walls = [o[1] / n[1] for o, n in zip(old, new_)]
        cpus = [o[3] / n[3] for o, n in zip(old, new_)]
        print(f"new/old steady per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"old/new wall per round:   {', '.join(f'{r:.2f}' for r in walls)}")
        print(f"old/new CPU per round:    {', '.join(f'{r:.2f}' for r in cpus)}")


if __name__ == "__main__":
    main()
