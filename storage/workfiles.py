"""Low-level copying for coder work files; services/workfiles.py decides what is copied and why.

A work file is an ordinary study file. Rows that come from the main study keep their primary keys
there, so transcripts, turns and codes are matched by id (checked against their key or guid); what
a coder makes in the work file gets the work file's next free id and is matched back on collect by
a stable key. Here are only the mechanics: a private new file, one consistent read of a study, rows
as plain dicts, writing them by primary key, and moving a code or codebook to another id together
with everything that refers to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.orm import Session

from concord.storage.db import StudyOpenError, StudyStore, create_study_store, discard_new_study
from concord.storage.models import (
    Base,
    Code,
    Codebook,
    CodebookVersion,
    CodeChange,
    Coding,
    EditStep,
    Memo,
)

Row = dict[str, Any]


def create_private_study(dest: str | Path) -> StudyStore:
    """A new, empty study file at ``dest`` that only its owner can read (mode 0600 before any data).

    SQLite gives its -wal and -shm files the mode of the database file, so they are private too.
    """
    dest = Path(dest)
    if not dest.parent.exists():
        raise StudyOpenError(f"{dest.parent}: no such folder")
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StudyOpenError(f"{dest}: already exists; choose a new file (or --refresh it)") from None
    except OSError as exc:
        raise StudyOpenError(f"{dest}: cannot write: {exc.strerror}") from None
    os.close(fd)
    # O_CREAT's mode is filtered by the umask, which can only take rights away: 0600 or less.
    try:
        return create_study_store(str(dest))
    except BaseException:
        discard_new_study(str(dest))
        raise


def finish_work_file(store: StudyStore) -> None:
    """Check every reference in the file, and leave it as one self-contained file (no -wal beside it)."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            table, rowid, parent, _ = problems[0]
            raise StudyOpenError(f"{store.target}: row {rowid} of {table} refers to a missing row of {parent}")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")


@contextmanager
def read_snapshot(store: StudyStore) -> Iterator[Session]:
    """A session that reads one consistent state of the study and writes nothing.

    PostgreSQL: one READ ONLY REPEATABLE READ transaction. SQLite: one deferred read transaction
    (the WAL snapshot), which takes no write lock, so coders keep working meanwhile.
    """
    if store.backend == "postgresql":
        conn = store.engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn, conn.begin():
            session = Session(bind=conn)
            try:
                yield session
            finally:
                session.close()
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN")
        session = Session(bind=conn)
        try:
            yield session
        finally:
            session.close()
            conn.exec_driver_sql("COMMIT")


def utc(value: datetime | None) -> datetime | None:
    """An instant as an aware UTC time: SQLite hands back naive UTC, PostgreSQL the session's zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _comparable(value: Any) -> Any:
    return utc(value) if isinstance(value, datetime) else value


def table_of(model: type[Base]) -> Table:
    return model.__table__  # type: ignore[return-value]


def rows_of(session: Session, model: type[Base], *where: Any) -> list[Row]:
    """The rows of a model's table as plain dicts, in primary-key order."""
    table = table_of(model)
    query = select(table).where(*where).order_by(*table.primary_key.columns)
    return [dict(row) for row in session.execute(query).mappings()]


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def put_rows(
    session: Session, model: type[Base], rows: Iterable[Row]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Write rows by primary key: insert the new ones, update those that differ. Returns (added, changed) keys.

    Times are written as UTC instants whichever zone the source handed them over in.
    """
    table = table_of(model)
    keys = list(table.primary_key.columns)
    existing = {_key(table, row): row for row in rows_of(session, model)}
    added: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    inserts: list[Row] = []
    for row in rows:
        row = {name: _comparable(value) for name, value in row.items()}
        key = _key(table, row)
        old = existing.get(key)
        if old is None:
            inserts.append(row)
            added.append(key)
            continue
        if any(_comparable(old.get(name)) != value for name, value in row.items()):
            session.execute(
                table.update().where(*(column == value for column, value in zip(keys, key, strict=True))).values(row)
            )
            changed.append(key)
    if inserts:
        session.execute(table.insert(), inserts)
    return added, changed


def defer_foreign_keys(session: Session) -> None:
    """Check the work file's references at commit, not per statement: codes refer to codes, and ids move."""
    session.execute(text("PRAGMA defer_foreign_keys = ON"))


def highest_id(session: Session, model: type[Base]) -> int:
    return session.scalar(select(func.max(table_of(model).c.id))) or 0


def move_codebook_id(session: Session, old: int, new: int) -> None:
    """Give a codebook another id in the work file, and point its codes and versions there."""
    session.execute(update(table_of(Codebook)).where(table_of(Codebook).c.id == old).values(id=new))
    session.execute(update(table_of(Code)).where(table_of(Code).c.codebook_id == old).values(codebook_id=new))
    session.execute(
        update(table_of(CodebookVersion)).where(table_of(CodebookVersion).c.codebook_id == old).values(codebook_id=new)
    )


def move_code_id(session: Session, old: int, new: int) -> None:
    """Give a code another id in the work file, with every reference to it: the tree, codings, history,
    memos about it, and the undo steps that remember which code a coding had."""
    codes = table_of(Code)
    session.execute(update(codes).where(codes.c.id == old).values(id=new))
    session.execute(update(codes).where(codes.c.parent_id == old).values(parent_id=new))
    session.execute(update(codes).where(codes.c.merged_into_id == old).values(merged_into_id=new))
    session.execute(update(table_of(Coding)).where(table_of(Coding).c.code_id == old).values(code_id=new))
    session.execute(update(table_of(CodeChange)).where(table_of(CodeChange).c.code_id == old).values(code_id=new))
    memos = table_of(Memo)
    session.execute(update(memos).where(memos.c.target_kind == "code", memos.c.target_id == old).values(target_id=new))
    steps = table_of(EditStep)
    for step_id, payload in session.execute(select(steps.c.id, steps.c.payload)).all():
        moved = _payload_with_code(payload, old, new)
        if moved is not None:
            session.execute(update(steps).where(steps.c.id == step_id).values(payload=moved))


def _payload_with_code(payload: Any, old: int, new: int) -> dict[str, Any] | None:
    """An undo step's payload with code ``old`` replaced by ``new`` (None when it does not name it)."""
    if not isinstance(payload, dict):
        return None
    found = False
    result = dict(payload)
    for side in ("before", "after"):
        values = payload.get(side)
        if isinstance(values, dict) and values.get("code_id") == old:
            result[side] = {**values, "code_id": new}
            found = True
    return result if found else None
