"""A no-code tabular job's output, byte for byte: the file a job writes is compared with the
one its documented layout gives, computed here from the inputs (one output part per
mini-batch: ``row``, the model's outputs, ``file_name`` as a dictionary of the files the part
covers; Parquet row groups per part, CSV in Azure's ``append_row`` layout). However the job
reads its rows and moves them between processes, the bytes must not change.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from conftest import Cli, ok

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import build_mlp_onnx

MINI_BATCH = 700
# (name, rows): a mini-batch spans the two Parquet files and the CSV file; row groups of 300
# put mini-batch edges inside row groups.
FILES = [("a.parquet", 1000), ("b.parquet", 1100), ("c.csv", 900)]


def _inputs(folder: Path) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Write the input folder; its features and the (file name, row in file) of every row."""
    features = np.random.default_rng(3).standard_normal((sum(rows for _, rows in FILES), 4)).astype(np.float32)
    folder.mkdir()
    origin, start = [], 0
    for name, rows in FILES:
        block = features[start : start + rows]
        columns = {f"f{i}": block[:, i] for i in range(4)}
        if name.endswith(".csv"):
            pd.DataFrame(block, columns=list(columns)).to_csv(folder / name, index=False, float_format="%.9g")
            block[:] = pcsv.read_csv(folder / name).to_pandas().to_numpy()  # what the model sees: the text read back
        else:
            pq.write_table(pa.table(columns), folder / name, row_group_size=300)
        origin += [(name, row) for row in range(rows)]
        start += rows
    return features, origin


def _expected_parts(model: Path, features: np.ndarray, origin: list[tuple[str, int]]) -> list[pa.Table]:
    session = ort.InferenceSession(str(model))
    parts = []
    for start in range(0, len(features), MINI_BATCH):
        stop = min(start + MINI_BATCH, len(features))
        (scores,) = session.run(None, {"input": features[start:stop]})
        names = [name for name, _ in origin[start:stop]]
        files = list(dict.fromkeys(names))
        columns = {"row": np.array([row for _, row in origin[start:stop]], dtype=np.int64)}
        columns.update({f"prediction_{i}": scores[:, i] for i in range(scores.shape[1])})
        indices = np.array([files.index(name) for name in names], dtype=np.int32)
        columns["file_name"] = pa.DictionaryArray.from_arrays(indices, pa.array(files))
        parts.append(pa.table(columns))
    return parts


def _parquet_bytes(parts: list[pa.Table]) -> bytes:
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, parts[0].schema) as writer:
        for part in parts:
            writer.write_table(part.cast(parts[0].schema))
    return sink.getvalue()


def _csv_bytes(parts: list[pa.Table]) -> bytes:
    return b"".join(part.to_pandas().to_csv(sep=" ", header=False, index=False).encode() for part in parts)


def test_no_code_outputs_are_the_documented_bytes(tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "model.onnx", sizes=(4, 2), softmax=True)
    with Workspace(tmp_path / "ws") as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "ep"}).value)
        for name, output in (("pq", "scores.parquet"), ("csv", "predictions.csv")):
            settings = {"mini_batch_size": MINI_BATCH, "max_concurrency_per_instance": 2, "output_file_name": output}
            deployment = {"name": name, "endpoint_name": "ep", "model": {"name": "lr", "path": str(model)}}
            endpoints.create_deployment(parse_deployment({**deployment, "settings": settings}, tmp_path).value)
    features, origin = _inputs(tmp_path / "table")
    parts = _expected_parts(model, features, origin)
    cli = Cli(tmp_path / "ws")
    for name, output, expected in (("pq", "scores.parquet", _parquet_bytes), ("csv", "predictions.csv", _csv_bytes)):
        invoke = ["batch-endpoint", "invoke", "-n", "ep", "-d", name, "--input", tmp_path / "table"]
        ok(cli(*invoke, "--output-path", tmp_path / name, "--wait", timeout=300))
        written = (tmp_path / name / output).read_bytes()
        assert written == expected(parts), f"{output} differs from the documented layout"
