"""What a registered path consists of: its files, their sha256 and sizes, and one digest.

The manifest is computed before anything is written, so that bad input (a missing path, an
unreadable file, a symbolic link nobody asked to follow) fails before the store or the database
is touched.

Symbolic links: the path the user names may itself be one and is followed, as ``cp`` follows
its arguments. Links *inside* a folder are refused, each one named, unless ``follow_symlinks``:
a link can point anywhere (outside the model, at a file of another user), so storing what it
points to must be asked for. Followed, linked files and folders are stored as regular content
under the link's own path; a link back to a folder it sits in (a loop) is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.store.artifacts import sha256_file

_LINKS_IN_MESSAGE = 5  # links named in one refusal; the rest are counted

Skip = Callable[[str, bool], bool]  # (relative path, is a folder) -> leave it out of the manifest


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


def scan(path: Path, field: str = "path", *, follow_symlinks: bool = False, skip: Skip | None = None) -> Manifest:
    """Hash a file, or every regular file below a folder, in a stable order.

    Every file is listed (and every link checked) before the first byte is hashed, so a refused
    folder costs a directory walk, not a read of its content. ``skip`` leaves entries of a folder
    out (a code snapshot's ignore rules): a skipped folder is not entered, a skipped link not checked.
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{field}: {path} does not exist")
    if path.is_file():
        return Manifest(path.name, False, (_entry(path, path.name),))
    if not path.is_dir():
        raise ValidationError(f"{field}: {path} is neither a file nor a folder")
    files = _list_files(path, field, follow_symlinks, skip)
    if not files:
        raise ValidationError(f"{field}: folder {path} holds no files")
    return Manifest(path.resolve().name, True, tuple(_entry(file, relative) for file, relative in files))


def _list_files(root: Path, field: str, follow_symlinks: bool, skip: Skip | None) -> list[tuple[Path, str]]:
    """``(file, relative path)`` below ``root``, depth first: a folder's files, then its subfolders.

    The order is ``os.walk``'s with sorted names, which earlier versions used: it feeds the
    digest, so it must not change. Folders are told apart by (device, inode), which is how a loop
    through links is recognised whatever path leads into it.
    """
    files: list[tuple[Path, str]] = []
    links: list[str] = []
    pending = [(root, "", frozenset({_identity(root.stat())}))]
    while pending:
        folder, prefix, ancestors = pending.pop()
        subfolders = []
        for child in _children(folder, field):
            relative = f"{prefix}{child.name}"
            if skip is not None and skip(relative, child.is_dir(follow_symlinks=False)):
                continue
            if child.is_symlink():
                target = os.readlink(child.path)
                if not follow_symlinks:
                    links.append(f"{relative} -> {target}")
                    continue
                try:
                    info = os.stat(child.path)
                except OSError:
                    raise ValidationError(f"{field}: symbolic link {relative} -> {target} points to nothing") from None
            else:
                info = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if _identity(info) in ancestors:
                    raise ValidationError(
                        f"{field}: symbolic link {relative} -> {os.readlink(child.path)} loops back to a folder above it"
                    )
                subfolders.append((Path(child.path), f"{relative}/", ancestors | {_identity(info)}))
            elif stat.S_ISREG(info.st_mode):
                files.append((Path(child.path), relative))
            else:
                raise ValidationError(
                    f"{field}: {relative} in {root} is not a regular file ({file_kind(info.st_mode)})"
                )
        pending.extend(reversed(subfolders))
    if links:
        listed = ", ".join(links[:_LINKS_IN_MESSAGE])
        more = f" and {len(links) - _LINKS_IN_MESSAGE} more" if len(links) > _LINKS_IN_MESSAGE else ""
        raise ValidationError(
            f"{field}: {root} holds symbolic links ({listed}{more}); they are stored only when followed "
            "(--follow-symlinks)"
        )
    return files


def _children(folder: Path, field: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        raise ValidationError(f"{field}: {folder} cannot be read ({exc.strerror})") from None


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words for a message ("a FIFO")."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _entry(file: Path, relative: str) -> FileEntry:
    try:
        return FileEntry(relative, sha256_file(file), file.stat().st_size, file)
    except OSError as exc:
        raise ValidationError(f"{file}: cannot be read ({exc.strerror})") from None
