"""The daemon's management API fuzzed over its own OpenAPI document with a valid token: no answer
is a 5xx, the daemon keeps serving, and its memory stays bounded.

The fuzzer runs as users run it, as a separate process (``schemathesis run``) against a real
``modelport up``. Its time is bounded (``--max-time``); every request has a timeout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from endpoint_daemon import Daemon, write_yaml

pytestmark = pytest.mark.slow

FUZZ_SECONDS = 20
RSS_GROWTH_LIMIT_MB = 150


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _status_codes(folder: Path) -> set[int]:
    """The status codes of the answers the fuzzer's report recorded."""
    report = "\n".join(path.read_text() for path in folder.glob("*.ndjson"))
    return {int(code) for code in re.findall(r'"status_code":\s*(\d+)', report)}


def test_management_api_survives_fuzzing(tmp_path: Path) -> None:
    fuzzer = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if fuzzer is None:
        pytest.skip("schemathesis is not installed (it comes with the test extras)")
    daemon = Daemon(tmp_path / "ws")
    daemon.up()
    try:
        daemon.ok("endpoint", "create", "-f", str(write_yaml(tmp_path / "ep.yml", {"name": "ep1"})))
        token = daemon.ok("token").stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        pid = daemon.daemon_pid()
        before = _rss_mb(pid)
        result = subprocess.run(
            [
                fuzzer,
                "run",
                f"{daemon.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error",
                "--max-time",
                str(FUZZ_SECONDS),
                "--request-timeout",
                "10",
                "--workers",
                "1",
                "--suppress-health-check",
                "all",
                "--warnings",
                "off",
                "--no-color",
                "--report",
                "ndjson",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=FUZZ_SECONDS + 120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        codes = _status_codes(tmp_path / "report")
        assert 401 not in codes, "the fuzzer's token was refused: it tested nothing past authentication"
        assert codes & {200, 201} and codes & {400, 404}, codes  # it reached handlers, valid and invalid
        status = httpx.get(f"{daemon.url}/api/status", headers=headers, timeout=10)
        assert status.status_code == 200
        assert _rss_mb(pid) - before < RSS_GROWTH_LIMIT_MB
    finally:
        daemon.down()
