"""The metadata database: engine set-up, migrations on open, and transactional sessions.

SQLite is the embedded default: WAL so readers never wait for a writer, foreign keys on, and
``BEGIN IMMEDIATE`` so that two processes allocating a version serialize instead of failing
with "database is locked" halfway through. ``postgresql://`` URLs use psycopg 3.
Migrations run on open under a lock (a file lock for SQLite, an advisory lock for PostgreSQL)
so that a workspace made by an older version opens in a newer one, even when many processes
open it at once.

A SQLite file is created 0600 before SQLite opens it, because SQLite gives its ``-wal`` and
``-shm`` files the database file's mode; an existing one is tightened. A full disk or a
read-only file during a transaction is one line naming the database file.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from modelport.core.errors import DiskError, DiskFullError, ModelportError, ValidationError
from modelport.core.files import FILE_MODE, tighten

if TYPE_CHECKING:  # alembic is imported to migrate, and the ORM by the first session, not on every open
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x6D6F64656C  # "model": an arbitrary, stable advisory-lock key
_SQLITE_FULL, _SQLITE_READONLY = 13, 8  # primary result codes (the low byte of extended ones)
_REVISION_LINE = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and pick the psycopg 3 driver for them."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"MODELPORT_DB_URL: {url!r} is not a database URL ({exc})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValidationError(f"MODELPORT_DB_URL: backend {parsed.get_backend_name()!r} is not supported")
    return parsed.render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL, in-memory and ``file:`` URIs)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _private_sqlite_file(path: Path) -> None:
    """Create the file 0600 (SQLite would make it 0644 less the umask, and its -wal and -shm
    files after it), or take away what an existing one grants others."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    except OSError:
        return  # SQLite itself will report the path it cannot open
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(file, FILE_MODE)


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        file = sqlite_file(url)
        if file is not None:
            _private_sqlite_file(file)
        engine = create_engine(url, connect_args={"timeout": 60})
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError:
        raise ModelportError("PostgreSQL needs psycopg: pip install 'modelport[postgres]'") from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # let BEGIN below be the only transaction control
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration's id, read from the last file in ``versions/`` (they are numbered and
    form one line): alembic is imported only when there is something to migrate, as it costs a
    third of a command's start-up. A test checks this against alembic's own head."""
    newest = max((MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    found = _REVISION_LINE.search(newest.read_text(encoding="utf-8"))
    assert found is not None, newest
    return found.group(1)


def current_revision(engine: Engine) -> str | None:
    """The schema revision alembic recorded in the database; None for a new database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, lock_dir: Path, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (and a SQLite file into WAL mode); cheap when it already
    is there.

    WAL is switched on here, under the lock, rather than by every connection: two processes
    opening a new database together could each hold a lock the other's switch or first write
    waited for, and SQLite answers such a deadlock with "database is locked" at once, without
    waiting. The mode is kept in the file, so once is enough."""
    target = head_revision() if revision == "head" else revision
    if engine.dialect.name == "sqlite":
        if _journal_mode(engine) == "wal" and current_revision(engine) == target:
            return
        from filelock import FileLock

        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / "migrate.lock")):
            _journal_mode(engine, "WAL")
            if current_revision(engine) != target:
                _upgrade(engine, revision)
    elif current_revision(engine) != target:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                _upgrade(engine, revision)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()


def _journal_mode(engine: Engine, switch_to: str | None = None) -> str:
    """SQLite's journal mode, switched first when asked (outside any transaction, as it must be)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        mode = cursor.execute(f"PRAGMA journal_mode={switch_to}" if switch_to else "PRAGMA journal_mode").fetchone()[0]
        cursor.close()
    finally:
        raw.close()
    return str(mode).lower()


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


class Database:
    """An engine plus a session factory; ``session()`` is one transaction, committed on success,
    and ``connect()`` one transaction in SQLAlchemy Core, for reads that need no ORM."""

    def __init__(self, url: str, lock_dir: Path) -> None:
        self.engine = create_db_engine(url)
        self._file = sqlite_file(self.engine.url.render_as_string())
        migrate(self.engine, lock_dir)

    @cached_property
    def _sessions(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker  # the ORM: loaded by the first session, which listings never open

        return sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._disk_errors(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._disk_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            error = self._disk_error(exc)
            if error is None:
                raise
            raise error from exc

    def _disk_error(self, exc: OperationalError) -> DiskError | None:
        """SQLite's full disk and read-only file as the one-line errors the files layer gives."""
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if self._file is None or code is None:
            return None
        if code & 0xFF == _SQLITE_FULL:
            return DiskFullError(f"no space left on device writing {self._file}")
        if code & 0xFF == _SQLITE_READONLY:
            return DiskError(f"read-only database: {self._file} ({exc.orig})")
        return None

    def dispose(self) -> None:
        self.engine.dispose()
