"""Build environment specs into isolated virtualenvs, cached by the spec's content hash.

Building an environment takes seconds to minutes, so ``cache_root/<hash[:16]>`` is built once
and reused by every later build of the same Python version and requirements.

A cached environment is one whose marker file (``modelport-env.json``) exists and whose
interpreter still exists. The marker is written last, atomically, so it is the commit
point: a build that fails is removed at once, and a directory left by a crashed build has no
marker and is wiped before the next attempt. The build happens in the final directory rather
than in a temporary sibling that is renamed into place, because virtualenvs are not
relocatable: ``python -m venv``, pip and uv write the absolute directory into console-script
shebangs, ``activate`` scripts and ``pyvenv.cfg``, so a renamed venv has broken entry points.

With uv on PATH the venv is made by ``uv venv`` (which can fetch a missing Python) and has no
pip of its own; without it, by ``python -m venv`` with ``pythonX.Y`` from PATH, and pip.

A file lock per hash serializes concurrent builds of one spec across processes: the second
builder waits, then finds the marker and reuses the result. The same lock tells ``sweep`` (run
when a workspace opens) that an unmarked directory is a dead build rather than one in progress,
so a build killed with SIGKILL does not keep its disk space until the same spec is built again.
A venv's top folder is 0700, and a full disk or a refused write is one line naming the venv.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelport.core.errors import BuildError
from modelport.core.files import DIR_MODE, disk_errors, private_dir, sweep, temp_dir

if TYPE_CHECKING:
    from modelport.envs.spec import EnvSpec  # the spec reader loads pydantic; a sweep on open needs none of it

MARKER = "modelport-env.json"
Log = Callable[[str], None]
Step = tuple[str, list[str]]  # what it does (for error messages), the command
# Inherited, these would make a build depend on the shell it was started from.
_SCRUBBED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


@dataclass(frozen=True)
class BuildResult:
    """A ready environment: its directory, its interpreter, and what it could not install."""

    path: Path
    python: Path
    reused: bool
    conda_only: tuple[str, ...]


def build_env(spec: EnvSpec, cache_root: Path, *, log: Log | None = None) -> BuildResult:
    """Return the virtualenv for ``spec``, building it unless a finished one is cached.

    ``log`` receives progress lines and the full output of every tool that runs; failures
    raise :class:`BuildError` with a one-line summary and leave nothing in the cache.
    """
    cache_root = Path(cache_root).absolute()
    key = spec.content_hash[:16]
    target = cache_root / key
    with disk_errors(target):
        private_dir(cache_root)
        with _exclusive(_lock_path(target), log):
            reused = _is_built(target)
            if reused:
                _say(log, f"reusing environment {key} at {target}")
            else:
                _build(spec, target, log)
    return BuildResult(target, _interpreter(target), reused, spec.conda_only)


def is_built(content_hash: str, cache_root: Path) -> bool:
    """Whether the virtualenv of the spec with ``content_hash`` is built and usable in the cache."""
    return _is_built(Path(cache_root).absolute() / content_hash[:16])


def sweep_builds(cache_root: Path) -> None:
    """Remove what builds that died left in ``cache_root``: their scratch folders, and venv
    directories without a marker whose lock nobody holds (one listing, one stat per venv)."""
    sweep(cache_root)
    try:
        entries = [Path(entry.path) for entry in os.scandir(cache_root) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for target in entries:
        if (target / MARKER).is_file() or not _lock_path(target).exists():
            continue  # built, or not a build at all
        from filelock import FileLock, Timeout  # loaded when a build left a lock: most workspace opens skip it

        lock = FileLock(str(_lock_path(target)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # being built right now
        try:
            if not (target / MARKER).is_file():
                shutil.rmtree(target, ignore_errors=True)
        finally:
            lock.release()


def _lock_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.lock")


@contextmanager
def _exclusive(lock_path: Path, log: Log | None) -> Iterator[None]:
    """Hold the per-hash lock, saying so when another process has it (the wait may be long)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _say(log, f"waiting for another build of environment {lock_path.stem}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _is_built(target: Path) -> bool:
    # The interpreter check catches a venv whose base Python was uninstalled since it was built.
    return (target / MARKER).is_file() and _interpreter(target).exists()


def _interpreter(venv: Path) -> Path:
    return venv / "Scripts" / "python.exe" if os.name == "nt" else venv / "bin" / "python"


def _build(spec: EnvSpec, target: Path, log: Log | None) -> None:
    shutil.rmtree(target, ignore_errors=True)  # a crashed build's leftovers or a broken venv
    try:
        tool = _create(spec, target, log)
        os.chmod(target, DIR_MODE)  # made by venv or uv with their own mode
        _write_marker(spec, target, tool)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _create(spec: EnvSpec, target: Path, log: Log | None) -> str:
    """Create the venv and install the requirements; return the tool used, for the marker."""
    uv = shutil.which("uv")
    tool = "uv" if uv else "venv"
    _say(log, f"building environment {target.name} with {tool} in {target}")
    with temp_dir(target.parent, f"{target.name}-requirements") as scratch:
        requirements = scratch / "requirements.txt"
        requirements.write_text("".join(f"{line}\n" for line in spec.pip_requirements), "utf-8")
        if uv:
            steps = _uv_steps(uv, spec, target, requirements)
        else:
            steps = _venv_steps(spec, target, requirements)
        for what, command in steps:
            _run(command, what, cwd=target.parent, log=log)
    return tool


def _uv_steps(uv: str, spec: EnvSpec, target: Path, requirements: Path) -> list[Step]:
    python = spec.python or sys.executable
    steps = [("uv venv", [uv, "venv", "--python", python, str(target)])]
    if spec.pip_requirements:
        venv_python = str(_interpreter(target))
        install = [uv, "pip", "install", "--python", venv_python, "-r", str(requirements)]
        steps.append(("uv pip install", install))
    return steps


def _venv_steps(spec: EnvSpec, target: Path, requirements: Path) -> list[Step]:
    base = _base_interpreter(spec.python)
    steps = [(f"{Path(base).name} -m venv", [base, "-m", "venv", str(target)])]
    if spec.pip_requirements:
        venv_python = str(_interpreter(target))
        install = [venv_python, "-m", "pip", "install", "--no-input", "-r", str(requirements)]
        steps.append(("pip install", install))
    return steps


def _base_interpreter(version: str | None) -> str:
    """The interpreter to create the venv with: ours when it fits, else ``pythonX.Y`` on PATH."""
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None or version == current:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        raise BuildError(
            f"Python {version} is not available: no python{version} on PATH "
            "(install it, or install uv, which can fetch it)"
        )
    return found


def _run(command: list[str], what: str, *, cwd: Path, log: Log | None) -> None:
    """Run one build step; its output goes to ``log``, a failure becomes a one-line BuildError.

    ``cwd`` is the cache root so that pip and uv never pick up project configuration
    (``pyproject.toml``, ``uv.toml``, ``.python-version``) from wherever modelport was started.
    """
    _say(log, "$ " + shlex.join(command))
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            env=_step_environment(),
            cwd=cwd,
            check=False,
        )
    except OSError as exc:
        raise BuildError(f"{what} failed: cannot run {command[0]}: {exc.strerror or exc}") from exc
    output = (done.stdout + done.stderr).strip()
    if output:
        _say(log, output)
    if done.returncode != 0:
        raise BuildError(f"{what} failed: {_summary(done)}")


