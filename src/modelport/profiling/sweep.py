"""The profile's phases, each measured on real ``modelport serve`` processes over loopback:

1. *baseline* — the target's own settings (the model's config, with a deployment's
   ``model_config``) at every ``--concurrency`` level, on one server: the throughput/latency
   curve, and the level the next phase runs at (the highest throughput within the latency
   budget, else the lowest p99). Skipped when only one level is given.
2. *grid* — at that level, the configured settings again and the pruned batching × instance grid
   (:func:`batching_grid`), one server per settings, all started together and measured in the
   same interleaved rounds, so they are compared on the same machine state (see ``load``). A
   scoring script has nothing to tune and stops after phase 1.
3. *recommend* — :func:`choose` over the trials of the last phase, which were measured together.
4. *verify* — the recommended ``modelConfig`` served by a fresh server (what ``--apply`` gives),
   measured in the same rounds as the best trial's server once more.

Only one server is loaded at a time (idle ones use no CPU), and the load generator runs in this
process: servers and load share the machine as they would in any local test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from modelport.core.errors import ModelportError, ValidationError
from modelport.profiling.grid import Settings, batching_grid, settings_of
from modelport.profiling.load import LoadResult, LoadTarget, run_rounds
from modelport.profiling.recommend import Choice, choose
from modelport.profiling.results import Round, TrialResult, summarise
from modelport.profiling.sample import Sample
from modelport.profiling.targets import Target
from modelport.profiling.trials import TrialServer, Usage, stop_all

FIRST_WARMUP_S = 0.5  # a fresh server's first requests (allocations, connection set-up) are not counted
NEXT_WARMUP_S = 0.05  # later rounds only refill the pipeline
SLICE_S = 0.25  # one round's window: short, so that every trial sees the same machine
MIN_ROUNDS = 3
VERIFY_FACTOR = 2  # the verification measures its two servers for twice the trial duration: it confirms the profile


@dataclass(frozen=True)
class SweepOptions:
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    duration: float = 10.0  # measured seconds per trial, split into rounds of about ``SLICE_S``
    budget_ms: float = 100.0
    max_batch_sizes: tuple[int, ...] = (1, 8, 32)
    queue_delays_us: tuple[int, ...] = (0, 1000)
    instance_counts: tuple[int, ...] = (1, 2)
    tolerance: float = 0.05
    verify: bool = True


@dataclass(frozen=True)
class Point:
    """One trial to measure: a running server, the URL to load, at one concurrency."""

    server: TrialServer
    url: str
    concurrency: int
    settings: Settings | None
    phase: str


@dataclass(frozen=True)
class Verification:
    """The recommended settings on a fresh server, and the best trial's server measured beside it."""

    verified: TrialResult
    best_again: TrialResult
    best: TrialResult


@dataclass(frozen=True)
class SweepResult:
    trials: list[TrialResult]
    choice: Choice
    verify: Verification | None
    warnings: list[str]


