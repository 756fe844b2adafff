"""What a render starts from: an endpoint, its keys, and per deployment its definition and what
its image serves.

A stored endpoint (``-e NAME``) is read from the workspace's database, as ``modelport package``
reads a stored deployment (no daemon needs to run), keys included. Files (``-f endpoint.yml -f
deployment.yml...``) are read as ``endpoint create``/``deployment create`` read them and checked
with the same traffic rules; they have no keys yet (see :func:`modelport.kube.render.render`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelport.core.errors import ValidationError
from modelport.core.files import read_json_file

if TYPE_CHECKING:
    from modelport.packaging.sources import ModelFiles, PackageSource
    from modelport.registry.stores import WorkspaceStores
    from modelport.schema.online import DeploymentSpec, EndpointSpec


@dataclass(frozen=True)
class Served:
    """One deployment: its definition and the image ``modelport package`` makes of it."""

    spec: DeploymentSpec
    image: str  # the package's default tag, ENDPOINT-DEPLOYMENT:latest
    model: ModelFiles | None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class EndpointInput:
    """An endpoint and its deployments (sorted by name); ``keys`` when it is stored."""

    spec: EndpointSpec
    deployments: tuple[Served, ...]
    keys: tuple[str, str] | None = None


def stored(ws: WorkspaceStores, name: str) -> EndpointInput:
    """Endpoint ``name`` as the workspace's database holds it."""
    from modelport.control.catalog import Catalog
    from modelport.packaging.sources import from_deployment

    record = Catalog(ws).endpoint(name)
    served = [_served(d.spec, from_deployment(ws, f"{name}/{d.spec.name}")) for d in record.deployments]
    return EndpointInput(record.spec, _sorted(served), record.keys)


def from_files(ws: WorkspaceStores, files: Sequence[Path]) -> EndpointInput:
    """One endpoint file and its deployment files, told apart by their keys (a deployment names
    its ``endpoint_name``); the deployments must be the endpoint's and the traffic must add up."""
    from modelport.control.definitions import check_routing, parse_deployment, parse_endpoint
    from modelport.core.overrides import read_definition
    from modelport.packaging.sources import from_file

    endpoint: EndpointSpec | None = None
    served: list[Served] = []
    for file in files:
        data, base = read_definition(file)
        is_endpoint = "endpoint_name" not in data
        if is_endpoint and endpoint is not None:
            raise ValidationError(f"--file: {file} is a second endpoint definition; give one endpoint")
        try:
            if is_endpoint:
                endpoint = parse_endpoint(data)[0]
                continue
            spec = parse_deployment(data, base)[0]
        except ValidationError as exc:  # one line, naming the file too
            raise ValidationError(f"{file}: {exc}") from None
        served.append(_served(spec, from_file(ws, file)))
    if endpoint is None:
        raise ValidationError("--file: no endpoint definition among the files (a deployment names endpoint_name)")
    for item in served:
        if item.spec.endpoint_name != endpoint.name:
            raise ValidationError(
                f"endpoint_name: deployment {item.name!r} belongs to {item.spec.endpoint_name!r}, not {endpoint.name!r}"
            )
    names = [item.name for item in served]
    if len(set(names)) != len(names):
        raise ValidationError(f"name: deployment names repeat ({', '.join(sorted(names))})")
    if not served:
        raise ValidationError("--file: no deployment definition among the files")
    check_routing(endpoint, names)
    return EndpointInput(endpoint, _sorted(served))


def _served(spec: DeploymentSpec, source: PackageSource) -> Served:
    return Served(spec, source.image, source.model)


def _sorted(served: list[Served]) -> tuple[Served, ...]:
    return tuple(sorted(served, key=lambda item: item.name))


# -- the profiler's recommendation ---------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """CPU (cores) and memory (GiB) from ``modelport profile --save``: either may be unknown."""

    cpu: float | None
    memory_gb: float | None

    def fill(self, spec: DeploymentSpec) -> DeploymentSpec:
        """``spec`` with the requests (and a memory limit equal to the request) it does not set
        itself filled in. No CPU limit is added: a CPU limit throttles a busy server, a memory
        limit only stops one that has outgrown what it was measured at."""
        requests = dict(spec.resources.requests)
        limits = dict(spec.resources.limits)
        if self.cpu is not None:
            requests.setdefault("cpu", f"{math.ceil(self.cpu * 1000)}m")
        if self.memory_gb is not None:
            memory = f"{math.ceil(self.memory_gb * 1024)}Mi"
            requests.setdefault("memory", memory)
            limits.setdefault("memory", memory)
        resources = spec.resources.model_copy(update={"requests": requests, "limits": limits})
        return spec.model_copy(update={"resources": resources})


def read_profile(file: Path) -> Recommendation:
    """``recommendedCpu`` and ``recommendedMemoryInGB`` of a saved profile; anything else about
    the file is refused in one line naming it and the field."""
    document = read_json_file(file, "--profile")
    if not isinstance(document, Mapping):
        raise ValidationError(f"--profile: {file} is not a profile (modelport profile --save writes one)")
    values = []
    for key in ("recommendedCpu", "recommendedMemoryInGB"):
        value = document.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise ValidationError(f"--profile: {file}: {key}: expected a positive number, got {value!r}")
        values.append(None if value is None else float(value))
    return Recommendation(*values)


def with_profiles(endpoint: EndpointInput, profiles: Mapping[str | None, Path]) -> EndpointInput:
    """Each deployment's resources filled from its profile (key: the deployment's name), or from
    the one given for all (key ``None``)."""
    known = {item.name for item in endpoint.deployments}
    for name in profiles:
        if name is not None and name not in known:
            raise ValidationError(f"--profile: endpoint {endpoint.spec.name!r} has no deployment {name!r}")
    read = {name: read_profile(file) for name, file in profiles.items()}
    deployments = []
    for item in endpoint.deployments:
        recommendation = read.get(item.name) or read.get(None)
        deployments.append(item if recommendation is None else replace(item, spec=recommendation.fill(item.spec)))
    return replace(endpoint, deployments=tuple(deployments))
