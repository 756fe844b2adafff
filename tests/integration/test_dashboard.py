"""The web dashboard of ``modelport up``, in a real browser (Playwright driving Debian's Chromium)
and with httpx for what a browser would never send.

One daemon serves the module: two models with aliases and tags and a pipeline pinning one of
them, an endpoint with blue/green at 90/10, a batch endpoint with a finished and a failed job, and
(for the tests that ask) an endpoint serving the model itself with its inputs collected. Each page shows what the CLI's ``--output json`` shows for the same object, field by
field; the traffic form changes what ``endpoint show`` reports, or refuses in the CLI's words and
changes nothing; keys stay out of every page until revealed; without a session pages redirect
and forms are refused, as is a form without its CSRF token or from another origin; the browser
asks nothing of any other origin and logs no console error."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from endpoint_daemon import Daemon, running_daemon, write_yaml

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import build_mlp_onnx

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (scripts/test.sh installs it when run as root)"
)


# A batch scoring script: fails the files named in BAD, sleeps DELAY seconds per mini-batch.
BATCH_SCRIPT = """
import os, time

def init():
    pass

def run(mini_batch):
    time.sleep(float(os.environ.get("DELAY", "0")))
    bad = set(os.environ.get("BAD", "").split(","))
    for path in mini_batch:
        if os.path.basename(path) in bad:
            raise ValueError(f"cannot read {os.path.basename(path)}")
    return [os.path.basename(path) for path in mini_batch]
"""
BATCH_FILES = 12


def _batch_endpoint(ws: Workspace, folder: Path) -> None:
    """Batch endpoint ``be`` with deployments ``good``, ``bad`` (two files fail) and ``slow``."""
    (folder / "batch-code").mkdir()
    (folder / "batch-code" / "score.py").write_text(BATCH_SCRIPT)
    (folder / "files").mkdir()
    for i in range(BATCH_FILES):
        (folder / "files" / f"f{i:02d}.txt").write_text(str(i))
    endpoints = BatchEndpoints(ws)
    endpoints.create_endpoint(parse_endpoint({"name": "be"}).value)
    variables = {"good": {}, "bad": {"BAD": "f03.txt,f07.txt"}, "slow": {"DELAY": "1"}}
    for name, environment_variables in variables.items():
        data = {
            "name": name,
            "endpoint_name": "be",
            "model": {"name": "mlp", "path": str(folder / "c" / "model.onnx")},
            "code_configuration": {"code": str(folder / "batch-code"), "scoring_script": "score.py"},
            "settings": {"mini_batch_size": 3 if name != "slow" else 1, "environment_variables": environment_variables},
        }
        endpoints.create_deployment(parse_deployment(data, folder).value)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("dashboard")
    with running_daemon(folder) as daemon:
        with Workspace(daemon.home) as ws:
            ws.models.register(build_mlp_onnx(folder / "c" / "model.onnx", seed=2), "clf", tags={"team": "risk"})
            ws.models.set_alias("mlp", "prod", 1)
            ws.models.set_alias("mlp", "canary", 2)
            ws.models.update("mlp:2", tags={"stage": "canary", "owner": "ml"})
            ws.models.register(write_yaml(folder / "flow.yml", PIPELINE), "flow")
            _batch_endpoint(ws, folder)
            for version, requirements in enumerate(("numpy\n", "numpy>=1.24\nrequests==2.31.0\n"), start=1):
                spec = folder / f"env{version}" / "requirements.txt"
                spec.parent.mkdir()
                spec.write_text(requirements)
                ws.environments.create("sk", spec, tags={"team": "risk"} if version == 2 else None)
        profiling = _start_profile(daemon, folder)  # meanwhile: its trial servers take seconds
        invoke = ("batch-endpoint", "invoke", "-n", "be", "--input", str(folder / "files"))
        daemon.ok(*invoke, "-d", "good", "--output-path", str(folder / "out-good"))  # they run meanwhile
        daemon.ok(*invoke, "-d", "bad", "--set", "error_threshold=1")
        daemon.ok("endpoint", "create", "-n", "bg")
        for color in ("blue", "green"):
            definition = {
                "name": color,
                "endpoint_name": "bg",
                "model": "azureml:mlp:1",
                "code_configuration": {"code": "code", "scoring_script": "score.py"},
                "environment_variables": {"COLOR": color},
                "instance_count": 1,
            }
            extra = ["--all-traffic"] if color == "blue" else []
            daemon.ok("deployment", "create", "-f", str(write_yaml(folder / f"{color}.yml", definition)), *extra)
        daemon.ok("endpoint", "update", "-n", "bg", "--traffic", "blue=90 green=10")
        daemon.profiling = profiling  # type: ignore[attr-defined]
        yield daemon
        profiling.kill()
        profiling.wait()


# A one-step pipeline pinning mlp:2 (a model page lists it under "used by").
PIPELINE = {
    "kind": "pipeline",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 32]}],
    "steps": [{"name": "only", "model": "mlp:2", "inputs": {"input": "x"}, "outputs": {"output": "y"}}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 4], "from": ["y"]}],
}
ROW = [0.25] * 32


def _start_profile(daemon: Daemon, folder: Path) -> subprocess.Popen[str]:
    """``modelport profile mlp:1 --save`` at its smallest (two trials), in the background."""
    request = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": ROW}]}
    sample = write_yaml(folder / "profile-request.json", request)
    options = ("--concurrency", "1", "--duration", "0.3s", "--max-batch-sizes", "1", "--queue-delays-us", "0")
    options += ("--instance-counts", "1", "--no-verify", "--save", str(folder / "profile.json"))
    return daemon.cli.popen("profile", "mlp:1", "--input", str(sample), *options)


SERVED_REQUESTS = 20


@pytest.fixture(scope="module")
def served(daemon: Daemon) -> dict[str, Any]:
    """Endpoint ``mx``: deployment ``plain`` serves mlp:1 itself (batch sizes in its metrics) and
    collects its inputs; it has answered :data:`SERVED_REQUESTS` requests of two rows whose
    ``input_0`` is far from the baseline's (``baseline.csv``, written here)."""
    folder = daemon.home.parent
    daemon.ok("endpoint", "create", "-n", "mx")
    collector = {"collections": {"model_inputs": {"enabled": "True"}}, "sampling_rate": 1.0, "format": "jsonl"}
    definition = {"name": "plain", "endpoint_name": "mx", "model": "azureml:mlp:1", "data_collector": collector}
    daemon.ok("deployment", "create", "-f", str(write_yaml(folder / "plain.yml", definition)), "--all-traffic")
    rng = np.random.default_rng(0)
    baseline = pd.DataFrame(rng.normal(size=(200, 32)), columns=[f"input_{j}" for j in range(32)])
    baseline.to_csv(folder / "baseline.csv", index=False)
    key = daemon.key("mx")
    url = f"{daemon.url}/endpoints/mx/v2/models/mlp/infer"
    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        for _ in range(SERVED_REQUESTS):
            rows = rng.normal(size=(2, 32))
            rows[:, 0] += 3
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": rows.ravel().tolist()}]}
            assert client.post(url, json=body).status_code == 200
    collected = daemon.home / "collected" / "mx" / "plain" / "model_inputs"
    deadline = time.monotonic() + 15
    while sum(len(f.read_text().splitlines()) for f in collected.rglob("*.jsonl")) < SERVED_REQUESTS:
        assert time.monotonic() < deadline, "the collector did not write every request"
        time.sleep(0.2)
    return {"baseline": str(folder / "baseline.csv")}


