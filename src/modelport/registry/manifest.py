"""What a registered path consists of: its files, their sha256 and sizes, and one digest.

The manifest is computed before anything is written, so that bad input (a missing path, an
unreadable file) fails before the store or the database is touched.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.store.artifacts import sha256_file


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, "/"-separated; "" parts never occur
    sha256: str
    size: int
    source: Path


@dataclass(frozen=True)
class Manifest:
    root_name: str
    is_dir: bool
    files: tuple[FileEntry, ...]

    @property
    def digest(self) -> str:
        """One hash for the whole content: equal digests mean byte-identical registrations."""
        digest = hashlib.sha256()
        for entry in self.files:
            digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)


def scan(path: Path, field: str = "path") -> Manifest:
    """Hash a file, or every regular file below a folder, in a stable order."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{field}: {path} does not exist")
    if path.is_file():
        return Manifest(path.name, False, (_entry(path, path.name),))
    if not path.is_dir():
        raise ValidationError(f"{field}: {path} is neither a file nor a folder")
    entries = []
    for folder, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for filename in sorted(filenames):
            file = Path(folder) / filename
            if not file.is_file():
                raise ValidationError(f"{field}: {file} is not a regular file")
            entries.append(_entry(file, file.relative_to(path).as_posix()))
    if not entries:
        raise ValidationError(f"{field}: folder {path} holds no files")
    return Manifest(path.resolve().name, True, tuple(entries))


def _entry(file: Path, relative: str) -> FileEntry:
    try:
        return FileEntry(relative, sha256_file(file), file.stat().st_size, file)
    except OSError as exc:
        raise ValidationError(f"{file}: cannot be read ({exc.strerror})") from None
