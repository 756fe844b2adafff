"""Listing the registry costs a fixed number of SQL statements, however many models, environments
and versions it holds: each statement is counted where SQLAlchemy hands it to the driver."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import event

from modelport.samples import build_mlp_onnx
from modelport.workspace import Workspace


@contextlib.contextmanager
def counted(workspace: Workspace) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(workspace.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(workspace.db.engine, "before_cursor_execute", record)


def _models(workspace: Workspace, tmp_path: Path, name: str, seeds: range) -> None:
    for seed in seeds:
        folder = tmp_path / f"{name}-{seed}"
        build_mlp_onnx(folder / "model.onnx", seed=seed)
        (folder / "notes.txt").write_text(f"version {seed}\n")
        workspace.models.register(folder, name, tags={"seed": seed})
    workspace.models.set_alias(name, "prod", 1)


def _environments(workspace: Workspace, tmp_path: Path, name: str, versions: range) -> None:
    for index in versions:
        spec = tmp_path / f"{name}-{index}.txt"
        spec.write_text(f"numpy>=1.{index}\n")
        workspace.environments.create(name, spec)


def _costs(workspace: Workspace) -> dict[str, int]:
    costs = {}
    for label, call in {
        "model versions": lambda: workspace.models.versions("many"),
        "model list": lambda: workspace.models.list(),
        "model list, archived too": lambda: workspace.models.list(include_archived=True),
        "environment versions": lambda: workspace.environments.versions("env-0"),
        "environment list": lambda: workspace.environments.list(),
    }.items():
        with counted(workspace) as statements:
            call()
        costs[label] = len(statements)
    return costs


def test_listings_cost_the_same_statements_for_two_versions_or_seven(workspace: Workspace, tmp_path: Path) -> None:
    _models(workspace, tmp_path, "many", range(2))
    _models(workspace, tmp_path, "other", range(1))
    _environments(workspace, tmp_path, "env-0", range(2))
    few = _costs(workspace)
    _models(workspace, tmp_path, "many", range(2, 7))
    for index in range(1, 5):
        _models(workspace, tmp_path, f"extra-{index}", range(1))
        _environments(workspace, tmp_path, f"env-{index}", range(1))
    _environments(workspace, tmp_path, "env-0", range(2, 7))
    workspace.models.archive("extra-1")
    assert _costs(workspace) == few
    assert few["model versions"] <= 6 and few["model list"] <= 3, few  # with BEGIN on SQLite

    versions = workspace.models.versions("many")
    assert [info.version for info in versions] == list(range(1, 8))
    assert [info.aliases for info in versions[:2]] == [["prod"], []]
    assert all([file["path"] for file in info.files] == ["model.onnx", "notes.txt"] for info in versions)
    assert versions[3].tags == {"seed": "3"} and versions[3].files[1]["size"] == len("version 3\n")
    listed = {summary.name: summary for summary in workspace.models.list()}
    assert set(listed) == {"many", "other", "extra-2", "extra-3", "extra-4"}
    assert listed["many"].version_count == 7 and listed["many"].latest_version == 7
    assert {summary.name for summary in workspace.models.list(include_archived=True)} == set(listed) | {"extra-1"}
    assert [(env.name, env.version) for env in workspace.environments.list()] == [("env-0", 7)] + [
        (f"env-{index}", 1) for index in range(1, 5)
    ]
