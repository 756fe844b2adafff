"""``scripts/postgres.sh`` (the test command's throwaway server) from a clone that the
``postgres`` user cannot enter, as one in root's 0700 home: the server's tools must not depend
on the caller's working directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"

pytestmark = [
    pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the script drops to the postgres user as root"),
    pytest.mark.skipif(not shutil.which("runuser"), reason="no runuser"),
    pytest.mark.skipif(
        not (list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb")),
        reason="PostgreSQL is not installed (scripts/test.sh installs it before the tests)",
    ),
]


def test_start_and_stop_from_a_clone_other_users_cannot_enter(tmp_path: Path) -> None:
    clone = tmp_path / "home" / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, clone / "scripts" / "postgres.sh")
    (tmp_path / "home").chmod(0o700)
    server = Path(tempfile.mkdtemp(prefix="modelport-pg-test."))  # as scripts/test.sh: a folder postgres can use
    server.chmod(0o755)
    port = free_port()
    try:
        started = subprocess.run(
            ["bash", "scripts/postgres.sh", "start", str(server / "pg"), str(port)],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr
        assert "Permission denied" not in started.stderr, started.stderr
        assert started.stdout.strip() == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        stopped = subprocess.run(
            ["bash", "scripts/postgres.sh", "stop", str(server / "pg")],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=120,
        )
        shutil.rmtree(server, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert "Permission denied" not in stopped.stderr, stopped.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
