"""Batch no-code tabular scoring vs. a plain in-process onnxruntime loop over the same file.

    .venv/bin/python bench/batch_tabular.py --rows 1000000 --batch-size 10000 --workers 2

Writes a Parquet table of ``--rows`` rows × 32 float32 features, scores it once in this
process (pyarrow ``iter_batches`` → numpy → ``InferenceSession.run``, the same batch size, no
output written), then as a batch job (``modelport batch-endpoint invoke --wait`` on a no-code
deployment of the same model, Parquet output) and prints both rates: the job's steady-state
items/s as ``job show`` reports it (worker start-up excluded) and its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import build_mlp_onnx


def write_table(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, pa.schema([(f"f{i}", pa.float32()) for i in range(32)])) as writer:
        for start in range(0, rows, 100_000):
            block = rng.standard_normal((min(100_000, rows - start), 32)).astype(np.float32)
            writer.write_table(pa.table({f"f{i}": block[:, i] for i in range(32)}))


def in_process(model: Path, table: Path, batch_size: int) -> tuple[float, float]:
    """Rows per second and wall seconds of the plain loop."""
    session = ort.InferenceSession(str(model))
    name = session.get_inputs()[0].name
    began, rows = time.perf_counter(), 0
    for batch in pq.ParquetFile(table).iter_batches(batch_size=batch_size):
        features = np.column_stack([column.to_numpy() for column in batch.columns])
        session.run(None, {name: features})
        rows += batch.num_rows
    wall = time.perf_counter() - began
    return rows / wall, wall


def as_job(root: Path, model: Path, table: Path, batch_size: int, workers: int) -> tuple[float, float, dict]:
    """Steady-state items/s from ``job show``, wall seconds of ``invoke --wait``, and the job."""
    with Workspace(root / "ws") as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "bench"}))
        endpoints.create_deployment(
            parse_deployment(
                {
                    "name": "onnx",
                    "endpoint_name": "bench",
                    "model": {"name": "mlp", "path": str(model)},
                    "settings": {
                        "mini_batch_size": batch_size,
                        "max_concurrency_per_instance": workers,
                        "output_file_name": "scores.parquet",
                    },
                },
                root,
            )
        )
    env = {**os.environ, "MODELPORT_HOME": str(root / "ws")}
    env.pop("MODELPORT_DB_URL", None)
    command = [sys.executable, "-m", "modelport"]
    began = time.perf_counter()
    result = subprocess.run(
        command
        + [
            "batch-endpoint",
            "invoke",
            "-n",
            "bench",
            "-d",
            "onnx",
            "--input",
            str(table),
            "--output-path",
            str(root / "out"),
            "--wait",
            "-o",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - began
    job_id = json.loads(result.stdout)["id"]
    job = json.loads(
        subprocess.run(
            command + ["job", "show", job_id, "-o", "json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    return job["items_per_second"], wall, job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = build_mlp_onnx(root / "model.onnx")
        table = root / "table.parquet"
        write_table(table, args.rows)
        plain_rate, plain_wall = in_process(model, table, args.batch_size)
        job_rate, job_wall, job = as_job(root, model, table, args.batch_size, args.workers)
        rows = pq.ParquetFile(root / "out" / "scores.parquet").metadata.num_rows
    assert job["status"] == "Completed" and rows == args.rows, (job["status"], rows)
    print(f"rows {args.rows:,}, batch size {args.batch_size:,}, job workers {args.workers}")
    print(f"in-process onnxruntime loop: {plain_rate:,.0f} rows/s, wall {plain_wall:.2f} s")
    print(f"batch job (steady state):     {job_rate:,.0f} rows/s, wall {job_wall:.2f} s (invoke --wait)")
    print(f"ratio job/in-process: {job_rate / plain_rate:.2f}")


if __name__ == "__main__":
    main()
