"""CLI start-up: how long ``modelport --help`` and ``modelport model list`` (an empty workspace)
take from process start to exit, as a user types them.

    python bench/startup.py [--runs 10] [--command modelport]

Each command runs ``--runs`` times as a fresh subprocess (one unmeasured run first: it creates
the workspace, warms the page cache and compiles the bytecode); the median, minimum and maximum
wall times and the median CPU time are printed next to the goals (0.3 s and 0.6 s median wall).
``--command`` is the CLI to start [default: the ``modelport`` script beside this Python, else
``python -m modelport``].

The runs use compiled bytecode, as an installed package has it, also when modelport runs from a
source tree and ``PYTHONDONTWRITEBYTECODE`` is set: the bytecode goes to a temporary folder
(``PYTHONPYCACHEPREFIX``), not into the tree. Without it every run compiles modelport's modules.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"modelport --help": 0.3, "modelport model list": 0.6}


def default_command() -> list[str]:
    script = Path(sys.executable).with_name("modelport")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "modelport"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system) shows the work even on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--command", default=None, help="the CLI to start, e.g. '.venv/bin/modelport'")
    args = parser.parse_args()
    cli = shlex.split(args.command) if args.command else default_command()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MODELPORT_HOME": str(Path(tmp) / "ws"), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(f"{' '.join(cli)} on Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each")
        for name, extra in (("modelport --help", ["--help"]), ("modelport model list", ["model", "list"])):
            timed([*cli, *extra], env)
            walls, cpus = zip(*(timed([*cli, *extra], env) for _ in range(args.runs)))
            median = statistics.median(walls)
            verdict = "ok" if median <= GOALS[name] else "over"
            print(
                f"{name:22} median {median:.3f} s  min {min(walls):.3f}  max {max(walls):.3f}"
                f"  CPU median {statistics.median(cpus):.3f} s  (goal {GOALS[name]} s: {verdict})"
            )


if __name__ == "__main__":
    main()