def _step_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _SCRUBBED_VARIABLES}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _summary(done: subprocess.CompletedProcess[str]) -> str:
    """The line that says what went wrong.

    pip ends with notices and hints, so its last ``ERROR:`` line is the one; uv prints
    ``error:`` followed by ``cause:`` lines that carry the reason; other tools (pyenv shims,
    ``venv``) state the cause on their first line.
    """
    text = f"{done.stderr}\n{done.stdout}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return f"exit status {done.returncode}"
    errors = [i for i, line in enumerate(lines) if line.lower().startswith("error")]
    pip_errors = [i for i in errors if lines[i].startswith("ERROR:")]
    at = (pip_errors or errors or [0])[-1]
    causes = itertools.takewhile(lambda line: line.startswith("cause:"), lines[at + 1 :])
    return "; ".join([lines[at], *causes])


def _write_marker(spec: EnvSpec, target: Path, tool: str) -> None:
    """Commit the build: written to a temporary name and renamed, so it is never partial."""
    record = {
        "content_hash": spec.content_hash,
        "python": spec.python,
        "pip_requirements": list(spec.pip_requirements),
        "tool": tool,
    }
    partial = target / f"{MARKER}.partial"
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target / MARKER)


def _say(log: Log | None, message: str) -> None:
    if log is not None:
        log(message)
