"""What models and environments have in common: names, integer versions, ``latest``, archiving.

Version allocation is the one delicate part. A registration locks its container row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE`` and so
already serialized) and then takes ``max(version) + 1``: concurrent registrations of one name
get distinct, consecutive versions without retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Row, Table, func, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from modelport.core.errors import ConflictError, NotFoundError, ValidationError
from modelport.core.names import Ref, parse_ref, validate_name
from modelport.store.db import Database

if TYPE_CHECKING:  # the ORM is loaded by the operations that load or write rows, not by listings
    from sqlalchemy.orm import Session

    from modelport.store.schema import Container, Versioned

C = TypeVar("C", bound="Container")
V = TypeVar("V", bound="Versioned")
Info = TypeVar("Info")  # the public, detached description of a version (ModelInfo, EnvironmentInfo)


def parse_pairs(pairs: dict[str, Any] | None, field: str) -> dict[str, str]:
    """Tags and properties are flat string maps with non-empty keys."""
    result: dict[str, str] = {}
    for key, value in (pairs or {}).items():
        if not isinstance(key, str) or not key.strip() or len(key) > 255:
            raise ValidationError(f"{field}: key {key!r} must be a non-empty string of at most 255 characters")
        if value is None or isinstance(value, (dict, list)):
            raise ValidationError(f"{field}.{key}: value must be a string, number or boolean")
        result[key] = str(value)
    return result


class VersionedAssets(Generic[C, V, Info]):
    """Shared queries over one container table and its version table.

    Subclasses name their tables and turn a version row into their public info (``_info``);
    the operations every versioned asset has — get, versions, update, archive, restore — live here.
    Listings read the Core tables; the other operations work on the classes mapped onto them.
    """

    kind: str  # "model" | "environment", used in messages
    container_table: Table
    version_table: Table
    container_fk: str  # the version table's foreign key column to its container

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def container_cls(self) -> type[C]:
        from modelport.store.schema import mapped_class

        return cast("type[C]", mapped_class(self.container_table))

    @property
    def version_cls(self) -> type[V]:
        from modelport.store.schema import mapped_class

        return cast("type[V]", mapped_class(self.version_table))

    def _info(self, session: Session, row: V) -> Info:
        raise NotImplementedError

    def _infos(self, session: Session, rows: Sequence[V]) -> list[Info]:
        """Several versions' infos; a subclass whose info needs queries of its own batches them here."""
        return [self._info(session, row) for row in rows]

    # -- public operations shared by models and environments ---------------------------------

    def get(self, ref: str) -> Info:
        with self.db.session() as session:
            return self._info(session, self._resolve(session, ref))

    def versions(self, name: str, include_archived: bool = False) -> list[Info]:
        with self.db.session() as session:
            return self._infos(session, self._versions(session, name, include_archived))

    def update(
        self,
        ref: str,
        *,
        tags: dict[str, Any] | None = None,
        remove_tags: list[str] | None = None,
        description: str | None = None,
    ) -> Info:
        """Only description and tags are mutable, as in Azure ML."""
        with self.db.session() as session:
            row = self._resolve(session, ref)
            self._update(row, tags, remove_tags, description)
            return self._info(session, row)

    def archive(self, ref: str) -> None:
        """``NAME`` archives the whole container, ``NAME:V``/``NAME@A`` one version."""
        with self.db.session() as session:
            self._set_archived(session, ref, True)

    def restore(self, ref: str) -> None:
        with self.db.session() as session:
            self._set_archived(session, ref, False)

    # -- containers -------------------------------------------------------------------------

    def _container(self, session: Session, name: str, *, lock: bool = False) -> C | None:
        query = select(self.container_cls).where(self.container_cls.name == name)
        if lock:
            query = query.with_for_update()
        return session.scalars(query).first()

    def _require_container(self, session: Session, name: str) -> C:
        container = self._container(session, name)
        if container is None:
            raise NotFoundError(f"{self.kind} {name!r} does not exist")
        return container

    def _lock_or_create(self, session: Session, name: str) -> C:
        """The container row, created if needed, locked for the rest of the transaction."""
        container = self._container(session, validate_name(name), lock=True)
        if container is not None:
            return container
        try:
            with session.begin_nested():
                session.add(self.container_cls(name=name))  # type: ignore[call-arg]  # a mapped subclass
        except DBIntegrityError:
            pass  # created concurrently: the lock below waits for that transaction
        container = self._container(session, name, lock=True)
        assert container is not None
        return container

    # -- versions ---------------------------------------------------------------------------

    def _fk_column(self) -> Any:
        return getattr(self.version_cls, self.container_fk)

    def _fk(self, container: C) -> Any:
        return self._fk_column() == container.id

    def _allocate(self, session: Session, container: C, requested: int | None) -> int:
        if requested is not None:
            exists = session.scalar(
                select(self.version_cls.id).where(self._fk(container), self.version_cls.version == requested)
            )
            if exists is not None:
                raise ConflictError(f"{self.kind} {container.name!r} version {requested} already exists")
            return requested
        highest = session.scalar(select(func.max(self.version_cls.version)).where(self._fk(container)))
        return (highest or 0) + 1

    def _latest(self, session: Session, container: C) -> V:
        """The most recently created version that is not archived (Azure's ``@latest``)."""
        row = session.scalars(
            select(self.version_cls)
            .where(self._fk(container), self.version_cls.archived.is_(False))
            .order_by(self.version_cls.id.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFoundError(f"{self.kind} {container.name!r} has no active version")
        return row

    def _by_alias(self, session: Session, container: C, alias: str) -> V:
        raise NotFoundError(f"{self.kind} {container.name!r} has no alias {alias!r}")

    def _resolve(self, session: Session, ref: Ref | str) -> V:
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        container = self._require_container(session, ref.name)
        if ref.version is not None:
            row = session.scalars(
                select(self.version_cls).where(self._fk(container), self.version_cls.version == ref.version)
            ).first()
            if row is None:
                raise NotFoundError(f"{self.kind} {ref.name!r} has no version {ref.version}")
            return row
        if ref.alias is not None:
            return self._by_alias(session, container, ref.alias)
        return self._latest(session, container)

    def _versions(self, session: Session, name: str, include_archived: bool) -> list[V]:
        container = self._require_container(session, validate_name(name))
        query = select(self.version_cls).where(self._fk(container)).order_by(self.version_cls.version)
        if not include_archived:
            if container.archived:
                return []
            query = query.where(self.version_cls.archived.is_(False))
        return list(session.scalars(query))

    def _listing(self, conn: Connection, include_archived: bool) -> list[tuple[Row[Any], list[Row[Any]]]]:
        """Every container (by name) with its versions (by number), in two queries whatever their
        number; archived ones only with ``include_archived``, as ``_versions`` does for one."""
        containers, versions = self.container_table, self.version_table
        container_query = select(containers).order_by(containers.c.name)
        version_query = select(versions).order_by(versions.c.version)
        if not include_archived:
            container_query = container_query.where(containers.c.archived.is_(False))
            version_query = version_query.join(containers, versions.c[self.container_fk] == containers.c.id).where(
                containers.c.archived.is_(False), versions.c.archived.is_(False)
            )
        found = list(conn.execute(container_query))
        by_container: dict[int, list[Row[Any]]] = {container.id: [] for container in found}
        for row in conn.execute(version_query):
            by_container[row._mapping[self.container_fk]].append(row)
        return [(container, by_container[container.id]) for container in found]

    def _set_archived(self, session: Session, ref_text: str, archived: bool) -> None:
        ref = parse_ref(ref_text)
        if ref.version is None and ref.alias is None:
            self._require_container(session, ref.name).archived = archived
        else:
            self._resolve(session, ref).archived = archived

    def _update(
        self, row: V, tags: dict[str, Any] | None, remove_tags: list[str] | None, description: str | None
    ) -> None:
        merged = dict(row.tags)
        merged.update(parse_pairs(tags, "tags"))
        for key in remove_tags or []:
            if key not in merged:
                raise ValidationError(f"tags: {key!r} is not set on {self.kind} version {row.version}")
            merged.pop(key)
        row.tags = merged
        if description is not None:
            row.description = description
