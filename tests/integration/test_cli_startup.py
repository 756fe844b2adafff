"""What the CLI imports before it does anything, and what a command says when an optional extra
is missing. The CLI runs in a subprocess, as ``python -m modelport`` does, and reports which
heavy packages it loaded; the timings themselves are a benchmark (``bench/startup.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "numpy",
    "onnxruntime",
    "onnx",
    "pandas",
    "scipy",
    "pyarrow",
    "grpc",
    "uvicorn",
    "aiohttp",
    "fsspec",
    "rich",
    "yaml",
)

# Runs the CLI in this process, with some packages made unimportable, and prints (after the
# command's own output) which of HEAVY it imported.
RUNNER = """
import json, runpy, sys
blocked, argv = json.loads(sys.argv[1]), sys.argv[2:]
for name in blocked:
    sys.modules[name] = None
sys.argv = ["modelport", *argv]
try:
    runpy.run_module("modelport", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nLOADED", json.dumps(sorted(m for m in HEAVY if m in sys.modules)))
sys.exit(code)
""".replace("HEAVY", repr(HEAVY))


def run_cli(
    home: Path, *args: str, blocked: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(blocked), *args], capture_output=True, text=True, env=env, timeout=120
    )
    output, _, loaded = ran.stdout.rpartition("\nLOADED ")
    assert loaded, ran.stderr
    return subprocess.CompletedProcess(ran.args, ran.returncode, output, ran.stderr), json.loads(loaded)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["model", "--help"],
        ["batch-endpoint", "invoke", "--help"],
        ["serve", "--help"],
        ["monitor", "drift", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_heavy_package(tmp_path: Path, args: list[str]) -> None:
    ran, loaded = run_cli(tmp_path / "ws", *args)
    assert ran.returncode == 0, ran.stderr
    assert "Usage: " in ran.stdout and "[OPTIONS]" in ran.stdout
    assert loaded == []
    assert not (tmp_path / "ws").exists()  # help opens no workspace


def test_model_list_skips_migrations_orm_and_serving(tmp_path: Path) -> None:
    """The first command creates the workspace (alembic runs); later ones only check its revision,
    and a listing reads the Core tables: neither the ORM nor fsspec (the artifact store's) loads,
    nor rich for JSON output."""
    first, loaded = run_cli(tmp_path / "ws", "model", "list", "-o", "json")
    assert first.returncode == 0, first.stderr
    assert "alembic" in loaded
    again, loaded = run_cli(tmp_path / "ws", "model", "list", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == []
    serving = {"onnxruntime", "pandas", "scipy", "pyarrow", "grpc", "uvicorn", "aiohttp"}
    assert not {"alembic", "sqlalchemy.orm", "fsspec", "rich", *serving} & set(loaded), loaded


def test_drift_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    baseline = tmp_path / "base.csv"
    baseline.write_text("a\n1\n2\n")
    ran, _ = run_cli(
        tmp_path / "ws", "monitor", "drift", "--baseline", str(baseline), "--target", str(baseline), blocked=("scipy",)
    )
    assert ran.returncode == 1
    assert ran.stderr == "error: monitor drift needs scipy: pip install 'modelport[drift]'\n"


def test_head_revision_is_alembics() -> None:
    """The head is read from the newest migration file without alembic; alembic agrees."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from modelport.store.db import MIGRATIONS_DIR, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
