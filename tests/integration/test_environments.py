"""Environments through the CLI: versioned specs and a build that is cached by content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ok


def test_create_versions_show(cli, tmp_path: Path) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(
        "name: sklearn-env\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26\n"
        "  - pip\n  - pip:\n    - scikit-learn==1.5.0\n    - azureml-defaults\n"
    )
    created = cli("environment", "create", "-n", "sk", "-f", conda)
    ok(created)
    assert "numpy=1.26" in created.stderr  # conda-only packages are reported by name
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# pinned\nrequests==2.32.0\n")
    info = json.loads(ok(cli("environment", "create", "-n", "sk", "-f", reqs, "--python", "3.10", "-o", "json")))
    assert (info["version"], info["kind"], info["python"]) == (2, "pip", "3.10")
    first = json.loads(ok(cli("environment", "show", "sk:1", "-o", "json")))
    assert first["pip_requirements"] == ["scikit-learn==1.5.0", "azureml-defaults"]
    assert (first["python"], first["conda_only"]) == ("3.11", ["numpy=1.26"])
    listed = json.loads(ok(cli("environment", "list", "-o", "json")))
    assert [(e["name"], e["version"]) for e in listed] == [("sk", 2)]
    assert [v["version"] for v in json.loads(ok(cli("environment", "versions", "sk", "-o", "json")))] == [1, 2]


@pytest.mark.slow
def test_build_is_cached(sqlite_cli, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("")  # no packages: the venv alone; the builder's own tests install wheels
    ok(sqlite_cli("environment", "create", "-n", "bare", "-f", reqs))
    reqs2 = tmp_path / "other" / "requirements.txt"
    reqs2.parent.mkdir()
    reqs2.write_text("# same content, other comment\n")
    ok(sqlite_cli("environment", "create", "-n", "bare2", "-f", reqs2))
    first = json.loads(ok(sqlite_cli("environment", "build", "bare", "-o", "json", timeout=300)))
    assert first["reused"] is False and Path(first["python"]).exists()
    second = json.loads(ok(sqlite_cli("environment", "build", "bare", "-o", "json")))
    assert second == {**first, "reused": True}
    other = json.loads(ok(sqlite_cli("environment", "build", "bare2", "-o", "json")))
    assert other["reused"] is True and other["path"] == first["path"]