@pytest.fixture(scope="module")
def jobs(daemon: Daemon) -> dict[str, str]:
    """The batch jobs the daemon fixture started, by deployment, once they ended."""
    deadline = time.monotonic() + 60
    while True:
        listed = daemon.json("job", "list")
        if all(job["status"] in ("Completed", "Failed") for job in listed):
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    return {job["deployment"]: job["id"] for job in listed}


@pytest.fixture(scope="module")
def browser(daemon: Daemon) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


class Session:
    """A signed-in browser page that records every request it makes and every console error."""

    def __init__(self, browser: Any, daemon: Daemon) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.daemon = daemon

    def _route(self, route: Any) -> None:
        self.requests.append(route.request.url)
        if route.request.url.startswith(self.daemon.url + "/"):
            route.continue_()
        else:
            route.abort()

    def goto(self, path: str) -> Any:
        answer = self.page.goto(self.daemon.url + path)
        assert answer is not None and answer.ok, (path, answer and answer.status)
        return self.page

    def field(self, scope: Any, name: str) -> str:
        return scope.locator(f'[data-field="{name}"]').first.inner_text().strip()

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def session(browser: Any, daemon: Daemon) -> Iterator[Session]:
    session = Session(browser, daemon)
    page = session.goto("/")
    assert page.url.endswith("/ui/login")
    page.fill('input[name="token"]', daemon.token())
    page.click('form.login button[type="submit"]')
    page.wait_for_url(f"{daemon.url}/ui/endpoints")
    yield session
    session.close()


def _same(shown: str, value: Any) -> None:
    expected = json.dumps(value) if isinstance(value, bool | list) else "" if value is None else str(value)
    assert shown == expected, (shown, value)


