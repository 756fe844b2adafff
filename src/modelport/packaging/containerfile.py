"""The ``Containerfile`` of a package (valid as a ``Dockerfile`` too).

Two stages: the first makes a virtualenv and installs the wheelhouse into it with pip offline
(``--no-index --require-hashes``), the second copies only that virtualenv, so pip and the wheels
stay behind. Instructions run from the least to the most often changed — the virtualenv, the
server's settings, the scoring code, then the model files, then the labels naming the model — so
a new model version rebuilds only the last layer.

The image runs as an unprivileged user (a fixed uid: minimal bases have no ``useradd``), answers
on 8000 (HTTP), 8001 (gRPC) and 8002 (metrics) on all interfaces, and checks its own readiness on
``/v2/health/ready`` with Python (slim images have no curl).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from modelport.packaging.sources import HealthProbe

UID = 10001
APP = "/opt/modelport"
VENV = "/opt/venv"
PORTS = (8000, 8001, 8002)
# A CUDA-capable base of the same Python minor is not published by NVIDIA; the official Python
# image runs CUDA code when the GPU wheels bring their CUDA libraries and the container runtime
# (nvidia-container-toolkit) brings the driver, which these variables ask it to.
GPU_ENV = {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
_HEALTH = (
    "import os, urllib.request; "
    "urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MODELPORT_HTTP_PORT', '8000') "
    "+ '/v2/health/ready', timeout=5)"
)


def default_base_image() -> str:
    """The official slim image of the running Python's minor version: the wheels are built for it."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


@dataclass(frozen=True)
class Recipe:
    """What the Containerfile says, decided by :mod:`.package`."""

    base_image: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    probe: HealthProbe
    has_code: bool
    has_model: bool
    gpu: bool = False


def render(recipe: Recipe) -> str:
    """The Containerfile text; a pure function of ``recipe`` (the context digest covers it)."""
    install = [
        f"python3 -m venv {VENV}",
        f"{VENV}/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels --require-hashes "
        "-r /tmp/wheels/requirements.txt",
    ]
    if recipe.gpu:  # the GPU build replaces the CPU one the core requirements bring
        install += [
            f"{VENV}/bin/pip uninstall --yes onnxruntime",
            f"{VENV}/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels --no-deps --force-reinstall "
            "onnxruntime-gpu",
        ]
    install.append(f"{VENV}/bin/pip uninstall --yes pip")
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
        "MODELPORT_HOME": "/tmp/modelport",
        "MODELPORT_HOST": "0.0.0.0",
        **(GPU_ENV if recipe.gpu else {}),
        **recipe.env,
    }
    probe = recipe.probe
    lines = [
        "# syntax=docker/dockerfile:1",
        "# Made by modelport package: build with docker, podman or buildah from this folder.",
        f"FROM {recipe.base_image} AS build",
        "COPY wheels/ /tmp/wheels/",
        "RUN " + " \\\n && ".join(install),
        "",
        f"FROM {recipe.base_image}",
        f"COPY --from=build {VENV} {VENV}",
        f"ENV {_pairs(env)}",
        f"COPY serve.json {APP}/serve.json",
    ]
    if recipe.has_code:
        lines.append(f"COPY code/ {APP}/code/")
    lines += [
        f"WORKDIR {APP}",
        f"USER {UID}:{UID}",
        "EXPOSE " + " ".join(str(port) for port in PORTS),
        f"HEALTHCHECK --interval={_seconds(probe.interval_s)} --timeout={_seconds(probe.timeout_s)} "
        f"--start-period={_seconds(probe.start_period_s)} --retries={probe.retries} "
        f"CMD {json.dumps(['python', '-c', _HEALTH])}",
        f"ENTRYPOINT {json.dumps([f'{VENV}/bin/python', '-m', 'modelport.packaging.entrypoint'])}",
        "CMD []",
    ]
    if recipe.has_model:
        lines.append(f"COPY model/ {APP}/model/")
    lines.append(f"LABEL {_pairs(recipe.labels)}")
    return "\n".join(lines) + "\n"


def _pairs(values: Mapping[str, str]) -> str:
    """``KEY="value"`` pairs for ENV and LABEL, JSON-quoted (Docker reads them as such), one a line."""
    return " \\\n    ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


def _seconds(value: float) -> str:
    return f"{value:g}s"
