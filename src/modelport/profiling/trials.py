"""One trial server: a ``modelport serve`` process on free loopback ports, its readiness, what it
used (CPU time, peak memory), its resident memory now, and its stop.

Resources are read from ``/proc/<pid>`` rather than from the server's own Prometheus
``/metrics``: scraping would run on the event loop being measured (and cost it CPU), the
kernel's ``VmHWM`` is the exact resident peak (sampling ``process_resident_memory_bytes`` a few
times a second can miss a short spike), and the peak includes loading the model, which a memory
limit must allow for too. Off Linux the numbers are simply absent (None).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelport.control.replica import HOST, free_port
from modelport.core.errors import ModelportError

READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ServerPlan:
    """What to start, ports aside: the ``serve`` command line, its environment and folder."""

    command: tuple[str, ...]
    env: dict[str, str]
    cwd: str


@dataclass(frozen=True)
class Usage:
    """A process's CPU time so far (s), resident peak so far (bytes), and when it was read."""

    cpu_seconds: float | None
    peak_bytes: int | None
    at: float

    def cores_since(self, before: Usage) -> float | None:
        """Average cores used between ``before`` and this reading."""
        if self.cpu_seconds is None or before.cpu_seconds is None or self.at <= before.at:
            return None
        return (self.cpu_seconds - before.cpu_seconds) / (self.at - before.at)


class TrialServer:
    """Started by ``with``: ready when the block begins, stopped (SIGTERM, then SIGKILL) after it."""

    def __init__(self, plan: ServerPlan, log: Path) -> None:
        self.plan = plan
        self.log = log
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TrialServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [*self.plan.command, "--http-port", str(self.port), "--metrics-port", str(free_port())]
        with open(self.log, "ab") as console:
            self.process = subprocess.Popen(
                command,
                env=self.plan.env,
                cwd=self.plan.cwd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return once ``/v2/health/ready`` answers 200; a server that exits or never gets ready
        is an error carrying the last line of its log."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ModelportError(
                        f"profile: the trial server exited with {self.process.returncode}: "
                        f"{self.last_log_line()} (log: {self.log})"
                    )
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ModelportError(f"profile: the trial server was not ready within {timeout:.0f} s (log: {self.log})")

    def usage(self) -> Usage:
        """CPU seconds (user + system, all threads) and ``VmHWM`` from ``/proc``."""
        now = time.perf_counter()
        if self.process is None:
            return Usage(None, None, now)
        return Usage(_cpu_seconds(self.process.pid), _status_bytes(self.process.pid, "VmHWM:"), now)

    def last_log_line(self) -> str:
        try:
            lines = [line for line in self.log.read_text("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return "(no log)"
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or ["(empty log)"])[-1].strip()

    def stop(self) -> None:
        stop_all([self])


def stop_all(servers: list[TrialServer], grace: float = 30.0) -> None:
    """SIGTERM every server's process group at once (they finish in-flight requests and exit in
    parallel), then SIGKILL whichever is still there after ``grace`` seconds."""
    running = [s.process for s in servers if s.process is not None and s.process.poll() is None]
    for process in running:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(process.pid, signal.SIGKILL)
            process.wait()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int) -> int | None:
    """The process's resident memory now (``VmRSS``); None off Linux or once it has exited."""
    return _status_bytes(pid, "VmRSS:")


def _status_bytes(pid: int, key: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return None


def machine_resources() -> tuple[float | None, float | None]:
    """The cores and memory (GiB) trial servers may use: they run without limits, on this machine."""
    try:
        cpus: float | None = float(len(os.sched_getaffinity(0)))
    except AttributeError:
        count = os.cpu_count()
        cpus = float(count) if count else None
    try:
        memory: float | None = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory = None
    return cpus, memory
