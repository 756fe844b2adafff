"""Two servers measured in turns: start one, warm it up, measure it with wrk, stop it; then the
other; and again, ``--rounds`` times. Each server is fresh in every round and the two take turns
at the same minutes, so a drift of the box's speed (which moves the one-connection p50 by 2×
between runs here) falls on both alike instead of on whichever was measured later. Each round
prints B's req/s over A's (the medians of its runs); ``--order swap`` lets B go first in every
other round, so that a cost of going first or second shows as ratios that flip with the order.
It also prints the server's CPU time per request (the server and its workers, from ``/proc``),
which other load on a shared machine disturbs far less than requests/s.

    python bench/alternate.py --rounds 3 --connections 1 \\
        --a 'modelport=bench/serve_for_peers.sh /tmp/peers/models/small.onnx {port}' \\
        --a-url 'http://127.0.0.1:{port}/v2/models/small/infer' --a-body v2_small.json \\
        --b 'fastapi=/tmp/peers/fastapi/bin/python servers/fastapi_naive.py /tmp/peers/models/small.onnx {port}' \\
        --b-url 'http://127.0.0.1:{port}/predict' --b-body data_small.json --b-cwd /path/to/bench-peers

A server is ready when its URL answers the body with a 2xx. Each server runs in a session of its
own and is stopped with SIGTERM to the whole group. Needs wrk. Binds nothing itself: the commands
must bind 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from serve_http import free_port, wrk

WARM_UP_S = 3


@dataclass(frozen=True)
class Contender:
    label: str
    command: str
    url: str
    body: Path
    cwd: Path | None


def _answers(url: str, body: bytes) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def group_cpu_seconds(group: int) -> float:
    """User + system CPU time so far of every live process in process group ``group`` (the server
    and its workers; Linux ``/proc``). On a busy machine this moves far less than requests/s."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _run(url: str, contender: Contender, group: int, connections: int, seconds: int) -> dict:
    """One wrk run, with the server's CPU time per request (``cpu_us``)."""
    before = group_cpu_seconds(group)
    result = wrk(url, contender.body, connections, seconds)
    result["cpu_us"] = (group_cpu_seconds(group) - before) / max(1, result["requests"]) * 1e6
    return result


@contextmanager
def running(contender: Contender, connections: int) -> Iterator[tuple[str, int]]:
    """Start the server on a free port, wait until it answers, warm it up; yields its URL and
    process group; stops it on leaving."""
    port = free_port()
    url = contender.url.format(port=port)
    process = subprocess.Popen(
        shlex.split(contender.command.format(port=port)),
        cwd=contender.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _answers(url, contender.body.read_bytes()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{contender.label}: the server did not answer {url}")
            time.sleep(0.2)
        wrk(url, contender.body, connections, WARM_UP_S)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _contender(args: argparse.Namespace, side: str) -> Contender:
    label, _, command = getattr(args, side).partition("=")
    cwd = getattr(args, f"{side}_cwd")
    return Contender(label, command, getattr(args, f"{side}_url"), getattr(args, f"{side}_body").resolve(), cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for side in ("a", "b"):
        parser.add_argument(f"--{side}", required=True, help="LABEL=COMMAND, with {port} in COMMAND")
        parser.add_argument(f"--{side}-url", required=True, help="with {port}")
        parser.add_argument(f"--{side}-body", type=Path, required=True, help="the JSON body to POST")
        parser.add_argument(f"--{side}-cwd", type=Path, help="where COMMAND runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--runs", type=int, default=2, help="wrk runs per server per round")
    parser.add_argument(
        "--order",
        choices=("ab", "ba", "swap"),
        default="ab",
        help="who runs first in a round: always A, always B, or A then B in odd rounds and B then A in even ones",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="start both servers once and keep them up (an idle one costs the other nothing) instead of a fresh "
        "start per round: rounds take seconds, not a minute, so many more fit in the quiet minutes of a busy box",
    )
    args = parser.parse_args()
    a, b = _contender(args, "a"), _contender(args, "b")
    with ExitStack() as servers:
        kept = (
            {c.label: servers.enter_context(running(c, args.connections)) for c in (a, b)} if args.keep_running else {}
        )

        def measure(contender: Contender) -> list[dict]:
            with ExitStack() as fresh:
                url, group = kept.get(contender.label) or fresh.enter_context(running(contender, args.connections))
                return [_run(url, contender, group, args.connections, args.seconds) for _ in range(args.runs)]

        results: dict[str, list[dict]] = {a.label: [], b.label: []}
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for number in range(args.rounds):
            first_b = args.order == "ba" or (args.order == "swap" and number % 2 == 1)
            round_rps: dict[str, float] = {}
            round_cpu: dict[str, float] = {}
            for contender in (b, a) if first_b else (a, b):
                runs = measure(contender)
                for result in runs:
                    results[contender.label].append(result)
                    print(
                        f"round {number + 1} {contender.label}: {result['rps']:,.0f} req/s, p50 "
                        f"{result['p50_us']} µs, p99 {result['p99_us']} µs, server CPU {result['cpu_us']:.0f} µs/request, "
                        f"non-2xx {result['non2xx']}",
                        flush=True,
                    )
                round_rps[contender.label] = statistics.median(r["rps"] for r in runs)
                round_cpu[contender.label] = statistics.median(r["cpu_us"] for r in runs)
            ratios.append(round_rps[b.label] / round_rps[a.label])
            cpu_ratios.append(round_cpu[b.label] / round_cpu[a.label])
            print(
                f"round {number + 1} ({'B' if first_b else 'A'} first): {b.label}/{a.label} req/s {ratios[-1]:.3f}, "
                f"server CPU per request {cpu_ratios[-1]:.3f}",
                flush=True,
            )
    print(f"\n{args.connections} connection(s), {args.rounds} rounds × {args.runs} runs of {args.seconds} s:\n")
    print(
        "| server | req/s, median (range) | p50 µs, median (range) | p99 µs, median | server CPU µs/request, median "
        "| non-2xx |\n|---|---|---|---|---|---|"
    )
    for label, runs in results.items():
        rps, p50 = [r["rps"] for r in runs], [r["p50_us"] for r in runs]
        print(
            f"| {label} | {statistics.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | "
            f"{statistics.median(p50):,.0f} ({min(p50)}–{max(p50)}) | "
            f"{statistics.median(r['p99_us'] for r in runs):,.0f} | {statistics.median(r['cpu_us'] for r in runs):.0f} | "
            f"{sum(r['non2xx'] for r in runs)} |"
        )
    for what, values in (("req/s", ratios), ("server CPU per request", cpu_ratios)):
        print(
            f"\n{b.label}/{a.label} {what} per round (each round's median run): "
            f"{', '.join(f'{r:.2f}' for r in values)}; median {statistics.median(values):.3f}"
        )


if __name__ == "__main__":
    main()
