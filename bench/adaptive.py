"""Adaptive batching (``latency_budget_ms``) against a grid of static batching settings, in one run.

    python bench/adaptive.py [--budget-ms 20] [--concurrency 32] [--duration 6] [--open-seconds 20] [--json FILE]

(a) Closed loop: the medium MLP served with every static pair ``max_batch_size`` ×
``max_queue_delay_microseconds`` (``--sizes`` × ``--delays-us``) and with the adaptive policy
(``latency_budget_ms``, ``max_batch_size`` the largest of ``--sizes``), all loaded at
``--concurrency`` requests in flight in the same interleaved rounds (the profiler's load
generator). The best static pair is the highest throughput whose p99 is within the budget (the
profiler's choice, without its tolerance); the adaptive policy's throughput is given as a fraction
of it, paired by round.

(b) Open loop at ``--load`` of that best throughput (the capacity), against the adaptive model and
the best static pair in alternate windows: the p99 of the answers and the answers by status.

Every configuration is one model of a single ``modelport serve`` process (a repository with a
folder each) rather than a server each: only the model being loaded runs, the HTTP front end
they share costs the same for all, so the ratios compare the batching policies alone, and the
server starts once instead of thirteen times on the two shared cores. Everything binds 127.0.0.1;
every load is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from serve_http import MODELS
from workers import body

from modelport.profiling.grid import Settings
from modelport.profiling.load import LoadTarget, OpenLoadResult, run_open, run_rounds, summary_ms
from modelport.profiling.recommend import choose
from modelport.profiling.results import Round, TrialResult, relative_qps, summarise
from modelport.profiling.trials import ServerPlan, TrialServer
from modelport.samples import build_mlp_onnx

MEDIUM = MODELS["medium"]
BODY = json.dumps(body(MEDIUM[0])).encode()
ADAPTIVE = "adaptive"


def repository(root: Path, configs: Mapping[str, Mapping[str, Any]]) -> Path:
    """A model repository serving the medium MLP once per config, under the config's name."""
    model = build_mlp_onnx(root / "medium.onnx", sizes=MEDIUM)
    for name, config in configs.items():
        (root / "repo" / name / "1").mkdir(parents=True)
        shutil.copy(model, root / "repo" / name / "1" / "model.onnx")
        (root / "repo" / name / "config.yaml").write_text(json.dumps(config))
    return root / "repo"


def server(repo: Path, log: Path, options: Sequence[str] = ()) -> TrialServer:
    """``modelport serve REPO [options]`` on free loopback ports, HTTP only (started by ``with``)."""
    command = (sys.executable, "-m", "modelport", "serve", str(repo), "--no-grpc", *options)
    return TrialServer(ServerPlan(command, dict(os.environ), os.getcwd()), log)


def infer_url(trial: TrialServer, model: str) -> str:
    return f"{trial.url}/v2/models/{model}/infer"


def closed_loop(
    trial: TrialServer, models: Mapping[str, Settings | None], concurrency: int, duration: float, slice_s: float
) -> dict[str, TrialResult]:
    """Every model loaded for ``duration`` seconds in the same interleaved rounds of about ``slice_s``."""
    rounds = max(3, round(duration / slice_s))
    loads = run_rounds(
        [LoadTarget(infer_url(trial, name), concurrency) for name in models],
        BODY,
        rounds=rounds,
        seconds=duration / rounds,
    )
    return {
        name: summarise(index, "grid", settings, concurrency, [Round(load, None, None) for load in windows])
        for index, ((name, settings), windows) in enumerate(zip(models.items(), loads), start=1)
    }


def open_summary(results: Sequence[OpenLoadResult]) -> dict[str, Any]:
    """Open-loop windows of one target pooled: counts summed, percentiles over all the answers."""
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    sent = sum(result.sent for result in results)
    return {
        "asked_rps": results[0].rate,
        "sent_rps": sent / sum(max(result.seconds, result.sending_seconds) for result in results),
        "scheduled": sum(result.scheduled for result in results),
        "sent": sent,
        "ok": sum(result.ok for result in results),
        "rejected": sum(result.rejected for result in results),
        "other": sum(result.other for result in results),
        "timeouts": sum(result.timeouts for result in results),
        "not_sent": sum(result.not_sent for result in results),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "latency_ms": summary_ms(np.concatenate([result.latencies_ms for result in results]), with_max=True),
        "lag_ms": summary_ms(np.concatenate([result.lags_ms for result in results]), with_max=True),
        "first_error": next((result.first_error for result in results if result.first_error), None),
        "window_p99_ms": [result.latency_ms()["p99"] for result in results],
        "window_not_sent": [result.not_sent for result in results],
    }


