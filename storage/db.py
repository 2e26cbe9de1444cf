"""Opening, creating, migrating and backing up a study on SQLite or PostgreSQL.

A study is either a SQLite file (``*.concord``) or a PostgreSQL URL. Both use
the same models and the same Alembic migrations. Opening a study made with an
older schema writes a backup beside it, then migrates it forward; a study made
by a newer Concord is refused untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from concord.storage.audit_chain import ChainHead, chain_head, seal_unchained, utc_iso
from concord.storage.errors import ConcordError, Conflict, PermissionDenied
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
    except IntegrityError as exc:
        # The database refused what a service wrote: a bug in a check above, or two writers at once. Either
        # way the person gets one line saying what was refused; the unit of work is rolled back whole.
        raise Conflict(f"{name}: nothing was saved: {integrity_message(exc)}") from None
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


# SQLSTATE class 23 (integrity constraint violation), as PostgreSQL reports it.
_NOT_NULL, _FOREIGN_KEY, _UNIQUE, _CHECK = "23502", "23503", "23505", "23514"


def integrity_message(exc: IntegrityError) -> str:
    """What a refused write broke, in words: which table and column, and the rule, from either backend."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    state = _sqlstate(exc)
    raw = str(orig).strip().splitlines()[0] if orig is not None else str(exc)
    if state is None:  # SQLite: "UNIQUE constraint failed: coders.name", "CHECK constraint failed: ck_..."
        kind, _, where = raw.partition(" constraint failed")
        where = where.lstrip(": ").strip()
        state = {"UNIQUE": _UNIQUE, "CHECK": _CHECK, "NOT NULL": _NOT_NULL, "FOREIGN KEY": _FOREIGN_KEY}.get(
            kind.strip().upper()
        )
        constraint = where if state == _CHECK else None
        columns = _column_list([part.strip() for part in where.split(",")]) if state in (_UNIQUE, _NOT_NULL) else ""
    else:
        constraint = getattr(diag, "constraint_name", None)
        table, column = getattr(diag, "table_name", None), getattr(diag, "column_name", None)
        columns = f"{table}.{column}" if table and column else ""
    if state == _UNIQUE:
        detail = getattr(diag, "message_detail", None) if diag is not None else None
        return f"{_columns_of(constraint) or columns or 'a row'} must be unique" + (f" ({detail})" if detail else "")
    if state == _CHECK:
        rule = _check_rule(constraint)
        return f"{rule[0]} must satisfy {rule[1]}" if rule else f"a value breaks the rule {constraint or raw}"
    if state == _NOT_NULL:
        return f"{columns or 'a column'} needs a value"
    if state == _FOREIGN_KEY:
        detail = getattr(diag, "message_detail", None) if diag is not None else None
        return "it refers to something that does not exist" + (f" ({detail})" if detail else "")
    return raw


def _constraint(name: str | None):
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if name and constraint.name == name:
                return table, constraint
    return None, None


def _check_rule(name: str | None) -> tuple[str, str] | None:
    """("memos.target_kind", "target_kind IN ('study', ...)") for a check constraint of the models."""
    table, constraint = _constraint(name)
    sqltext = getattr(constraint, "sqltext", None)
    if table is None or sqltext is None:
        return None
    rule = str(sqltext)
    column = next((c.name for c in table.columns if rule.startswith(c.name + " ")), None)
    return (f"{table.name}.{column}" if column else table.name), rule


def _columns_of(name: str | None) -> str:
    table, constraint = _constraint(name)
    columns = [c.name for c in getattr(constraint, "columns", ())]
    return _column_list([f"{table.name}.{c}" for c in columns]) if table is not None else ""


def _column_list(qualified: list[str]) -> str:
    """ "coders.name", or "attributes.(target_kind, target_id, name)" for columns of one table."""
    qualified = [q for q in qualified if q]
    if len(qualified) < 2:
        return "".join(qualified)
    table = qualified[0].partition(".")[0]
    return f"{table}.({', '.join(q.partition('.')[2] or q for q in qualified)})"


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
                _start_chain_after_upgrade(store, current)
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
                for function in ("audit_log_append_only", "audit_log_no_truncate", "concord_audit_head"):
                    conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
        finally:
            engine.dispose()
    else:
        _remove_sqlite_files(Path(target))


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


