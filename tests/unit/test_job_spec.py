"""A batch job's stored spec: typed on read, the same JSON on write, so rows written before read back."""

from __future__ import annotations

import pytest

from modelport.core.errors import IntegrityError
from modelport.schema.job import DeploymentSpec, JobSpec

STORED = {  # a job row's spec as batch jobs have always written it
    "description": "",
    "tags": {"team": "risk"},
    "model": "fraud:3",
    "flavor": "sklearn",
    "code": "/srv/fraud/code",
    "scoring_script": "score.py",
    "environment": "fraud-env:1",
    "settings": {"mini_batch_size": 10, "output_action": "append_row"},
    "output_dir": "/srv/jobs/batchjob-1/outputs",
    "ray_address": None,
}


def test_a_stored_row_reads_back_and_writes_the_same_json() -> None:
    spec = JobSpec.read(STORED)
    assert (spec.model, spec.code, spec.scoring_script, spec.ray_address) == (
        "fraud:3",
        "/srv/fraud/code",
        "score.py",
        None,
    )
    assert spec.settings["mini_batch_size"] == 10
    assert spec.to_json() == STORED


def test_a_job_spec_is_its_deployment_spec_plus_where_it_runs() -> None:
    deployment = DeploymentSpec.read({key: STORED[key] for key in DeploymentSpec.model_fields})
    job = JobSpec(**{**deployment.to_json(), "output_dir": "/out", "ray_address": "ray://head:10001"})
    assert job.to_json() == {**STORED, "output_dir": "/out", "ray_address": "ray://head:10001"}


def test_rows_from_older_and_newer_versions_read() -> None:
    older = {key: value for key, value in STORED.items() if key != "ray_address"}
    assert JobSpec.read(older).ray_address is None
    assert JobSpec.read({**STORED, "added_later": 1}).to_json() == STORED


def test_a_damaged_row_names_the_field() -> None:
    with pytest.raises(IntegrityError, match=r"^stored JobSpec: settings: expected a mapping, got a list$"):
        JobSpec.read({**STORED, "settings": []})
    with pytest.raises(IntegrityError, match=r"^stored JobSpec: output_dir: required$"):
        JobSpec.read({key: value for key, value in STORED.items() if key != "output_dir"})
