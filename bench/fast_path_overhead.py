"""The infer fast path's own Python work per request, in microseconds of CPU, with the model and
the v2 decoding/encoding stubbed out: what the front end adds around ``V2Api.infer_bytes``
(reading headers and body, building the answer's head), measured in one process without a
socket, so that the load of a shared machine moves it far less than a served benchmark.

    python bench/fast_path_overhead.py [--rounds 5] [--calls 50000] --src OLD/src --src NEW/src

Each ``--src`` is a modelport source tree; they are measured in turns (a fresh process each,
``PYTHONPATH`` set to the tree), ``--rounds`` times, and each round prints µs per request. The
request is a small v2 JSON body with the headers tritonclient sends.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import asyncio, sys, time
from modelport.serving.http import v2
from modelport.serving.http.fast_path import InferFastPath

REPLY = getattr(v2, "JSON_REPLY", None)  # what infer_bytes answers a JSON request with, in this tree

class Api:
    max_body = 100 * 1024 * 1024
    async def infer_bytes(self, name, version, headers, body):
        return b'{"model_name":"small","model_version":"1","outputs":[]}', REPLY or {"content-type": "application/json"}

body = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1.0,2.0,3.0,4.0]}]}'
scope = {
    "type": "http", "method": "POST", "path": "/v2/models/small/infer",
    "headers": [
        (b"host", b"127.0.0.1:8000"), (b"user-agent", b"Python-urllib/3.11"), (b"accept-encoding", b"identity"),
        (b"accept", b"*/*"), (b"connection", b"keep-alive"), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ],
}
message = {"type": "http.request", "body": body, "more_body": False}

async def receive():
    return message

async def send(message):
    pass

async def main(calls):
    app = InferFastPath(Api(), None)
    for _ in range(1000):
        await app(scope, receive, send)
    start = time.process_time()
    for _ in range(calls):
        await app(scope, receive, send)
    return (time.process_time() - start) / calls * 1e6

print(asyncio.run(main(int(sys.argv[1]))))
"""


def measure(src: str, calls: int) -> float:
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, str(calls)],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", required=True, help="a modelport source tree (repeat)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    results: dict[str, list[float]] = {src: [] for src in args.src}
    for number in range(args.rounds):
        for src in args.src:
            results[src].append(measure(src, args.calls))
        print(f"round {number + 1}: " + ", ".join(f"{results[s][-1]:.2f} µs" for s in args.src), flush=True)
    base = args.src[0]
    print("\n| source | µs per request, median (range) | × first |\n|---|---|---|")
    for src, values in results.items():
        ratio = statistics.median(v / b for v, b in zip(values, results[base]))
        print(f"| {src} | {statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f}) | {ratio:.2f} |")


if __name__ == "__main__":
    main()
