"""A scoring script around the medium ONNX model, called once per request vs. declared batchable
(``MODELPORT_MAX_BATCH_SIZE``: run() gets the queued bodies as one list), measured in one run.

    python bench/script_batching.py [--duration 8] [--concurrency 32] [--rounds 3]

Both scripts parse the same JSON body (``{"data": [[...256 floats...]]}``) and return the model's
output as a list; the batchable one stacks the rows of all bodies, runs the session once and
splits the result. Two servers run at once and take the load from wrk in turns. Needs ``wrk``;
everything binds 127.0.0.1; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from serve_http import MODELS, in_turns, print_ratios

from modelport.samples import build_mlp_onnx

SCRIPT = """
import json
import os

import numpy as np
import onnxruntime as ort
{declaration}

def init():
    global session
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.onnx"), options)

"""
ONE = (
    SCRIPT.format(declaration="")
    + """
def run(raw_data):
    x = np.asarray(json.loads(raw_data)["data"], dtype=np.float32)
    return session.run(None, {"input": x})[0].tolist()
"""
)
BATCHED = (
    SCRIPT.format(declaration="\nMODELPORT_MAX_BATCH_SIZE = 32\n")
    + """
def run(bodies):
    parts = [np.asarray(json.loads(body)["data"], dtype=np.float32) for body in bodies]
    out = session.run(None, {"input": np.concatenate(parts)})[0]
    answers, offset = [], 0
    for part in parts:
        answers.append(out[offset:offset + len(part)].tolist())
        offset += len(part)
    return answers
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = MODELS["medium"]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_mlp_onnx(tmp / "model" / "model.onnx", sizes=sizes)
        commands = {}
        for label, source in (("run per request", ONE), ("batchable run", BATCHED)):
            script = tmp / label.replace(" ", "_") / "score.py"
            script.parent.mkdir()
            script.write_text(source)
            commands[label] = [
                sys.executable,
                "-m",
                "modelport",
                "serve",
                "--entry-script",
                str(script),
                "--model-dir",
                str(tmp / "model"),
                "--no-grpc",
            ]
        body = tmp / "body.json"
        x = np.random.default_rng(1).standard_normal((1, sizes[0])).astype(np.float32)
        body.write_text(json.dumps({"data": x.tolist()}))
        runs = in_turns(commands, "/score", body, args.concurrency, args.duration, args.rounds)
    print_ratios(runs, "run per request", f"scoring script, medium model, c={args.concurrency}")


if __name__ == "__main__":
    main()
