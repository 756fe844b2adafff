"""Online endpoints and deployments in the database: the daemon's desired state.

A deployment is stored *resolved*: references are pinned to the versions they name now,
inline models and environments are registered first (as Azure does), and the scoring code is
copied into an immutable, content-addressed snapshot. What the daemon starts after a restart
is therefore exactly what was deployed. Every rule that can refuse a definition runs before
anything is written, and each write is one transaction, so a refused change changes nothing.

An inline model is registered before the deployment is stored (its replicas must run it first),
so a refusal after that point — a later resolution step, replicas that fail to start, an update
rolled back — would leave a version nobody asked for. :meth:`Catalog.resolve` therefore returns a
:class:`Resolution` naming what it registered, and :meth:`Catalog.release` removes those versions
again when the deployment was refused. Only the request that registered a version removes it,
and only while no other resolution in flight resolved to it and nothing stored uses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import posixpath
import shutil
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from modelport.control.definitions import check_routing, load_deployment
from modelport.core.errors import ConflictError, ModelportError, NotFoundError, ValidationError
from modelport.core.files import disk_error, disk_errors, private_dir, private_tree, temp_dir
from modelport.core.keys import KEY_NAMES, new_key
from modelport.core.names import parse_ref
from modelport.registry.code_ignore import CodeIgnore
from modelport.registry.manifest import Manifest, scan
from modelport.runtime import flavor_catalog
from modelport.schema.choices import AuthMode
from modelport.schema.collector import DataCollector
from modelport.schema.online import CodeConfiguration, DeploymentSpec, EndpointSpec, InlineEnvironment, InlineModel
from modelport.store.artifacts import sha256_file
from modelport.store.schema import Model, ModelVersion, OnlineDeployment, OnlineEndpoint, utcnow

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores

SCRIPT_FLAVORS = ("python",)  # registered scoring scripts: served on /score without code_configuration
REPOSITORY_FLAVORS = ("triton",)  # registered model repositories: served model by model
COMPOSED_FLAVORS = ("pipeline",)  # registered pipelines: served as one model, with the steps they pin


@dataclass(frozen=True)
class DeploymentRecord:
    """A stored deployment: its resolved definition and when it was made or last changed."""

    spec: DeploymentSpec
    created_at: datetime
    updated_at: datetime

    @property
    def revision(self) -> str:
        """Identifies what a replica runs; replicas of another revision are replaced on update.
        Instance count, request settings and probes apply without replacing replicas."""
        spec = self.spec
        what: list[Any] = [
            spec.model,
            spec.environment,
            spec.code_configuration.model_dump() if spec.code_configuration else {"code": "", "scoring_script": ""},
            spec.environment_variables,
        ]
        # added only when set, so revisions of deployments without them stay as they were
        if spec.config_overrides:
            what.append(spec.config_overrides)
        if spec.data_collector != DataCollector():
            what.append(spec.data_collector.to_dict())
        if spec.models:
            what.append(spec.models)
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "revision": self.revision,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class EndpointRecord:
    """A stored endpoint. ``keys`` never appear in ``to_dict``: only ``get-credentials`` shows them."""

    spec: EndpointSpec
    keys: tuple[str, str]
    deployments: tuple[DeploymentRecord, ...]
    created_at: datetime
    updated_at: datetime

    def deployment(self, name: str) -> DeploymentRecord:
        for record in self.deployments:
            if record.spec.name == name:
                return record
        raise NotFoundError(f"endpoint {self.spec.name!r} has no deployment {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "deployments": [d.spec.name for d in self.deployments],
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


@dataclass(frozen=True)
class Resolution:
    """A deployment resolved for one request, and the model versions that request registered."""

    spec: DeploymentSpec
    registered: tuple[str, ...] = ()


def deployments_using(session: Session, version: ModelVersion) -> list[str]:
    """The registry's usage check (``ModelRegistry.usage_checks``): deployments serving ``version``,
    as their model or in their ``models:`` list (read from the stored definitions: a list has no
    foreign key)."""
    ref = f"{version.container.name}:{version.version}"
    rows = session.execute(
        select(OnlineEndpoint.name, OnlineDeployment.name, OnlineDeployment.model_version_id, OnlineDeployment.spec)
        .join(OnlineDeployment, OnlineDeployment.endpoint_id == OnlineEndpoint.id)
        .order_by(OnlineEndpoint.name, OnlineDeployment.name)
    )
    return [
        f"online deployment {endpoint}/{deployment}"
        for endpoint, deployment, served, spec in rows
        if served == version.id or ref in (spec or {}).get("models", ())
    ]


class Catalog:
    """Create, read, change and delete online endpoints and deployments of one workspace."""

    def __init__(self, workspace: WorkspaceStores) -> None:
        self.ws = workspace
        self.code_dir = workspace.root / "endpoints" / "code"
        self._held: Counter[str] = Counter()  # model refs resolutions in flight resolved to
        self._held_lock = threading.Lock()

    # -- endpoints ----------------------------------------------------------------------------

    def endpoints(self) -> list[EndpointRecord]:
        with self.ws.db.session() as session:
            rows = session.scalars(
                select(OnlineEndpoint).options(selectinload(OnlineEndpoint.deployments)).order_by(OnlineEndpoint.name)
            )
            return [self._record(row) for row in rows]

    def endpoint(self, name: str) -> EndpointRecord:
        with self.ws.db.session() as session:
            return self._record(self._endpoint_row(session, name))

    def create_endpoint(self, spec: EndpointSpec) -> EndpointRecord:
        check_routing(spec, [])
        with self.ws.db.session() as session:
            if session.scalar(select(OnlineEndpoint.id).where(OnlineEndpoint.name == spec.name)) is not None:
                raise ConflictError(f"endpoint {spec.name!r} already exists; use endpoint update to change it")
            row = OnlineEndpoint(name=spec.name, primary_key=new_key(), secondary_key=new_key())
            _write_endpoint(row, spec)
            session.add(row)
            session.flush()
            return self._record(row)

    def update_endpoint(self, spec: EndpointSpec) -> EndpointRecord:
        with self.ws.db.session() as session:
            row = self._endpoint_row(session, spec.name)
            check_routing(spec, [d.name for d in row.deployments])
            _write_endpoint(row, spec)
            row.updated_at = utcnow()
            return self._record(row)

    def delete_endpoint(self, name: str) -> EndpointRecord:
        with self.ws.db.session() as session:
            row = self._endpoint_row(session, name)
            record = self._record(row)
            session.delete(row)
            return record

    def regenerate_key(self, name: str, which: str) -> EndpointRecord:
        if which not in KEY_NAMES:
            raise ValidationError(f"--key: {which!r} is not one of {', '.join(KEY_NAMES)}")
        with self.ws.db.session() as session:
            row = self._endpoint_row(session, name)
            setattr(row, f"{which}_key", new_key())
            row.updated_at = utcnow()
            return self._record(row)

    # -- deployments --------------------------------------------------------------------------

    def resolve(self, spec: DeploymentSpec) -> Resolution:
        """``spec`` with references pinned, inline assets registered and code snapshotted;
        refused (before anything is registered) when a reference names nothing. The caller
        hands the result to :meth:`release` once the deployment is stored or refused; a step
        that fails here releases what the steps before it registered."""
        self.endpoint(spec.endpoint_name)
        environment = spec.environment
        if isinstance(environment, str):
            environment = self._environment_ref(environment)
        listed = self._listed_models(spec.models)
        model, registered = self._model(spec)
        resolution = Resolution(spec.model_copy(update={"model": model, "models": listed}), registered)
        try:
            if isinstance(environment, InlineEnvironment):
                environment = self._register_environment(environment, f"{spec.endpoint_name}-{spec.name}-env")
            if spec.code_configuration is None and model is not None:  # a deployment has one or both
                flavor = self.ws.models.get(model).flavor
                if flavor not in (*flavor_catalog.loadable_names(), *SCRIPT_FLAVORS, *COMPOSED_FLAVORS):
                    raise ValidationError(
                        f"code_configuration: model {model} ({flavor}) needs a scoring script to be served"
                    )
            code = spec.code_configuration and self._snapshot(spec.code_configuration)
        except BaseException:
            self.release(resolution, refused=True)
            raise
        return dataclasses.replace(
            resolution, spec=resolution.spec.model_copy(update={"environment": environment, "code_configuration": code})
        )

    def release(self, resolution: Resolution, *, refused: bool) -> None:
        """The request that resolved ``resolution`` is done. When its deployment was refused, the
        versions it registered go again, unless another resolution in flight resolved to one of
        them or something stored uses it (the registry's usage check refuses those)."""
        model = resolution.spec.model
        with self._held_lock:
            if isinstance(model, str):
                self._held[model] -= 1
                if self._held[model] <= 0:
                    del self._held[model]
            for ref in resolution.registered if refused else ():
                if not self._held[ref]:
                    with contextlib.suppress(ConflictError, NotFoundError):  # stored meanwhile, or gone
                        self.ws.models.delete(ref)

    def save_deployment(self, spec: DeploymentSpec, *, all_traffic: bool = False) -> DeploymentRecord:
        """Insert or replace the (resolved) deployment; ``all_traffic`` sends it 100 % of the
        endpoint's live traffic in the same transaction."""
        with self.ws.db.session() as session:
            endpoint = self._endpoint_row(session, spec.endpoint_name)
            row = next((d for d in endpoint.deployments if d.name == spec.name), None)
            if row is None:
                row = OnlineDeployment(name=spec.name)
                endpoint.deployments.append(row)
            row.spec = spec.to_dict()
            assert not isinstance(spec.model, InlineModel), "resolve() registers inline models"
            row.model_version_id = self._model_version_id(session, spec.model)
            row.updated_at = utcnow()
            if all_traffic:
                routing = _endpoint_spec(endpoint).model_copy(
                    update={
                        "traffic": {name: 0 for name in endpoint.traffic} | {spec.name: 100},
                        "mirror_traffic": {k: v for k, v in endpoint.mirror_traffic.items() if k != spec.name},
                    }
                )
                check_routing(routing, [d.name for d in endpoint.deployments])
                _write_endpoint(endpoint, routing)
                endpoint.updated_at = utcnow()
            session.flush()
            return _deployment_record(row)

    def delete_deployment(self, endpoint_name: str, name: str) -> DeploymentRecord:
        with self.ws.db.session() as session:
            endpoint = self._endpoint_row(session, endpoint_name)
            row = next((d for d in endpoint.deployments if d.name == name), None)
            if row is None:
                raise NotFoundError(f"endpoint {endpoint_name!r} has no deployment {name!r}")
            _check_unrouted(_endpoint_spec(endpoint), name)
            endpoint.traffic = {k: v for k, v in endpoint.traffic.items() if k != name}
            endpoint.mirror_traffic = {k: v for k, v in endpoint.mirror_traffic.items() if k != name}
            record = _deployment_record(row)
            session.delete(row)
            return record

    # -- resolution ---------------------------------------------------------------------------

    def _model_ref(self, text: str) -> str:
        try:
            return self.ws.models.get(text).ref
        except ModelportError as exc:
            raise type(exc)(f"model: {exc}") from None

    def _listed_models(self, refs: list[str]) -> list[str]:
        """``models:`` pinned to versions, each a model the server loads (not a scoring script),
        each version once."""
        pinned: list[str] = []
        for index, text in enumerate(refs):
            field = f"models[{index}]"
            try:
                info = self.ws.models.get(text)
            except ModelportError as exc:
                raise type(exc)(f"{field}: {exc}") from None
            callable_flavors = (*flavor_catalog.loadable_names(), *REPOSITORY_FLAVORS, *COMPOSED_FLAVORS)
            if info.flavor not in callable_flavors:
                raise ValidationError(
                    f"{field}: model {info.ref} is a {info.flavor} model, which the server does not run; "
                    f"a scoring script calls {', '.join(callable_flavors)} models"
                )
            if info.ref in pinned:
                same = "is" if parse_ref(text) == parse_ref(info.ref) else f"is {info.ref},"
                raise ValidationError(f"{field}: {text} {same} listed already")
            pinned.append(info.ref)
        return pinned

    def _environment_ref(self, text: str) -> str:
        try:
            return self.ws.environments.get(text).ref
        except ModelportError as exc:
            raise type(exc)(f"environment: {exc}") from None

    def _model(self, spec: DeploymentSpec) -> tuple[str | None, tuple[str, ...]]:
        """The version ``spec.model`` resolves to, held, and whether this call registered it:
        a reference pinned, or for inline files the version already holding exactly them, else
        a new registration."""
        if spec.model is None:
            return None, ()
        if isinstance(spec.model, str):
            with self._held_lock:
                return self._hold(self._model_ref(spec.model)), ()
        inline, name = spec.model, spec.model.name or f"{spec.endpoint_name}-{spec.name}"
        digest = scan(Path(inline.path)).digest  # outside the lock: hashing takes a while
        with self._held_lock:  # what is found here cannot be released away before it is held
            same = [info for info in self._versions(self.ws.models, name) if info.digest == digest]
            if same:
                return self._hold(same[-1].ref), ()
        ref = self.ws.models.register(inline.path, name, description=inline.description, tags=inline.tags).ref
        with self._held_lock:  # only the request that registered a version ever removes it
            return self._hold(ref), (ref,)

    def _hold(self, ref: str) -> str:
        """Count ``ref`` as resolved by a request in flight (``_held_lock`` held)."""
        self._held[ref] += 1
        return ref

    def _register_environment(self, inline: InlineEnvironment, default_name: str) -> str:
        name = inline.name or default_name
        sha = sha256_file(Path(inline.conda_file))
        same = [info for info in self._versions(self.ws.environments, name) if info.spec_sha256 == sha]
        if same:
            return same[-1].ref
        return self.ws.environments.create(
            name, inline.conda_file, description=inline.description, tags=inline.tags
        ).ref

    @staticmethod
    def _versions(registry: Any, name: str) -> list[Any]:
        try:
            return registry.versions(name, include_archived=True)
        except NotFoundError:
            return []

    def _snapshot(self, code: CodeConfiguration) -> CodeConfiguration:
        """An immutable copy of the code folder, named by its content digest (shared when equal).
        It holds what :class:`CodeIgnore` leaves in, never the workspace, a virtualenv or ``.git``."""
        folder = Path(code.code)
        rule = CodeIgnore(folder, self.ws.root)
        manifest = scan(folder, "code_configuration.code", skip=rule)
        if posixpath.normpath(code.scoring_script) not in {entry.path for entry in manifest.files}:
            raise ValidationError(
                f"code_configuration.scoring_script: {code.scoring_script} is left out of the "
                f"snapshot by {rule.source or 'the folders always skipped'}"
            )
        target = self.code_dir / manifest.digest[:16]
        if not target.is_dir():
            with disk_errors(target), temp_dir(private_dir(self.ws.settings.tmp_dir), target.name) as staging:
                _copy_files(manifest, staging)
                private_tree(staging)
                try:
                    staging.rename(private_dir(self.code_dir) / target.name)
                except OSError:
                    if not target.is_dir():  # lost a race to an identical snapshot: keep the winner
                        raise
        return code.model_copy(update={"code": str(target)})

    @staticmethod
    def _model_version_id(session: Session, ref: str | None) -> int | None:
        if ref is None:
            return None
        parsed = parse_ref(ref)
        return session.scalar(
            select(ModelVersion.id)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(Model.name == parsed.name, ModelVersion.version == parsed.version)
        )

    # -- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _endpoint_row(session: Session, name: str) -> OnlineEndpoint:
        row = session.scalars(
            select(OnlineEndpoint).options(selectinload(OnlineEndpoint.deployments)).where(OnlineEndpoint.name == name)
        ).first()
        if row is None:
            raise NotFoundError(f"endpoint {name!r} does not exist")
        return row

    @staticmethod
    def _record(row: OnlineEndpoint) -> EndpointRecord:
        return EndpointRecord(
            spec=_endpoint_spec(row),
            keys=(row.primary_key, row.secondary_key),
            deployments=tuple(_deployment_record(d) for d in row.deployments),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _copy_files(manifest: Manifest, folder: Path) -> None:
    """Copy the scanned files into ``folder``: the snapshot holds exactly what was hashed. A file
    gone since the scan is one line naming it (a full disk is left to ``disk_errors``)."""
    for entry in manifest.files:
        target = folder / entry.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.source, target)
        except OSError as exc:
            if disk_error(exc) is not None:
                raise
            raise ValidationError(f"code_configuration.code: cannot copy {entry.path} ({exc.strerror})") from None


def _check_unrouted(endpoint: EndpointSpec, name: str) -> None:
    """Refuse to delete a deployment that still gets live or mirrored traffic, suggesting the
    command that takes it away (a split that still sums to 100, or 0 for all)."""
    shares = {key: getattr(endpoint, key).get(name, 0) for key in ("traffic", "mirror_traffic")}
    if not any(shares.values()):
        return
    taken = " and ".join(f"{pct} % of {key.replace('_', ' ')}" for key, pct in shares.items() if pct)
    command = f"modelport endpoint update -n {endpoint.name}"
    if shares["traffic"]:
        command += f' --traffic "{_split_text(_without(endpoint.traffic, name))}"'
    if shares["mirror_traffic"]:
        command += f' --mirror-traffic "{_split_text(_without(endpoint.mirror_traffic, name))}"'
    raise ConflictError(f"deployment {name!r} still gets {taken}; take it away first: {command}")


def _without(shares: dict[str, int], name: str) -> dict[str, int]:
    """``shares`` with ``name`` at 0 and its share spread over the others in proportion to theirs
    (largest remainders), so that the weights keep their sum; all 0 when no other gets any."""
    others = {key: pct for key, pct in shares.items() if key != name}
    total = sum(others.values())
    if not total:
        return dict.fromkeys(shares, 0)
    exact = {key: pct * sum(shares.values()) / total for key, pct in others.items()}
    result = {key: int(value) for key, value in exact.items()}
    leftover = sum(shares.values()) - sum(result.values())
    for key in sorted(exact, key=lambda key: result[key] - exact[key])[:leftover]:
        result[key] += 1
    return result | {name: 0}


def _split_text(shares: dict[str, int]) -> str:
    """What ``endpoint update --traffic`` and ``--mirror-traffic`` read: ``blue=100 green=0``."""
    return " ".join(f"{key}={pct}" for key, pct in shares.items())


def _write_endpoint(row: OnlineEndpoint, spec: EndpointSpec) -> None:
    stored = spec.to_dict()
    row.description, row.tags, row.auth_mode = stored["description"], stored["tags"], stored["auth_mode"]
    row.traffic, row.mirror_traffic = stored["traffic"], stored["mirror_traffic"]


def _endpoint_spec(row: OnlineEndpoint) -> EndpointSpec:
    return EndpointSpec(
        name=row.name,
        description=row.description,
        tags=dict(row.tags),
        auth_mode=AuthMode(row.auth_mode),
        traffic=dict(row.traffic),
        mirror_traffic=dict(row.mirror_traffic),
    )


def _deployment_record(row: OnlineDeployment) -> DeploymentRecord:
    return DeploymentRecord(spec=load_deployment(row.spec), created_at=row.created_at, updated_at=row.updated_at)
