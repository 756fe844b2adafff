"""The README's "Your own model" walk-through, as a reader runs it.

A fenced block of that section whose first line is a comment ``# docs/examples/your-own-model/FILE``
is that file: it must match the file byte for byte, and every file of the folder a reader needs
must be shown. The section's ``bash`` blocks are then run as written, one after the other in one
``bash -e``, in a copy of the folder, with ``modelport`` and ``python`` on the PATH as in an
active virtualenv, a workspace of the test's own (``MODELPORT_HOME``) and ``PORT`` set to a free
port (the README reads ``${PORT:-7000}``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from endpoint_daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path("docs/examples/your-own-model")
SECTION = "## Your own model"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n{SECTION}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def _blocks(language: str | None = None) -> list[str]:
    return [body for lang, body in FENCE.findall(_section()) if language is None or lang == language]


def _shown_files() -> dict[Path, str]:
    """The blocks labelled with a file name: path (relative to the examples folder) → text shown."""
    shown = {}
    for body in _blocks():
        first = body.partition("\n")[0]
        if first.startswith(f"# {EXAMPLES}/"):
            path = Path(first.removeprefix("# ")).relative_to(EXAMPLES)
            assert path not in shown, f"{path} is shown twice"
            shown[path] = body
    return shown


def test_the_files_shown_are_the_files_on_disk() -> None:
    shown = _shown_files()
    assert {
        "train.py",
        "code/score.py",
        "endpoint.yml",
        "blue.yml",
        "green.yml",
        "batch-endpoint.yml",
        "batch-deployment.yml",
    } <= {str(path) for path in shown}
    for path, text in shown.items():
        assert (ROOT / EXAMPLES / path).read_bytes() == text.encode("utf-8"), f"README shows another {path}"
    on_disk = {
        path.relative_to(ROOT / EXAMPLES)
        for path in (ROOT / EXAMPLES).rglob("*")
        if path.is_file() and path.suffix in (".py", ".yml", ".yaml") and ".modelport" not in path.parts
    }
    assert on_disk == set(shown), "every file of the walk-through is shown in the README"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "your-own-model"  # the files as shown (and checked above), nothing a reader's run left
    for path in _shown_files():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / EXAMPLES / path, folder / path)
    script = tmp_path / "walkthrough.sh"
    script.write_text("\n".join(_blocks("bash")), encoding="utf-8")
    bin_dir = tmp_path / "bin"  # what an active virtualenv puts first on the PATH
    bin_dir.mkdir()
    for name, command in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("modelport", f'exec "{sys.executable}" -m modelport "$@"'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{command}\n")
        (bin_dir / name).chmod(0o755)
    daemon = Daemon(tmp_path / "ws")  # a free port, and the clean-up of whatever the script left running
    env = {**daemon.cli.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PORT": str(daemon.port)}
    env.pop("MODELPORT_URL")  # the CLI finds the daemon from the workspace, as it does for a reader
    try:
        result = subprocess.run(
            ["bash", "-e", str(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=840
        )
    finally:
        daemon.down()
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = result.stdout
    assert "registered iris:1 (sklearn" in out
    assert f"modelport daemon running at http://127.0.0.1:{daemon.port}" in out
    assert "created deployment iris/blue" in out and "created deployment iris/green" in out
    assert '{"species":["setosa","virginica"],"confidence":[' in out  # blue: the scoring script
    assert '{"predict":[0,2],"predict_proba":[[' in out  # green: no-code, pinned
    assert re.search(r"batchjob-\w+ Completed", out)
    predictions = (folder / "out" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 15 and predictions[0].startswith("0 0 ") and predictions[0].endswith(" flowers.csv")
    assert "stopped the daemon" in out