class Sweep:
    """One profile run: ``run()`` starts, measures and stops every trial server."""

    def __init__(
        self,
        target: Target,
        sample: Sample,
        options: SweepOptions,
        logs: Path,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.target, self.sample, self.options, self.logs, self.say = target, sample, options, logs, say
        self.trials: list[TrialResult] = []
        self.warnings: list[str] = []
        self._points: dict[int, Point] = {}

    def run(self) -> SweepResult:
        levels = self.options.concurrency
        with ExitStack() as servers:
            (baseline,) = self._start([("baseline", {})], servers)
            assert baseline is not None
            model, settings = self._discover(baseline)
            self._probe(baseline.url + self.sample.path(model))
            level, compared = levels[0], []
            if len(levels) > 1 or settings is None:
                self.say(
                    f"phase 1: {self.target.name} as configured ({_label(settings)}) at concurrency "
                    f"{', '.join(map(str, levels))}"
                )
                compared = self._measure([self._point(baseline, model, c, settings, "baseline") for c in levels])
                level = choose(compared, self.options.budget_ms, tolerance=0).trial.concurrency
            if settings is not None:
                grid = batching_grid(
                    settings,
                    level,
                    self.sample.rows,
                    self.options.max_batch_sizes,
                    self.options.queue_delays_us,
                    self.options.instance_counts,
                )
                self.say(f"phase 2: the configured settings and {len(grid)} others at concurrency {level}")
                plans = [(f"grid-{i + 1}", s.model_config(self.target.base)) for i, s in enumerate(grid)]
                started = self._start(plans, servers, required=False)
                points = [self._point(baseline, model, level, settings, "grid")]
                points += [self._point(server, model, level, s, "grid") for server, s in zip(started, grid) if server]
                compared = self._measure(points)
            choice = choose(compared, self.options.budget_ms, self.options.tolerance)
            self.say(
                f"recommended: trial {choice.trial.index} ({_label(choice.trial.settings)}, concurrency "
                f"{choice.trial.concurrency}): {choice.trial.qps:,.0f} req/s, p99 {_ms(choice.trial.p99)}"
            )
            verify = self._verify(choice, model, servers) if self.options.verify else None
        return SweepResult(self.trials, choice, verify, self.warnings)

    # -- phases -------------------------------------------------------------------------------

    def _discover(self, server: TrialServer) -> tuple[str | None, Settings | None]:
        """The served model's name and settings (None, None for a scoring script)."""
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
            models = [entry["name"] for entry in _json(client.post("/v2/repository/index", json={"ready": True}))]
            if self.target.scripted or not models:
                if self.sample.v2:
                    raise ValidationError(
                        f"--input: a v2 request (inputs), but {self.target.name} serves no v2 "
                        "model; give the JSON body its /score expects"
                    )
                return None, None
            if len(set(models)) != 1:
                raise ValidationError(f"target: {self.target.name} serves {len(models)} models; profile one at a time")
            return models[0], settings_of(_json(client.get(f"/v2/models/{models[0]}/config")))

    def _probe(self, url: str) -> None:
        """One request before any measurement: a sample the model refuses is the user's error."""
        try:
            response = httpx.post(
                url, content=self.sample.body, headers={"content-type": "application/json"}, timeout=60, trust_env=False
            )
        except httpx.HTTPError as exc:
            raise ValidationError(f"--input: the sample request failed ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise ValidationError(
                f"--input: {self.target.name} answered {response.status_code} to the sample: "
                f"{response.text.strip()[:300]}"
            )

    def _verify(self, choice: Choice, model: str | None, servers: ExitStack) -> Verification:
        """The recommended ``modelConfig`` served by a fresh server (what applying it gives), measured
        in the same rounds as the best trial's server: their ratio is free of the machine's drift."""
        trial, best = choice.trial, choice.best or choice.trial
        overrides = trial.settings.model_config(self.target.base) if trial.settings is not None else {}
        self.say(
            f"verify: the recommended settings served afresh, beside trial {best.index} (the best within "
            f"budget), at concurrency {trial.concurrency}"
        )
        (server,) = self._start([("verify", overrides)], servers)
        assert server is not None
        fresh = self._point(server, model, trial.concurrency, trial.settings, "verify")
        again = replace(self._points[best.index], concurrency=trial.concurrency, phase="verify-best")
        verified, remeasured = self._measure([fresh, again], keep=False, duration=VERIFY_FACTOR * self.options.duration)
        return Verification(verified, remeasured, best)

    # -- measuring ----------------------------------------------------------------------------

    def _start(
        self, plans: Sequence[tuple[str, dict[str, Any]]], stack: ExitStack, required: bool = True
    ) -> list[TrialServer | None]:
        """Start every server at once (their start-ups overlap), then wait until all are ready. A
        server that cannot start is an error when ``required``, else a warning and None."""
        servers = [TrialServer(self.target.plan(overrides), self.logs / f"{name}.log") for name, overrides in plans]
        stack.callback(stop_all, servers)
        for server in servers:
            server.start()
        ready: list[TrialServer | None] = []
        for server, (_, overrides) in zip(servers, plans):
            try:
                server.wait_ready()
            except ModelportError as exc:
                if required:
                    raise
                self.warnings.append(f"skipped {json.dumps(overrides)}: {exc}")
                self.say(f"  warning: {self.warnings[-1]}")
                server.stop()
                ready.append(None)
            else:
                ready.append(server)
        return ready

    def _point(
        self, server: TrialServer, model: str | None, concurrency: int, settings: Settings | None, phase: str
    ) -> Point:
        return Point(server, server.url + self.sample.path(model), concurrency, settings, phase)

    def _measure(self, points: Sequence[Point], keep: bool = True, duration: float | None = None) -> list[TrialResult]:
        """Every point measured for ``duration`` (the trial duration) in the same interleaved rounds of
        about ``SLICE_S``."""
        duration = duration or self.options.duration
        rounds = max(MIN_ROUNDS, round(duration / SLICE_S))
        measured = run_rounds(
            [LoadTarget(p.url, p.concurrency, p.server.usage) for p in points],
            self.sample.body,
            rounds=rounds,
            seconds=duration / rounds,
            first_warmup=FIRST_WARMUP_S,
            next_warmup=NEXT_WARMUP_S,
        )
        results = []
        for point, loads in zip(points, measured):
            index = len(self.trials) + 1 if keep else 0
            result = summarise(index, point.phase, point.settings, point.concurrency, [_round(load) for load in loads])
            if keep:
                self.trials.append(result)
                self._points[index] = point
            self.say(
                f"  {'trial ' + str(index) if keep else point.phase}: {_label(point.settings)}, concurrency "
                f"{point.concurrency}: {result.qps:,.0f} req/s, p99 {_ms(result.p99)}"
                + (f", {result.errors} errors" if result.errors else "")
            )
            results.append(result)
        return results


def _round(load: LoadResult) -> Round:
    """A load window and what the server used over exactly that window."""
    opened, closed = load.marks or (None, None)
    if not (isinstance(opened, Usage) and isinstance(closed, Usage)):
        return Round(load, None, None)
    return Round(load, closed.cores_since(opened), closed.peak_bytes)


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


def _label(settings: Settings | None) -> str:
    return settings.label() if settings is not None else "scoring script"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