def open_loop(
    trial: TrialServer,
    models: Sequence[str],
    rate: float,
    seconds: float,
    windows: int,
    connections: int,
    timeout: float,
) -> dict[str, dict[str, Any]]:
    """``windows`` open-loop windows per model, ``seconds`` in all, every other round in reverse order."""
    results: dict[str, list[OpenLoadResult]] = {name: [] for name in models}
    for number in range(windows):
        for name in models if number % 2 == 0 else models[::-1]:
            results[name].append(
                run_open(
                    infer_url(trial, name),
                    BODY,
                    rate=rate,
                    seconds=seconds / windows,
                    connections=connections,
                    request_timeout=timeout,
                )
            )
    return {name: open_summary(runs) for name, runs in results.items()}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-ms", type=float, default=20.0)
    parser.add_argument("--sizes", default="8,16,32,64", help="static max_batch_size values")
    parser.add_argument("--delays-us", default="0,500,2000", help="static max_queue_delay_microseconds values")
    parser.add_argument("--concurrency", type=int, default=32, help="closed loop: requests in flight")
    parser.add_argument("--duration", type=float, default=6.0, help="closed loop: measured seconds per configuration")
    parser.add_argument("--slice", type=float, default=0.5, help="closed loop: seconds of one round's window")
    parser.add_argument("--load", type=float, default=0.7, help="open loop: the rate as a fraction of the capacity")
    parser.add_argument("--open-seconds", type=float, default=20.0, help="open loop: seconds per configuration")
    parser.add_argument("--open-windows", type=int, default=4, help="open loop: alternate windows per configuration")
    parser.add_argument("--connections", type=int, default=128, help="open loop: keep-alive connections")
    parser.add_argument("--timeout", type=float, default=1.0, help="open loop: client timeout per request (s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    static = {
        f"b{size}_d{delay}": Settings(1, size, delay)
        for size in sizes
        for delay in (int(delay) for delay in args.delays_us.split(","))
    }
    configs: dict[str, dict[str, Any]] = {name: settings.model_config() for name, settings in static.items()}
    configs[ADAPTIVE] = {"max_batch_size": max(sizes), "dynamic_batching": {"latency_budget_ms": args.budget_ms}}
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as folder,
        server(repository(Path(folder), configs), Path(folder) / "serve.log") as trial,
    ):
        closed = closed_loop(trial, {**static, ADAPTIVE: None}, args.concurrency, args.duration, args.slice)
        choice = choose([closed[name] for name in static], args.budget_ms, tolerance=0)
        best_trial = choice.best or max((closed[name] for name in static), key=lambda result: result.qps)
        best = next(name for name in static if closed[name] is best_trial)
        rate = args.load * best_trial.qps
        opened = open_loop(
            trial, [ADAPTIVE, best], rate, args.open_seconds, args.open_windows, args.connections, args.timeout
        )
    load_after = os.getloadavg()
    ratio = relative_qps(closed[ADAPTIVE], best_trial)

    label = {
        **{name: settings.label() for name, settings in static.items()},
        ADAPTIVE: f"adaptive, budget {args.budget_ms:g} ms, batch ≤{max(sizes)}",
    }
    print(
        f"\nclosed loop, {args.concurrency} in flight, {args.duration:g} s per configuration in "
        f"{len(best_trial.rounds)} interleaved rounds (medians of the rounds):\n"
    )
    print(f"| settings | req/s | p50 ms | p99 ms | p99 ≤ {args.budget_ms:g} ms | × best static (paired) |")
    print("|---|---|---|---|---|---|")
    for name, result in closed.items():
        mark = " **best static**" if name == best else ""
        print(
            f"| {label[name]}{mark} | {result.qps:,.0f} | {ms(result.latency_ms['p50'])} | {ms(result.p99)} | "
            f"{'yes' if result.meets(args.budget_ms) else 'no'} | {relative_qps(result, best_trial):.2f} |"
        )
    if choice.best is None:
        print(f"\nno static pair met the {args.budget_ms:g} ms p99 budget: the capacity is the fastest of them")
    print(f"\nadaptive / best static ({label[best]}): {ratio:.2f} (target ≥ 0.90)")
    print(
        f"\nopen loop at {args.load:.0%} of {best_trial.qps:,.0f} req/s = {rate:,.0f} req/s, {args.open_seconds:g} s "
        f"per configuration in {args.open_windows} alternate windows, {args.connections} connections, "
        f"{args.timeout:g} s client timeout:\n"
    )
    print(
        "| settings | sent req/s | 200 | 503 | other | timeouts | not sent | p50 ms | p99 ms | max ms "
        "| p99 per window ms | client lag p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in opened.items():
        latency = row["latency_ms"]
        print(
            f"| {label[name]} | {row['sent_rps']:,.0f} | {row['ok']:,} | {row['rejected']:,} | {row['other']:,} | "
            f"{row['timeouts']:,} | {row['not_sent']:,} | {ms(latency['p50'])} | {ms(latency['p99'])} | "
            f"{ms(latency['max'])} | {', '.join(map(ms, row['window_p99_ms']))} | {ms(row['lag_ms']['p99'])} |"
        )
    print(f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "budget_ms": args.budget_ms,
                    "concurrency": args.concurrency,
                    "best_static": best,
                    "best_static_within_budget": choice.best is not None,
                    "adaptive_over_best_static": ratio,
                    "closed_loop": {
                        name: {
                            "settings": label[name],
                            "qps": result.qps,
                            "latency_ms": result.latency_ms,
                            "rounds_qps": result.rounds,
                            "errors": result.errors,
                        }
                        for name, result in closed.items()
                    },
                    "open_loop": {"rate": rate, "load": args.load, **opened},
                    "load_average": {"before": load_before, "after": load_after},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
