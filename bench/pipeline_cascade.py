"""A cascade pipeline (the large classifier only where the small one is unsure) vs. a pipeline that
always runs the large classifier, on requests where 80 % of the rows are ones the small model is
sure of.

    python bench/pipeline_cascade.py [--duration 8] [--concurrency 32] [--rounds 3] [--rows 50] [--large-width 2048]

Both pipelines are registered in a temporary workspace from ``modelport.samples.build_cascade``
(small 16→32→4; large 16→W→W→4, W = --large-width) and served by two ``modelport serve`` processes
at once; wrk loads each in turn, --rounds times, with the same v2 JSON body: --rows rows, of which
exactly 80 % get a top probability ≥ 0.9 from the small model (checked with onnxruntime before the
run). Needs ``wrk``; everything binds 127.0.0.1; every load is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from serve_http import in_turns, print_ratios

from modelport.samples import build_cascade, cascade_rows

ALWAYS_LARGE = """\
kind: pipeline
description: the large classifier for every row
inputs:
  - {name: x, datatype: FP32, shape: [-1, 16]}
steps:
  - {name: large, model: large@prod, inputs: {input: x}, outputs: {output: probabilities}}
outputs:
  - {name: probabilities, datatype: FP32, shape: [-1, 4]}
"""


def body_rows(small: Path, rows: int, sure_share: float) -> np.ndarray:
    """``rows`` inputs, exactly ``sure_share`` of them answered with top probability ≥ 0.9 by ``small``."""
    candidates = cascade_rows(20 * rows, sure=0.5, seed=3)
    probabilities = ort.InferenceSession(str(small)).run(None, {"input": candidates})[0]
    sure = probabilities.max(axis=1) >= 0.9
    wanted = round(rows * sure_share)
    chosen = np.concatenate([candidates[sure][:wanted], candidates[~sure][: rows - wanted]])
    return chosen[np.random.default_rng(4).permutation(rows)]


def modelport(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "modelport", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--large-width", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODELPORT_HOME"] = str(Path(tmp) / "ws")
        paths = build_cascade(Path(tmp) / "files", large_width=args.large_width)
        (Path(tmp) / "always-large.yaml").write_text(ALWAYS_LARGE)
        for name in ("small", "large"):
            modelport("model", "register", str(paths[name]), "--name", name)
            modelport("model", "alias", "set", name, "prod", "1")
        # one name, two versions: both servers answer /v2/models/cascade/infer
        modelport("model", "register", str(paths["pipeline"]), "--name", "cascade", "--version", "1")
        modelport("model", "register", str(Path(tmp) / "always-large.yaml"), "--name", "cascade", "--version", "2")
        rows = body_rows(paths["small"] / "model.onnx", args.rows, 0.8)
        body = Path(tmp) / "body.json"
        body.write_text(
            json.dumps(
                {
                    "inputs": [
                        {"name": "x", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}
                    ]
                }
            )
        )
        serve = [sys.executable, "-m", "modelport", "serve", "--host", "127.0.0.1", "--no-grpc"]
        runs = in_turns(
            {"always large": [*serve, "cascade:2"], "cascade": [*serve, "cascade:1"]},
            "/v2/models/cascade/infer",
            body,
            args.concurrency,
            args.duration,
            args.rounds,
        )
    print(f"{args.rows} rows a request, 80 % sure; large 16→{args.large_width}→{args.large_width}→4")
    print_ratios(runs, "always large", "pipeline")


if __name__ == "__main__":
    main()
