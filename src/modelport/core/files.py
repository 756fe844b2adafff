"""Files a workspace writes: private modes, temporaries that never outlive their writer, and
disk errors as one line naming the path.

Modes. Everything under a workspace is its owner's alone: folders 0700, files 0600, stored blobs
0400. The CLI sets the process umask to 0077 once (``private_umask``), which covers what it, the
daemon, replicas and batch runners create; the library creates what it owns with explicit
modes, so SDK users who never run the CLI get the same result.

Temporaries. A file or folder being written is named ``<name>.tmp-<pid>-<random>`` and lives
in a known staging folder (``<workspace>/tmp``, ``<artifact root>/tmp``), so finding leftovers
is one directory listing, not a walk. The writer holds an exclusive ``flock`` on it while it
writes and removes it on every failure path (the context managers below). A writer killed with
SIGKILL, or a power loss, releases the lock with the process, so ``sweep`` (run whenever a
workspace is opened) removes a temporary when its lock is free *and* its writer's pid is gone.
The lock is what is trusted: it works across pid namespaces and is immune to pid reuse; the pid
only covers the instant between creating a temporary and locking it (a free lock whose pid is
alive is left alone until the temporary is ``REUSED_PID_AFTER_S`` old: a reused pid). Where the
filesystem offers no locks, only a dead pid and an age of ``NO_LOCK_AFTER_S`` remove it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from modelport.core.errors import DiskError, DiskFullError, ValidationError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; sweeping falls back to pid and age
    fcntl = None  # type: ignore[assignment]

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
BLOB_MODE = 0o400
REUSED_PID_AFTER_S = 60.0
NO_LOCK_AFTER_S = 3600.0
_TEMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")


_REASONS: dict[int, tuple[type[DiskError], str]] = {
    errno.ENOSPC: (DiskFullError, "no space left on device writing {}"),
    errno.EDQUOT: (DiskFullError, "disk quota exceeded writing {}"),
    errno.EACCES: (DiskError, "permission denied: {}"),
    errno.EPERM: (DiskError, "permission denied: {}"),
    errno.EROFS: (DiskError, "read-only file system: {}"),
}


def disk_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> DiskError | None:
    """The one-line error for ``exc`` when it is a full disk or a refused access, else None.

    A full disk names ``path`` (what was being written, in the caller's terms); a refused
    access names the file the system refused or, for a temporary (a name that would mean
    nothing to the user), the folder it was to be made in."""
    kind = _REASONS.get(exc.errno or 0)
    if kind is None:
        return None
    cls, template = kind
    where = path or exc.filename or "?"
    if cls is DiskError and exc.filename:
        where = Path(os.fsdecode(exc.filename))
        while ".tmp-" in where.name or ".tmp-" in str(where.parent):
            where = where.parent
    return cls(template.format(os.fspath(where)))


@contextmanager
def disk_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT/EACCES/EPERM/EROFS raised inside into a :class:`DiskError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        error = disk_error(exc, path)
        if error is None:
            raise
        raise error from exc


def private_umask() -> None:
    """Files and folders this process (and every child it starts) creates are the owner's alone."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (``mkdir -p`` gives only the last
    one the mode it is asked for)."""
    missing = []
    folder = Path(path)
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another process
    return Path(path)


def tighten(path: Path, mode: int) -> None:
    """Take away what ``path`` grants beyond ``mode`` when it is ours (a workspace made by an
    older version, or under a looser umask). Not ours, it is left as it is."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if info.st_mode & 0o777 & ~mode and info.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)


def private_tree(folder: Path) -> None:
    """Folders 0700 and files 0600 below ``folder``, for copies (``shutil.copytree`` carries the
    source's modes over, whatever the umask)."""
    for parent, _, filenames in os.walk(folder):
        os.chmod(parent, DIR_MODE)
        for name in filenames:
            os.chmod(os.path.join(parent, name), FILE_MODE)


def open_private(path: Path) -> BinaryIO:
    """``open(path, "ab")`` for logs and collected payloads, creating the file 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    return os.fdopen(fd, "ab")


def temp_name(name: str) -> str:
    return f"{name}.tmp-{os.getpid()}-{secrets.token_hex(6)}"


@contextmanager
def temp_file(folder: Path, name: str, mode: int = FILE_MODE) -> Iterator[tuple[Path, BinaryIO]]:
    """A new, locked file in ``folder`` and its open handle; removed on the way out unless the
    caller moved it into place (``os.replace``) meanwhile."""
    path = folder / temp_name(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        _lock(fd)
        with os.fdopen(fd, "wb") as handle:
            yield path, handle
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def temp_dir(folder: Path, name: str) -> Iterator[Path]:
    """A new, locked folder (0700) in ``folder``; removed with its content on the way out unless
    the caller renamed it into place meanwhile."""
    path = folder / temp_name(name)
    path.mkdir(mode=DIR_MODE)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        _lock(fd)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def sweep(folder: Path, prefix: str = "") -> list[str]:
    """Remove the temporaries in ``folder`` (names starting with ``prefix``) whose writer is gone;
    return their names. One listing of one folder: cheap enough for every workspace open."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    removed = []
    for entry in entries:
        found = _TEMP.search(entry.name)
        if found and entry.name.startswith(prefix) and _remove_if_abandoned(Path(entry.path), int(found.group(1))):
            removed.append(entry.name)
    return removed


def _remove_if_abandoned(path: Path, pid: int) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False  # gone meanwhile, or not ours to read
    try:
        locked = _try_lock(fd)
        if locked is False:
            return False  # its writer is alive and writing
        age = time.time() - os.fstat(fd).st_mtime
        if locked is None:
            abandoned = not _alive(pid) and age > NO_LOCK_AFTER_S
        else:
            abandoned = not _alive(pid) or age > REUSED_PID_AFTER_S
        if abandoned:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return abandoned
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _lock(fd: int) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise  # a new file is locked by nobody else: anything else is a real failure


def _try_lock(fd: int) -> bool | None:
    """True when the lock was free (and is now ours), False when held, None when unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def read_json_file(file: Path, field: str) -> Any:
    """The JSON document in ``file``; a missing or unreadable file, or one that is not JSON, is
    refused in one line naming ``field`` and the file."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{field}: {file} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{field}: {file} is not a JSON document ({exc})") from None
