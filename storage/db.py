"""Opening, creating, migrating and backing up a study on SQLite or PostgreSQL.

A study is either a SQLite file (``*.concord``) or a PostgreSQL URL. Both use
the same models and the same Alembic migrations. Opening a study made with an
older schema writes a backup beside it, then migrates it forward; a study made
by a newer Concord is refused untouched.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import Base
from concord.storage.resources import package_path
from concord.storage.revisions import head_revision, known_revisions

if TYPE_CHECKING:
    # Alembic loads every SQL dialect it knows and Mako: it is imported only where a study is created or
    # migrated. Opening a study reads the revisions from the migration files (storage/revisions.py).
    from alembic.config import Config

MIGRATIONS = package_path("concord.storage.migrations")
SQLITE_MAGIC = b"SQLite format 3\x00"
STUDY_SUFFIX = ".concord"


class StudyOpenError(ConcordError):
    """The target is not a usable study: missing, foreign, newer, locked, read-only, unreachable."""


def is_url(target: str) -> bool:
    return "://" in target


def _busy_timeout_ms() -> int:
    return int(os.environ.get("CONCORD_BUSY_TIMEOUT_MS", "5000"))


def _alembic_config(connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def schema_revision(conn: Connection) -> str | None:
    """The revision the study on ``conn`` is at, as Alembic stamped it (None before any migration ran)."""
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _engine_for(target: str) -> Engine:
    if is_url(target):
        try:
            url = make_url(target)
        except ArgumentError as exc:
            raise StudyOpenError(f"{target}: not a database URL ({exc})") from None
        if not url.drivername.startswith("postgresql"):
            raise StudyOpenError(f"{_safe_url(target)}: only SQLite files and postgresql+psycopg:// URLs are studies")
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    engine = create_engine(f"sqlite:///{target}", connect_args={"timeout": _busy_timeout_ms() / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # pysqlite's own transaction handling breaks BEGIN semantics; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_busy_timeout_ms()}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class StudyStore:
    """An open study: its engine and a factory of sessions that commit whole or not at all."""

    def __init__(self, target: str, engine: Engine):
        self.target = target
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def display_name(self) -> str:
        return _safe_url(self.target) if is_url(self.target) else self.target

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on any error."""
        session = self._sessions()
        try:
            with _translate_db_errors(self.display_name):
                yield session
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only unit of work (no write lock taken on SQLite)."""
        if self.backend == "sqlite":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                session = Session(bind=conn, expire_on_commit=False)
                try:
                    with _translate_db_errors(self.display_name):
                        yield session
                finally:
                    session.close()
        else:
            with self.session() as session:
                yield session

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return schema_revision(conn)

    def close(self) -> None:
        self.engine.dispose()


# SQLSTATE 42501 (insufficient_privilege): a missing grant, a row-level security policy refusing a row,
# or a command only the owner may run. On a team study that is the database enforcing a role.
_INSUFFICIENT_PRIVILEGE = "42501"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "diag", None), "sqlstate", None)


@contextmanager
def _translate_db_errors(name: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        if not isinstance(exc, OperationalError) and _sqlstate(exc) != _INSUFFICIENT_PRIVILEGE:
            raise
        message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if _sqlstate(exc) == _INSUFFICIENT_PRIVILEGE:
            raise PermissionDenied(f"{name}: your database login may not do this ({message})") from None
        if "locked" in message or "busy" in message:
            raise StudyOpenError(f"{name}: the study is locked by another program; try again") from None
        if "readonly" in message or "read-only" in message:
            raise StudyOpenError(f"{name}: the study file is read-only") from None
        raise StudyOpenError(f"{name}: database error: {message}") from None


def _check_sqlite_file(path: Path, *, writable: bool = True) -> None:
    if not path.exists():
        raise StudyOpenError(f"{path}: no study here (create one with: concord init {path})")
    if path.is_dir():
        raise StudyOpenError(f"{path}: is a folder, not a study file")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        raise StudyOpenError(f"{path}: not a Concord study (not a SQLite database)")
    if writable and not os.access(path, os.W_OK):
        raise StudyOpenError(f"{path}: the study file is read-only")
    if writable and not os.access(path.parent, os.W_OK):
        raise StudyOpenError(f"{path}: its folder is read-only (SQLite needs to write a journal beside it)")


def _connect_engine(target: str) -> Engine:
    engine = _engine_for(target)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if is_url(target):
            raise StudyOpenError(f"{_safe_url(target)}: cannot reach the database: {message}") from None
        if "locked" in message or "busy" in message:
            raise StudyOpenError(f"{target}: the study is locked by another program; try again") from None
        raise StudyOpenError(f"{target}: cannot open: {message}") from None
    except DBAPIError as exc:
        engine.dispose()
        raise StudyOpenError(f"{target}: cannot open: {exc.orig}") from None
    return engine


def open_study(target: str, *, migrate: bool = True) -> StudyStore:
    """Open an existing study; migrate an older one forward after a backup beside it."""
    target = str(target)
    if not is_url(target):
        _check_sqlite_file(Path(target))
    engine = _connect_engine(target)
    store = StudyStore(target, engine)
    try:
        with _translate_db_errors(store.display_name):
            tables = set(inspect(engine).get_table_names())
            if "alembic_version" not in tables or "study" not in tables:
                raise StudyOpenError(f"{store.display_name}: not a Concord study (no study tables)")
            current = store.revision()
            head = head_revision()
            if current not in known_revisions():
                raise StudyOpenError(
                    f"{store.display_name}: made by a newer version of Concord (schema {current});"
                    " upgrade Concord to open it"
                )
            if current != head:
                if not migrate:
                    raise StudyOpenError(
                        f"{store.display_name}: schema {current} is older than {head}; open it to migrate"
                    )
                backup_path = _migration_backup_path(store, current)
                backup_study(store, backup_path)
                _upgrade(engine)
    except BaseException:
        store.close()
        raise
    return store


def _migration_backup_path(store: StudyStore, revision: str | None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if store.backend == "sqlite":
        source = Path(store.target)
        return source.with_name(f"{source.stem}.before-{revision}-{stamp}{STUDY_SUFFIX}")
    database = make_url(store.target).database or "study"
    return Path.cwd() / f"{database}.before-{revision}-{stamp}{STUDY_SUFFIX}"


def _upgrade(engine: Engine) -> None:
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # Batch migrations rebuild tables; foreign keys must be off while they do,
            # and the pragma only takes effect outside a transaction.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                command.upgrade(_alembic_config(conn), "head")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _ensure_pg_database(target: str) -> None:
    url = make_url(target)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    except OperationalError as exc:
        message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StudyOpenError(f"{_safe_url(target)}: cannot reach the database: {message}") from None
    finally:
        admin.dispose()


def create_study_store(target: str, *, revision: str = "head") -> StudyStore:
    """Create the empty schema of a new study; refuse a target that already holds one."""
    from alembic import command

    target = str(target)
    if is_url(target):
        _ensure_pg_database(target)
    else:
        path = Path(target)
        if path.exists() and path.stat().st_size > 0:
            raise StudyOpenError(f"{path}: already exists; refusing to overwrite it")
        if not path.parent.exists():
            raise StudyOpenError(f"{path.parent}: no such folder")
        if not os.access(path.parent, os.W_OK):
            raise StudyOpenError(f"{path.parent}: folder is read-only")
    engine = _connect_engine(target)
    store = StudyStore(target, engine)
    try:
        with _translate_db_errors(store.display_name):
            if "study" in inspect(engine).get_table_names():
                raise StudyOpenError(f"{store.display_name}: already holds a study")
            with engine.connect() as conn:
                with conn.begin():
                    command.upgrade(_alembic_config(conn), revision)
    except BaseException:
        store.close()
        if not is_url(target) and Path(target).exists() and revision == "head":
            _remove_sqlite_files(Path(target))
        raise
    return store


def discard_new_study(target: str) -> None:
    """Remove a study that failed while being created, so no half-made study remains."""
    if is_url(target):
        engine = _engine_for(target)
        try:
            Base.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS audit_log_append_only() CASCADE")
        finally:
            engine.dispose()
    else:
        _remove_sqlite_files(Path(target))


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


def backup_study(store: StudyStore, dest: str | Path) -> Path:
    """Write a consistent copy of the study to ``dest`` (a new SQLite study file).

    SQLite uses the online backup API, so a backup can run while coders work.
    PostgreSQL gets a logical dump into the same portable format: every row of
    every table, at the same schema revision, readable by ``concord`` itself.
    """
    dest = Path(dest)
    if dest.exists():
        raise StudyOpenError(f"{dest}: already exists; choose a new backup file")
    if not dest.parent.exists():
        raise StudyOpenError(f"{dest.parent}: no such folder")
    if store.backend == "sqlite":
        source = sqlite3.connect(store.target, timeout=_busy_timeout_ms() / 1000)
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
        return dest
    revision = store.revision()
    copy = create_study_store(str(dest), revision=revision)
    try:
        with store.engine.connect() as src, copy.engine.connect() as dst:
            with src.begin(), dst.begin():
                present = set(inspect(src).get_table_names())
                for model_table in Base.metadata.sorted_tables:
                    if model_table.name not in present:
                        continue
                    # The study may be at an older revision than the models: copy the columns it has.
                    table = Table(model_table.name, MetaData(), autoload_with=src)
                    rows = [dict(row._mapping) for row in src.execute(select(table))]
                    if rows:
                        dst.execute(table.insert(), rows)
    except BaseException:
        copy.close()
        _remove_sqlite_files(dest)
        raise
    copy.close()
    return dest
