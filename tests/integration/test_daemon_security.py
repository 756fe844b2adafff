"""The daemon's trust boundary, tried the way an attacker would: against a real ``modelport up``.

Every management route (and the daemon's /metrics) wants the workspace's token; a page on another
site gets nowhere (Host, Origin, Sec-Fetch-Site, content type); bodies are bounded; the issue's
command-execution deployment is never created without the token; another local user reads
nothing; rotating the token takes effect at once; binding beyond loopback needs TLS or an
explicit flag. One daemon serves the module; the binding tests start their own."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Cli, free_port
from endpoint_daemon import Daemon, running_daemon

from modelport.control.api import OPERATIONS

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """A folder only root may enter (0700), in /tmp, which everyone may traverse."""
    folder = Path(tempfile.mkdtemp(prefix="modelport-security-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(base: Path) -> Iterator[Daemon]:
    with running_daemon(base) as daemon:
        daemon.ok("endpoint", "create", "-n", "E")
        yield daemon


def _path(template: str) -> str:
    return template.replace("{endpoint}", "E").replace("{deployment}", "blue")


def _one_line_error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"], body
    return body["error"]


def test_every_management_route_needs_the_token(daemon: Daemon) -> None:
    routes = [(op.method, _path(op.path)) for op in OPERATIONS] + [("GET", "/metrics"), ("GET", "/api/not-yet")]
    for token in (None, "wrong-" + daemon.token()):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        for method, path in routes:
            body = {} if method in ("POST", "PUT") else None
            answer = httpx.request(method, f"{daemon.url}{path}", json=body, headers=headers, timeout=10)
            assert answer.status_code == 401, (method, path, token, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "token" in _one_line_error(answer)
    assert httpx.get(f"{daemon.url}/api/endpoints/E/keys", headers={"authorization": daemon.token()}).status_code == 401
    status = httpx.get(f"{daemon.url}/api/status", headers=daemon.api_headers())
    assert status.status_code == 200 and status.json()["workspace"] == str(daemon.home)
    metrics = httpx.get(f"{daemon.url}/metrics", headers=daemon.api_headers())
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{daemon.url}/openapi.json").status_code == 200  # static, the same for every daemon


def test_requests_from_other_sites_are_refused(daemon: Daemon) -> None:
    port, auth = daemon.port, daemon.api_headers()
    rebound = httpx.get(f"{daemon.url}/api/status", headers={**auth, "host": "attacker.example"})
    assert rebound.status_code == 421 and "attacker.example" in _one_line_error(rebound)
    assert (
        httpx.post(f"{daemon.url}/endpoints/E/score", json={}, headers={"host": f"attacker.example:{port}"}).status_code
        == 421
    )  # the router too
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"LOCALHOST:{port}"):
        assert httpx.get(f"{daemon.url}/api/status", headers={**auth, "host": name}).status_code == 200, name

    create = f"{daemon.url}/api/endpoints"
    body = {"definition": {"name": "browser"}}
    cross = httpx.post(create, json=body, headers={**auth, "origin": "http://evil.example"})
    assert cross.status_code == 403 and "evil.example" in _one_line_error(cross)
    assert httpx.post(create, json=body, headers={**auth, "origin": "null"}).status_code == 403
    assert httpx.post(create, json=body, headers={**auth, "sec-fetch-site": "cross-site"}).status_code == 403
    assert httpx.delete(f"{create}/E", headers={**auth, "origin": f"http://127.0.0.1:{port + 1}"}).status_code == 403
    plain = httpx.post(create, content=json.dumps(body), headers={**auth, "content-type": "text/plain"})
    assert plain.status_code == 415 and "text/plain" in _one_line_error(plain)
    form = httpx.post(create, data={"definition": "x"}, headers=auth)
    assert form.status_code == 415
    assert "browser" not in {e["name"] for e in daemon.json("endpoint", "list")}

    same = httpx.post(
        create, json=body, headers={**auth, "origin": f"http://127.0.0.1:{port}", "sec-fetch-site": "same-origin"}
    )
    assert same.status_code == 201, same.text  # the daemon's own origin passes
    preflight = httpx.options(
        create, headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
    )
    answers = (cross, plain, same, preflight, httpx.get(f"{daemon.url}/api/status", headers=auth))
    assert not any(key.startswith("access-control-") for answer in answers for key in answer.headers)
    daemon.ok("endpoint", "delete", "-n", "browser", "--yes")


def _raw(port: int, head: str, chunks: int = 0) -> bytes:
    """The answer to a request written by hand: ``head``, then ``chunks`` chunks of 64 KiB."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode())
        for _ in range(chunks):
            sock.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer and (part := sock.recv(65536)):
            answer += part
        return answer