def test_models_pages_show_what_the_cli_shows(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/models")
    listed = daemon.json("model", "list")
    assert page.locator("tr[data-model]").count() == len(listed) == 3  # mlp, clf and the pipeline flow
    for model in listed:
        row = page.locator(f'tr[data-model="{model["name"]}"]')
        for key in ("name", "latest_version", "version_count", "flavor", "archived"):
            _same(session.field(row, key), model[key])

    for name in ("mlp", "clf"):
        page = session.goto(f"/ui/models/{name}")
        versions = daemon.json("model", "versions", name)
        assert page.locator("section.version").count() == len(versions)
        for info in versions:
            shown = daemon.json("model", "show", f"{name}:{info['version']}")
            section = page.locator(f'section.version[data-version="{info["version"]}"]')
            for key in ("flavor", "description", "created_at", "size", "digest", "archived"):
                _same(session.field(section, key), shown[key])
            aliases = [text.lstrip("@") for text in section.locator("[data-alias]").all_inner_texts()]
            assert sorted(aliases) == sorted(shown["aliases"])
            tags = section.locator("[data-tag]").all_inner_texts()
            assert tags == [f"{key}={value}" for key, value in sorted(shown["tags"].items())]
            for side in ("inputs", "outputs"):
                for tensor in shown["signature"][side]:
                    row = section.locator(f'tr[data-tensor="{side}:{tensor["name"]}"]')
                    _same(session.field(row, "datatype"), tensor["datatype"])
                    _same(session.field(row, "shape"), tensor["shape"])
            assert section.locator("tr[data-file]").count() == len(shown["files"])
            for file in shown["files"]:
                row = section.locator(f'tr[data-file="{file["path"]}"]')
                _same(session.field(row, "size"), file["size"])
                _same(session.field(row, "sha256"), file["sha256"])
    mlp = daemon.json("model", "show", "mlp@canary")
    assert mlp["version"] == 2 and mlp["tags"] == {"stage": "canary", "owner": "ml"}  # what was checked is there
    assert session.errors == []


def test_model_page_moves_an_alias_and_shows_which_deployments_serve_a_version(
    session: Session, daemon: Daemon
) -> None:
    page = session.goto("/ui/models/mlp")
    deployments = daemon.json("deployment", "list", "-e", "bg")
    served = {d["model"].removeprefix("azureml:") for d in deployments}
    assert served == {"mlp:1"}
    one = page.locator('section.version[data-version="1"]')
    assert sorted(one.locator("[data-used-by]").all_inner_texts()) == sorted(f"bg/{d['name']}" for d in deployments)
    assert page.locator('section.version[data-version="2"] [data-used-by]').count() == 0
    for version in (1, 2):  # pipelines pinning a version, as `model show` lists them
        shown = page.locator(f'section.version[data-version="{version}"] [data-pipeline]').all_inner_texts()
        assert (
            shown
            == daemon.json("model", "show", f"mlp:{version}")["used_by"]
            == ([] if version == 1 else ["pipeline flow:1"])
        )

    page.fill('form.alias input[name="alias"]', "prod")
    page.select_option('form.alias select[name="version"]', "2")
    with page.expect_navigation():
        page.click('form.alias button[type="submit"]')
    assert daemon.json("model", "show", "mlp@prod")["version"] == 2
    aliases = page.locator('section.version[data-version="2"] [data-alias]').all_inner_texts()
    assert sorted(aliases) == ["@canary", "@prod"]

    cli_error = daemon.fails("model", "alias", "set", "mlp", "latest", "1").removeprefix("error: ")
    page.fill('form.alias input[name="alias"]', "latest")
    page.select_option('form.alias select[name="version"]', "1")
    with page.expect_navigation():
        page.click('form.alias button[type="submit"]')
    assert page.locator("[data-error]").inner_text() == cli_error
    assert page.locator('form.alias input[name="alias"]').input_value() == "latest"
    daemon.ok("model", "alias", "set", "mlp", "prod", "1")  # back as the other tests expect it
    assert [e for e in session.errors if "400" not in e] == []
    session.errors.clear()  # the refused form answered 400, as it should


def test_environment_pages_show_what_the_cli_shows(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/environments")
    listed = daemon.json("environment", "list")
    assert page.locator("tr[data-environment]").count() == len(listed) == 1
    for env in listed:
        row = page.locator(f'tr[data-environment="{env["name"]}"]')
        for key in ("name", "version", "kind", "python", "created_at"):
            _same(session.field(row, key), env[key])
        _same(session.field(row, "requirements"), len(env["pip_requirements"]))
    page = session.goto("/ui/environments/sk")
    versions = daemon.json("environment", "versions", "sk")
    assert page.locator("section.version").count() == len(versions) == 2
    for info in versions:
        shown = daemon.json("environment", "show", f"sk:{info['version']}")
        section = page.locator(f'section.version[data-version="{info["version"]}"]')
        for key in ("kind", "python", "spec_file", "content_hash", "description", "created_at", "archived"):
            _same(session.field(section, key), shown[key])
        assert section.locator("[data-requirement]").all_inner_texts() == shown["pip_requirements"]
        assert section.locator("[data-tag]").all_inner_texts() == [f"{k}={v}" for k, v in sorted(shown["tags"].items())]
        assert session.field(section, "built").startswith("not built yet")  # nothing asked for it here
    spec = page.locator('section.version[data-version="2"] pre[data-spec]').inner_text()
    assert spec.strip() == "numpy>=1.24\nrequests==2.31.0"
    assert session.errors == []


def _split(scope: Any, kind: str) -> dict[str, int]:
    items = scope.locator(f'[data-split="{kind}"] [data-share]').all_inner_texts()
    return {name: int(share.rstrip("%")) for name, share in (item.split() for item in items)}


def _check_endpoint_page(session: Session, shown: dict[str, Any]) -> None:
    page = session.goto("/ui/endpoints/bg")
    for key in ("auth_mode", "scoring_uri", "openapi_uri", "created_at", "updated_at"):
        _same(session.field(page.locator("main dl").first, key), shown[key])
    assert _split(page, "traffic") == {k: v for k, v in shown["traffic"].items()}
    assert _split(page, "mirror") == shown["mirror_traffic"]
    for deployment in shown["deployments"]:
        section = page.locator(f'section.deployment[data-deployment="{deployment["name"]}"]')
        for key in ("model", "provisioning_state", "instance_count", "ready_replicas", "desired_replicas"):
            _same(session.field(section, key), deployment[key])
        for replica in deployment["replicas"]:
            row = section.locator(f'tr[data-replica="{replica["slot"]}"]')
            _same(session.field(row, "state"), replica["state"])
            _same(session.field(row, "pid"), replica["pid"])


def test_endpoint_pages_show_what_the_cli_shows(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/endpoints")
    listed = daemon.json("endpoint", "list")
    for endpoint in listed:
        row = page.locator(f'tr[data-endpoint="{endpoint["name"]}"]')
        for key in ("name", "auth_mode", "scoring_uri"):
            _same(session.field(row, key), endpoint[key])
    shown = daemon.json("endpoint", "show", "-n", "bg")
    assert shown["traffic"] == {"blue": 90, "green": 10}
    _check_endpoint_page(session, shown)
    assert session.errors == []


def test_live_traffic_counts_every_request_through_the_router(session: Session, daemon: Daemon) -> None:
    key = daemon.key("bg")
    answered: dict[str, int] = {}
    with httpx.Client(base_url=daemon.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        for _ in range(200):
            answer = client.post("/endpoints/bg/score", json={})
            assert answer.status_code == 200, answer.text
            answered[answer.json()["color"]] = answered.get(answer.json()["color"], 0) + 1
    page = session.goto("/ui/endpoints/bg")
    live = page.locator("section[data-live]")
    assert session.field(live, "total") == "200"
    assert session.field(live, "errors") == "0 errors"
    for deployment, count in answered.items():
        row = live.locator(f'tr[data-traffic="{deployment}"]')
        assert session.field(row, "requests") == str(count)
        assert float(session.field(row, "p99_ms")) >= float(session.field(row, "p50_ms")) > 0
        assert session.field(row, "error_rate") == "0.0%"
    assert live.locator("polyline.series").count() == 2 * len(answered)  # requests/s and p99 per deployment
    # the page's script swaps in a fresh fragment every few seconds, with the same counts
    page.evaluate("document.querySelector('section[data-live]').dataset.seen = '1'")
    page.locator("section[data-live][data-seen]").wait_for(state="detached", timeout=15000)
    assert session.field(page.locator("section[data-live]"), "total") == "200"
    assert session.errors == []


def test_traffic_form_changes_the_split_or_refuses_in_the_cli_words(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/endpoints/bg")
    page.fill('input[name="traffic-blue"]', "80")
    page.fill('input[name="traffic-green"]', "20")
    assert page.locator("output[data-sum]").inner_text() == "sum 100%"
    page.click('form.traffic button[type="submit"]')
    page.wait_for_url(f"{daemon.url}/ui/endpoints/bg")
    after = daemon.json("endpoint", "show", "-n", "bg")
    assert after["traffic"] == {"blue": 80, "green": 20}
    _check_endpoint_page(session, after)

    cli_error = daemon.fails("endpoint", "update", "-n", "bg", "--traffic", "blue=80 green=30")
    page = session.goto("/ui/endpoints/bg")
    page.fill('input[name="traffic-green"]', "30")
    with page.expect_navigation():
        page.click('form.traffic button[type="submit"]')
    assert page.locator("[data-error]").inner_text() == cli_error.removeprefix("error: ")
    assert page.locator('input[name="traffic-green"]').input_value() == "30"  # what was typed stays
    assert daemon.json("endpoint", "show", "-n", "bg") == after
    assert [e for e in session.errors if "400" not in e] == []  # the refused form answers 400


JOB_FIELDS = ("id", "status", "endpoint", "deployment", "engine", "output_file", "items_per_second", "eta_seconds")
JOB_FIELDS += ("error", "job_dir", "created_at", "started_at", "finished_at")


def test_job_pages_show_what_the_cli_shows(session: Session, daemon: Daemon, jobs: dict[str, str]) -> None:
    page = session.goto("/ui/jobs")
    listed = daemon.json("job", "list")
    assert page.locator("tr[data-job]").count() == len(listed) == 2
    for job in listed:
        row = page.locator(f'tr[data-job="{job["id"]}"]')
        for key in ("id", "status", "endpoint", "deployment", "created_at"):
            _same(session.field(row, key), job[key])
        for key in ("done", "failed", "total"):
            _same(session.field(row, key), job["minibatches"][key])
        _same(session.field(row, "failed_items"), job["items"]["failed"])

    for deployment, status in (("good", "Completed"), ("bad", "Failed")):
        page = session.goto(f"/ui/jobs/{jobs[deployment]}")
        shown = daemon.json("job", "show", jobs[deployment])
        assert shown["status"] == status
        facts = page.locator("dl.job")
        for key in JOB_FIELDS[1:]:
            _same(session.field(facts, key), shown[key])
        for group in ("input", "minibatches", "items"):
            for key, value in shown[group].items():
                _same(session.field(facts, f"{group}.{key}"), value)
        errors = page.locator("tr[data-error-row]")
        assert errors.count() == len(shown["errors"])
        for i, error in enumerate(shown["errors"]):
            _same(session.field(errors.nth(i), "items"), ", ".join(error["items"]))
            _same(session.field(errors.nth(i), "error"), error["error"])
        rows = page.locator("tr[data-minibatch]")
        assert rows.count() == shown["minibatches"]["total"]
        succeeded = rows.locator('[data-field="succeeded"]').all_inner_texts()
        assert sum(int(text) for text in succeeded) == shown["items"]["succeeded"]
        assert page.locator("form.cancel, form.resume").count() == 0  # a finished job has no actions
        assert page.locator("pre[data-log]").count() >= 1
    failed = daemon.json("job", "show", jobs["bad"])
    failed_items = {item for error in failed["errors"] for item in error["items"]}
    assert failed_items and failed_items <= {"f03.txt", "f07.txt"}  # it may stop at the first past its threshold
    assert [e for e in session.errors if "400" not in e] == []  # the traffic form's refusal answered 400


def test_job_resume_and_cancel_from_the_page(session: Session, daemon: Daemon, jobs: dict[str, str]) -> None:
    folder = daemon.home.parent
    job_id = daemon.json("batch-endpoint", "invoke", "-n", "be", "-d", "slow", "--input", str(folder / "files"))["id"]
    deadline = time.monotonic() + 60
    while (job := daemon.json("job", "show", job_id))["status"] != "Running" or not job["runner_pid"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    os.kill(job["runner_pid"], signal.SIGKILL)
    while (job := daemon.json("job", "show", job_id))["status"] != "NotResponding":
        assert time.monotonic() < deadline, job
        time.sleep(0.3)

    page = session.goto(f"/ui/jobs/{job_id}")
    assert session.field(page.locator("dl.job"), "status") == "NotResponding"
    with page.expect_navigation():
        page.click('form.resume button[type="submit"]')
    resumed = daemon.json("job", "show", job_id)
    assert resumed["status"] in ("NotStarted", "Preparing", "Running") and resumed["runner_pid"] != job["runner_pid"]
    assert page.locator("form.resume").count() == 0 or resumed["status"] == "NotStarted"
    with page.expect_navigation():
        page.click('form.cancel button[type="submit"]')
    while (job := daemon.json("job", "show", job_id))["status"] != "Canceled":
        assert time.monotonic() < deadline and job["status"] in ("CancelRequested", "Running"), job
        time.sleep(0.3)
    assert session.field(session.goto(f"/ui/jobs/{job_id}").locator("dl.job"), "status") == "Canceled"
    assert job["minibatches"]["done"] < job["minibatches"]["total"]  # it stopped before the end
    assert [e for e in session.errors if "400" not in e] == []

    # what the CLI refuses is refused in its words, and changes nothing
    cli_error = daemon.fails("job", "cancel", jobs["good"]).removeprefix("error: ")
    with httpx.Client(base_url=daemon.url) as client:
        csrf = _login(daemon, client)
        answer = client.post(f"/ui/jobs/{jobs['good']}/cancel", data={"csrf": csrf})
        assert answer.status_code == 409 and cli_error in answer.text, answer.text
        assert client.post(f"/ui/jobs/{jobs['good']}/resume", data={}).status_code == 403  # no CSRF token
    assert daemon.json("job", "show", jobs["good"])["status"] == "Completed"


def test_keys_are_in_the_page_only_once_revealed(session: Session, daemon: Daemon) -> None:
    keys = daemon.json("endpoint", "get-credentials", "-n", "bg")
    for path in ("/ui/endpoints", "/ui/endpoints/bg", "/ui/models", "/ui/models/mlp"):
        html = session.goto(path).content()
        assert keys["primaryKey"] not in html and keys["secondaryKey"] not in html
    page = session.goto("/ui/endpoints/bg")
    with page.expect_navigation():
        page.click('form.reveal button[type="submit"]')
    assert page.locator('[data-key="primaryKey"]').inner_text() == keys["primaryKey"]
    assert page.locator('[data-key="secondaryKey"]').inner_text() == keys["secondaryKey"]
    revealed = page.locator('pre[data-snippet="python"]').inner_text()
    assert (
        keys["primaryKey"] in revealed and keys["primaryKey"] in page.locator('pre[data-snippet="curl"]').inner_text()
    )
    assert _run_snippet(revealed, {})["color"] in ("blue", "green")


def test_consume_snippets_call_the_endpoint(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/endpoints/bg")
    hidden = {kind: page.locator(f'pre[data-snippet="{kind}"]').inner_text() for kind in ("curl", "python")}
    assert all("$ENDPOINT_KEY" in text or 'os.environ["ENDPOINT_KEY"]' in text for text in hidden.values())
    answer = _run_snippet(hidden["python"], {"ENDPOINT_KEY": daemon.key("bg", "secondaryKey")})
    assert answer["color"] in ("blue", "green")
    with pytest.raises(subprocess.CalledProcessError):
        _run_snippet(hidden["python"], {"ENDPOINT_KEY": "not-the-key"})  # 401: raise_for_status
    triton = page.locator('pre[data-snippet="tritonclient"]').inner_text()
    compile(triton, "tritonclient snippet", "exec")  # the score.py deployments here answer /score, not v2
    assert f'InferenceServerClient("127.0.0.1:{daemon.port}/endpoints/bg")' in triton
    assert [e for e in session.errors if "400" not in e] == []


def _run_snippet(code: str, env: dict[str, str]) -> Any:
    """What a snippet prints (the scoring script's answer, a dict), run as a user would run it."""
    done = subprocess.run(
        [sys.executable, "-c", code + "\n"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return ast.literal_eval(done.stdout)


def test_the_test_panel_scores_through_the_router_and_never_shows_the_key(session: Session, daemon: Daemon) -> None:
    keys = daemon.json("endpoint", "get-credentials", "-n", "bg")
    signature = daemon.json("model", "show", "mlp:1")["signature"]
    page = session.goto("/ui/endpoints/bg")
    sample = json.loads(page.locator('form.test textarea[name="body"]').input_value())
    assert [(t["name"], t["datatype"]) for t in sample["inputs"]] == [
        (t["name"], t["datatype"]) for t in signature["inputs"]
    ]
    page.select_option('form.test select[name="deployment"]', "green")
    with page.expect_navigation():
        page.click('form.test button[type="submit"]')
    answer = page.locator("section[data-answer]")
    assert session.field(answer, "answer_status") == "200"
    assert session.field(answer, "answer_deployment") == "green"
    assert json.loads(session.field(answer, "answer_body"))["color"] == "green"  # the pinned deployment answered
    html = page.content()
    assert keys["primaryKey"] not in html and keys["secondaryKey"] not in html

    page.fill('form.test textarea[name="body"]', "{not json")
    with page.expect_navigation():
        page.click('form.test button[type="submit"]')
    assert page.locator("[data-error]").inner_text().startswith("body: not JSON (")
    assert page.locator('form.test textarea[name="body"]').input_value() == "{not json"  # what was typed stays
    page.fill('form.test textarea[name="body"]', "{}")
    page.fill('form.test input[name="path"]', "admin")
    with page.expect_navigation():
        page.click('form.test button[type="submit"]')
    assert session.field(page.locator("section[data-answer]"), "answer_status") == "404"  # the router's refusal
    assert [e for e in session.errors if "400" not in e] == []


def test_only_the_daemon_is_asked_and_pages_are_not_blank(
    session: Session, browser: Any, daemon: Daemon, jobs: dict[str, str]
) -> None:
    shots = {}
    jobs_page = f"/ui/jobs/{jobs['bad']}"
    pages = ("/ui/endpoints", "/ui/endpoints/bg", "/ui/models", "/ui/models/mlp", "/ui/environments/sk", "/ui/jobs")
    pages += ("/ui/monitoring", "/ui/monitoring/bg/blue")
    for path in (*pages, jobs_page):
        shots[path] = session.goto(path).screenshot()
    assert session.requests and all(url.startswith(daemon.url + "/") for url in session.requests), session.requests
    scripts = [url for url in session.requests if url.endswith(".js")]
    assert sum(len(httpx.get(url).content) for url in set(scripts)) <= 100 * 1024
    assert [e for e in session.errors if "400" not in e] == []
    checker = browser.new_page()  # outside the recorded context: it reads PNGs from data: URLs
    for path, png in shots.items():
        colours, inked = checker.evaluate(COUNT_PIXELS, base64.b64encode(png).decode())
        assert colours >= 8 and inked >= 0.01, (path, colours, inked)
    checker.close()


def _rows(page: Any, selector: str) -> list[dict[str, str]]:
    """Every ``data-field`` of each element matching ``selector``, read in one round trip."""
    return page.eval_on_selector_all(
        selector,
        """rows => rows.map(row => Object.fromEntries(
            [...row.querySelectorAll('[data-field]')].map(cell => [cell.dataset.field, cell.textContent.trim()])))""",
    )


def test_drift_page_shows_the_report_monitor_drift_makes(
    session: Session, daemon: Daemon, served: dict[str, Any]
) -> None:
    page = session.goto("/ui/monitoring")
    assert session.field(page.locator('tr[data-monitored="mx/plain"]'), "collected") == "model_inputs"
    assert session.field(page.locator('tr[data-monitored="bg/blue"]'), "collected") == "nothing collected"
    with page.expect_navigation():
        page.click('tr[data-monitored="mx/plain"] a')
    page.fill('form.drift input[name="baseline"]', served["baseline"])
    with page.expect_navigation():
        page.click('form.drift button[type="submit"]')
    report = daemon.json("monitor", "drift", "--baseline", served["baseline"], "--target", "mx/plain")
    assert report["verdict"] == "drift" and "input_0" in report["drifted"]  # what was checked is there
    assert session.field(page, "verdict") == report["verdict"]
    _same(session.field(page, "drifted"), report["drifted"])
    for group in ("baseline", "target"):
        for key in ("source", "rows"):
            _same(session.field(page, f"{group}.{key}"), report[group][key])
    for key, value in report["thresholds"].items():
        _same(session.field(page, f"thresholds.{key}"), value)
    rows = _rows(page, "tr[data-feature]")
    assert [row["name"] for row in rows] == [feature["name"] for feature in report["features"]]
    for row, feature in zip(rows, report["features"]):
        for key in ("kind", "type", "metric", "value", "threshold", "drifted"):
            _same(row[key], feature[key])
        _same(row["psi"], feature["metrics"]["psi"])
    assert page.locator("figure[data-plot] svg rect").count() > 2 * len(rows)  # the report's own plots
    download = page.request.get(daemon.url + str(page.locator("a[download]").get_attribute("href")))
    assert download.ok and "attachment" in download.headers["content-disposition"]
    assert "<svg" in download.text() and "input_0" in download.text()

    cli_error = daemon.fails("monitor", "drift", "--baseline", "/no/such.csv", "--target", "mx/plain")
    page.fill('form.drift input[name="baseline"]', "/no/such.csv")
    with page.expect_navigation():
        page.click('form.drift button[type="submit"]')
    assert page.locator("[data-error]").inner_text() == cli_error.removeprefix("error: ")
    assert [e for e in session.errors if "400" not in e] == []
    session.errors.clear()  # the refused baseline answered 400, as it should


def test_profile_page_shows_a_saved_profile_and_its_trials(session: Session, daemon: Daemon) -> None:
    saved = daemon.home.parent / "profile.json"
    profiling: subprocess.Popen[str] = daemon.profiling  # type: ignore[attr-defined]
    _, stderr = profiling.communicate(timeout=180)
    assert profiling.returncode == 0, stderr
    document = json.loads(saved.read_text())
    page = session.goto("/ui/monitoring")
    page.fill('form.profile input[name="file"]', str(saved))
    with page.expect_navigation():
        page.click('form.profile button[type="submit"]')
    facts = page.locator("dl.profile")
    for key in ("name", "state", "recommendedTrial", "recommendedCpu", "recommendedMemoryInGB", "latencyBudgetInMs"):
        _same(session.field(facts, key), document[key])
    assert json.loads(session.field(facts, "modelConfig")) == document["modelConfig"]
    rows = _rows(page, "tr[data-trial]")
    assert len(rows) == len(document["trials"]) >= 2
    for row, trial in zip(rows, document["trials"]):
        for key, value in row.items():
            _same(value, trial[key])
    assert page.locator(f'tr.recommended[data-trial="{document["recommendedTrial"]}"]').count() == 1
    for bad, reason in (
        (saved.parent / "nothing.json", "does not exist"),
        (saved.parent / "flow.yml", "is not a profile"),
    ):
        answer = page.goto(f"{daemon.url}/ui/monitoring/profile?file={bad}")
        assert answer is not None and answer.status == 400
        assert page.locator("[data-error]").inner_text() == f"file: {bad} {reason}" + (
            " (modelport profile --save writes one)" if reason == "is not a profile" else ""
        )
    assert [e for e in session.errors if "400" not in e] == []
    session.errors.clear()  # the refused files answered 400, as they should


def test_live_view_shows_the_batch_size_the_replicas_measured(
    session: Session, daemon: Daemon, served: dict[str, Any]
) -> None:
    page = session.goto("/ui/endpoints/mx")
    row = page.locator('section[data-live] tr[data-traffic="plain"]')
    assert session.field(row, "requests") == str(SERVED_REQUESTS)
    replica = daemon.replicas("mx", "plain")[0]
    metrics = httpx.get(replica["metrics_url"]).text
    counts = {
        name: float(line.split()[-1])
        for line in metrics.splitlines()
        for name in ("sum", "count")
        if line.startswith(f"modelport_inference_batch_size_{name}")
    }
    assert counts["count"] == SERVED_REQUESTS and counts["sum"] == 2 * SERVED_REQUESTS  # what was checked is there
    assert session.field(row, "batch_size") == f"{counts['sum'] / counts['count']:.2f}"
    assert session.field(row, "executions") == str(int(counts["count"]))
    assert page.locator("section[data-live] figure").nth(2).locator("polyline.series").count() == 1
    assert page.locator('section[data-live] tr[data-traffic] [data-field="batch_size"]').count() == 1
    assert session.errors == []


def test_endpoint_page_shows_each_deployments_log_tail(session: Session, daemon: Daemon) -> None:
    page = session.goto("/ui/endpoints/bg")
    for name in ("blue", "green"):
        printed = daemon.ok("deployment", "logs", "-e", "bg", "-n", name, "--lines", "40").stdout
        assert "init " + name in printed or "scored by" in printed
        assert page.locator(f'pre[data-log="{name}"]').text_content().strip() == printed.strip()
    assert session.errors == []


def test_swagger_ui_shows_the_endpoints_openapi_document_from_the_daemon(
    browser: Any, daemon: Daemon, session: Session
) -> None:
    swagger = Session(browser, daemon)  # its own record of requests: Swagger UI is not in the 100 KB budget
    swagger.context.add_cookies(session.context.cookies())
    page = swagger.goto("/ui/endpoints/bg")
    with page.expect_navigation():
        page.click("a[data-swagger]")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=20000)
    assert "/score" in page.locator(".swagger-ui").inner_text()
    served = page.request.get(f"{daemon.url}/ui/endpoints/bg/openapi.json").json()
    original = httpx.get(
        f"{daemon.url}/endpoints/bg/swagger.json", headers={"authorization": f"Bearer {daemon.key('bg')}"}
    ).json()
    if "swagger" in original:
        assert served == {
            **{k: v for k, v in original.items() if k not in ("host", "schemes")},
            "basePath": "/endpoints/bg",
        }
    else:
        assert served == {**original, "servers": [{"url": "/endpoints/bg"}]}
    assert all(url.startswith(daemon.url + "/") for url in swagger.requests), swagger.requests
    assert swagger.errors == []
    swagger.close()


# Decodes a PNG in a canvas: how many distinct colours, and what share of pixels is not the top-left one.
COUNT_PIXELS = """async (b64) => {
  const image = new Image();
  image.src = "data:image/png;base64," + b64;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, image.width, image.height).data;
  const colours = new Set();
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    const colour = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    colours.add(colour);
    if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) inked++;
  }
  return [colours.size, inked / (data.length / 4)];
}"""


# -- without a session, and what browsers never send (httpx) -----------------------------------


def _altered(token: str) -> str:
    """``token`` with its first character changed, so it can never equal ``token``."""
    return ("1" if token[0] == "0" else "0") + token[1:]


def _login(daemon: Daemon, client: httpx.Client) -> str:
    """Signs ``client`` in with the token through the form; the session's CSRF token."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    signed = client.post("/ui/login", data={"csrf": nonce.group(1), "token": daemon.token()})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/endpoints", signed.text
    page = client.get("/ui/endpoints/bg")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    return csrf.group(1)


def test_without_a_session_pages_redirect_and_forms_are_refused(daemon: Daemon, jobs: dict[str, str]) -> None:
    job = f"/ui/jobs/{jobs['bad']}"
    pages = ("/", "/ui", "/ui/", "/ui/models", "/ui/models/mlp", "/ui/endpoints", "/ui/endpoints/bg", "/ui/jobs", job)
    pages += ("/ui/environments", "/ui/environments/sk", "/ui/monitoring", "/ui/monitoring/bg/blue")
    pages += ("/ui/monitoring/profile?file=/etc/passwd", "/ui/endpoints/bg/swagger", "/ui/endpoints/bg/openapi.json")
    pages += ("/ui/swagger/swagger-ui-bundle.js", "/ui/monitoring/bg/blue/report.html?baseline=/etc/passwd")
    with httpx.Client(base_url=daemon.url) as client:
        for path in (*pages, "/ui/endpoints/bg/live"):
            answer = client.get(path)
            assert answer.status_code == 303, (path, answer.status_code)
            assert client.get(path, follow_redirects=True).url.path == "/ui/login"
        login = client.get("/ui/login")
        assert login.status_code == 200
        assert login.headers["content-security-policy"].startswith("default-src 'self'")
        assert login.headers["x-frame-options"] == "DENY"
        assert "<script" not in login.text.replace('<script src="/ui/static/dashboard.js" defer></script>', "")
        for path in (
            "/ui/endpoints/bg/traffic",
            "/ui/endpoints/bg/keys",
            "/ui/endpoints/bg/test",
            "/ui/models/mlp/alias",
            "/ui/logout",
            f"{job}/cancel",
            f"{job}/resume",
        ):
            answer = client.post(path, data={"traffic-blue": "0", "traffic-green": "100"})
            assert answer.status_code == 401, (path, answer.status_code)
        wrong = client.post("/ui/login", data={"csrf": "x", "token": daemon.token()})
        assert wrong.status_code == 403  # the login form's double-submit value is missing
    assert daemon.json("endpoint", "show", "-n", "bg")["traffic"] in (
        {"blue": 90, "green": 10},
        {"blue": 80, "green": 20},
    )


def test_forms_without_csrf_or_from_another_origin_are_refused(daemon: Daemon) -> None:
    before = daemon.json("endpoint", "show", "-n", "bg")
    with httpx.Client(base_url=daemon.url) as client:
        csrf = _login(daemon, client)
        bad = {"traffic-blue": "0", "traffic-green": "100"}
        assert client.post("/ui/endpoints/bg/traffic", data=bad).status_code == 403
        assert client.post("/ui/endpoints/bg/traffic", data={**bad, "csrf": _altered(csrf)}).status_code == 403
        keys = client.post("/ui/endpoints/bg/keys", data={})
        assert keys.status_code == 403 and "Key" not in keys.text
        for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
            answer = client.post("/ui/endpoints/bg/traffic", data={**bad, "csrf": csrf}, headers=headers)
            assert answer.status_code == 403, answer.text
        assert daemon.json("endpoint", "show", "-n", "bg") == before
        # the session is a credential of the management API too, state changes with X-CSRF-Token only
        assert client.get("/api/endpoints/bg").json()["name"] == "bg"
        assert client.post("/api/ui/login-links").status_code == 401
        assert client.post("/api/ui/login-links", headers={"x-csrf-token": csrf}).status_code == 201
        # signing out ends the session
        assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303
        assert client.get("/ui/endpoints").status_code == 303


def test_modelport_ui_link_signs_in_once(daemon: Daemon, tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    recorder = f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])"
    daemon.cli.env["BROWSER"] = f"{sys.executable} -c {json.dumps(recorder)} %s"
    try:
        printed = daemon.ok("ui").stdout
    finally:
        del daemon.cli.env["BROWSER"]
    link = opened.read_text()
    assert f"login link (works once, for 300 s): {link}\n" in printed and link.startswith(
        daemon.url + "/ui/login?code="
    )
    with httpx.Client() as client:
        first = client.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/ui/endpoints"
        cookie = first.headers["set-cookie"]
        assert all(part in cookie for part in ("HttpOnly", "SameSite=Strict", "Path=/")) and "Secure" not in cookie
        assert client.get(f"{daemon.url}/ui/endpoints").status_code == 200
    again = httpx.get(link)
    assert again.status_code == 400 and "used already" in again.text
    printed = daemon.ok("ui", "--no-browser").stdout
    assert "login link" in printed
    assert httpx.get(f"{daemon.url}/ui/login?code=guessed").status_code == 400
