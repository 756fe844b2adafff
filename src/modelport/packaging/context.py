"""The build context folder: written in a staging folder beside ``--output-dir`` and renamed into
place only when complete, so a failure leaves nothing half-written; laid out reproducibly, so
the same inputs give a byte-identical folder and the same digest.

Layout::

    Containerfile
    serve.json                      the server's settings (read by the image's entrypoint)
    wheels/*.whl, requirements.txt  modelport and every dependency, pinned by sha256
    code/…                          the deployment's scoring code, if any
    model/modelport-model.json      the registry's facts of the model version
    model/<name>/<version>/<file or folder as registered>

Every entry gets the same modification time (``SOURCE_DATE_EPOCH``, else 1980-01-01, the
earliest a zip holds) and a fixed mode (folders 0755, files 0644: the image's unprivileged user
reads what ``COPY`` keeps); the folder itself stays private to its owner. The digest is a sha256
over the sorted walk: each entry's relative path, kind, mode and content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from modelport.core.errors import ConflictError, ValidationError
from modelport.core.files import DIR_MODE, disk_errors, sweep, temp_dir
from modelport.packaging.sources import PackageSource
from modelport.serving.targets import PACKAGED_MODEL
from modelport.store.artifacts import sha256_file

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z
CONTAINERFILE = "Containerfile"


def source_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), else :data:`DEFAULT_EPOCH`."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return DEFAULT_EPOCH
    if not text.isdigit():
        raise ValidationError(f"SOURCE_DATE_EPOCH: {text!r} is not a number of seconds")
    return int(text)


def check_output(output: Path) -> None:
    """Refuse an output folder that exists and holds anything (or is not a folder)."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise ValidationError(f"--output-dir: {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()):
        raise ConflictError(f"--output-dir: {output} is not empty; give a new or empty folder")


def write(output: Path, source: PackageSource, fill_wheels: Callable[[Path], None], containerfile: str) -> str:
    """Make the context at ``output`` and return its digest."""
    check_output(output)
    epoch = source_epoch()
    parent = output.absolute().parent
    with disk_errors(output):
        parent.mkdir(parents=True, exist_ok=True)
        sweep(parent, prefix=f".{output.name}")
        with temp_dir(parent, f".{output.name}") as staging:
            _fill(staging, source, fill_wheels, containerfile)
            normalize(staging, epoch)
            found = digest(staging)
            check_output(output)  # still free: another run may have taken it meanwhile
            if output.is_dir():
                output.rmdir()
            staging.rename(output)
    return found


def _fill(folder: Path, source: PackageSource, fill_wheels: Callable[[Path], None], containerfile: str) -> None:
    if source.model is not None:
        for model in (source.model, *source.model.steps):  # a pipeline's steps beside it
            version_dir = folder / "model" / model.name / str(model.version)
            version_dir.mkdir(parents=True, exist_ok=model is not source.model)
            model.place(version_dir)
        _write_json(folder / "model" / PACKAGED_MODEL, source.model.descriptor())
    if source.code is not None:
        (folder / "code").mkdir()
        source.place_code(folder / "code")
    # no model name or version in here: a new model version changes the model layer alone
    _write_json(folder / "serve.json", {"args": list(source.serve_args), "entry_script": source.scoring_script})
    fill_wheels(folder / "wheels")
    (folder / CONTAINERFILE).write_text(containerfile, encoding="utf-8")


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def normalize(folder: Path, epoch: int) -> None:
    """Fixed modes and timestamps on every entry (children before their folder)."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o644)
            os.utime(path, (epoch, epoch))
        for name in dirs:
            path = os.path.join(root, name)
            os.chmod(path, 0o755)
            os.utime(path, (epoch, epoch))
    os.chmod(folder, DIR_MODE)
    os.utime(folder, (epoch, epoch))


def digest(folder: Path) -> str:
    """sha256 over the sorted walk of ``folder`` (paths, kinds, modes, contents)."""
    entries = []
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = Path(root, name)
            entries.append(f"{path.relative_to(folder).as_posix()}\0d\0{path.stat().st_mode & 0o7777:o}\0")
        for name in files:
            path = Path(root, name)
            mode = path.stat().st_mode & 0o7777
            entries.append(f"{path.relative_to(folder).as_posix()}\0f\0{mode:o}\0{sha256_file(path)}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()
