"""Opening, creating, migrating and backing up studies; faults give one clear error and change nothing."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

import pytest
from sqlalchemy import func, select, text

from concord.services.study import add_coder, init_study, list_coders
from concord.services.workspace import Workspace
from concord.storage.db import StudyOpenError, backup_study, create_study_store, head_revision, open_study
from concord.storage.models import AuditEvent, Coder


def test_init_creates_current_schema_with_settings(study_target, backend):
    workspace = init_study(study_target, title="Pilot", blind=False, language="sv")
    try:
        assert workspace.store.revision() == head_revision()
        settings = workspace.settings()
        assert (settings.title, settings.blind, settings.language) == ("Pilot", False, "sv")
        assert workspace.store.backend == backend
    finally:
        workspace.close()
    with pytest.raises(StudyOpenError, match="already"):
        init_study(study_target)


def test_sqlite_pragmas_guard_durability(tmp_path):
    workspace = init_study(str(tmp_path / "s.concord"))
    try:
        with workspace.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        workspace.close()


def test_audit_log_is_append_only(study_target):
    workspace = init_study(study_target, title="x")
    try:
        for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                with workspace.store.engine.begin() as conn:
                    conn.execute(text(statement))
        with workspace.store.reader() as session:
            assert session.scalar(select(AuditEvent.actor)) == "(unnamed)"
    finally:
        workspace.close()


def test_migrates_forward_from_first_revision_after_backup(study_target, backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = create_study_store(study_target, revision="0001")
    with store.session() as session:
        # Plain SQL: today's models have columns the first schema lacks.
        session.execute(
            text(
                "INSERT INTO study (id, title, language, blind, anonymous_consensus, created_at) "
                "VALUES (1, 'Old study', 'en', true, false, CURRENT_TIMESTAMP)"
            )
        )
        session.execute(
            text("INSERT INTO coders (name, role, active, created_at) VALUES ('ann', 'coder', true, CURRENT_TIMESTAMP)")
        )
    store.close()

    store = open_study(study_target)
    try:
        assert store.revision() == head_revision()
        with store.reader() as session:
            assert session.scalar(select(Coder.name)) == "ann"
            session.execute(text("SELECT count(*) FROM edit_steps"))
    finally:
        store.close()
    backups = list(tmp_path.glob("*.before-0001-*.concord"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    assert old.execute("SELECT name FROM coders").fetchall() == [("ann",)]
    old.close()


def test_study_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "new.concord"
    init_study(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StudyOpenError, match="newer version of Concord"):
        open_study(str(path))
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.before-*"))


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no study here"),
        (b"hello, not a database", "not a Concord study"),
        (b"", "not a Concord study"),
    ],
)
def test_paths_that_are_not_studies(tmp_path, content, message):
    path = tmp_path / "x.concord"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(StudyOpenError, match=message):
        open_study(str(path))


def test_foreign_sqlite_database_is_not_a_study(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StudyOpenError, match="not a Concord study"):
        open_study(str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file(tmp_path):
    path = tmp_path / "ro.concord"
    init_study(str(path)).close()
    path.chmod(stat.S_IRUSR)
    with pytest.raises(StudyOpenError, match="read-only"):
        open_study(str(path))


def test_read_only_file_check_does_not_depend_on_permissions(tmp_path, monkeypatch):
    path = tmp_path / "ro.concord"
    init_study(str(path)).close()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(path) and mode == os.W_OK else real_access(p, mode)
    )
    with pytest.raises(StudyOpenError, match="read-only"):
        open_study(str(path))


def test_locked_study_gives_a_clear_error_and_changes_nothing(tmp_path):
    path = tmp_path / "locked.concord"
    init_study(str(path)).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # Whether it shows at opening or at the first write, it is the same one line.
        with pytest.raises(StudyOpenError, match="locked by another program"):
            with Workspace(open_study(str(path))) as workspace:
                add_coder(workspace, "ann")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Workspace(open_study(str(path))) as workspace:
        assert list_coders(workspace) == []


def test_unreachable_postgres_url():
    with pytest.raises(StudyOpenError, match="cannot reach the database"):
        open_study("postgresql+psycopg://postgres@127.0.0.1:1/nothing")


def test_backup_is_a_complete_openable_study(study_target, tmp_path):
    workspace = init_study(study_target, title="Backed")
    add_coder(workspace, "ann")
    dest = tmp_path / "copy.concord"
    backup_study(workspace.store, dest)
    workspace.close()
    with Workspace(open_study(str(dest))) as copy:
        assert copy.settings().title == "Backed"
        assert [c.name for c in list_coders(copy)] == ["ann"]
        with copy.store.reader() as session:
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == 2
    with pytest.raises(StudyOpenError, match="already exists"):
        with Workspace(open_study(str(dest))) as again:
            backup_study(again.store, dest)


def test_concurrent_writers_queue_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("CONCORD_BUSY_TIMEOUT_MS", "10000")
    path = tmp_path / "busy.concord"
    init_study(str(path)).close()
    errors = []

    def add_many(prefix):
        try:
            with Workspace(open_study(str(path))) as workspace:
                for i in range(15):
                    add_coder(workspace, f"{prefix}{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add_many, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Workspace(open_study(str(path))) as workspace:
        assert len(list_coders(workspace)) == 45