def test_management_bodies_are_bounded(daemon: Daemon) -> None:
    head = (
        f"POST /api/endpoints HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nAuthorization: Bearer {daemon.token()}"
        "\r\nContent-Type: application/json\r\n"
    )
    declared = _raw(daemon.port, head + f"Content-Length: {600 * MIB}\r\n\r\n")  # answered with no byte of it sent
    assert declared.startswith(b"HTTP/1.1 413 "), declared
    chunked = _raw(daemon.port, head + "Transfer-Encoding: chunked\r\n\r\n", chunks=17)  # 1 MiB + 64 KiB
    assert chunked.startswith(b"HTTP/1.1 413 "), chunked
    within = httpx.post(
        f"{daemon.url}/api/endpoints",
        headers=daemon.api_headers(),
        json={"definition": {"name": "big"}, "set": ["description=" + "x" * (MIB // 2)]},
    )
    assert within.status_code == 201, within.text[:300]
    daemon.ok("endpoint", "delete", "-n", "big", "--yes")
    assert daemon.json("status")["workspace"] == str(daemon.home)


def test_the_command_running_deployment_is_never_created_without_the_token(daemon: Daemon, base: Path) -> None:
    pwned = base / "pwned"
    definition = {
        "name": "evil",
        "endpoint_name": "E",
        "model": "azureml:mlp:1",
        "instance_count": 1,
        "environment_variables": {
            "PYTHONWARNINGS": "ignore::antigravity.X",
            "BROWSER": f"/bin/sh -c 'id > {pwned}' #%s",
        },
    }
    body = {"definition": definition, "set": [], "base_dir": str(base), "all_traffic": True}
    url = f"{daemon.url}/api/endpoints/E/deployments"
    assert httpx.post(url, json=body, timeout=60).status_code == 401
    assert (
        httpx.post(
            url, content=json.dumps(body), headers={"content-type": "text/plain", "origin": "http://evil.example"}
        ).status_code
        == 403
    )
    time.sleep(2)  # a replica would have started by now
    assert daemon.json("deployment", "list", "-e", "E") == []
    assert not pwned.exists()
    assert not (daemon.home / "logs" / "endpoints" / "E" / "evil").exists()


def _as_nobody() -> list[str]:
    """The command prefix that runs a Python interpreter as the user nobody."""
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None:
        pytest.skip("needs root and runuser to run a probe as the unprivileged user nobody")
    for python in (sys.executable, "/usr/bin/python3"):
        command = [runuser, "-u", "nobody", "--", python, "-I"]
        if subprocess.run([*command, "-c", "pass"], capture_output=True).returncode == 0:
            return command
    pytest.skip("no Python interpreter the user nobody may run")


PROBE = """
import json, os, sys, urllib.error, urllib.request
url, paths = sys.argv[1], sys.argv[2:]
seen = {}
try:
    urllib.request.urlopen(url + "/api/endpoints/E/keys", timeout=10)
    seen["keys"] = 200
except urllib.error.HTTPError as error:
    seen["keys"] = error.code
for path in paths:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(1)
        seen[path] = "read"
    except OSError as error:
        seen[path] = type(error).__name__
print(json.dumps(seen))
"""


def _probe(as_nobody: list[str], url: str, *paths: Path) -> dict[str, object]:
    result = subprocess.run(
        [*as_nobody, "-c", PROBE, url, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_another_local_user_gets_nothing(daemon: Daemon, base: Path) -> None:
    as_nobody = _as_nobody()
    folder, token = daemon.home / "daemon", daemon.home / "daemon" / "token"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert token.stat().st_mode & 0o777 == 0o600 and token.stat().st_uid == os.getuid()

    seen = _probe(as_nobody, daemon.url, token, daemon.home / "modelport.db")
    assert seen == {"keys": 401, str(token): "PermissionError", str(daemon.home / "modelport.db"): "PermissionError"}
    os.chmod(base, 0o711)  # even with the workspace itself open to traversal, the run folder stays shut
    os.chmod(daemon.home, 0o711)
    try:
        seen = _probe(as_nobody, daemon.url, token, folder)
    finally:
        os.chmod(daemon.home, 0o700)
        os.chmod(base, 0o700)
    assert seen == {"keys": 401, str(token): "PermissionError", str(folder): "PermissionError"}


def test_rotating_the_token_takes_effect_without_a_restart(daemon: Daemon) -> None:
    pid, old = daemon.daemon_pid(), daemon.token()
    assert daemon.ok("token").stdout.strip() == old
    new = daemon.ok("token", "--rotate").stdout.strip()
    assert new != old and new == daemon.token() and len(new) >= 40
    assert (daemon.home / "daemon" / "token").stat().st_mode & 0o777 == 0o600
    url = f"{daemon.url}/api/endpoints/E/keys"
    assert httpx.get(url, headers={"authorization": f"Bearer {old}"}).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {new}"}).status_code == 200
    assert daemon.json("endpoint", "show", "-n", "E")["name"] == "E"  # the CLI reads the new one by itself
    assert daemon.daemon_pid() == pid
    stranger = Cli(daemon.home.parent / "elsewhere")  # another workspace has no token for this daemon
    stranger.env["MODELPORT_URL"] = daemon.url
    refused = stranger("endpoint", "list")
    assert refused.returncode == 1 and "MODELPORT_TOKEN" in refused.stderr
    stranger.env["MODELPORT_TOKEN"] = new
    assert stranger("endpoint", "list").returncode == 0


def _fails_in_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def test_binding_beyond_loopback_needs_tls_or_an_explicit_flag(tmp_path: Path) -> None:
    cli, port = Cli(tmp_path / "ws"), free_port()
    _fails_in_one_line(
        cli("up", "--host", "0.0.0.0", "--port", str(port)),  # noqa: S104
        "--host 0.0.0.0",
        "--tls-certfile",
        "--insecure-expose",
    )
    _fails_in_one_line(cli("up", "--port", str(port), "--tls-certfile", str(tmp_path / "cert.pem")), "give both")
    assert not (tmp_path / "ws" / "daemon" / "daemon.json").exists()
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", port))  # noqa: S104 - nothing took the port on any address


def test_tls_on_a_loopback_alias_with_the_cli_pinned_to_the_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=modelport.test",
            "-addext",
            "subjectAltName=DNS:modelport.test",
        ],
        check=True,
        capture_output=True,
    )
    cli, port = Cli(tmp_path / "ws"), free_port()
    started = cli(
        "up",
        "--host",
        "127.0.0.2",
        "--port",
        str(port),
        "--tls-certfile",
        str(cert),
        "--tls-keyfile",
        str(key),
        "--allowed-host",
        "modelport.test",
        "--print-token",
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    try:
        url = f"https://127.0.0.2:{port}"
        token = started.stdout.strip().splitlines()[-1]
        status = json.loads(cli("status", "-o", "json").stdout)  # found through daemon.json, certificate pinned
        assert status["url"] == url
        trusted = ssl.create_default_context(cafile=str(cert))
        trusted.check_hostname = False
        with httpx.Client(verify=trusted) as client:
            assert client.get(f"{url}/api/status").status_code == 401
            assert client.get(f"{url}/api/status", headers={"authorization": f"Bearer {token}"}).status_code == 200
            named = client.get(
                f"{url}/api/status", headers={"authorization": f"Bearer {token}", "host": f"modelport.test:{port}"}
            )
            assert named.status_code == 200  # an --allowed-host name
            # the router, answered in the HTTP protocol, over TLS: its Host check sees https's port
            assert client.post(f"{url}/endpoints/none/score", json={}).status_code == 404
            assert (
                client.post(f"{url}/endpoints/none/score", json={}, headers={"host": "modelport.test"}).status_code
                == 421
            )
            assert (
                client.post(
                    f"{url}/endpoints/none/score", json={}, headers={"host": f"evil.example:{port}"}
                ).status_code
                == 421
            )
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.2:{port}/api/status", timeout=5)  # no clear text on a TLS port
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/status", timeout=5)  # not on the system's CAs: a client must be told to trust it
    finally:
        cli("down", timeout=90)