# -- backups and restore ------------------------------------------------------------------------------


class BackupError(ConcordError):
    """A backup or restore could not be made, or did not read back as it was written."""


@dataclass(frozen=True)
class TableCheck:
    """How a table read back: its row count and a SHA-256 over its rows in primary-key order."""

    rows: int
    checksum: str


@dataclass(frozen=True)
class CopyResult:
    path: str
    revision: str | None
    tables: dict[str, TableCheck]
    head: ChainHead | None  # the audit chain's head in the copy (None before schema 0003)


def _plain(value: object) -> object:
    """One spelling of a value whichever backend returned it, for checksums across SQLite and PostgreSQL."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _digest_row(digest, row) -> None:
    digest.update(json.dumps([_plain(v) for v in row], ensure_ascii=True, separators=(",", ":")).encode("ascii"))
    digest.update(b"\n")


def _for_destination(value, dialect: str):
    # SQLite keeps a time as text without its zone, and PostgreSQL reads a zone-less time in the session's
    # zone: hand each an unambiguous UTC instant.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect == "sqlite" else value
    return value


def _copied_tables(conn: Connection) -> list[Table]:
    """The study's tables in foreign-key order (parents first), as the connection's schema has them."""
    metadata = MetaData()
    metadata.reflect(conn)
    return [t for t in metadata.sorted_tables if t.name != "alembic_version"]


def _ordered(table: Table):
    keys = list(table.primary_key.columns) or list(table.columns)
    return select(table).order_by(*keys)


def _typed_checks(conn: Connection) -> dict[str, TableCheck]:
    checks = {}
    for table in _copied_tables(conn):
        digest = hashlib.sha256()
        count = 0
        for row in conn.execution_options(stream_results=True, yield_per=2000).execute(_ordered(table)):
            _digest_row(digest, row)
            count += 1
        checks[table.name] = TableCheck(count, digest.hexdigest())
    return checks


def _copy_rows(src: Connection, dst: Connection) -> dict[str, TableCheck]:
    """Copy every row of every table of ``dst``'s schema from ``src``, parents before children.

    A table that refers to itself (codes.parent_id, codes.merged_into_id, consensus_decisions.supersedes_id)
    can hold a row before the row it refers to, whatever order it is read in: those columns are written
    empty first and filled in once every row of the table is there. Returns each table's count and checksum
    as read from ``src``.
    """
    dialect = dst.dialect.name
    checks = {}
    for table in _copied_tables(dst):
        source = Table(table.name, MetaData(), autoload_with=src)
        names = [c.name for c in table.columns]
        keys = [c.name for c in table.primary_key.columns]
        self_refs = sorted({fk.parent.name for fk in table.foreign_keys if fk.column.table.name == table.name})
        query = select(*(source.c[n] for n in names)).order_by(*(source.c[k] for k in keys or names))
        digest = hashlib.sha256()
        count = 0
        later: list[tuple[dict[str, Any], dict[str, Any]]] = []
        result = src.execution_options(stream_results=True, yield_per=1000).execute(query)
        for batch in result.partitions():
            rows = []
            for row in batch:
                _digest_row(digest, row)
                count += 1
                values = {n: _for_destination(v, dialect) for n, v in zip(names, row, strict=True)}
                refs = {n: values[n] for n in self_refs if values[n] is not None}
                if refs:
                    later.append(({k: values[k] for k in keys}, refs))
                    values.update(dict.fromkeys(refs))
                rows.append(values)
            dst.execute(table.insert(), rows)
        for key, refs in later:
            dst.execute(table.update().where(*(table.c[k] == v for k, v in key.items())).values(**refs))
        checks[table.name] = TableCheck(count, digest.hexdigest())
    return checks


def _compare(expected: dict[str, TableCheck], found: dict[str, TableCheck], where: str) -> None:
    for name in sorted(set(expected) | set(found)):
        want, got = expected.get(name), found.get(name)
        if want != got:
            detail = (
                f"{want.rows if want else 'no'} rows read, {got.rows if got else 'no'} rows written"
                if not want or not got or want.rows != got.rows
                else "the rows differ (checksum)"
            )
            raise BackupError(f"{where}: table {name} did not read back as written: {detail}")


def _raw_sqlite_checks(conn: sqlite3.Connection) -> dict[str, TableCheck]:
    checks = {}
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name <> 'alembic_version' ORDER BY name"
        )
    ]
    for name in names:
        digest = hashlib.sha256()
        count = 0
        for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
            _digest_row(digest, row)
            count += 1
        checks[name] = TableCheck(count, digest.hexdigest())
    return checks


def _create_private_file(dest: Path) -> None:
    if not dest.parent.exists():
        raise StudyOpenError(f"{dest.parent}: no such folder")
    try:
        # Mode 0600 from the first byte: a backup holds everything, blinded groups and every coder's work.
        # SQLite gives its journal files the mode of the database file.
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StudyOpenError(f"{dest}: already exists; choose a new backup file") from None
    except OSError as exc:
        raise StudyOpenError(f"{dest}: cannot write: {exc.strerror}") from None
    os.close(fd)


def _finish_copy(dest: Path, source_name: str) -> ChainHead | None:
    """Check the copy's foreign keys, and record its audit chain head in it as a checkpoint."""
    engine = create_engine(f"sqlite:///{dest}")
    try:
        with engine.begin() as conn:
            problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                table, rowid, parent, _ = problems[0]
                raise BackupError(f"{dest}: row {rowid} of {table} refers to a missing row of {parent}")
            if "audit_checkpoints" not in inspect(conn).get_table_names():
                return None
            head = chain_head(Session(bind=conn))
            if head.event_id is not None and head.hash:
                checkpoints = Table("audit_checkpoints", MetaData(), autoload_with=conn)
                conn.execute(
                    checkpoints.insert().values(
                        at=datetime.now(UTC).replace(tzinfo=None),
                        event_id=head.event_id,
                        head_hash=head.hash,
                        event_count=head.count,
                        reason=f"backup of {source_name}"[:200],
                    )
                )
            return head
    finally:
        engine.dispose()


