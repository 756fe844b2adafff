"""A newcomer's first hour, command by command: each test runs, through the real ``modelport``
command, what tripped a new user up (a code folder holding the workspace, a read command run
from the wrong folder, a suggested command that failed, ``update -f`` without ``--name``, output
that cut ids or printed Python) and checks what they get now."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Cli
from endpoint_daemon import Daemon, running_daemon, write_yaml

from modelport import Workspace
from modelport.samples import build_mlp_onnx


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon over ``<folder>/ws`` with ``mlp:1``, ``mlp:2`` and ``<folder>/code/score.py``."""
    with running_daemon(tmp_path_factory.mktemp("first-hour")) as daemon:
        yield daemon


def deployment(daemon: Daemon, endpoint: str, name: str, **extra: object) -> Path:
    data = {
        "name": name,
        "endpoint_name": endpoint,
        "model": "mlp:1",
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        "environment_variables": {"COLOR": name},
        **extra,
    }
    return write_yaml(daemon.home.parent / f"{endpoint}-{name}.yml", data)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- 1: a code folder that holds the workspace ------------------------------------------------


def test_a_code_folder_holding_the_workspace_is_snapshotted_without_it(daemon: Daemon) -> None:
    project = daemon.home.parent  # holds the workspace (ws/), code/score.py and the models
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(sys.executable)  # a link: refused unless skipped
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "nested" / ".modelport").mkdir(parents=True)
    (project / "nested" / ".modelport" / "modelport.db").write_bytes(b"another workspace")
    (project / "nested" / "keep.py").write_text("VALUE = 1\n")
    (project / "data").mkdir()
    (project / "data" / "big.bin").write_bytes(b"0" * 1000)
    (project / "debug.log").write_text("noise\n")
    (project / ".amlignore").write_text("# what the snapshot leaves out\n*.log\ndata/\n")
    (project / "deploy").mkdir()
    definition = write_yaml(
        project / "deploy" / "deployment.yml",
        {
            "name": "blue",
            "endpoint_name": "parent",
            "model": "mlp:1",
            "code_configuration": {"code": "../", "scoring_script": "code/score.py"},
            "environment_variables": {"COLOR": "parent"},
        },
    )
    daemon.ok("endpoint", "create", "-n", "parent")
    daemon.ok("deployment", "create", "-f", str(definition), "--all-traffic")

    snapshot = Path(daemon.json("deployment", "show", "-e", "parent", "-n", "blue")["code_configuration"]["code"])
    files = {path.relative_to(snapshot).as_posix() for path in snapshot.rglob("*") if not path.is_dir()}
    assert {"code/score.py", "nested/keep.py", "deploy/deployment.yml", ".amlignore"} <= files
    left_out = ("ws/", ".venv/", ".git/", "nested/.modelport/", "data/", "debug.log")
    assert not [path for path in files if path.startswith(left_out)], files
    answer = daemon.score("parent", daemon.key("parent"))
    assert answer.status_code == 200 and answer.json()["color"] == "parent", answer.text

    (project / ".amlignore").write_text("code/\n")  # now the scoring script itself is left out
    error = daemon.fails("deployment", "create", "-f", str(definition), "-n", "green")
    assert error == (
        "error: code_configuration.scoring_script: code/score.py is left out of the snapshot by .amlignore"
    )


def test_ignore_files_read_as_gitignore_does(tmp_path: Path) -> None:
    from modelport.registry.code_ignore import CodeIgnore

    (tmp_path / ".gitignore").write_text("*.log\n!keep.log\n/build\ncache/\n**/secrets/*.key\n# a comment\n")
    rule = CodeIgnore(tmp_path, tmp_path / "sub" / "ws")
    entries = [
        ("a.log", False),
        ("deep/b.log", False),
        ("keep.log", False),
        ("build", True),
        ("src/build", True),
        ("cache", True),
        ("cache", False),
        ("x/cache", True),
        ("secrets/a.key", False),
        ("s/secrets/a.key", False),
        ("sub/ws", True),
        ("ws", True),
        ("x/.venv", True),
        (".git", False),
        ("score.py", False),
    ]
    assert [(path, is_dir) for path, is_dir in entries if rule(path, is_dir)] == [
        ("a.log", False),
        ("deep/b.log", False),
        ("build", True),
        ("cache", True),
        ("x/cache", True),
        ("secrets/a.key", False),
        ("s/secrets/a.key", False),
        ("sub/ws", True),
        ("x/.venv", True),
        (".git", False),
    ]
    (tmp_path / ".amlignore").write_text("score.py\n")  # .amlignore wins over .gitignore
    assert CodeIgnore(tmp_path, tmp_path / "ws")("score.py", False)
    assert not CodeIgnore(tmp_path, tmp_path / "ws")("a.log", False)


