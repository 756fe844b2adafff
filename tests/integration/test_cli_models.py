"""The ``modelport`` CLI as users run it: a subprocess per command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ok

from modelport.samples import build_mlp_onnx


def _one_line_error(result, code: int, *needles: str) -> str:  # noqa: ANN001
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def test_register_list_show_download_alias(cli, onnx_model: Path, tmp_path: Path) -> None:
    out = json.loads(
        ok(
            cli(
                "model",
                "register",
                onnx_model,
                "--name",
                "fraud",
                "--tag",
                "team=risk",
                "--property",
                "auc=0.91",
                "--description",
                "first",
                "-o",
                "json",
            )
        )
    )
    assert (out["name"], out["version"], out["flavor"]) == ("fraud", 1, "onnx")
    assert out["signature"]["outputs"][0]["name"] == "output"
    second = build_mlp_onnx(tmp_path / "second.onnx", seed=1)
    ok(cli("model", "register", second, "--name", "fraud"))
    ok(cli("model", "alias", "set", "fraud", "prod", "1"))
    shown = json.loads(ok(cli("model", "show", "fraud@prod", "-o", "json")))
    assert (shown["version"], shown["tags"], shown["properties"]) == (1, {"team": "risk"}, {"auc": "0.91"})
    listed = json.loads(ok(cli("model", "list", "-o", "json")))
    assert [(m["name"], m["latest_version"]) for m in listed] == [("fraud", 2)]
    assert "fraud" in ok(cli("model", "list"))
    versions = json.loads(ok(cli("model", "versions", "fraud", "-o", "json")))
    assert [v["version"] for v in versions] == [1, 2]
    downloaded = Path(ok(cli("model", "download", "fraud@prod", "--to", tmp_path / "dl")).strip())
    assert downloaded.read_bytes() == onnx_model.read_bytes()
    local = Path(ok(cli("model", "path", "fraud:2")).strip())
    assert local.read_bytes() == second.read_bytes()
    updated = json.loads(ok(cli("model", "update", "fraud:1", "--tag", "stage=prod", "-o", "json")))
    assert updated["tags"] == {"team": "risk", "stage": "prod"}
    ok(cli("model", "archive", "fraud:2"))
    assert [v["version"] for v in json.loads(ok(cli("model", "versions", "fraud", "-o", "json")))] == [1]
    assert json.loads(ok(cli("model", "show", "fraud:2", "-o", "json")))["archived"] is True
    ok(cli("model", "delete", "fraud:2"))
    _one_line_error(cli("model", "show", "fraud:2"), 1, "no version 2")


def test_usage_errors_exit_2(sqlite_cli, onnx_model: Path) -> None:
    _one_line_error(sqlite_cli("model", "register", onnx_model), 2, "--name")
    _one_line_error(sqlite_cli("model", "register", onnx_model, "-n", "m", "--tag", "novalue"), 2, "--tag")
    _one_line_error(sqlite_cli("model", "frobnicate"), 2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["model", "register", "{missing}", "-n", "m"], "does not exist"),
        (["model", "register", "{model}", "-n", "a/b"], "name: 'a/b'"),
        (["model", "register", "{model}", "-n", "x" * 300], "300 characters"),
        (["model", "register", "{model}", "-n", "m", "--flavor", "keras"], "flavor: 'keras'"),
        (["model", "register", "{model}", "-n", "m", "--version", "v1"], "version: 'v1'"),
        (["model", "show", "nothing"], "model 'nothing' does not exist"),
        (["model", "show", "bad name"], "reference"),
        (["model", "alias", "set", "nothing", "prod"], "does not exist"),
        (["environment", "create", "-n", "e", "-f", "{badyaml}"], "conda.yml"),
    ],
)
def test_failures_exit_1_with_one_line(
    sqlite_cli, onnx_model: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    bad_yaml = tmp_path / "conda.yml"
    bad_yaml.write_text("dependencies: [unclosed\n  - : :")
    subst = {"{missing}": str(tmp_path / "nope.onnx"), "{model}": str(onnx_model), "{badyaml}": str(bad_yaml)}
    _one_line_error(sqlite_cli(*[subst.get(a, a) for a in args]), 1, needle)
    assert json.loads(ok(sqlite_cli("model", "list", "-o", "json"))) == []


def test_workspace_option_and_init(sqlite_cli, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    assert str(target) in ok(sqlite_cli("--workspace", target, "init"))
    assert (target / "modelport.db").exists()


def test_demo_runs_twice(sqlite_cli, tmp_path: Path) -> None:
    first = ok(sqlite_cli("demo", cwd=tmp_path))
    assert "demo-mlp:1" in first
    assert "served output equals in-process onnxruntime: True" in first
    assert "predictions.csv: 2000 rows" in first and "endpoint answered: [[" in first
    assert 'modelport_endpoint_requests_total{code="200",deployment="blue",endpoint="demo-online"} 301.0' in first
    assert "drift: 3 of 6 columns over their threshold (input_0, input_1, input_2)" in first
    second = ok(sqlite_cli("demo", cwd=tmp_path))
    assert "demo-mlp:1" in second and "predictions.csv: 2000 rows" in second
    assert json.loads(ok(sqlite_cli("model", "show", "demo-mlp@prod", "-o", "json")))["flavor"] == "onnx"


def test_concurrent_registrations_get_consecutive_versions(cli, tmp_path: Path) -> None:
    files = []
    for i in range(8):
        path = tmp_path / f"m{i}.bin"
        path.write_bytes(f"model {i}".encode())
        files.append(path)
    ok(cli("init"))
    procs = [cli.popen("model", "register", f, "--name", "shared", "-o", "json") for f in files]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
    versions = sorted(json.loads(stdout)["version"] for stdout, _ in outputs)
    assert versions == list(range(1, 9))
    listed = json.loads(ok(cli("model", "versions", "shared", "-o", "json")))
    assert sorted(v["root_name"] for v in listed) == sorted(f.name for f in files)
