"""The image builders modelport drives: docker, podman (engines) and buildah (daemonless).

``auto`` takes an engine that answers (``docker info`` / ``podman info`` succeed), else buildah,
which builds without a daemon or root (``--isolation chroot``; CI machines and containers), else
stops with one line naming what to install. Each builder can tell whether an image is present,
load a base image from an archive, build the context with layer caching, and save the image.
buildah reads its storage from the usual places (``containers-storage.conf``,
``CONTAINERS_STORAGE_CONF``, ``STORAGE_DRIVER``), which is how a private store is chosen.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from modelport.core.errors import BuildError, NotFoundError, ValidationError
from modelport.store.artifacts import sha256_file

ARCHIVE_TRANSPORTS = ("oci-archive:", "docker-archive:")
_PROBE_TIMEOUT_S = 15
_PULL_TIMEOUT_S = 600


class BuilderKind(str, Enum):
    DOCKER = "docker"
    PODMAN = "podman"
    BUILDAH = "buildah"


BUILDER_CHOICES = ("auto", *(kind.value for kind in BuilderKind))


@dataclass(frozen=True)
class Builder:
    kind: BuilderKind
    executable: str

    def has_image(self, image: str) -> bool:
        command = (
            ["inspect", "--type", "image", image] if self.kind is BuilderKind.BUILDAH else ["image", "inspect", image]
        )
        return self._quiet(command)

    def ensure_base(self, image: str) -> str:
        """The name to build ``FROM``: a present or pullable image as it is; an archive
        (``oci-archive:PATH``, ``docker-archive:PATH``) loaded and tagged by its content hash."""
        if image.startswith(ARCHIVE_TRANSPORTS):
            return self._load(image)
        if self.has_image(image) or self._quiet(["pull", image]):
            return image
        raise NotFoundError(f"--base-image: {image} is not a local image and cannot be pulled ({self.kind.value})")

    def build(self, context: Path, tag: str) -> None:
        """Build ``context`` (its ``Containerfile``) as ``tag``, reusing cached layers; the
        builder's output goes to our stderr. Docker's image format: the OCI one has no HEALTHCHECK."""
        command = [self.executable]
        if self.kind is BuilderKind.BUILDAH:
            command += ["bud", "--layers", "--isolation", "chroot", "--format", "docker"]
        elif self.kind is BuilderKind.PODMAN:
            command += ["build", "--layers", "--format", "docker"]
        else:
            command += ["build"]
        command += ["--file", str(context / "Containerfile"), "--tag", tag, str(context)]
        self._run(command, "build")

    def save(self, tag: str, archive: Path) -> None:
        """Write the image to ``archive``: an OCI archive (buildah, podman) or Docker's (docker)."""
        if self.kind is BuilderKind.BUILDAH:
            command = [self.executable, "push", tag, f"oci-archive:{archive}:{tag}"]
        elif self.kind is BuilderKind.PODMAN:
            command = [self.executable, "save", "--format", "oci-archive", "--output", str(archive), tag]
        else:
            command = [self.executable, "save", "--output", str(archive), tag]
        self._run(command, "save")

    def _load(self, image: str) -> str:
        transport, _, path = image.partition(":")
        archive = Path(path)
        if not archive.is_file():
            raise NotFoundError(f"--base-image: {archive} does not exist")
        name = f"localhost/modelport-base:{sha256_file(archive)[:16]}"
        if self.has_image(name):
            return name
        if self.kind is BuilderKind.BUILDAH:
            loaded = self._output(["pull", "--quiet", image], "--base-image").strip().splitlines()[-1]
        else:
            text = self._output(["load", "--input", str(archive)], "--base-image")
            found = re.findall(r"Loaded image(?: ID)?: (\S+)", text)
            if not found:
                raise BuildError(f"--base-image: {self.kind.value} load named no image in {archive}")
            loaded = found[-1]
        self._run([self.executable, "tag", loaded, name], "tag")
        return name

    def _quiet(self, args: list[str]) -> bool:
        try:
            result = subprocess.run([self.executable, *args], capture_output=True, check=False, timeout=_PULL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _output(self, args: list[str], what: str) -> str:
        result = subprocess.run([self.executable, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(f"{what}: {self.kind.value} {args[0]} failed: {_last_line(result.stderr)}")
        return result.stdout

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
        if result.returncode != 0:
            raise BuildError(f"{what}: {' '.join(command[:2])} exited with {result.returncode} (its output is above)")


def choose(name: str) -> Builder:
    """The builder ``name`` asks for (``auto`` or a :class:`BuilderKind` value)."""
    if name not in BUILDER_CHOICES:
        raise ValidationError(f"--builder: {name!r} is not one of {', '.join(BUILDER_CHOICES)}")
    if name != "auto":
        kind = BuilderKind(name)
        executable = shutil.which(kind.value)
        if executable is None:
            raise BuildError(f"--builder: {kind.value} is not installed (not found on PATH)")
        return Builder(kind, executable)
    for kind in (BuilderKind.DOCKER, BuilderKind.PODMAN):
        executable = shutil.which(kind.value)
        if executable is not None and _answers(executable):
            return Builder(kind, executable)
    executable = shutil.which(BuilderKind.BUILDAH.value)
    if executable is not None:
        return Builder(BuilderKind.BUILDAH, executable)
    raise BuildError("--build: no container builder found; install docker, podman or buildah (apt install buildah)")


def _answers(executable: str) -> bool:
    """Whether the engine behind ``executable`` answers (a docker CLI without a daemon does not)."""
    try:
        result = subprocess.run([executable, "info"], capture_output=True, check=False, timeout=_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
