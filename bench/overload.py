"""Overload: open-loop load at a multiple of the measured capacity against a bounded queue, then
the capacity again, measured in one run.

    python bench/overload.py [--factor 4] [--seconds 30] [--capacity-seconds 10] [--connections 2048] [--json FILE]

The medium MLP is served with dynamic batching (``max_batch_size`` 64, no queue delay) and a
bounded queue (``--max-queue-size``, ``--queue-timeout-us``), so that a request the server cannot
take is answered 503 at once instead of waiting. Its capacity is measured closed loop
(``--concurrency`` in flight, ``--capacity-seconds``); then it gets ``--factor`` × that rate open
loop for ``--seconds`` (``--timeout`` client timeout per request, at most ``--connections``
keep-alive connections; a slot that finds all busy is counted as not sent) while the server's
resident memory is read from ``/proc`` every second; then its capacity is measured again at once.
The script asserts nothing: it reports what was answered within the timeout, the memory and the
capacity after against before. The load generator shares the machine's cores with the server and
may not reach the asked rate: the achieved send rate and how late the client sent are reported.
Everything binds 127.0.0.1; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adaptive import BODY, infer_url, ms, open_summary, repository, server

from modelport.profiling.load import LoadResult, LoadTarget, run_open, run_rounds
from modelport.profiling.trials import TrialServer, resident_bytes

MB = 2**20


@contextmanager
def sampled(pid: int, every: float = 1.0) -> Iterator[list[int]]:
    """The resident memory of ``pid``, read every ``every`` seconds while the block runs."""
    samples: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while True:
            value = resident_bytes(pid)
            if value is not None:
                samples.append(value)
            if stop.wait(every):
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def capacity(trial: TrialServer, concurrency: int, seconds: float) -> LoadResult:
    """Closed-loop throughput at ``concurrency`` in flight, one window of ``seconds``."""
    ((result,),) = run_rounds([LoadTarget(infer_url(trial, "medium"), concurrency)], BODY, rounds=1, seconds=seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=4.0, help="the open-loop rate as a multiple of the capacity")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of overload")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64, help="closed loop: requests in flight")
    parser.add_argument("--connections", type=int, default=2048, help="open loop: keep-alive connections at most")
    parser.add_argument("--timeout", type=float, default=1.0, help="open loop: client timeout per request (s)")
    parser.add_argument("--max-queue-size", type=int, default=128)
    parser.add_argument("--queue-timeout-us", type=int, default=100_000, help="default_timeout_microseconds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    config = {"max_batch_size": 64, "dynamic_batching": {
        "max_queue_delay_microseconds": 0, "max_queue_size": args.max_queue_size,
        "default_timeout_microseconds": args.queue_timeout_us}}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder, server(repository(Path(folder), {"medium": config}),
                                                         Path(folder) / "serve.log") as trial:
        assert trial.process is not None
        before = capacity(trial, args.concurrency, args.capacity_seconds)
        rss_before = resident_bytes(trial.process.pid)
        used_before, began, client_before = trial.usage(), time.perf_counter(), time.process_time()
        with sampled(trial.process.pid) as rss:
            overload = open_summary([run_open(infer_url(trial, "medium"), BODY, rate=args.factor * before.qps,
                                              seconds=args.seconds, connections=args.connections,
                                              request_timeout=args.timeout)])
        cores = trial.usage().cores_since(used_before)
        client_cores = (time.process_time() - client_before) / (time.perf_counter() - began)
        after = capacity(trial, args.concurrency, args.capacity_seconds)
        rss_after = resident_bytes(trial.process.pid)
        peak = trial.usage().peak_bytes
    load_after = os.getloadavg()

    print(f"\ncapacity, closed loop at {args.concurrency} in flight, {args.capacity_seconds:g} s:\n")
    print("| when | req/s | p50 ms | p99 ms | errors | first error |\n|---|---|---|---|---|---|")
    for label, result in (("before", before), ("right after the overload", after)):
        latency = result.latency_ms()
        print(f"| {label} | {result.qps:,.0f} | {ms(latency['p50'])} | {ms(latency['p99'])} | {result.errors:,} | "
              f"{result.first_error or '-'} |")
    print(f"\nafter / before: {after.qps / before.qps:.2f}")
    print(f"\noverload, open loop at {args.factor:g} × {before.qps:,.0f} req/s for {args.seconds:g} s, "
          f"{args.timeout:g} s client timeout, ≤ {args.connections} connections (CPU: server {ms(cores)} cores, "
          f"load generator {client_cores:.1f}):\n")
    print("| asked req/s | sent req/s | 200 | 503 | other | timeouts | not sent | answered p50 ms | p99 ms | max ms "
          "| client lag p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|")
    latency = overload["latency_ms"]
    print(f"| {overload['asked_rps']:,.0f} | {overload['sent_rps']:,.0f} | {overload['ok']:,} | "
          f"{overload['rejected']:,} | {overload['other']:,} | {overload['timeouts']:,} | {overload['not_sent']:,} | "
          f"{ms(latency['p50'])} | {ms(latency['p99'])} | {ms(latency['max'])} | {ms(overload['lag_ms']['p99'])} |")
    if overload["first_error"]:
        print(f"\nfirst other answer: {overload['first_error']}")
    memory = {"before": rss_before, "min": min(rss, default=None), "max": max(rss, default=None),
              "last": rss[-1] if rss else None, "after": rss_after, "peak": peak}
    print("\nserver resident memory, MB (during: one reading a second):\n")
    print("| before | during, min | during, max | during, last | after | peak (VmHWM) |\n|---|---|---|---|---|---|")
    print("| " + " | ".join("-" if value is None else f"{value / MB:.0f}" for value in memory.values()) + " |")
    print(f"\nreadings during the overload, MB: {', '.join(f'{value / MB:.0f}' for value in rss)}")
    print(f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps({
            **{f"capacity_{label}": {"qps": result.qps, "latency_ms": result.latency_ms(), "errors": result.errors,
                                     "first_error": result.first_error}
               for label, result in (("before", before), ("after", after))},
            "after_over_before": after.qps / before.qps, "overload": overload, "server_cores": cores,
            "client_cores": client_cores,
            "rss_bytes": {**memory, "samples": rss}, "load_average": {"before": load_before, "after": load_after},
        }, indent=1))


if __name__ == "__main__":
    main()
