"""The uvicorn adapter: what it reads of uvicorn's internals exists on the installed uvicorn, none
of its own names shadows one of uvicorn's, and a uvicorn outside the tested range is refused in
one line. An upgrade of uvicorn that moves an internal fails here, not in production."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
import uvicorn.server
from packaging.requirements import Requirement
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelport.core import uvicorn_adapter
from modelport.core.connections import Connections, LimitedProtocol
from modelport.core.http_server import HttpServer

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Probe(LimitedProtocol):
    """Records the attributes uvicorn gave the protocol and its request cycle, mid-request."""

    seen: dict[str, set[str]] = {}

    def message_complete(self) -> None:
        super().message_complete()
        _Probe.seen = {"protocol": set(vars(self)), "cycle": set(vars(self.cycle)) if self.cycle else set()}


def _serve_one_request() -> tuple[HttpServer, dict[str, set[str]]]:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = HttpServer(uvicorn.Config(_hello, log_level="critical", lifespan="off", http=_Probe), Connections())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sockets=[listening]),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(listening.getsockname(), timeout=10) as client:
            client.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        server_attributes = set(vars(server))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()
    assert not thread.is_alive()
    return server, {**_Probe.seen, "server": server_attributes}


def test_the_installed_uvicorn_has_what_the_adapter_reads() -> None:
    _, seen = _serve_one_request()
    for name in uvicorn_adapter.PROTOCOL_METHODS:
        assert callable(getattr(HttpToolsProtocol, name, None)), f"HttpToolsProtocol.{name} is gone"
    assert set(uvicorn_adapter.PROTOCOL_ATTRIBUTES) <= seen["protocol"]
    assert set(uvicorn_adapter.CYCLE_ATTRIBUTES) <= seen["cycle"]
    assert set(uvicorn_adapter.SERVER_ATTRIBUTES) <= seen["server"]
    assert callable(uvicorn.Server.capture_signals)
    config = uvicorn.Config(_hello, http=_Probe)
    config.load()
    assert config.http_protocol_class is _Probe
    assert hasattr(config, "ssl")


def test_the_adapter_shadows_nothing_of_uvicorn() -> None:
    """Its hooks and views have names uvicorn does not use (uvicorn's ``Server.started`` is a flag,
    for one): a clash would silently replace uvicorn's attribute."""
    uvicorn_protocol = set(dir(HttpToolsProtocol)) | _assigned(httptools_impl)
    own = set(vars(uvicorn_adapter.HttpProtocol)) - set(vars(object)) - set(uvicorn_adapter.PROTOCOL_METHODS)
    own -= {"__module__", "__dict__", "__weakref__", "__doc__", "__annotations__", "__init__"}
    assert own & uvicorn_protocol == set()
    own_server = set(vars(uvicorn_adapter.Server)) - {"__module__", "__doc__", "__init__", "capture_signals"}
    own_server -= {"startup", "shutdown"}
    assert own_server & (set(dir(uvicorn.Server)) | _assigned(uvicorn.server)) == set()


def _assigned(module: ModuleType) -> set[str]:
    """Every ``self.NAME`` a module of uvicorn assigns (its classes' instance attributes, and more)."""
    return set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=", inspect.getsource(module)))


@pytest.mark.parametrize("version", ["0.28.1", "0.56.0", "1.0.0"])
def test_a_uvicorn_outside_the_tested_range_is_refused_in_one_line(version: str) -> None:
    with pytest.raises(uvicorn_adapter.DependencyVersionError) as refused:
        uvicorn_adapter.check_version(version)
    message = str(refused.value)
    assert "\n" not in message and f"uvicorn {version} is installed" in message and "pip install" in message


def test_the_installed_uvicorn_is_in_range_and_pyproject_pins_the_same_range() -> None:
    uvicorn_adapter.check_version(uvicorn.__version__)
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    dependencies: list[Any] = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pinned = [Requirement(line) for line in dependencies if Requirement(line).name == "uvicorn"]
    assert [requirement.specifier for requirement in pinned] == [uvicorn_adapter.SUPPORTED]
