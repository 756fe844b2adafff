"""What a package holds, read from the workspace: the model version and its verified files, the
scoring code, the environment's requirements, and the server's settings of the deployment.

Three kinds of target: a registered model reference (served no-code, as ``modelport serve NAME``
serves it), a stored online deployment ``ENDPOINT/DEPLOYMENT`` (read from the workspace's
database: no daemon needs to run), or a ``deployment.yml`` file (its model and environment may
be references or inline paths, which are read from disk without being registered).

Everything here only reads; files are written by :meth:`ModelFiles.place` and
:meth:`PackageSource.place_code` into the staging folder the caller owns.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.core.errors import IntegrityError, NotFoundError, ValidationError
from modelport.registry.manifest import Manifest, scan
from modelport.store.artifacts import sha256_file

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores
    from modelport.schema.online import DeploymentSpec, Probe

# The pip extra of modelport a flavor's runtime needs (pyproject.toml's optional dependencies).
FLAVOR_EXTRAS = {
    "sklearn": ("sklearn",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "torch": ("torch",),
    "mlflow": ("mlflow",),
}


@dataclass(frozen=True)
class ModelFiles:
    """One model version: what the registry knows of it and how to write its files.

    ``place`` writes ``<folder>/<root_name>``; every byte is checked against the recorded sha256
    as it is copied (the registry's blobs, or a path hashed when the package started)."""

    name: str
    version: int
    flavor: str
    root_name: str
    digest: str
    details: dict[str, Any]
    signature: dict[str, Any] | None
    place: Callable[[Path], None]
    steps: tuple[ModelFiles, ...] = ()  # a pipeline's pinned step models, packaged beside it

    def descriptor(self) -> dict[str, Any]:
        """What ``modelport serve`` needs to serve the packaged folder as the registered version
        (see ``serving.targets``): no workspace is opened at run time. A pipeline's lists its
        steps' versions, whose files lie beside its own (``<name>/<version>/<root_name>``)."""
        facts = {
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "root_name": self.root_name,
            "sha256": self.digest,
            "details": self.details,
            "signature": self.signature,
        }
        return {**facts, "steps": [step.descriptor() for step in self.steps]} if self.steps else facts


@dataclass(frozen=True)
class HealthProbe:
    """The image's HEALTHCHECK, from the deployment's readiness probe (Azure's defaults else)."""

    interval_s: float = 10
    timeout_s: float = 2
    start_period_s: float = 10
    retries: int = 30


@dataclass(frozen=True)
class PackageSource:
    """Everything the build context is made of, except the wheels."""

    origin: str  # "model fraud:3", "deployment web/blue", "file deployment.yml" (a label)
    image: str  # the default image tag
    model: ModelFiles | None
    code: Manifest | None = None
    scoring_script: str | None = None
    requirements: tuple[str, ...] = ()
    environment: str | None = None  # the environment's reference, when it is registered
    environment_hash: str | None = None
    extras: tuple[str, ...] = ()
    serve_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    probe: HealthProbe = HealthProbe()

    def place_code(self, folder: Path) -> None:
        """Copy the scoring code into ``folder``, each file checked against the hash it had when
        the package started (a file changed since is refused, naming it)."""
        assert self.code is not None
        for entry in self.code.files:
            target = folder / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.source, target)
            if sha256_file(target) != entry.sha256:
                raise IntegrityError(f"code: {entry.path} changed while it was being packaged; package again")


def from_model(ws: WorkspaceStores, ref: str) -> PackageSource:
    """A registered model served without code, as ``modelport serve REF`` would."""
    model = _registered(ws, ref)
    return PackageSource(
        origin=f"model {model.name}:{model.version}",
        image=f"{model.name}:{model.version}".lower(),
        model=model,
        extras=_extras(model),
    )


def from_deployment(ws: WorkspaceStores, target: str) -> PackageSource:
    """A stored online deployment ``ENDPOINT/DEPLOYMENT``, read from the database directly."""
    from modelport.control.catalog import Catalog

    endpoint, slash, name = target.partition("/")
    if not slash or not endpoint or not name or "/" in name:
        raise ValidationError(f"target: {target!r} is neither a model reference nor ENDPOINT/DEPLOYMENT")
    spec = Catalog(ws).endpoint(endpoint).deployment(name).spec
    return _from_spec(ws, spec, f"deployment {endpoint}/{name}")


def from_file(ws: WorkspaceStores, file: Path) -> PackageSource:
    """A ``deployment.yml`` as ``deployment create -f`` takes it; inline model and environment
    paths are read from disk (nothing is registered)."""
    from modelport.control.definitions import parse_deployment
    from modelport.core.overrides import read_definition

    data, base = read_definition(file)
    spec, _ = parse_deployment(data, base)
    return _from_spec(ws, spec, f"file {file.name}")


