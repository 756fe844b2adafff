"""The import contract of ``pyproject.toml`` (the layers of docs/architecture.md), run as CI runs
it: ``lint-imports`` over the package, and over a copy with one upward import added, which must
break it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import modelport

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SOURCES = Path(modelport.__file__).resolve().parent


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contracts over the ``modelport`` package under ``src``."""
    script = Path(sysconfig.get_path("scripts")) / "lint-imports"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [str(script), str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_package(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SOURCES, src / "modelport", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_imports(SOURCES.parent, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers(tmp_path: Path) -> None:
    """A deferred import counts: the store importing the SDK's workspace is named, with its line."""
    src = copy_package(tmp_path)
    (src / "modelport" / "store" / "upward.py").write_text(
        "def open_workspace():\n    from modelport.workspace import Workspace\n\n    return Workspace()\n"
    )
    result = lint_imports(src, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Layers import downward only (docs/architecture.md) BROKEN" in result.stdout
    assert "modelport.store is not allowed to import modelport.workspace" in result.stdout
    assert "modelport.store.upward -> modelport.workspace (l.2)" in result.stdout


def test_serving_and_batch_are_independent_and_control_does_not_import_serving(tmp_path: Path) -> None:
    src = copy_package(tmp_path)
    (src / "modelport" / "batch" / "sideways.py").write_text("from modelport.serving import stats\n")
    (src / "modelport" / "control" / "inline.py").write_text("import modelport.serving.inference\n")
    result = lint_imports(src, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "modelport.batch is not allowed to import modelport.serving" in result.stdout
    assert "control does not import serving (replicas are `modelport serve` processes) BROKEN" in result.stdout
    assert "Contracts: 1 kept, 2 broken." in result.stdout
    assert "modelport.control.inline -> modelport.serving.inference" in result.stdout


def test_a_new_top_level_package_must_take_its_place(tmp_path: Path) -> None:
    src = copy_package(tmp_path)
    (src / "modelport" / "newcomer.py").write_text("")
    result = lint_imports(src, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "modelport.newcomer" in result.stdout + result.stderr