def backup_study(store: StudyStore, dest: str | Path) -> CopyResult:
    """Write one consistent snapshot of the study to ``dest`` (a new SQLite study file, mode 0600).

    SQLite: the online backup API, inside the read transaction whose rows are counted and checksummed, so
    coders may keep working. PostgreSQL: a logical copy read in one READ ONLY REPEATABLE READ transaction
    into the same portable file format at the same schema revision. Either way every table is read back from
    the new file and must match the snapshot (row count and checksum per table); then the copy records the
    head of its audit chain as a checkpoint. A failed backup leaves no file behind.
    """
    dest = Path(dest)
    _create_private_file(dest)
    try:
        with _translate_db_errors(store.display_name):
            if store.backend == "sqlite":
                revision, expected = _backup_sqlite(store, dest)
                written = sqlite3.connect(dest)
                try:
                    found = _raw_sqlite_checks(written)
                finally:
                    written.close()
            else:
                revision, expected = _backup_postgres(store, dest)
                reader = create_engine(f"sqlite:///{dest}")
                try:
                    with reader.connect() as conn:
                        found = _typed_checks(conn)
                finally:
                    reader.dispose()
            _compare(expected, found, str(dest))
            head = _finish_copy(dest, store.display_name)
    except BaseException:
        _remove_sqlite_files(dest)
        raise
    return CopyResult(str(dest), revision, expected, head)


