"""Autoscaling on the local daemon: a deployment with ``scale_settings.type: target_utilization``
under a step load (1 → 8 concurrent slow requests), then idle. Its replicas go from
``min_instances`` to ``max_instances`` and back after the cool-down, and not one request fails
while replicas start and while they are drained and stopped; the events are in ``deployment
logs``, the counts in ``deployment show`` and in the daemon's ``/metrics``. A rolling update
made at the peak keeps the count the autoscaler reached.

Assertions are on what happened (the counts seen, every status), not on when: the machine is
shared, so replicas take seconds to start and every wait is generous."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from endpoint_daemon import FAST_PROBES, Daemon, Load, running_daemon, scoring_headers, write_yaml

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

MAX = 4  # 8 concurrent requests fit the router's admission limit: 2 × 1 × 4 in flight
COOL_DOWN_S = 3


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("autoscale")) as daemon:
        yield daemon


def scaled_deployment(files: Path) -> Path:
    return write_yaml(
        files / "scaled.yml",
        {
            "name": "blue",
            "endpoint_name": "auto",
            "model": "mlp:1",
            "code_configuration": {"code": "code", "scoring_script": "score.py"},
            "environment_variables": {"COLOR": "blue"},
            "request_settings": {"max_concurrent_requests_per_instance": 1, "request_timeout_ms": 20000},
            "readiness_probe": FAST_PROBES,
            "scale_settings": {
                "type": "target_utilization",
                "min_instances": 1,
                "max_instances": MAX,
                "target_utilization_percentage": 70,
                "polling_interval": 0.5,
                "scale_down_delay": COOL_DOWN_S,
            },
        },
    )


class Watch(threading.Thread):
    """Reads the deployment's counts from the management API every 0.2 s until stopped."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self.url = f"{daemon.url}/api/endpoints/auto/deployments/blue"
        self.headers = daemon.api_headers()
        self.seen: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=10) as client:
            while not self.done.wait(0.2):
                try:
                    self.seen.append(client.get(self.url).raise_for_status().json())
                except httpx.HTTPError:  # a slow answer on a busy machine: the next read tells
                    continue

    def most(self, key: str) -> int:
        return max(view[key] for view in self.seen)


def gauge(metrics: str, name: str) -> float:
    match = re.search(rf'^{name}{{deployment="blue",endpoint="auto"}} (\S+)$', metrics, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_step_load_scales_out_to_max_and_back_without_a_failed_request(daemon: Daemon) -> None:
    files = daemon.home.parent
    daemon.ok("endpoint", "create", "-n", "auto")
    daemon.ok("deployment", "create", "-f", str(scaled_deployment(files)), "--all-traffic")
    shown = daemon.json("deployment", "show", "-e", "auto", "-n", "blue")
    assert (shown["current_replicas"], shown["ready_replicas"], shown["desired_replicas"]) == (1, 1, 1)

    url, headers = f"{daemon.url}/endpoints/auto/score", scoring_headers(daemon.key("auto"))
    watch = Watch(daemon)
    watch.start()
    try:
        one = Load(url, headers, seconds=4, concurrency=1, body={"sleep": 0.2})
        one.run()
        eight = Load(url, headers, seconds=26, concurrency=8, body={"sleep": 0.2})
        eight.start()
        deadline = time.monotonic() + 26
        while not (watch.seen and watch.seen[-1]["ready_replicas"] == MAX) and time.monotonic() < deadline:
            time.sleep(0.2)
        at_peak, peak = watch.seen[-1], len(watch.seen) - 1
        metrics = httpx.get(f"{daemon.url}/metrics", headers=daemon.api_headers(), timeout=10).text
        # A rolling update under that load keeps the count the autoscaler reached.
        daemon.ok("deployment", "update", "-e", "auto", "-n", "blue", "--set", "environment_variables.COLOR=green")
        rolled = daemon.json("deployment", "show", "-e", "auto", "-n", "blue")
        eight.join(timeout=60)
        assert not eight.is_alive()
        answer = daemon.score("auto", headers["authorization"].removeprefix("Bearer "))  # a ninth would be a 429
        loaded = len(watch.seen)
        # Idle: back to min_instances after the cool-down (plus polls, the drain and the stop).
        deadline = time.monotonic() + COOL_DOWN_S + 30
        while len(watch.seen[-1]["replicas"]) > 1 and time.monotonic() < deadline:  # retired ones stopped too
            time.sleep(0.2)
    finally:
        watch.done.set()
        watch.join(timeout=20)

    outcomes = one.outcomes + eight.outcomes
    assert len(outcomes) > 100
    assert not [o for o in outcomes if o.status != 200], {o.status for o in outcomes}  # zero failed requests
    assert at_peak["ready_replicas"] == at_peak["desired_replicas"] == MAX, at_peak
    assert all(view["desired_replicas"] == MAX for view in watch.seen[peak:loaded])  # no scale-in under load
    assert rolled["desired_replicas"] == rolled["ready_replicas"] == MAX, rolled
    assert {r["revision"] for r in rolled["replicas"]} == {rolled["revision"]} != {at_peak["revision"]}
    assert answer.status_code == 200 and answer.json()["color"] == "green", answer.text
    assert watch.most("desired_replicas") == MAX
    assert watch.most("current_replicas") <= MAX + 1  # the roll starts a new replica before retiring an old one
    assert all(view["desired_replicas"] >= 1 for view in watch.seen)
    assert {o.deployment for o in outcomes} == {"blue"}
    final = watch.seen[-1]
    assert (final["current_replicas"], final["desired_replicas"]) == (1, 1), final
    assert [r["state"] for r in final["replicas"]] == ["ready"]

    assert gauge(metrics, "modelport_deployment_replicas_desired") == MAX
    assert gauge(metrics, "modelport_deployment_replicas_ready") == MAX
    assert gauge(metrics, "modelport_deployment_replicas") == MAX
    metrics = httpx.get(f"{daemon.url}/metrics", headers=daemon.api_headers(), timeout=10).text
    assert (
        gauge(metrics, "modelport_deployment_replicas_desired") == gauge(metrics, "modelport_deployment_replicas") == 1
    )

    logs = daemon.ok("deployment", "logs", "-e", "auto", "-n", "blue").stdout
    events = logs.split("==> events.log <==\n", 1)[1].split("==>", 1)[0].splitlines()
    outs = [line for line in events if " scaled out " in line]
    ins = [line for line in events if " scaled in " in line]
    assert outs and ins, logs
    assert re.search(r"scaled out 1 → \d: [\d.]+ requests in flight per replica, target 0\.7$", outs[0]), outs
    assert ins[-1].split(" scaled in ")[1].startswith(tuple(f"{n} → 1:" for n in range(2, MAX + 1))), ins
    assert any(f"→ {MAX}:" in line for line in outs), outs

    text = daemon.ok("deployment", "show", "-e", "auto", "-n", "blue").stdout
    assert re.search(r"desired_replicas\W+1\b", text), text