def _from_spec(ws: WorkspaceStores, spec: DeploymentSpec, origin: str) -> PackageSource:
    from modelport.registry.code_ignore import CodeIgnore
    from modelport.schema.online import InlineEnvironment, InlineModel

    if spec.models:  # an image holds one model; the ones a script calls are not packaged (yet)
        raise ValidationError("models: an image packages one model, not the models a scoring script calls")
    model: ModelFiles | None
    if isinstance(spec.model, InlineModel):
        model = _inline_model(spec.model, f"{spec.endpoint_name}-{spec.name}")
    else:
        model = None if spec.model is None else _registered(ws, str(spec.model))
    code = script = None
    if spec.code_configuration is not None:
        folder = Path(spec.code_configuration.code)
        code = scan(folder, "code_configuration.code", skip=CodeIgnore(folder, ws.root))
        script = posixpath.normpath(spec.code_configuration.scoring_script)
        if script not in {entry.path for entry in code.files}:
            raise ValidationError(f"code_configuration.scoring_script: {script} is not in {folder}")
    requirements: tuple[str, ...] = ()
    environment = environment_hash = None
    if isinstance(spec.environment, InlineEnvironment):
        from modelport.envs.spec import parse_spec_file

        env_spec = parse_spec_file(Path(spec.environment.conda_file))
        requirements, environment_hash = env_spec.pip_requirements, env_spec.content_hash
    elif spec.environment is not None:
        info = ws.environments.get(str(spec.environment))
        requirements, environment, environment_hash = tuple(info.pip_requirements), info.ref, info.content_hash
        ours = f"{sys.version_info.major}.{sys.version_info.minor}"
        if info.python is not None and info.python != ours:
            raise ValidationError(
                f"environment: {info.ref} asks for Python {info.python}; the image's wheels are built for {ours}, "
                "the Python modelport runs on"
            )
    serve_args = ["--endpoint-name", spec.endpoint_name, "--deployment-name", spec.name]
    serve_args += ["--request-timeout-ms", str(spec.request_settings.request_timeout_ms)]
    if spec.config_overrides:
        serve_args += ["--model-config", json.dumps(spec.config_overrides, sort_keys=True)]
    return PackageSource(
        origin=origin,
        image=f"{spec.endpoint_name}-{spec.name}:latest".lower(),
        model=model,
        code=code,
        scoring_script=script,
        requirements=requirements,
        environment=environment,
        environment_hash=environment_hash,
        extras=_extras(model),
        serve_args=tuple(serve_args),
        env=dict(sorted(spec.environment_variables.items())),
        probe=_probe(spec.readiness_probe),
    )


def _registered(ws: WorkspaceStores, ref: str) -> ModelFiles:
    """A registered version's files; a pipeline's with those of the step versions it pins."""
    from modelport.registry.pipelines import STEPS

    info = ws.models.get(ref)
    steps = tuple(_registered(ws, step) for step in dict.fromkeys(dict(info.details.get(STEPS) or {}).values()))

    def place(folder: Path) -> None:
        for entry in info.files:
            dest = folder / info.root_name / entry["path"] if info.is_dir else folder / info.root_name
            label = f"model {info.name}:{info.version} file {entry['path']!r}"
            ws.artifacts.materialize(entry["sha256"], dest, label, link=False)

    return ModelFiles(
        info.name, info.version, info.flavor, info.root_name, info.digest, info.details, info.signature, place, steps
    )


def _inline_model(inline: Any, default_name: str) -> ModelFiles:
    from modelport.core.names import validate_name
    from modelport.registry.flavors import detect

    path = Path(inline.path)
    if not path.exists():
        raise NotFoundError(f"model.path: {path} does not exist")
    manifest = scan(path, "model.path")
    info = detect(path.resolve())
    root = path.resolve().name

    def place(folder: Path) -> None:
        for entry in manifest.files:
            dest = folder / root / entry.path if path.is_dir() else folder / root
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.source, dest)
            if sha256_file(dest) != entry.sha256:
                raise IntegrityError(f"model.path: {entry.source} changed while it was being packaged; package again")

    name = validate_name(inline.name or default_name, "model.name")
    return ModelFiles(name, 1, info.flavor, root, manifest.digest, info.details, None, place)


def _extras(model: ModelFiles | None) -> tuple[str, ...]:
    """The extras of the model's flavor, and of its steps' for a pipeline."""
    if model is None:
        return ()
    return tuple(dict.fromkeys(extra for m in (model, *model.steps) for extra in FLAVOR_EXTRAS.get(m.flavor, ())))


def _probe(probe: Probe) -> HealthProbe:
    return HealthProbe(probe.period, probe.timeout, probe.initial_delay, probe.failure_threshold)
