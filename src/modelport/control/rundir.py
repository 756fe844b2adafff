"""The daemon's run folder, ``<workspace>/daemon``: its lock, its token and what local clients
need to find it (``daemon.json``: pid, URL, and the certificate it serves under TLS).

The folder is the owner's alone (0700): it holds the management token, and whoever reads the
token commands the daemon with the owner's rights.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from modelport.core.errors import ModelportError

PRIVATE_FOLDER = 0o700


def run_dir(root: Path) -> Path:
    return root / "daemon"


def private_run_dir(root: Path) -> Path:
    """The run folder, created if needed and (again) closed to everyone but the owner."""
    folder = run_dir(root)
    try:
        folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        os.chmod(folder, PRIVATE_FOLDER)  # mkdir's mode goes through the umask, and the folder may be older
    except OSError as exc:
        raise ModelportError(f"workspace: cannot prepare {folder} ({exc.strerror})") from None
    return folder


@dataclass(frozen=True)
class DaemonInfo:
    """What a running daemon tells local clients: who it is and where it answers."""

    pid: int
    url: str
    certfile: str | None = None  # the certificate it serves, which local clients pin

    def write(self, root: Path) -> None:
        (run_dir(root) / "daemon.json").write_text(json.dumps(asdict(self)))


def read_info(root: Path) -> DaemonInfo | None:
    """The daemon's ``daemon.json``, or None when there is none, it is unreadable, or the process
    that wrote it is gone (a daemon killed with SIGKILL leaves its file behind)."""
    try:
        data = json.loads((run_dir(root) / "daemon.json").read_text())
        info = DaemonInfo(int(data["pid"]), str(data["url"]), data.get("certfile"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, someone else's: still the recorded daemon as far as we can tell
        pass
    return info


def forget_info(root: Path) -> None:
    (run_dir(root) / "daemon.json").unlink(missing_ok=True)
