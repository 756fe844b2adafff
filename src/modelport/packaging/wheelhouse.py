"""The wheelhouse: modelport and every package the image needs, as wheels for the running Python
and platform, and ``requirements.txt`` pinning each to its exact version and sha256, so that the
image installs with ``--no-index --require-hashes`` and its build needs no network.

Reproducibility: modelport's own wheel is built from its source tree with ``SOURCE_DATE_EPOCH``
set, which fixes the timestamps inside the zip, so the same sources give the same wheel.
Dependencies are the files pip downloads (identical bytes for an unchanged index); a dependency
published only as a source distribution is built into a wheel here, and such a build may differ
from one run to the next — the context digest then changes with it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.utils import parse_wheel_filename

from modelport.core.errors import BuildError
from modelport.core.version import __version__
from modelport.store.artifacts import sha256_file

REQUIREMENTS = "requirements.txt"
# What a wheel of modelport is built from, relative to its project root.
_PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
_GPU_REQUIREMENT = "onnxruntime-gpu"


def build(folder: Path, requirements: tuple[str, ...], extras: tuple[str, ...], epoch: int, gpu: bool) -> None:
    """Fill ``folder`` with the wheels and the pinned ``requirements.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    own = _modelport_wheel(folder, epoch)
    wanted = [f"{own}[{','.join(sorted(extras))}]" if extras else str(own), *requirements]
    if gpu:
        wanted.append(_GPU_REQUIREMENT)
    _pip("wheel", "--wheel-dir", str(folder), "--prefer-binary", *wanted, epoch=epoch, what="dependencies")
    (folder / REQUIREMENTS).write_text(pinned(folder, extras), encoding="utf-8")


def pinned(folder: Path, extras: tuple[str, ...]) -> str:
    """``name==version --hash=sha256:…`` for every wheel in ``folder``, sorted by name."""
    lines = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        spec = f"{name}[{','.join(sorted(extras))}]" if name == "modelport" and extras else str(name)
        lines.append(f"{spec}=={version} --hash=sha256:{sha256_file(wheel)}")
    return "\n".join(sorted(lines)) + "\n"


def project_root() -> Path | None:
    """The source tree modelport runs from (a checkout, or an editable install's folder), else None."""
    package = Path(__file__).resolve().parent.parent
    candidates = [package.parents[1]]
    try:
        direct = json.loads(importlib.metadata.distribution("modelport").read_text("direct_url.json") or "{}")
    except importlib.metadata.PackageNotFoundError:
        direct = {}
    if str(direct.get("url", "")).startswith("file://"):
        candidates.append(Path(direct["url"].removeprefix("file://")))
    for root in candidates:
        init = root / "src" / "modelport" / "__init__.py"
        if (root / "pyproject.toml").is_file() and init.is_file() and init.resolve() == package / "__init__.py":
            return root
    return None


def _modelport_wheel(folder: Path, epoch: int) -> Path:
    """modelport's wheel: built from the source tree it runs from (copied first, so the build
    leaves nothing in it), or the released one of this version when it runs from a wheel."""
    root = project_root()
    scratch = folder / ".build"
    try:
        if root is None:
            release = f"modelport=={__version__}"
            _pip("download", "--no-deps", "--dest", str(scratch), release, epoch=epoch, what="modelport")
        else:
            source = scratch / "source"
            for name in _PROJECT_FILES:
                if (root / name).is_file():
                    source.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(root / name, source / name)
            shutil.copytree(
                root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            )
            _touch_tree(source, epoch)
            options = ("--no-deps", "--no-build-isolation", "--wheel-dir", str(scratch), str(source))
            _pip("wheel", *options, epoch=epoch, what="modelport's wheel")
        (built,) = scratch.glob("modelport-*.whl")
        return Path(shutil.move(built, folder / built.name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _touch_tree(folder: Path, epoch: int) -> None:
    """Fixed timestamps on the copied sources (setuptools reads some of them into the wheel)."""
    for path in folder.rglob("*"):
        os.utime(path, (epoch, epoch))


def _pip(*args: str, epoch: int, what: str) -> None:
    """Run pip with this interpreter; a failure is one line naming what was being fetched and
    pip's last error line."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("ERROR")]
        reason = lines[-1] if lines else (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BuildError(f"wheelhouse: cannot get {what}: {reason}")
