"""The rendered manifests run: every container of `modelport k8s render --target kubernetes` is
started as a local process with its command, args and env (the server containers with the
image's entrypoint over the `modelport package` context of their deployment), Service names
mapped to loopback ports and the ConfigMap and Secret written to the files the router's pod
mounts. 2,000 requests then go through the rendered router.

What this does not run: a cluster (scheduling, kube-proxy, the kubelet's probes, the
HorizontalPodAutoscaler), an image (the processes use this checkout's Python), several replicas
behind one Service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import free_port

INPUTS = Path(__file__).resolve().parent.parent / "data" / "golden" / "inputs"
FILES = [INPUTS / "endpoint.yml", INPUTS / "blue.yml", INPUTS / "green.yml"]
# The image's entrypoint (packaging.entrypoint) with its settings file where the package context has it
ENTRYPOINT = (
    "import sys; from pathlib import Path; import modelport.packaging.entrypoint as entry; "
    "entry.SETTINGS = Path(sys.argv.pop(1)); entry.main()"
)
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
INFER = "/v2/models/fraud-model/infer"


class Cluster:
    """The rendered objects, run as processes: Services → loopback ports, mounts → files."""

    def __init__(self, rendered: Path, contexts: dict[str, Path], root: Path) -> None:
        self.root = root
        self.objects = [yaml.safe_load(path.read_text()) for path in sorted(rendered.glob("*.yaml"))]
        self.contexts = contexts
        self.services = {  # "name:port" → loopback port
            f"{obj['metadata']['name']}:{port['port']}": free_port()
            for obj in self.objects
            if obj["kind"] == "Service"
            for port in obj["spec"]["ports"]
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def local(self, text: str) -> str:
        """Cluster addresses and mounted paths in ``text`` as they are here."""
        for address, port in self.services.items():
            text = text.replace(f"http://{address}", f"http://127.0.0.1:{port}")
        return text.replace("/etc/modelport/", f"{self.root}/etc/modelport/")

    def mount(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        """The ConfigMaps and Secrets the container mounts, written where it mounts them."""
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                (source,) = [o for o in self.of("ConfigMap") if o["metadata"]["name"] == volume["configMap"]["name"]]
                data = source["data"]
            elif "secret" in volume:
                (source,) = [o for o in self.of("Secret") if o["metadata"]["name"] == volume["secret"]["secretName"]]
                data = source["stringData"]
            else:
                continue
            folder = Path(self.local(mount["mountPath"]))
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in data.items():
                (folder / name).write_text(self.local(value))

    def start(self) -> None:
        for deployment in self.of("Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            self.mount(pod, container)
            tmp = self.root / deployment["metadata"]["name"] / "tmp"  # the emptyDir at /tmp
            tmp.mkdir(parents=True)
            env = {**os.environ, "HOME": str(tmp), "MODELPORT_HOME": str(tmp / "modelport")}
            env |= {item["name"]: item["value"] for item in container.get("env", [])}
            service = deployment["metadata"]["name"]
            if "command" in container:
                assert container["command"][0] == "modelport"
                args = [self.local(arg) for arg in container["args"]]
                args[args.index("--host") + 1] = "127.0.0.1"
                args[args.index("--port") + 1] = str(self.services[f"{service}:{args[args.index('--port') + 1]}"])
                command = [sys.executable, "-m", "modelport", *container["command"][1:], *args]
            else:  # the image's ENTRYPOINT
                deployment_name = deployment["metadata"]["labels"]["modelport.io/deployment"]
                command = [sys.executable, "-c", ENTRYPOINT, str(self.contexts[deployment_name] / "serve.json")]
                env["MODELPORT_HOST"] = "127.0.0.1"
                for variable in ("MODELPORT_HTTP_PORT", "MODELPORT_GRPC_PORT", "MODELPORT_METRICS_PORT"):
                    env[variable] = str(self.services[f"{service}:{env[variable]}"])
            log = open(self.root / f"{service}.log", "wb")  # noqa: SIM115 - closed with the process
            self.processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        probes = []
        for deployment in self.of("Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            probe = container["readinessProbe"]["httpGet"]
            probes.append(
                f"http://127.0.0.1:{self.services[deployment['metadata']['name'] + ':' + _port(container, probe['port'])]}{probe['path']}"
            )
        for url in probes:
            while True:
                assert all(p.poll() is None for p in self.processes), self.logs()
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{url} not ready: {self.logs()}"
                time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"{path.name}: {path.read_text()[-1500:]}" for path in self.root.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(autouse=True)
def _model(golden_model: Path) -> None:
    """The golden inputs' model file exists before any test reads them."""


