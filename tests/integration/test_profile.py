"""``modelport profile`` end to end: real CLI processes, real trial servers on loopback ports.

The acceptance: a heavy model is recommended larger batches than a light one, and the
recommended settings, served afresh, reach ≥ 90 % of the best throughput measured within the
latency budget. Then refusals (one ``error:`` line, exit 1, no server left behind) and a daemon
deployment profiled and ``--apply``-ed (its replicas roll onto the new ``model_config``).

Timing on the shared 2-core box: the two acceptance profiles take ~20 s each, the deployment
test ~25 s. Durations are short, so the settings compared are chosen where the physics is
unambiguous (see the acceptance test).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from endpoint_daemon import Daemon, running_daemon, write_yaml

from modelport.profiling.recommend import BUSY_SPREAD
from modelport.samples import build_mlp_onnx

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

LIGHT = (32, 64, 64, 4)
HEAVY = (256, 1024, 1024, 1024, 16)
AZURE_KEYS = {
    "name",
    "state",
    "recommendedCpu",
    "recommendedMemoryInGB",
    "recommendationLatencyInMs",
    "maxUtilizedMemoryInGB",
    "maxUtilizedCpu",
    "averageLatencyInMs",
    "latencyPercentile50InMs",
    "latencyPercentile90InMs",
    "latencyPercentile95InMs",
    "latencyPercentile99InMs",
    "latencyPercentile999InMs",
    "measuredQueriesPerSecond",
    "totalQueries",
    "successQueries",
    "successRate",
    "requestedCpu",
    "requestedMemoryInGB",
    "error",
    "errorLogsUri",
}


def sample(path: Path, width: int, rows: int = 1) -> Path:
    data = [0.01 * (i % 97) for i in range(rows * width)]
    path.write_text(
        json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, width], "data": data}]})
    )
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    """A workspace holding ``light:1`` and ``heavy:1``, and their v2 samples in the folder."""
    root = tmp_path_factory.mktemp("profile")
    cli = Cli(root / "ws")
    for name, sizes in (("light", LIGHT), ("heavy", HEAVY)):
        model = build_mlp_onnx(root / name / "model.onnx", sizes=sizes)
        result = cli("model", "register", str(model), "--name", name)
        assert result.returncode == 0, result.stderr
        sample(root / f"{name}.json", sizes[0])
    return cli, root


def profile(cli: Cli, *args: str, timeout: float = 240) -> dict[str, Any]:
    result = cli("profile", *args, "-o", "json", timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fails(cli: Cli, *args: str) -> str:
    result = cli("profile", *args, timeout=120)
    assert result.returncode == 1, f"{result.stdout} {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def leftover_servers(home: Path) -> list[int]:
    """Processes serving from ``home``'s workspace: trial servers the profile did not stop."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"serve" in command and b"--no-grpc" in command and f"MODELPORT_HOME={home}\0".encode() in environ:
            found.append(int(entry.name))
    return found


def capacity(document: dict[str, Any]) -> int:
    """Requests one server runs together: max_batch_size × instances."""
    config = document["modelConfig"]
    return max(1, config.get("max_batch_size", 1)) * sum(group["count"] for group in config["instance_group"])


def test_heavy_model_gets_larger_batches_and_the_recommendation_holds(models: tuple[Cli, Path]) -> None:
    # At 4 requests in flight, without a queue delay, the two models differ in kind: the heavy MLP
    # (≈ 0.3 ms of matrix work per request at batch 1) is compute-bound, requests queue while it
    # runs, and one run over the queued rows costs little more than over one, so batching is worth
    # 1.2–2×; the light one (≈ 10 µs) is bound by HTTP handling, batches hardly form, and both its
    # settings mostly measure the same, so the cheaper is recommended. (Wherever batches do fill, at
    # 8 or more in flight or with a queue delay, batching also saves the light model a thread hop per
    # request and measures 15–60 % faster for it too, and both are recommended the larger batch; on
    # a busy machine that happens at 4 too, so the light model's choice is not asserted.)
    # A 10 % tolerance keeps the light model's choice between two equal settings out of the noise.
    cli, root = models
    options = [
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--max-batch-sizes",
        "1,4",
        "--queue-delays-us",
        "0",
        "--instance-counts",
        "1",
        "--tolerance",
        "0.1",
    ]
    documents = {}
    for name in ("light", "heavy"):
        saved = root / f"profile-{name}.json"
        documents[name] = profile(cli, name, "--input", str(root / f"{name}.json"), *options, "--save", str(saved))
        assert json.loads(saved.read_text()) == documents[name]
    assert leftover_servers(root / "ws") == []
    light, heavy = documents["light"], documents["heavy"]
    for name, document in documents.items():
        assert AZURE_KEYS <= set(document), AZURE_KEYS - set(document)
        assert document["name"] == f"{name}:1" and document["state"] == "Succeeded"
        assert document["successRate"] == 1.0 and document["error"] is None and document["errorLogsUri"] is None
        assert document["recommendedCpu"] >= 0.1 and 0.1 <= document["recommendedMemoryInGB"] < 4
        assert document["latencyPercentile99InMs"] <= 100 and document["measuredQueriesPerSecond"] > 0
        assert [(t["maxBatchSize"], t["phase"]) for t in document["trials"]] == [(4, "grid"), (1, "grid")]
        assert document["roundSpread"] is not None
    busy = {name: d["roundSpread"] for name, d in documents.items() if d["roundSpread"] > BUSY_SPREAD}
    if busy:  # the profiler says so itself (a warning): its throughputs are the scheduler's, not the models'
        assert all(any("machine was busy" in w for w in documents[name]["warnings"]) for name in busy)
        pytest.skip(f"the machine was too busy to compare throughputs (round-to-round spread {busy})")
    assert not light["warnings"] and not heavy["warnings"]
    for name, document in documents.items():
        # the recommended modelConfig, served by a fresh server, keeps ≥ 90 % of the best in-budget throughput,
        # less what the machine's own round-to-round spread (the profiler's noise figure) cannot tell apart:
        # where the recommendation is the best setting itself, the ratio compares two equal servers
        floor = min(0.9, 1 - 2 * document["roundSpread"])
        assert document["verifiedRatio"] >= floor, (name, document["verifiedRatio"], floor, document["trials"])
    assert capacity(heavy) == 4 and capacity(heavy) >= capacity(light), (
        light["modelConfig"],
        heavy["modelConfig"],
        light["trials"],
        heavy["trials"],
    )
    assert heavy["modelConfig"]["dynamic_batching"] == {"max_queue_delay_microseconds": 0}