def _backup_sqlite(store: StudyStore, dest: Path) -> tuple[str | None, dict[str, TableCheck]]:
    source = sqlite3.connect(store.target, timeout=_busy_timeout_ms() / 1000, isolation_level=None)
    target = sqlite3.connect(dest)
    try:
        # The first read fixes the snapshot (WAL); the backup API reads through the same connection, so
        # it copies exactly the rows counted here, however many writers commit meanwhile.
        source.execute("BEGIN")
        expected = _raw_sqlite_checks(source)
        revision = source.execute("SELECT version_num FROM alembic_version").fetchone()
        source.backup(target)
        source.execute("COMMIT")
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()
    return (revision[0] if revision else None), expected


def _backup_postgres(store: StudyStore, dest: Path) -> tuple[str | None, dict[str, TableCheck]]:
    snapshot = store.engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with snapshot as src, src.begin():
        revision = schema_revision(src)
        copy = create_study_store(str(dest), revision=revision)
        try:
            with copy.engine.connect() as dst:
                with dst.begin():
                    expected = _copy_rows(src, dst)
        finally:
            copy.close()
    single_file = sqlite3.connect(dest)
    try:
        single_file.execute("PRAGMA journal_mode=DELETE")
    finally:
        single_file.close()
    return revision, expected


def restore_study(backup: str | Path, target: str) -> CopyResult:
    """Load a backup file into a new SQLite study or an empty PostgreSQL database, then migrate it forward.

    The rows are checked against the backup (count and checksum per table) before any migration; a backup
    from before the audit chain gets its chain started, as when such a study is opened.
    """
    backup = Path(backup)
    target = str(target)
    _check_sqlite_file(backup, writable=False)
    source = create_engine(f"sqlite:///file:{backup}?mode=ro&uri=true")
    try:
        with source.connect() as src:
            names = set(inspect(src).get_table_names())
            if "alembic_version" not in names or "study" not in names:
                raise StudyOpenError(f"{backup}: not a Concord study or backup (no study tables)")
            revision = schema_revision(src)
            if revision not in known_revisions():
                raise StudyOpenError(
                    f"{backup}: made by a newer version of Concord (schema {revision}); upgrade Concord to restore it"
                )
            _require_empty_target(target)
            copy = create_study_store(target, revision=revision)
            try:
                with _translate_db_errors(copy.display_name):
                    with copy.engine.connect() as dst:
                        # src has been reading since the checks above: one transaction, one state of the file.
                        with dst.begin():
                            expected = _copy_rows(src, dst)
                            if copy.backend == "postgresql":
                                _reset_sequences(dst)
                        found = _typed_checks(dst)
                        dst.rollback()
                    _compare(expected, found, copy.display_name)
                    if revision != head_revision():
                        _upgrade(copy.engine)
                        _start_chain_after_upgrade(copy, revision)
                    with copy.reader() as session:
                        head = chain_head(session)
            except BaseException:
                copy.close()
                discard_new_study(target)
                raise
            copy.close()
    finally:
        source.dispose()
    return CopyResult(target, revision, expected, head)


def _require_empty_target(target: str) -> None:
    if not is_url(target):
        path = Path(target)
        if path.exists():
            raise StudyOpenError(f"{path}: already exists; restore into a new file")
        return
    _ensure_pg_database(target)
    engine = _connect_engine(target)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise StudyOpenError(
            f"{_safe_url(target)}: the database is not empty ({len(tables)} tables, e.g. {sorted(tables)[0]});"
            " restore into an empty one"
        )


def _reset_sequences(conn: Connection) -> None:
    """Rows came with their ids: move each id sequence past the largest, so new rows do not collide."""
    serials = conn.execute(
        text(
            "SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name)"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND column_default LIKE 'nextval(%'"
        )
    ).all()
    for table, column, sequence in serials:
        if sequence:
            conn.execute(
                text(f'SELECT setval(:seq, coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)'),
                {"seq": sequence},
            )


def _start_chain_after_upgrade(store: StudyStore, from_revision: str | None) -> None:
    with store.session() as session:
        seal_unchained(session, from_revision=from_revision)