# -- 4: read commands do not create a workspace ------------------------------------------------


def test_read_commands_open_an_existing_workspace_and_name_it(tmp_path: Path, onnx_model: Path) -> None:
    cli = Cli(tmp_path / "unused")
    del cli.env["MODELPORT_HOME"]  # the default: ./.modelport in the folder the command runs in
    here = tmp_path / "project"
    here.mkdir()
    workspace = here / ".modelport"
    for command in (("serve", "M"), ("model", "show", "M"), ("model", "list"), ("job", "list")):
        error = one_error_line(cli(*command, cwd=here))
        assert error == (
            f"error: no workspace at {workspace}; register a model first (or run modelport init), or pass --workspace"
        ), command
    assert not workspace.exists()
    named = cli("--workspace", tmp_path / "named", "model", "list", "-o", "json", cwd=here)  # chosen: made on use
    assert named.returncode == 0 and json.loads(named.stdout) == [] and not workspace.exists()

    assert cli("model", "register", onnx_model, "-n", "fraud", cwd=here).returncode == 0
    assert one_error_line(cli("serve", "M", cwd=here)) == f"error: model 'M' does not exist (workspace {workspace})"
    assert one_error_line(cli("model", "show", "M", cwd=here)).endswith(f"(workspace {workspace})")
    assert "fraud" in cli("model", "list", cwd=here).stdout


# -- 5, 6, 11: endpoints ---------------------------------------------------------------------


def test_the_command_suggested_before_a_delete_works_as_printed(daemon: Daemon) -> None:
    daemon.ok("endpoint", "create", "-n", "split")
    daemon.ok("deployment", "create", "-f", str(deployment(daemon, "split", "blue")), "--all-traffic")
    daemon.ok("deployment", "create", "-f", str(deployment(daemon, "split", "green")))
    updated = daemon.ok("endpoint", "update", "-n", "split", "--traffic", "blue=50 green=50")
    assert updated.stdout == "updated endpoint split: traffic blue=50% green=50%, mirror none\n"  # not a dict
    assert daemon.json("endpoint", "update", "-n", "split")["traffic"] == {"blue": 50, "green": 50}

    error = daemon.fails("deployment", "delete", "-e", "split", "-n", "green", "--yes")
    assert error.endswith('take it away first: modelport endpoint update -n split --traffic "blue=100 green=0"'), error
    daemon.ok(*shlex.split(error.partition("take it away first: modelport ")[2]))
    assert daemon.json("endpoint", "show", "-n", "split")["traffic"] == {"blue": 100, "green": 0}

    daemon.ok("endpoint", "update", "-n", "split", "--mirror-traffic", "green=20")
    error = daemon.fails("deployment", "delete", "-e", "split", "-n", "green", "--yes")
    assert "still gets 20 % of mirror traffic" in error and error.endswith('--mirror-traffic "green=0"'), error
    daemon.ok(*shlex.split(error.partition("take it away first: modelport ")[2]))
    assert (
        daemon.ok("deployment", "delete", "-e", "split", "-n", "green", "--yes").stdout
        == "deleted deployment split/green\n"
    )
    assert daemon.json("endpoint", "show", "-n", "split")["traffic"] == {"blue": 100}