def _port(container: dict[str, Any], name: str | int) -> str:
    """A named container port as the number its Service forwards it on (the same here)."""
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == name or p["containerPort"] == name]
    return str(number)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    from modelport import Workspace
    from modelport.packaging import wheelhouse

    ws = Workspace(tmp_path / "ws")
    rendered = tmp_path / "rendered"
    ws.render_k8s(files=FILES, target="kubernetes", output_dir=rendered)
    # the package contexts the images are built from, less the wheels: the processes run this Python
    monkeypatch.setattr(wheelhouse, "build", lambda folder, *args: folder.mkdir())
    contexts = {}
    for file in FILES[1:]:
        name = yaml.safe_load(file.read_text())["name"]
        contexts[name] = ws.package(file=file, output_dir=tmp_path / f"context-{name}").output_dir
    ws.close()
    running = Cluster(rendered, contexts, tmp_path / "root")
    try:
        running.start()
        running.wait_ready()
        yield running
    finally:
        running.stop()


async def _send(url: str, headers: dict[str, str], count: int, concurrency: int = 16) -> list[httpx.Response]:
    """``count`` inference requests, ``concurrency`` at a time, bounded by a 120 s deadline."""
    async with httpx.AsyncClient(timeout=10) as client:
        queue = iter(range(count))
        answers: list[httpx.Response] = []

        async def worker() -> None:
            for _ in queue:
                answers.append(await client.post(url, json=BODY, headers=headers))

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
        return answers


def _split(answers: list[httpx.Response]) -> Counter[str]:
    assert [a.status_code for a in answers if a.status_code != 200] == [], answers[0].text
    return Counter(answer.headers["azureml-model-deployment"] for answer in answers)


@pytest.mark.slow
def test_the_rendered_router_routes_as_the_endpoint_says(cluster: Cluster) -> None:
    (secret,) = cluster.of("Secret")
    key = secret["stringData"]["primary"]
    router = f"http://127.0.0.1:{cluster.services['fraud-router:8080']}"
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.get(f"{router}/healthz", timeout=5).status_code == 200

    # the 90/10 split of endpoint.yml, within ±3 points over 2,000 requests
    split = _split(asyncio.run(_send(router + INFER, auth, 2000)))
    assert sum(split.values()) == 2000
    assert abs(split["blue"] / 2000 - 0.90) <= 0.03 and abs(split["green"] / 2000 - 0.10) <= 0.03, split

    # a pin header reaches its deployment whatever the split says
    pinned = _split(asyncio.run(_send(router + INFER, auth | {"azureml-model-deployment": "green"}, 50)))
    assert pinned == {"green": 50}

    # no key, a wrong key, the secondary key
    assert httpx.post(router + INFER, json=BODY, timeout=5).status_code == 401
    wrong = {"authorization": "Bearer " + "x" * 43}
    assert httpx.post(router + INFER, json=BODY, headers=wrong, timeout=5).status_code == 401
    secondary = {"authorization": f"Bearer {secret['stringData']['secondary']}"}
    assert httpx.post(router + INFER, json=BODY, headers=secondary, timeout=5).status_code == 200


@pytest.mark.slow
def test_a_rewritten_configmap_moves_the_traffic_without_a_failed_request(cluster: Cluster) -> None:
    """Requests keep flowing while the file is swapped and until the router follows it."""
    (secret,) = cluster.of("Secret")
    auth = {"authorization": f"Bearer {secret['stringData']['primary']}"}
    router = f"http://127.0.0.1:{cluster.services['fraud-router:8080']}"
    config = cluster.root / "etc" / "modelport" / "router" / "router.yml"
    data = yaml.safe_load(config.read_text())

    async def scenario() -> tuple[list[tuple[float, int, str]], float]:
        answers: list[tuple[float, int, str]] = []  # (when, status, deployment)
        stop = asyncio.Event()

        async def load(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                answer = await client.post(router + INFER, json=BODY, headers=auth)
                answers.append(
                    (time.monotonic(), answer.status_code, answer.headers.get("azureml-model-deployment", ""))
                )

        async with httpx.AsyncClient(timeout=10) as client:
            senders = [asyncio.create_task(load(client)) for _ in range(4)]
            await asyncio.sleep(1)
            # as the kubelet updates a mounted ConfigMap: a new file swapped in whole
            staged = config.with_name("router.yml.new")
            staged.write_text(yaml.safe_dump(data | {"traffic": {"blue": 10, "green": 90}}))
            staged.rename(config)
            swapped = time.monotonic()
            deadline = swapped + 15
            while time.monotonic() < deadline:  # until the last 200 answers are mostly green
                await asyncio.sleep(0.2)
                recent = [deployment for _, _, deployment in answers[-200:]]
                if answers[-1][0] > swapped + 0.5 and recent.count("green") > 150:
                    break
            await asyncio.sleep(1)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*senders), 30)
        return answers, swapped

    answers, swapped = asyncio.run(scenario())
    assert [status for _, status, _ in answers if status != 200] == []  # no failed request throughout
    before = [deployment for when, _, deployment in answers if when < swapped]
    assert len(before) > 50 and before.count("blue") > 0.8 * len(before)
    assert len([when for when, _, _ in answers if when > swapped]) > 200
    split = _split(asyncio.run(_send(router + INFER, auth, 500)))
    assert abs(split["green"] / 500 - 0.90) <= 0.05, split
