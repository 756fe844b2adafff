"""``router.yml`` into the router's backend, without sockets: which objects a reload keeps, where
the keys come from, and which file changes are noticed (Kubernetes' ``..data`` swap included)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from modelport.core.errors import ValidationError
from modelport.routing.config_file import load, stamps, watched
from modelport.routing.configured import ConfiguredBackend, UrlReplicas, configured_endpoint
from modelport.routing.upstream_http import UpstreamPool
from modelport.schema.base import parse
from modelport.schema.router_config import RouterConfig


def config(**deployments: dict[str, Any]) -> RouterConfig:
    traffic = dict.fromkeys(deployments, 0)
    traffic[next(iter(deployments))] = 100
    data = {"endpoint": "ep", "auth_mode": "none", "traffic": traffic, "deployments": deployments}
    return parse(RouterConfig, data).value


def test_a_reload_keeps_what_did_not_change() -> None:
    """Unchanged deployments keep their group (its in-flight count holds against the limit); a
    changed one gets a new group over the same URL objects; a URL named no more stops being probed."""

    async def scenario() -> None:
        async with UpstreamPool() as http:
            replicas = UrlReplicas(http)
            first = configured_endpoint(
                config(blue={"urls": ["http://a/", "http://b"]}, green={"urls": ["http://c"]}), ("", ""), replicas
            )
            assert isinstance(first.backend, ConfiguredBackend)
            blue, green = first.backend.groups["blue"], first.backend.groups["green"]
            assert [r.url for r in blue.serving()] == ["http://a", "http://b"]  # trailing / dropped
            blue.in_flight = 3
            second = configured_endpoint(
                config(blue={"urls": ["http://a/", "http://b"]}, green={"urls": ["http://c", "http://d"]}),
                ("", ""),
                replicas,
                first,
            )
            assert second.group("blue") is blue and second.group("blue").in_flight == 3  # type: ignore[union-attr]
            regrown = second.group("green")
            assert regrown is not green and regrown is not None
            assert regrown.serving()[0] is green.replicas[0]  # the URL's counts and rotation carry over
            assert second.group("red") is None and second.backend.group("other", "blue") is None
            third = configured_endpoint(config(green={"urls": ["http://d"]}), ("", ""), replicas, second)
            assert third.deployments == frozenset({"green"})
            assert sorted(replicas._watchers) == ["http://d"]
            await replicas.close()

    asyncio.run(scenario())


def test_a_refusing_url_leaves_and_comes_back_when_ready() -> None:
    """What the router does on a refused connection, and the probe that undoes it."""

    async def scenario() -> None:
        from aiohttp import web

        async def answer(request: web.Request) -> web.Response:
            return web.Response(status=200)

        ready = web.Application()
        ready.router.add_get("/v2/health/ready", answer)
        runner = web.AppRunner(ready)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with UpstreamPool() as http:
                replicas = UrlReplicas(http)
                endpoint = configured_endpoint(config(blue={"urls": [f"http://127.0.0.1:{port}"]}), ("", ""), replicas)
                group = endpoint.group("blue")
                assert group is not None
                replica = group.serving()[0]
                replica.ready = False
                replica.recheck.set()
                assert group.serving() == [] and f"127.0.0.1:{port} refused connections" in group.unready_reason()
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if replica.ready:
                        break
                assert group.serving() == [replica] and not replica.recheck.is_set()
                await replicas.close()
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_keys_are_read_from_files_beside_the_config(tmp_path: Path) -> None:
    keys = tmp_path / "secret"
    keys.mkdir()
    (keys / "primary").write_text("first\n")
    file = write(
        tmp_path / "router.yml", {"endpoint": "ep", "keys_dir": "secret", "deployments": {"b": {"urls": ["u"]}}}
    )
    assert load(file).keys == ("first", "")  # relative to the file's folder; a missing key file is no key
    (keys / "primary").unlink()
    with pytest.raises(ValidationError, match=r"router.yml: keys_dir: no key in .*secret"):
        load(file)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"endpoint": "ep", "auth_mode": "none", "deployments": {"b": {"urls": ["u"], "timeout": 1}}},
            "deployments.b.timeout",
        ),
        ({"endpoint": "ep", "auth_mode": "none", "deployments": {"b": {"urls": []}}}, "deployments.b.urls"),
        (["not", "a", "mapping"], "router.yml: "),
    ],
)
def test_a_bad_file_is_one_line_naming_the_field(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        load(write(tmp_path / "router.yml", data))
    assert message in str(refused.value) and "\n" not in str(refused.value)
    (tmp_path / "bad.yml").write_text("endpoint: [")
    with pytest.raises(ValidationError, match="bad.yml: not valid YAML"):
        load(tmp_path / "bad.yml")
    with pytest.raises(ValidationError, match="--config: .*missing.yml does not exist"):
        load(tmp_path / "missing.yml")


def test_a_configmap_swap_is_noticed(tmp_path: Path) -> None:
    """Kubernetes mounts ``router.yml -> ..data/router.yml`` and swaps ``..data`` to a new folder:
    the path is the same, what it resolves to is not."""
    for generation in ("..v1", "..v2"):
        (tmp_path / generation).mkdir()
        write(tmp_path / generation / "router.yml", {"endpoint": "ep", "auth_mode": "none", "deployments": {}})
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "router.yml").symlink_to("..data/router.yml")
    file = tmp_path / "router.yml"
    before = stamps(watched(file, load(file).config))
    assert stamps(watched(file, load(file).config)) == before
    (tmp_path / "..swap").symlink_to("..v2")
    os.replace(tmp_path / "..swap", tmp_path / "..data")
    assert stamps(watched(file, load(file).config)) != before
