"""Overload: a constant request rate at a multiple of the measured capacity against a bounded
queue, then the capacity again, measured in one run.

    python bench/overload.py [--factor 4] [--seconds 30] [--capacity-seconds 10] [--connections 2048] [--json FILE]

The medium MLP is served with dynamic batching (``max_batch_size`` 64, no queue delay) and a
bounded queue (``--max-queue-size``, ``--queue-timeout-us``), so that a request the server cannot
take is answered 503 at once instead of waiting. Its capacity is measured closed loop by wrk after
a 3 s warm-up (``--concurrency`` connections, ``--capacity-seconds``); then wrk2 sends ``--factor`` × that rate
for ``--seconds`` over ``--connections`` keep-alive connections (``--timeout`` per request) while
the server's resident memory is read from ``/proc`` every second; then the capacity is measured
again at once. wrk2 counts each request's latency from when it was due, not from when a free
connection could send it, so a server that falls behind the rate shows it in the latencies. Two
of wrk2's ways are accounted for: it opens its connections 5 ms apart, each sending at its share
of the rate from then on, so over 1,024 connections it asks for the full rate only after 5 s
(``scheduled`` is what it asked for in all, the yardstick for what was answered); and it starts
its latency histogram afresh 10 s + 5 ms per connection into the run (its calibration), so the
latencies are those of the rest of the run. The
script asserts nothing: it reports what was answered and how fast, the memory, and the capacity
after against before. Needs wrk (Debian's package) and wrk2 (built from its source: it is not
packaged) on PATH. Everything binds 127.0.0.1; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adaptive import BODY, infer_url, ms, repository, server
from serve_http import wrk

from modelport.profiling.trials import resident_bytes

MB = 2**20
WARM_UP_S = 3
WRK2_CONNECT_GAP_S = 0.005  # wrk2 opens its connections this far apart, each sending from then on


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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=4.0, help="the request rate as a multiple of the capacity")
    parser.add_argument("--seconds", type=int, default=30, help="seconds of overload")
    parser.add_argument("--capacity-seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64, help="capacity: connections (requests in flight)")
    parser.add_argument("--connections", type=int, default=2048, help="overload: keep-alive connections")
    parser.add_argument("--timeout", type=int, default=1, help="overload: client timeout per request (s)")
    parser.add_argument("--max-queue-size", type=int, default=128)
    parser.add_argument("--queue-timeout-us", type=int, default=100_000, help="default_timeout_microseconds")
    parser.add_argument("--max-lag-ms", type=int, help="the server's --max-lag-ms (its default when not given)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    config = {
        "max_batch_size": 64,
        "dynamic_batching": {
            "max_queue_delay_microseconds": 0,
            "max_queue_size": args.max_queue_size,
            "default_timeout_microseconds": args.queue_timeout_us,
        },
    }
    options = () if args.max_lag_ms is None else ("--max-lag-ms", str(args.max_lag_ms))
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as folder,
        server(repository(Path(folder), {"medium": config}), Path(folder) / "serve.log", options) as trial,
    ):
        assert trial.process is not None
        body = Path(folder) / "body.json"
        body.write_bytes(BODY)
        url = infer_url(trial, "medium")
        wrk(url, body, args.concurrency, WARM_UP_S)  # the first seconds are slower: not the capacity
        before = wrk(url, body, args.concurrency, args.capacity_seconds)
        rss_before = resident_bytes(trial.process.pid)
        asked = args.factor * before["rps"]
        used_before, began, client_before = trial.usage(), time.perf_counter(), _children_cpu()
        with sampled(trial.process.pid) as rss:
            overload = wrk(url, body, args.connections, args.seconds, rate=asked, timeout_s=args.timeout)
        cores = trial.usage().cores_since(used_before)
        client_cores = (_children_cpu() - client_before) / (time.perf_counter() - began)
        after = wrk(url, body, args.concurrency, args.capacity_seconds)
        rss_after = resident_bytes(trial.process.pid)
        peak = trial.usage().peak_bytes
    load_after = os.getloadavg()

    print(f"\ncapacity, closed loop over {args.concurrency} connections, {args.capacity_seconds} s:\n")
    print("| when | req/s | p50 ms | p99 ms | non-2xx | errors |\n|---|---|---|---|---|---|")
    for label, result in (("before", before), ("right after the overload", after)):
        print(
            f"| {label} | {result['rps']:,.0f} | {ms(result['p50_us'] / 1000)} | {ms(result['p99_us'] / 1000)} | "
            f"{result['non2xx']:,} | {result['errors']:,} |"
        )
    print(f"\nafter / before: {after['rps'] / before['rps']:.2f}")
    print(
        f"\noverload, {args.factor:g} × {before['rps']:,.0f} req/s for {args.seconds} s over {args.connections} "
        f"connections, {args.timeout} s client timeout (CPU: server {ms(cores)} cores, load generator "
        f"{client_cores:.1f}); latencies from when each request was due:\n"
    )
    print(
        "| asked req/s | scheduled | answered | 200 | 503 | timeouts | other errors | p50 ms | p99 ms | max ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    answered = overload["requests"]
    scheduled = asked * (args.seconds - WRK2_CONNECT_GAP_S * (args.connections - 1) / 2)
    print(
        f"| {asked:,.0f} | {scheduled:,.0f} | {answered:,} ({answered / scheduled:.1%}) | "
        f"{answered - overload['non2xx']:,} | {overload['non2xx']:,} | "
        f"{overload['timeouts']:,} | {overload['errors'] - overload['timeouts']:,} | "
        f"{ms(overload['p50_us'] / 1000)} | {ms(overload['p99_us'] / 1000)} | {ms(overload['max_us'] / 1000)} |"
    )
    memory = {
        "before": rss_before,
        "min": min(rss, default=None),
        "max": max(rss, default=None),
        "last": rss[-1] if rss else None,
        "after": rss_after,
        "peak": peak,
    }
    print("\nserver resident memory, MB (during: one reading a second):\n")
    print("| before | during, min | during, max | during, last | after | peak (VmHWM) |\n|---|---|---|---|---|---|")
    print("| " + " | ".join("-" if value is None else f"{value / MB:.0f}" for value in memory.values()) + " |")
    print(f"\nreadings during the overload, MB: {', '.join(f'{value / MB:.0f}' for value in rss)}")
    print(f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "capacity_before": before,
                    "capacity_after": after,
                    "after_over_before": after["rps"] / before["rps"],
                    "asked_rps": asked,
                    "scheduled": scheduled,
                    "overload": overload,
                    "server_cores": cores,
                    "client_cores": client_cores,
                    "rss_bytes": {**memory, "samples": rss},
                    "load_average": {"before": load_before, "after": load_after},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