def test_update_from_a_file_takes_the_name_from_the_file(daemon: Daemon) -> None:
    files = daemon.home.parent
    daemon.ok("endpoint", "create", "-n", "named")
    changed = write_yaml(
        files / "named.yml",
        {
            "$schema": "https://x/managedOnlineEndpoint.schema.json",
            "name": "named",
            "description": "from the file",
            "identity": {"type": "system_assigned"},
        },
    )
    updated = daemon.ok("endpoint", "update", "-f", str(changed))
    assert updated.stderr == "note: ignored cloud-only keys: identity\n"  # $schema is no cloud-only key
    assert daemon.json("endpoint", "show", "-n", "named")["description"] == "from the file"
    daemon.ok("endpoint", "create", "-n", "other")
    daemon.ok("endpoint", "update", "-f", str(changed), "-n", "other", "--set", "description=renamed")
    assert daemon.json("endpoint", "show", "-n", "other")["description"] == "renamed"  # -n overrides the file
    assert daemon.json("endpoint", "show", "-n", "named")["description"] == "from the file"
    assert (
        daemon.fails("endpoint", "update", "--set", "description=x") == "error: name: required (in the file or with -n)"
    )


def test_deletes_ask_first_and_refuse_without_a_terminal(daemon: Daemon) -> None:
    daemon.ok("endpoint", "create", "-n", "doomed")
    command = [sys.executable, "-m", "modelport", "endpoint", "delete", "-n", "doomed"]
    unattended = subprocess.run(
        command, env=daemon.cli.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    assert one_error_line(unattended) == (
        "error: --yes: deleting endpoint doomed and all its deployments needs "
        "confirmation; pass --yes (-y) when not run interactively"
    )
    assert typed(command, daemon.cli.env, "n\n").returncode == 1
    daemon.ok("endpoint", "show", "-n", "doomed")  # still there
    answered = typed(command, daemon.cli.env, "y\n")
    assert answered.returncode == 0 and "Delete endpoint doomed and all its deployments? [y/N]" in answered.stderr
    assert "doomed" not in daemon.ok("endpoint", "list").stdout


def typed(command: list[str], env: dict[str, str], answer: str) -> subprocess.CompletedProcess[str]:
    """``command`` run on a terminal (a pseudo-terminal as stdin) where ``answer`` is typed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            command, env=env, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        os.write(controller, answer.encode())
        stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


# -- 6, 11: batch ------------------------------------------------------------------------------


def test_batch_output_keeps_ids_whole_and_values_as_they_are(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "ws")
    cli.env["COLUMNS"] = "80"
    with Workspace(tmp_path / "ws") as ws:
        ws.models.register(build_mlp_onnx(tmp_path / "model.onnx"), "mlp")
    endpoint = "first-hour-batch-endpoint"
    assert cli("batch-endpoint", "create", "-n", endpoint).returncode == 0
    changed = write_yaml(tmp_path / "endpoint.yml", {"$schema": "x", "name": endpoint, "description": "scores"})
    updated = cli("batch-endpoint", "update", "-f", changed, "-o", "json")  # the name comes from the file
    assert updated.returncode == 0 and json.loads(updated.stdout)["description"] == "scores", updated.stderr
    definition = write_yaml(
        tmp_path / "deployment.yml",
        {"name": "no-code-deployment", "endpoint_name": endpoint, "model": "mlp:1", "compute": "cpu-cluster"},
    )
    created = cli("batch-deployment", "create", "-f", definition, "--set-default")
    assert created.returncode == 0 and created.stderr == "note: ignored cloud-only keys: compute\n", created.stderr
    inputs = tmp_path / "in:100:"
    inputs.mkdir()
    rows = np.random.default_rng(0).standard_normal((5, 32))
    np.savetxt(inputs / "rows.csv", rows, delimiter=",", header=",".join(f"f{i}" for i in range(32)), comments="")
    invoked = cli("batch-endpoint", "invoke", "-n", endpoint, "-i", inputs, "--wait")
    assert invoked.returncode == 0, invoked.stderr
    job_id = invoked.stdout.split()[0]

    listed = cli("job", "list")
    assert job_id in listed.stdout and max(map(len, listed.stdout.splitlines())) <= 80, listed.stdout
    cli.env["COLUMNS"] = "400"  # the input's path on one line
    shown = cli("job", "show", job_id).stdout
    assert f"{inputs} (tabular, 5 items)" in shown and "\N{HUNDRED POINTS SYMBOL}" not in shown, shown

    refused = cli("batch-deployment", "delete", "-e", endpoint, "-n", "no-code-deployment")
    assert "pass --yes (-y)" in one_error_line(refused)
    assert cli("batch-endpoint", "delete", "-n", endpoint, "-y").returncode == 0
