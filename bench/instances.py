"""Thread vs process instances for a model whose predict is Python code (an MLflow pyfunc that
spends about --work-ms of pure-Python arithmetic per request), measured in one run.

    python bench/instances.py [--duration 8] [--concurrency 8] [--rounds 3] [--work-ms 1.0]

Three servers of the same model run at once and take batch-1 v2 JSON load from wrk in turns,
``--rounds`` times: one instance; two thread instances (``process: false``); two process
instances (the default for an MLflow model with two instances). Thread instances share the GIL,
so two of them cannot beat one; process instances should approach 2x on 2 cores, less the pipe
hop and whatever the HTTP front end needs. Needs ``wrk``; everything binds 127.0.0.1; every run is
bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from serve_http import in_turns, print_ratios

MODEL = '''
import mlflow.pyfunc
import numpy as np

LOOPS = {loops}


class PythonWork(mlflow.pyfunc.PythonModel):
    """Pure-Python arithmetic per row: holds the GIL the whole time, as feature code often does."""

    def predict(self, context, model_input, params=None):
        out = []
        for row in model_input:
            total = 0.0
            for i in range(LOOPS):
                total += (i % 7) * float(row[0])
            out.append(total)
        return np.asarray(out, dtype=np.float64)


mlflow.models.set_model(PythonWork())
'''
VARIANTS = {
    "1 instance": [{"count": 1}],
    "2 thread instances": [{"count": 2, "process": False}],
    "2 process instances": [{"count": 2}],
}


def build(repo: Path, work_ms: float) -> None:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    code = repo.parent / "python_work.py"
    code.write_text(MODEL.format(loops=int(work_ms * 12_000)))  # about 12k loop turns a millisecond
    signature = ModelSignature(
        Schema([TensorSpec(np.dtype(np.float64), (-1, 4))]), Schema([TensorSpec(np.dtype(np.float64), (-1,))])
    )
    mlflow.pyfunc.save_model(str(repo / "work" / "1"), python_model=str(code), signature=signature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-ms", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build(tmp / "repo", args.work_ms)
        body = tmp / "body.json"
        body.write_text(
            json.dumps(
                {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [0.5, 1.0, 1.5, 2.0]}]}
            )
        )
        serve = [sys.executable, "-m", "modelport", "serve", str(tmp / "repo"), "--no-grpc"]
        runs = in_turns(
            {
                label: [*serve, "--model-config", json.dumps({"instance_group": groups})]
                for label, groups in VARIANTS.items()
            },
            "/v2/models/work/infer",
            body,
            args.concurrency,
            args.duration,
            args.rounds,
        )
    print_ratios(runs, "1 instance", f"variant (c={args.concurrency}, ~{args.work_ms:g} ms of Python per request)")


if __name__ == "__main__":
    main()
