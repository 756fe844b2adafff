"""Where a workspace lives: its folder, its metadata database and its artifact root.

Resolved once, in one place, from (in order) explicit arguments, environment variables and
defaults, so that the CLI, the SDK and the servers always agree on which workspace they use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "MODELPORT_HOME"
ENV_DB_URL = "MODELPORT_DB_URL"
ENV_ARTIFACT_ROOT = "MODELPORT_ARTIFACT_ROOT"
DEFAULT_DIRNAME = ".modelport"


@dataclass(frozen=True)
class WorkspaceSettings:
    """The three places a workspace is made of.

    ``root`` always is a local folder (caches, virtualenvs, locks live there) even when the
    metadata is in PostgreSQL and the artifacts in object storage.
    """

    root: Path
    db_url: str
    artifact_root: str

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def tmp_dir(self) -> Path:
        """Where half-written copies live until they are renamed into place (same filesystem as
        the cache and the code snapshots); what a writer that died left here is swept on open."""
        return self.root / "tmp"

    @property
    def exists(self) -> bool:
        """Whether something was ever stored here: the SQLite file exists, or the metadata lives in
        a database server (which a read opens as it is). An empty folder does not count, so a
        workspace folder made by ``status`` or ``token`` alone is still "no workspace"."""
        if not self.db_url.startswith("sqlite:"):
            return True
        database = self.db_url.partition(":///")[2].partition("?")[0]
        return not database or database == ":memory:" or Path(database).is_file()


def is_named(workspace: str | os.PathLike[str] | None = None) -> bool:
    """Whether the workspace was chosen (an argument or ``$MODELPORT_HOME``) rather than being the
    default ``./.modelport`` of whatever folder a command happens to run in."""
    return bool(workspace or os.environ.get(ENV_HOME))


def resolve_settings(
    workspace: str | os.PathLike[str] | None = None,
    db_url: str | None = None,
    artifact_root: str | None = None,
) -> WorkspaceSettings:
    """Explicit argument, then ``$MODELPORT_HOME`` / ``$MODELPORT_DB_URL`` /
    ``$MODELPORT_ARTIFACT_ROOT``, then ``./.modelport`` with SQLite and a local artifact folder."""
    root = Path(workspace or os.environ.get(ENV_HOME) or DEFAULT_DIRNAME).expanduser().absolute()
    url = db_url or os.environ.get(ENV_DB_URL) or f"sqlite:///{root / 'modelport.db'}"
    artifacts = artifact_root or os.environ.get(ENV_ARTIFACT_ROOT) or str(root / "artifacts")
    return WorkspaceSettings(root=root, db_url=url, artifact_root=artifacts)
