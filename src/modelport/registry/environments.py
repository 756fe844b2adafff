"""The environment registry: versioned pip/conda specifications and their cached builds.

The spec file itself is stored as a blob (so ``show`` and ``build`` use exactly the bytes that
were registered); the virtualenv is keyed by the spec's content hash, so two versions or two
environments with the same requirements share one build.
"""

from __future__ import annotations

import builtins
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.core.errors import ValidationError
from modelport.core.names import parse_version, validate_name
from modelport.envs.builder import BuildResult, build_env, is_built, sweep_builds
from modelport.registry.assets import VersionedAssets, parse_pairs
from modelport.store import tables
from modelport.store.artifacts import ArtifactStore, sha256_file
from modelport.store.db import Database

if TYPE_CHECKING:  # the ORM is loaded by the operations that load or write rows, not by listing
    from sqlalchemy.orm import Session

    from modelport.store.schema import Environment, EnvironmentVersion  # noqa: F401 (Environment: a type argument below)


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    version: int
    kind: str
    python: str | None
    spec_file: str
    content_hash: str
    pip_requirements: list[str]
    conda_only: list[str]
    description: str
    tags: dict[str, str]
    archived: bool
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() + "Z"
        return data


# ``python -c`` this, then modelport's import paths, then the module and its arguments.
_BOOTSTRAP = (
    "import os, runpy, sys; paths, module = sys.argv.pop(1), sys.argv.pop(1); "
    "sys.path.extend(paths.split(os.pathsep)); sys.argv[0] = module; "
    "runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


class EnvironmentRegistry(VersionedAssets["Environment", "EnvironmentVersion", EnvironmentInfo]):
    kind = "environment"
    container_table = tables.environments
    version_table = tables.environment_versions
    container_fk = "environment_id"

    def __init__(self, db: Database, store: ArtifactStore, envs_dir: Path) -> None:
        super().__init__(db)
        self.store = store
        self.envs_dir = envs_dir

    def create(
        self,
        name: str,
        file: str | Path,
        *,
        python: str | None = None,
        version: int | str | None = None,
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EnvironmentInfo:
        validate_name(name)
        requested = None if version is None else parse_version(version)
        tag_map = parse_pairs(tags, "tags")
        file = Path(file)
        from modelport.envs.spec import parse_spec_file  # pydantic: loaded by the commands that read specs

        spec = parse_spec_file(file, python)
        sha = sha256_file(file)
        self.store.put(file, sha)
        with self.db.session() as session:
            container = self._lock_or_create(session, name)
            row = self.version_cls(
                environment_id=container.id,
                version=self._allocate(session, container, requested),
                kind=spec.kind,
                python=spec.python,
                spec_file=file.name,
                spec_sha256=sha,
                content_hash=spec.content_hash,
                pip_requirements=list(spec.pip_requirements),
                conda_only=list(spec.conda_only),
                description=description,
                tags=tag_map,
            )
            session.add(row)
            session.flush()
            return self._info(session, row)

    def list(self, include_archived: bool = False) -> list[EnvironmentInfo]:
        """The latest version of every environment."""
        with self.db.connect() as conn:
            listing = self._listing(conn, include_archived)
        return [_environment_info(container, max(rows, key=lambda r: r.id)) for container, rows in listing if rows]

    def spec_text(self, ref: str) -> str:
        info = self.get(ref)
        with self.db.session() as session:
            sha = self._resolve(session, info.ref).spec_sha256
        return self.store.read_bytes(sha, f"environment {info.ref} file {info.spec_file!r}").decode()

    def build(self, ref: str, log: Callable[[str], None] | None = None) -> BuildResult:
        """Build (or reuse) the virtualenv for ``ref`` from the exact registered spec bytes."""
        info = self.get(ref)
        from modelport.envs.spec import parse_spec

        spec = parse_spec(self.spec_text(info.ref), info.spec_file, info.python)
        return build_env(spec, self.envs_dir, log=log)

    def built(self, info: EnvironmentInfo) -> bool:
        """Whether ``info``'s virtualenv is built (``environment build`` or a first use builds it)."""
        return is_built(info.content_hash, self.envs_dir)

    def sweep(self) -> None:
        """Remove what builds that died left in the environment cache."""
        sweep_builds(self.envs_dir)

    def module_command(self, ref: str | None, module: str, what: str) -> builtins.list[str]:
        """The command that runs ``python -m module`` in environment ``ref``'s built virtualenv
        (building it first), or in modelport's own interpreter when ``ref`` is None. modelport
        is not installed in the environment: its import paths are appended *after* the
        environment's own, so the environment's packages win. ``what`` names who runs there, for
        the error when the environment asks for another Python."""
        if ref is None:
            return [sys.executable, "-m", module]
        info = self.get(ref)
        ours = f"{sys.version_info.major}.{sys.version_info.minor}"
        if info.python is not None and info.python != ours:
            raise ValidationError(
                f"environment: {info.ref} asks for Python {info.python}; {what} run modelport's Python {ours}"
            )
        built = self.build(info.ref)
        paths = [
            str(Path(__file__).resolve().parents[2]),
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
        ]
        return [str(built.python), "-c", _BOOTSTRAP, os.pathsep.join(dict.fromkeys(paths)), module]

    def _info(self, session: Session, row: EnvironmentVersion) -> EnvironmentInfo:
        return _environment_info(row.container, row)


def _environment_info(container: Any, row: Any) -> EnvironmentInfo:
    """An environment version's info from its container and version rows, ORM objects or the Core
    rows of a listing alike (their attributes are the tables' columns)."""
    return EnvironmentInfo(
        name=container.name,
        version=row.version,
        kind=row.kind,
        python=row.python,
        spec_file=row.spec_file,
        content_hash=row.content_hash,
        pip_requirements=list(row.pip_requirements),
        conda_only=list(row.conda_only),
        description=row.description,
        tags=dict(row.tags),
        archived=row.archived or container.archived,
        created_at=row.created_at,
    )
