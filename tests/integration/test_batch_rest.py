"""Batch jobs started over HTTP: ``POST /batch-endpoints/NAME/jobs`` on a real ``modelport up``
daemon, with the batch endpoint's key, runs the job ``invoke`` would run, and the job it starts
is the one ``modelport job show`` reports."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from endpoint_daemon import Daemon
from sqlalchemy import text

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import build_mlp_onnx
from modelport.store.db import create_db_engine, migrate

SCRIPT = """
import os

def init():
    assert os.path.isdir(os.environ["AZUREML_MODEL_DIR"])

def run(mini_batch):
    return [f"{os.path.basename(path)} {os.path.getsize(path)}" for path in mini_batch]
"""


def _workspace(root: Path) -> Path:
    """Batch endpoints ``ep`` (default deployment ``files``: a scoring script over files) and
    ``other``, and a folder of 7 files to score."""
    code = root / "code"
    code.mkdir(parents=True)
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    model = build_mlp_onnx(root / "model.onnx")
    with Workspace(root / "ws") as ws:
        endpoints = BatchEndpoints(ws)
        for name in ("ep", "other"):
            endpoints.create_endpoint(parse_endpoint({"name": name}).value)
        endpoints.create_deployment(
            parse_deployment(
                {
                    "name": "files",
                    "endpoint_name": "ep",
                    "model": {"name": "mlp", "path": str(model)},
                    "code_configuration": {"code": str(code), "scoring_script": "score.py"},
                    "settings": {"mini_batch_size": 2},
                },
                root,
            ).value,
            set_default=True,
        )
    images = root / "images"
    images.mkdir()
    for index in range(7):
        (images / f"img_{index}.bin").write_bytes(b"x" * (index + 1))
    return images


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _error(response: httpx.Response, status: int, *needles: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def _until_done(client: httpx.Client, url: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = client.get(url, headers=_bearer(key)).json()
        if job["status"] in ("Completed", "Failed", "Canceled", "NotResponding"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job at {url} did not finish within 180 s: {job}")


def test_job_started_over_http_with_the_key_completes_and_is_the_job_that_job_show_reports(tmp_path: Path) -> None:
    images = _workspace(tmp_path)
    daemon = Daemon(tmp_path / "ws")
    daemon.up()
    try:
        base = f"{daemon.url}/batch-endpoints"
        keys = daemon.json("batch-endpoint", "get-credentials", "-n", "ep")
        primary, secondary = keys["primaryKey"], keys["secondaryKey"]
        assert len({primary, secondary}) == 2 and all(len(key) >= 40 for key in keys.values())
        other = daemon.json("batch-endpoint", "get-credentials", "-n", "other")["primaryKey"]
        shown = daemon.json("batch-endpoint", "show", "-n", "ep")
        assert shown["scoring_uri"] == f"{base}/ep/jobs" and primary not in json.dumps(shown)
        request = {"input": str(images), "set": ["mini_batch_size=3"]}

        with httpx.Client(timeout=60, trust_env=False) as client:
            # refused without the key, with a wrong one, another endpoint's or the workspace's token
            response = client.post(f"{base}/ep/jobs", json=request)
            _error(response, 401, "key of batch endpoint 'ep'")
            assert response.headers["www-authenticate"] == "Bearer"
            for wrong in ("nope", other, daemon.token()):
                _error(client.post(f"{base}/ep/jobs", json=request, headers=_bearer(wrong)), 401)
            _error(client.post(f"{base}/nothere/jobs", json=request, headers=_bearer(primary)), 404, "'nothere'")
            _error(client.get(f"{base}/ep/jobs", headers={**_bearer(primary), "host": "evil.example"}), 421)
            assert json.loads(daemon.ok("job", "list", "-o", "json").stdout) == []  # nothing started

            # started with the key: 202, the job's id and where to watch it
            response = client.post(f"{base}/ep/jobs", json=request, headers=_bearer(primary))
            assert response.status_code == 202, response.text
            started = response.json()
            job_id, status_url = started["id"], started["status_url"]
            assert job_id.startswith("batchjob-") and started["deployment"] == "files"
            assert status_url == f"{base}/ep/jobs/{job_id}" == response.headers["location"]

            job = _until_done(client, status_url, secondary)  # either key watches it
            assert job["status"] == "Completed", job
            assert job["items"] == {"total": 7, "succeeded": 7, "failed": 0}
            assert job["settings"]["mini_batch_size"] == 3 and job["minibatches"]["total"] == 3
            assert daemon.json("job", "show", job_id) == job  # the very job the CLI reports
            rows = Path(job["output_file"]).read_text().splitlines()
            assert rows == [f"img_{index}.bin {index + 1}" for index in range(7)]
            assert Path(job["output_file"]).is_relative_to(tmp_path / "ws" / "jobs" / job_id)

            listed = client.get(f"{base}/ep/jobs", headers=_bearer(primary))
            assert [j["id"] for j in listed.json()] == [job_id]
            assert listed.json() == daemon.json("job", "list", "-e", "ep")
            assert client.get(f"{base}/other/jobs", headers=_bearer(other)).json() == []
            _error(client.get(f"{base}/other/jobs/{job_id}", headers=_bearer(other)), 404, job_id)
            _error(client.get(status_url), 401)

            # a regenerated key stops working at once; the other one keeps working
            daemon.ok("batch-endpoint", "regenerate-keys", "-n", "ep", "--key", "primary")
            _error(client.get(status_url, headers=_bearer(primary)), 401)
            assert client.get(status_url, headers=_bearer(secondary)).status_code == 200
            fresh = daemon.json("batch-endpoint", "get-credentials", "-n", "ep")["primaryKey"]
            assert fresh != primary and client.get(status_url, headers=_bearer(fresh)).status_code == 200
    finally:
        daemon.down()


def test_bad_job_requests_get_one_line_naming_the_field_and_start_nothing(tmp_path: Path) -> None:
    images = _workspace(tmp_path)
    daemon = Daemon(tmp_path / "ws")
    daemon.up()
    try:
        key = _bearer(daemon.json("batch-endpoint", "get-credentials", "-n", "ep")["primaryKey"])
        url = f"{daemon.url}/batch-endpoints/ep/jobs"
        absolute = str(images)
        with httpx.Client(timeout=60, trust_env=False) as client:
            bad_bodies = [
                ({}, "input: required"),
                ({"input": None}, "input: required"),
                ({"input": "images"}, "input: 'images' is a relative path"),
                ({"input": 7}, "input: must be a non-empty string"),
                ({"input": str(tmp_path / "missing")}, "input:"),
                ({"input": absolute, "set": "mini_batch_size=3"}, "set: must be a list"),
                ({"input": absolute, "set": ["mini_batch_size"]}, "set[0]: 'mini_batch_size' is not SETTING=VALUE"),
                ({"input": absolute, "set": ["mini_batch_size=0"]}, "set mini_batch_size"),
                ({"input": absolute, "set": ["colour=red"]}, "set colour: not a batch setting"),
                ({"input": absolute, "input_type": "images"}, "input_type: 'images'"),
                ({"input": absolute, "engine": "spark"}, "engine: 'spark' is not one of local, ray"),
                ({"input": absolute, "colour": "red"}, "colour: not a field of a job request"),
                ({"input": absolute, "output_path": "/tmp"}, "output_path: not accepted over HTTP"),
                ({"input": absolute, "overwrite": True}, "overwrite: not accepted over HTTP"),
                ([absolute], "request body: expected a JSON object"),
            ]
            for body, needle in bad_bodies:
                _error(client.post(url, json=body, headers=key), 400, needle)
            _error(client.post(url, json={"input": absolute, "deployment": "nope"}, headers=key), 404, "'nope'")
            _error(
                client.post(url, content=b"{not json", headers={**key, "content-type": "application/json"}),
                400,
                "request body: not valid JSON",
            )
            _error(
                client.post(
                    url, content=json.dumps({"input": absolute}), headers={**key, "content-type": "text/plain"}
                ),
                415,
                "Content-Type text/plain",
            )
            big = json.dumps({"input": absolute, "pad": "x" * (2 * 1024 * 1024)})
            _error(client.post(url, content=big, headers={**key, "content-type": "application/json"}), 413)

            def chunks():  # no Content-Length: refused once past the limit
                yield b'{"input": "' + b"x" * 1024 * 1024
                yield b'"}'

            _error(client.post(url, content=chunks(), headers={**key, "content-type": "application/json"}), 413)
            response = client.put(url, json={"input": absolute}, headers=key)
            _error(response, 405)
            assert response.headers["allow"] == "GET, POST"
            _error(client.delete(f"{url}/batchjob-x", headers=key), 405)
            _error(client.get(f"{url}/batchjob-nope", headers=key), 404, "batchjob-nope")
            _error(client.get(f"{daemon.url}/batch-endpoints/ep/deployments", headers=key), 404, "not a route")
            assert client.get(url, headers=key).json() == []  # nothing was started
            assert client.post(url, json={"input": absolute}, headers=key).status_code == 202  # still serving
    finally:
        daemon.down()


def test_batch_endpoints_made_before_keys_get_two_keys(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'modelport.db'}"
    engine = create_db_engine(db_url)
    migrate(engine, tmp_path, revision="0004")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO batch_endpoints (name, description, tags, created_at, updated_at) "
                "VALUES ('old', '', '{}', '2025-01-01', '2025-01-01')"
            )
        )
    engine.dispose()
    with Workspace(tmp_path / "ws", db_url=db_url) as ws:
        primary, secondary = BatchEndpoints(ws).keys("old")
        assert len(primary) >= 40 and len(secondary) >= 40 and primary != secondary
        assert BatchEndpoints(ws).get_endpoint("old").name == "old"
