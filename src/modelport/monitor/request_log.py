"""The request log: one JSON line per scoring request, rotated by size.

Lines are written by a :class:`~modelport.monitor.writer.BackgroundWriter`, never on the request
path. When the file would grow past ``max_bytes`` it is renamed ``<name>.1`` (older ones shift
to ``.2``... up to ``backups``, the oldest is removed) and a new file starts, as logrotate and
Python's ``RotatingFileHandler`` do, so a long-lived replica keeps a bounded amount of log.

The path ``-`` is standard output, where a container's log belongs (its runtime collects and
rotates it): each line is one ``write``, so the lines of several workers sharing the stream stay
whole (a pipe keeps writes of up to ``PIPE_BUF``, 4 KiB, in one piece; a log line is ~300 bytes).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from modelport.core.files import open_private, private_dir
from modelport.monitor.writer import BackgroundWriter

# What the front end submits per request, in this order (a tuple costs less than a dict there):
# time (epoch s), request id, endpoint, deployment, model, version, method, path, status, latency (ns),
# queue time (ns), batch size.
Entry = tuple[float, str, str | None, str | None, str | None, str | None, str, str, int, int, int, int]
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_BACKUPS = 5


STDOUT = Path("-")


class RequestLog:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        if self.path == STDOUT:
            self._stdout: int | None = os.dup(1)  # the writer's own descriptor: closing it leaves stdout open
            self._writer: BackgroundWriter[Entry] = BackgroundWriter(
                "request-log", self._write_lines, finish=self._close_stdout
            )
            return
        self._stdout = None
        private_dir(self.path.parent)
        self._file = open_private(self.path)  # owned by the writer thread until close
        self._writer = BackgroundWriter("request-log", self._write, finish=lambda: self._file.close())

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    def submit(self, entry: Entry) -> None:
        """Queue one request's facts (see :data:`Entry`); formatting happens on the writer thread."""
        self._writer.submit(entry)

    def close(self) -> None:
        self._writer.close()

    def _write(self, entries: list[Entry]) -> None:
        data = b"".join(orjson.dumps(_record(entry), option=orjson.OPT_UTC_Z) + b"\n" for entry in entries)
        if self._file.tell() and self._file.tell() + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()

    def _write_lines(self, entries: list[Entry]) -> None:
        assert self._stdout is not None
        for entry in entries:
            os.write(self._stdout, orjson.dumps(_record(entry), option=orjson.OPT_UTC_Z) + b"\n")

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            os.close(self._stdout)

    def _rotate(self) -> None:
        self._file.close()
        first = shift_backups(self.path, self.backups)
        if first is not None:
            os.replace(self.path, first)
        else:
            self.path.unlink()
        self._file = open_private(self.path)


def shift_backups(path: Path, backups: int) -> Path | None:
    """Make room for a new newest backup of ``path``: ``path.1`` → ``path.2``… (the one beyond
    ``backups`` is overwritten); the free ``path.1``, or None when no backups are kept."""
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    return path.with_name(f"{path.name}.1") if backups > 0 else None


def _record(entry: Entry) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(entry[0], timezone.utc),
        "request_id": entry[1],
        "endpoint": entry[2],
        "deployment": entry[3],
        "model": entry[4],
        "version": entry[5],
        "method": entry[6],
        "path": entry[7],
        "status": entry[8],
        "latency_ms": round(entry[9] / 1e6, 3),
        "queue_ms": round(entry[10] / 1e6, 3),
        "batch_size": entry[11],
    }
