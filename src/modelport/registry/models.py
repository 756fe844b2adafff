"""The model registry: register files or folders as immutable versions, resolve references,
and hand out verified local copies.

Order of work in ``register`` is what keeps bad input from leaving traces: validate and hash
everything first, then upload blobs (content-addressed, so re-uploads are free), then insert
the version in one transaction; if that fails, blobs this call added and nobody references are
removed again.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from modelport.core.errors import ConflictError, NotFoundError, ValidationError
from modelport.core.files import disk_errors, private_dir, sweep, temp_dir
from modelport.core.names import Ref, parse_ref, parse_version, validate_alias, validate_name
from modelport.registry.assets import VersionedAssets, parse_pairs
from modelport.registry.manifest import Manifest, scan
from modelport.store import tables
from modelport.store.artifacts import ArtifactStore, remove_tree, sha256_file
from modelport.store.db import Database

if TYPE_CHECKING:  # the ORM is loaded by the operations that load or write rows, not by listing
    from sqlalchemy.orm import Session

    from modelport.runtime.flavor_info import Signature
    from modelport.store.schema import Model, ModelVersion

_DOWNLOAD_STAGING = ".modelport-download"

UsageCheck = Callable[["Session", "ModelVersion"], list[str]]
"""Names what uses a model version (e.g. ``["online deployment 'fraud/blue'"]``) inside the
deleting transaction. Layers above the registry register theirs in ``ModelRegistry.usage_checks``,
so the registry refuses to delete what they use without knowing about them."""


@dataclass(frozen=True)
class ModelInfo:
    """A registered model version as the SDK, CLI and servers see it."""

    name: str
    version: int
    flavor: str
    framework_version: str | None
    description: str
    tags: dict[str, str]
    properties: dict[str, str]
    signature: dict[str, Any] | None
    details: dict[str, Any]
    root_name: str
    is_dir: bool
    digest: str
    size: int
    archived: bool
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() + "Z"
        return data


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int | None
    version_count: int
    flavor: str | None
    archived: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(VersionedAssets["Model", "ModelVersion", ModelInfo]):
    kind = "model"
    container_table = tables.models
    version_table = tables.model_versions
    container_fk = "model_id"

    def __init__(self, db: Database, store: ArtifactStore, cache_dir: Path, tmp_dir: Path, root: Path) -> None:
        super().__init__(db)
        self.root = root  # the workspace's folder, left out of a pipeline's code snapshot
        self.store = store
        self.cache_dir = cache_dir
        self.tmp_dir = tmp_dir  # staging for the cache: same filesystem, so a finished copy is renamed in
        self.usage_checks: list[UsageCheck] = [_pipelines_using]  # a version a pipeline pins is not deleted

    # -- registration -----------------------------------------------------------------------

    def register(
        self,
        path: str | Path,
        name: str,
        *,
        version: int | str | None = None,
        flavor: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str = "",
        allow_duplicate: bool = False,
        follow_symlinks: bool = False,
        signature: Signature | None = None,
    ) -> ModelInfo:
        """Register ``path`` (a file or folder) as a new version of model ``name``.

        Symbolic links inside a folder are refused unless ``follow_symlinks`` (see
        :mod:`modelport.registry.manifest`). ``signature`` (from an input example or a signature
        file: :mod:`modelport.registry.flavors.signatures`) replaces what detection read.
        """
        validate_name(name)
        requested = None if version is None else parse_version(version)
        tag_map = parse_pairs(tags, "tags")
        property_map = parse_pairs(properties, "properties")
        # Detection (numpy, every flavor's reader) is loaded by registering, not by opening.
        from modelport.registry.flavors import detect
        from modelport.registry.flavors.pickle_imports import inspect_pickles
        from modelport.registry.flavors.signatures import check_fits
        from modelport.registry.pipelines import STEPS, pin_steps, pipeline_content
        from modelport.schema.pipeline import PIPELINE_KIND
        from modelport.store.schema import ModelFile, ModelVersion

        manifest = scan(Path(path), follow_symlinks=follow_symlinks)
        info = detect(Path(path), flavor)
        if info.flavor == PIPELINE_KIND:  # with its code folder, if it names one
            manifest = pipeline_content(Path(path), name, manifest, self.root)
        if signature is not None:
            check_fits(signature, info.flavor)
            info = replace(info, signature=signature)
        pickles = inspect_pickles((entry.path, entry.source) for entry in manifest.files)
        written: list[str] = []
        try:
            self._upload(manifest, written)
            with self.db.session() as session:
                if info.flavor == PIPELINE_KIND:  # its steps pinned in this transaction, so none is deleted meanwhile
                    info = replace(
                        info, details={**info.details, **pin_steps(session, self._resolve, Path(path), name)}
                    )
                container = self._lock_or_create(session, name)
                if not allow_duplicate:
                    pinned = {STEPS: info.details[STEPS]} if info.flavor == PIPELINE_KIND else {}
                    self._refuse_duplicate(session, container, manifest, pinned)
                row = ModelVersion(
                    model_id=container.id,
                    version=self._allocate(session, container, requested),
                    flavor=info.flavor,
                    framework_version=info.framework_version,
                    description=description,
                    tags=tag_map,
                    properties=property_map,
                    signature=info.signature.to_dict() if info.signature else None,
                    details={**info.details, **pickles.to_details()},
                    root_name=manifest.root_name,
                    is_dir=manifest.is_dir,
                    digest=manifest.digest,
                    size=manifest.size,
                    files=[ModelFile(path=f.path, sha256=f.sha256, size=f.size) for f in manifest.files],
                )
                session.add(row)
                session.flush()
                result = self._info(session, row)
        except BaseException:
            self._drop_unreferenced(written)
            raise
        self._upload(manifest, [])  # a concurrent delete may have collected a shared blob meanwhile
        return result

    def _upload(self, manifest: Manifest, written: list[str]) -> None:
        """Store every blob, appending to ``written`` as it goes, so that a failure halfway (a
        full disk) still lets the caller remove what this call added."""
        for entry in {f.sha256: f for f in manifest.files}.values():
            if self.store.put(entry.source, entry.sha256):
                written.append(entry.sha256)

    def _refuse_duplicate(self, session: Session, container: Model, manifest: Manifest, pinned: dict[str, Any]) -> None:
        """Identical content is a duplicate when its ``pinned`` details are the same too: a
        pipeline file registered again after an alias moved pins other steps, a new version."""
        versions = tables.model_versions.c
        same = next(
            (
                version
                for version, details in session.execute(
                    select(versions.version, versions.details).where(
                        versions.model_id == container.id, versions.digest == manifest.digest
                    )
                )
                if all((details or {}).get(key) == value for key, value in pinned.items())
            ),
            None,
        )
        if same is not None:
            raise ConflictError(
                f"model {container.name!r}: identical content is already registered as version {same}; "
                "pass --allow-duplicate to register it again"
            )

    def _drop_unreferenced(self, shas: list[str]) -> None:
        if not shas:
            return
        files, environments = tables.model_files.c, tables.environment_versions.c
        with self.db.connect() as conn:
            used = set(conn.scalars(select(files.sha256).where(files.sha256.in_(shas))))
            used |= set(conn.scalars(select(environments.spec_sha256).where(environments.spec_sha256.in_(shas))))
        for sha in set(shas) - used:
            self.store.delete(sha)

    # -- queries ----------------------------------------------------------------------------

    def list(self, include_archived: bool = False) -> list[ModelSummary]:
        with self.db.connect() as conn:
            summaries = []
            for container, rows in self._listing(conn, include_archived):
                if not rows and not include_archived:
                    continue
                latest = max(rows, key=lambda r: r.id) if rows else None
                summaries.append(
                    ModelSummary(
                        name=container.name,
                        latest_version=latest.version if latest else None,
                        version_count=len(rows),
                        flavor=latest.flavor if latest else None,
                        archived=container.archived,
                    )
                )
            return summaries

    def _by_alias(self, session: Session, container: Model, alias: str) -> ModelVersion:
        aliases = tables.model_aliases.c
        row = session.scalars(
            select(self.version_cls)
            .join(tables.model_aliases, aliases.version_id == self.version_cls.id)
            .where(aliases.model_id == container.id, aliases.alias == alias)
        ).first()
        if row is None:
            raise NotFoundError(f"model {container.name!r} has no alias {alias!r}")
        return row

    def _info(self, session: Session, row: ModelVersion) -> ModelInfo:
        return self._infos(session, [row])[0]

    def _infos(self, session: Session, rows: Sequence[ModelVersion]) -> builtins.list[ModelInfo]:
        """The versions' files and aliases in one query each, however many versions are asked for."""
        ids = [row.id for row in rows]
        model_files, model_aliases = tables.model_files.c, tables.model_aliases.c
        files: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for file in session.execute(
            select(tables.model_files).where(model_files.version_id.in_(ids)).order_by(model_files.path)
        ):
            files[file.version_id].append({"path": file.path, "sha256": file.sha256, "size": file.size})
        aliases: dict[int, list[str]] = defaultdict(list)
        for version_id, alias in session.execute(
            select(model_aliases.version_id, model_aliases.alias)
            .where(model_aliases.version_id.in_(ids))
            .order_by(model_aliases.alias)
        ):
            aliases[version_id].append(alias)
        return [
            ModelInfo(
                name=row.container.name,
                version=row.version,
                flavor=row.flavor,
                framework_version=row.framework_version,
                description=row.description,
                tags=dict(row.tags),
                properties=dict(row.properties),
                signature=row.signature,
                details=dict(row.details),
                root_name=row.root_name,
                is_dir=row.is_dir,
                digest=row.digest,
                size=row.size,
                archived=row.archived or row.container.archived,
                created_at=row.created_at,
                aliases=aliases[row.id],
                files=files[row.id],
            )
            for row in rows
        ]

    def pipelines_using(self, ref: str) -> builtins.list[str]:
        """The registered pipeline versions that pin version ``ref`` (lineage from a step to its users)."""
        from modelport.registry.pipelines import pipelines_using

        with self.db.session() as session:
            return pipelines_using(session, self._resolve(session, ref))

    # -- changes ----------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int | str | None = None) -> ModelInfo:
        validate_alias(alias)
        if alias == "latest":
            raise ValidationError("alias: 'latest' is reserved; it always means the most recent version")
        ref = Ref(validate_name(name), version=None if version is None else parse_version(version))
        from modelport.store.schema import ModelAlias

        with self.db.session() as session:
            row = self._resolve(session, ref)
            existing = session.get(ModelAlias, (row.model_id, alias))
            if existing is None:
                session.add(ModelAlias(model_id=row.model_id, alias=alias, version_id=row.id))
            else:
                existing.version_id = row.id
            session.flush()
            return self._info(session, row)

    def delete_alias(self, name: str, alias: str) -> None:
        validate_alias(alias)
        from modelport.store.schema import ModelAlias

        with self.db.session() as session:
            container = self._require_container(session, validate_name(name))
            existing = session.get(ModelAlias, (container.id, alias))
            if existing is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            session.delete(existing)

    def delete(self, ref: str) -> ModelInfo:
        """Delete one version (named by number or alias) and the blobs only it used."""
        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None:
            raise ValidationError(f"reference: {ref!r} names no version; use NAME:VERSION or NAME@ALIAS to delete")
        with self.db.session() as session:
            row = self._resolve(session, parsed)
            info = self._info(session, row)
            users = [user for check in self.usage_checks for user in check(session, row)]
            if users:
                raise ConflictError(
                    f"model {info.ref} is used by {', '.join(users)}; move them to another version first"
                )
            container = row.container
            session.delete(row)
            session.flush()
            if session.scalar(select(self.version_cls.id).where(self._fk(container)).limit(1)) is None:
                session.delete(container)
        self._drop_unreferenced([f["sha256"] for f in info.files])
        remove_tree(self.cache_dir / "models" / info.name / str(info.version))
        return info

    # -- files ------------------------------------------------------------------------------

    def path(self, ref: str) -> Path:
        """A local path to the registered file or folder, verified against its sha256s."""
        info = self.get(ref)
        return self._materialized(info) / info.root_name

    def model_dir(self, ref: str) -> tuple[ModelInfo, Path]:
        """The verified version folder holding the file or folder under its original name
        (what ``AZUREML_MODEL_DIR`` points at)."""
        info = self.get(ref)
        return info, self._materialized(info)

    def download(self, ref: str, to: str | Path) -> Path:
        """Copy the registered file or folder into ``to`` under its original name.

        Copies, never links: editing what was downloaded must not touch the store. The copy is
        staged in a locked temporary inside ``to`` (a rename away from its place); one left by a
        download that died is swept by the next download into the same folder."""
        info = self.get(ref)
        to = Path(to)
        if to.exists() and not to.is_dir():
            raise ValidationError(f"--to: {to} is not a folder")
        target = to / info.root_name
        if target.exists() or target.is_symlink():
            raise ConflictError(f"--to: {target} already exists; refusing to overwrite it")
        with disk_errors(target):
            to.mkdir(parents=True, exist_ok=True)
            sweep(to, prefix=_DOWNLOAD_STAGING)
            with temp_dir(to, _DOWNLOAD_STAGING) as staging:
                self._fill(info, staging, link=False)
                (staging / info.root_name).rename(target)
        return target

    def _materialized(self, info: ModelInfo) -> Path:
        target = self.cache_dir / "models" / info.name / str(info.version)
        if target.exists():
            if self._intact(info, target):
                return target
            remove_tree(target)  # damaged or partial copy: rebuild it from the store
        with disk_errors(target):
            private_dir(target.parent)
            with temp_dir(private_dir(self.tmp_dir), f"model-{info.version}") as staging:
                self._fill(info, staging, link=True)
                try:
                    staging.rename(target)
                except OSError:
                    if not (target.exists() and self._intact(info, target)):  # lost a race: keep the winner
                        raise
        return target

    def _fill(self, info: ModelInfo, folder: Path, *, link: bool) -> None:
        """Place the version's files under ``folder / root_name`` (see ``ArtifactStore.materialize``)."""
        for entry in info.files:
            dest = folder / info.root_name / entry["path"] if info.is_dir else folder / info.root_name
            self.store.materialize(entry["sha256"], dest, self._label(info, entry["path"]), link=link)

    def _intact(self, info: ModelInfo, target: Path) -> bool:
        for entry in info.files:
            file = target / info.root_name / entry["path"] if info.is_dir else target / info.root_name
            if not file.is_file() or sha256_file(file) != entry["sha256"]:
                return False
        return True

    @staticmethod
    def _label(info: ModelInfo, path: str) -> str:
        return f"model {info.name}:{info.version} file {path!r}"


def _pipelines_using(session: Session, version: ModelVersion) -> builtins.list[str]:
    """:func:`modelport.registry.pipelines.pipelines_using`, imported when a version is deleted: it
    brings the pipeline checks (and numpy) that opening a workspace does not need."""
    from modelport.registry.pipelines import pipelines_using

    return pipelines_using(session, version)