def test_refusals_are_one_line_and_leave_nothing_running(models: tuple[Cli, Path]) -> None:
    cli, root = models
    assert fails(cli, "light", "--input", str(root / "nothing.json")).startswith("error: --input: cannot read ")
    wrong = sample(root / "wrong.json", width=7)
    message = fails(cli, "light", "--input", str(wrong), "--concurrency", "2", "--duration", "0.3s")
    assert message.startswith("error: --input: light:1 answered 400 to the sample: "), message
    assert fails(cli, "nothing", "--input", str(root / "light.json")).startswith(
        "error: model 'nothing' does not exist (workspace "
    )
    assert fails(cli, "light", "--input", str(root / "light.json"), "--apply").startswith(
        "error: --apply: only with an ENDPOINT/DEPLOYMENT target"
    )
    assert fails(cli, "light", "--input", str(root / "light.json"), "--duration", "soon").startswith(
        "error: --duration: 'soon' is not a duration"
    )
    assert leftover_servers(root / "ws") == []


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("profile-endpoints")) as daemon:
        yield daemon


def test_profile_a_deployment_and_apply_the_recommendation(daemon: Daemon) -> None:
    files = daemon.home.parent
    daemon.ok("endpoint", "create", "-f", str(write_yaml(files / "ep.yml", {"name": "ep", "auth_mode": "key"})))
    blue = {"name": "blue", "endpoint_name": "ep", "model": "mlp:1", "instance_count": 1}
    daemon.ok("deployment", "create", "-f", str(write_yaml(files / "blue.yml", blue)), "--all-traffic")
    before = daemon.json("deployment", "show", "-e", "ep", "-n", "blue")
    request = sample(files / "mlp.json", LIGHT[0])

    document = profile(
        daemon.cli,
        "ep/blue",
        "--input",
        str(request),
        "--concurrency",
        "4",
        "--duration",
        "0.5s",
        "--max-batch-sizes",
        "1,4",
        "--queue-delays-us",
        "0",
        "--instance-counts",
        "1,2",
        "--no-verify",
        "--apply",
    )
    assert document["name"] == "ep/blue" and document["state"] == "Succeeded"
    # the deployment as configured (batch 4, 1 instance), then batch 1 or 4 × 1 or 2 instances, less that one
    assert [(t["maxBatchSize"], t["instanceCount"]) for t in document["trials"]] == [(4, 1), (1, 1), (1, 2), (4, 2)]
    applied = document["applied"]
    assert applied["deployment"] == "ep/blue" and applied["model_config"] == document["modelConfig"]

    after = daemon.json("deployment", "show", "-e", "ep", "-n", "blue")
    assert after["model_config"] == document["modelConfig"] and after["revision"] == applied["revision"]
    assert after["revision"] != before["revision"]
    old = {replica["pid"] for replica in before["replicas"]}
    assert [r["state"] for r in after["replicas"]] == ["ready"] and not old & {r["pid"] for r in after["replicas"]}
    answer = httpx.post(
        f"{daemon.url}/endpoints/ep/v2/models/mlp/infer",
        content=request.read_bytes(),
        headers={"authorization": f"Bearer {daemon.key('ep')}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert leftover_servers(daemon.home) == [r["pid"] for r in after["replicas"]]  # its replica, no trial server


def test_a_scoring_script_deployment_is_profiled_for_concurrency_only(daemon: Daemon) -> None:
    files = daemon.home.parent
    daemon.ok("endpoint", "create", "-f", str(write_yaml(files / "sc.yml", {"name": "sc", "auth_mode": "key"})))
    green = {
        "name": "green",
        "endpoint_name": "sc",
        "model": "mlp:1",
        "instance_count": 1,
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
    }
    daemon.ok("deployment", "create", "-f", str(write_yaml(files / "green.yml", green)))
    body = files / "score.json"
    body.write_text("{}")
    document = profile(
        daemon.cli, "sc/green", "--input", str(body), "--concurrency", "1,2", "--duration", "0.3s", "--no-verify"
    )
    assert [(t["phase"], t["concurrency"], t["settings"]) for t in document["trials"]] == [
        ("baseline", 1, "scoring script"),
        ("baseline", 2, "scoring script"),
    ]
    assert document["modelConfig"] is None and "verifiedRatio" not in document
    assert fails(daemon.cli, "sc/green", "--input", str(body), "--apply") == (
        "error: --apply: sc/green runs a scoring script; it has no model_config to tune"
    )


def test_a_daemon_that_is_not_running_is_named(models: tuple[Cli, Path]) -> None:
    cli, root = models
    nowhere = Cli(root / "ws")
    nowhere.env["MODELPORT_URL"] = "http://127.0.0.1:9"
    assert fails(nowhere, "ep/blue", "--input", str(root / "light.json")).startswith(
        "error: no modelport daemon answers at http://127.0.0.1:9"
    )
