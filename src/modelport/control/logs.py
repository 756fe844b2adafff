"""Replica console logs: the last N lines of a file, what is appended after them, and rotation;
and a deployment's event log (``events.log``: scaling), shown by ``deployment logs`` beside them.

Replicas write their console (print and logging) straight into one file per replica slot, so
reading is all the daemon does: from the end backwards for ``--lines N``, then by polling the
size for ``--follow`` (portable, and cheap at a few reads a second). The daemon keeps the files
bounded by copy-and-truncate (logrotate's ``copytruncate``): the replica holds its file open in
append mode, so after the truncation it simply writes from the start again; lines written
between the copy and the truncation are lost, a few at most.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from modelport.monitor.request_log import shift_backups

_BLOCK = 65536
FOLLOW_POLL_S = 0.25
MAX_LOG_BYTES = 32 * 1024 * 1024
LOG_BACKUPS = 3
ROTATE_EVERY_S = 10.0
EVENTS_LOG = "events.log"


def tail_lines(path: Path, count: int, end: int | None = None) -> list[str]:
    """The last ``count`` lines of ``path`` before byte ``end`` (the end of the file when None),
    fewer when there are fewer, decoded leniently."""
    if count <= 0:
        return []
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            data, position = b"", size if end is None else min(end, size)
            while position > 0 and data.count(b"\n") <= count:
                step = min(_BLOCK, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-count:]


def render(paths: Sequence[Path], count: int, ends: Mapping[Path, int] | None = None) -> str:
    """The last lines of each file (before ``ends[path]`` when given); with several files each
    block is headed ``==> name <==`` (as ``tail`` does), so lines of different replicas never mix."""
    blocks = []
    for path in paths:
        lines = tail_lines(path, count, (ends or {}).get(path))
        head = [f"==> {path.name} <=="] if len(paths) > 1 else []
        blocks.append("\n".join(head + lines))
    return "\n".join(block for block in blocks if block) + "\n"


async def follow(paths: Sequence[Path], count: int, stop: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """``render`` now, then whatever is appended to the files, until ``stop()`` says so. Both
    start from one snapshot of the sizes, so no line is lost or shown twice."""
    offsets = {path: _size(path) for path in paths}
    yield render(paths, count, offsets).encode()
    while not await stop():
        for path in paths:
            size = _size(path)
            if size < offsets[path]:  # replaced or truncated: start over
                offsets[path] = 0
            if size > offsets[path]:
                with open(path, "rb") as file:
                    file.seek(offsets[path])
                    chunk = file.read(size - offsets[path])
                offsets[path] = size
                yield chunk
        await asyncio.sleep(FOLLOW_POLL_S)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def record_event(folder: Path, message: str) -> None:
    """Append ``message`` to ``folder``'s event log, one line stamped with the UTC time, so that
    ``deployment logs`` tells what the daemon did to a deployment next to what its replicas said."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(folder / EVENTS_LOG, "a", encoding="utf-8") as file:
        file.write(f"{stamp} {message}\n")


def rotate_if_large(path: Path, max_bytes: int = MAX_LOG_BYTES, backups: int = LOG_BACKUPS) -> bool:
    """Copy ``path`` to ``path.1`` (older copies shift up to ``backups``) and empty it, once it
    is larger than ``max_bytes``; whether it did."""
    if _size(path) <= max_bytes:
        return False
    first = shift_backups(path, backups)
    if first is not None:
        shutil.copyfile(path, first)
    os.truncate(path, 0)
    return True


async def keep_rotated(folder: Path, pattern: str = "*.log", every_s: float = ROTATE_EVERY_S) -> None:
    """Rotate every matching log under ``folder`` that grew too large, every ``every_s``, forever."""
    while True:
        await asyncio.sleep(every_s)
        for path in folder.rglob(pattern):
            try:
                await asyncio.to_thread(rotate_if_large, path)
            except OSError:  # removed with its deployment meanwhile
                pass
