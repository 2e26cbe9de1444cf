"""Backups are one consistent, checked, private snapshot; restore brings every row back, on both backends."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import uuid
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, func, select, text

from concord.app.cli import main as concord_cli
from concord.services import audit as audit_service
from concord.services import backup as backup_service
from concord.services import codes, coding, transcripts
from concord.services.study import add_coder
from concord.services.workspace import Workspace
from concord.storage.db import StudyOpenError, backup_study, create_study_store, head_revision, open_study
from concord.storage.errors import PermissionDenied
from concord.storage.models import AuditCheckpoint, AuditEvent, Code, Coding
from tests.conftest import BACKENDS, PG_URL, drop_pg_database, fresh_pg_url
from tests.factories import as_person, make_study


def _plain(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def table_rows(target: str) -> dict[str, list[tuple]]:
    """Every table's rows, normalised across backends and sorted."""
    engine = create_engine(target if "://" in target else f"sqlite:///{target}")
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {
                table.name: sorted((tuple(_plain(v) for v in row) for row in conn.execute(select(table))), key=repr)
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


@pytest.fixture
def targets(tmp_path):
    """New places to restore into: a file always, a fresh PostgreSQL database when there is a server."""
    made = []

    def new(kind: str) -> str:
        if kind == "sqlite":
            return str(tmp_path / f"restored-{uuid.uuid4().hex[:6]}.concord")
        if not PG_URL:
            pytest.skip("no PostgreSQL server (CONCORD_TEST_PG)")
        url = fresh_pg_url()
        made.append(url)
        return url

    yield new
    for url in made:
        drop_pg_database(url)


def coded_study(target: str) -> Workspace:
    """The factory study with codings by two coders, a memo, and a code whose parent was made after it."""
    workspace = make_study(target)
    detail = transcripts.get_transcript(as_person(workspace, "ann"), "S-A")
    for name, span in (("ann", (0, 10)), ("ann", (12, 30)), ("bob", (5, 20))):
        person = as_person(workspace, name)
        code_id = next(c.id for c in codes.visible_codes(person) if c.name == "Moving forward")
        coding.apply_code(person, detail.id, code_id, *span)
    with workspace.store.session() as session:
        child = session.scalar(select(Code).where(Code.name == "Stagnation"))
        later_parent = Code(
            codebook_id=child.codebook_id, guid=str(uuid.uuid4()), name="Later theme", origin="deductive"
        )
        session.add(later_parent)
        session.flush()
        # The child now refers to a row with a larger id: copied in id order, the child comes first.
        child.parent_id = later_parent.id
        assert later_parent.id > child.id
    return as_person(workspace, "sue")


def test_round_trip_keeps_every_row_on_every_backend(study_target, tmp_path, targets):
    sue = coded_study(study_target)
    before = table_rows(study_target)
    dest = tmp_path / "backup.concord"
    result = backup_service.backup(sue, dest)
    sue.close()

    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    copy = table_rows(str(dest))
    # The copy is the study as it was, plus the checkpoint it carries of its own head.
    assert copy.pop("audit_checkpoints")[-1][2:5] == (result.head.event_id, result.head.hash, result.head.count)
    before.pop("audit_checkpoints")
    assert copy == before
    assert result.tables["codings"].rows == 3

    for kind in BACKENDS:
        target = targets(kind)
        restored = backup_service.restore(dest, target)
        assert restored.head == result.head
        assert table_rows(target) == table_rows(str(dest))
        with Workspace(open_study(target), "sue") as again:
            assert audit_service.verify(again).checkpoints == 1
            add_coder(again, "newcomer")  # ids continue after the restored rows (sequences on PostgreSQL)
            assert audit_service.verify(again).events == result.head.count + 1


def test_the_source_records_the_backup_checkpoint(study_target, tmp_path):
    sue = coded_study(study_target)
    result = backup_service.backup(sue, tmp_path / "b.concord")
    with sue.store.reader() as session:
        checkpoint = session.scalars(select(AuditCheckpoint)).one()
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (checkpoint.event_id, checkpoint.head_hash) == (result.head.event_id, result.head.hash)
    assert last.action == "study.backup" and last.details["head_hash"] == result.head.hash
    assert audit_service.verify(sue).checkpoints == 1
    sue.close()


def test_postgres_backup_after_cluster(tmp_path, targets):
    """CLUSTER rewrites the table in primary-key order: the child code now lies before its parent."""
    url = targets("postgresql")
    sue = coded_study(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CLUSTER codes USING pk_codes")
        conn.exec_driver_sql("UPDATE codes SET colour = 'red' WHERE name = 'Later theme'")  # moves it again
    engine.dispose()
    dest = tmp_path / "after-cluster.concord"
    result = backup_service.backup(sue, dest)
    sue.close()
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
    assert copy.execute("SELECT count(*) FROM codes").fetchone()[0] == result.tables["codes"].rows == 4
    copy.close()
    again = targets("postgresql")
    backup_service.restore(dest, again)
    assert table_rows(again) == table_rows(str(dest))


def test_backup_while_a_coder_works_is_one_snapshot(study_target, tmp_path, monkeypatch):
    """A thread keeps coding (each coding and its audit event in one transaction) while backups are taken:
    every backup holds each coding with its event, and reads back as written."""
    monkeypatch.setenv("CONCORD_BUSY_TIMEOUT_MS", "20000")
    make_study(study_target).close()
    stop = threading.Event()
    errors = []

    def code_on():
        try:
            with Workspace(open_study(study_target), "ann") as ann:
                detail = transcripts.get_transcript(ann, "S-A")
                code_id = next(c.id for c in codes.visible_codes(ann) if c.name == "Moving forward")
                while not stop.is_set():
                    coding.apply_code(ann, detail.id, code_id, 0, 10)
        except Exception as exc:
            errors.append(exc)

    writer = threading.Thread(target=code_on)
    writer.start()
    try:
        counts = []
        with Workspace(open_study(study_target), "sue") as sue:
            for n in range(3):
                dest = tmp_path / f"busy-{n}.concord"
                backup_service.backup(sue, dest)
                copy = sqlite3.connect(dest)
                stored = {row[0] for row in copy.execute("SELECT id FROM codings")}
                audited = {
                    row[0] for row in copy.execute("SELECT entity_id FROM audit_log WHERE action = 'coding.apply'")
                }
                copy.close()
                assert stored == audited
                counts.append(len(stored))
    finally:
        stop.set()
        writer.join()
    assert errors == []
    assert counts[-1] > 0
    # The last snapshot, restored, is that snapshot row for row.
    restored = str(tmp_path / "busy-restored.concord")
    backup_service.restore(tmp_path / "busy-2.concord", restored)
    assert table_rows(restored) == table_rows(str(tmp_path / "busy-2.concord"))


def test_coders_may_not_take_backups(study_target, tmp_path):
    workspace = make_study(study_target)
    dest = tmp_path / "by-ann.concord"
    with pytest.raises(PermissionDenied):
        backup_service.backup(as_person(workspace, "ann"), dest)
    assert not dest.exists()
    workspace.close()
    result = CliRunner().invoke(concord_cli, ["backup", study_target, str(dest), "--as", "ann"])
    assert result.exit_code == 2 and "supervisor or admin" in result.stderr
    assert not dest.exists()


def test_backup_cli_reports_its_checks(study_target, tmp_path):
    make_study(study_target).close()
    dest = tmp_path / "cli.concord"
    result = CliRunner().invoke(concord_cli, ["backup", study_target, str(dest), "--as", "sue"])
    assert result.exit_code == 0, result.output
    assert "read back and checked" in result.stdout and "Audit chain head in the copy: event 4" in result.stdout
    again = CliRunner().invoke(concord_cli, ["backup", study_target, str(dest), "--as", "sue"])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_restore_refuses_a_target_that_is_not_empty(tmp_path, targets):
    make_study(str(tmp_path / "s.concord")).close()
    dest = tmp_path / "b.concord"
    with Workspace(open_study(str(tmp_path / "s.concord")), "sue") as sue:
        backup_service.backup(sue, dest)

    existing = tmp_path / "existing.concord"
    existing.write_bytes(b"")
    result = CliRunner().invoke(concord_cli, ["restore", str(dest), str(existing)])
    assert result.exit_code == 2 and "already exists" in result.stderr

    url = targets("postgresql")
    engine = create_engine(url.replace(url.rsplit("/", 1)[1], "postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    engine.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE someone_elses (x int)")
    engine.dispose()
    result = CliRunner().invoke(concord_cli, ["restore", str(dest), url])
    assert result.exit_code == 2 and "not empty" in result.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 1
    engine.dispose()


def test_restore_cli_into_a_new_file(tmp_path):
    make_study(str(tmp_path / "s.concord")).close()
    dest = tmp_path / "b.concord"
    with Workspace(open_study(str(tmp_path / "s.concord")), "sue") as sue:
        backup_service.backup(sue, dest)
    target = tmp_path / "r.concord"
    result = CliRunner().invoke(concord_cli, ["restore", str(dest), str(target)])
    assert result.exit_code == 0, result.output
    assert "checked" in result.stdout and "Audit chain head: event 4" in result.stdout
    assert table_rows(str(target)) == table_rows(str(dest))


def test_restore_refuses_what_is_not_a_backup_or_too_new(tmp_path):
    junk = tmp_path / "junk.concord"
    junk.write_bytes(b"not a database")
    with pytest.raises(StudyOpenError, match="not a Concord study"):
        backup_service.restore(junk, str(tmp_path / "r1.concord"))
    make_study(str(tmp_path / "s.concord")).close()
    newer = tmp_path / "newer.concord"
    with Workspace(open_study(str(tmp_path / "s.concord")), "sue") as sue:
        backup_service.backup(sue, newer)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    with pytest.raises(StudyOpenError, match="newer version of Concord"):
        backup_service.restore(newer, str(tmp_path / "r2.concord"))
    assert not (tmp_path / "r1.concord").exists() and not (tmp_path / "r2.concord").exists()


def test_an_older_backup_is_migrated_on_the_way_in(tmp_path, targets):
    """A backup at schema 0002 (before the audit chain): restored at today's schema, with the chain started."""
    old = tmp_path / "old.concord"
    store = create_study_store(str(old), revision="0002")
    with store.session() as session:
        session.execute(
            text(
                "INSERT INTO study (id, title, language, blind, anonymous_consensus, created_at)"
                " VALUES (1, 'Old', 'en', 1, 0, CURRENT_TIMESTAMP)"
            )
        )
        session.execute(
            text("INSERT INTO coders (name, role, active, created_at) VALUES ('lee', 'admin', 1, CURRENT_TIMESTAMP)")
        )
        for n in (1, 2):
            session.execute(
                text(
                    "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, details)"
                    " VALUES (:n, CURRENT_TIMESTAMP, 'lee', 'study.init', 'study', 1, '{}')"
                ),
                {"n": n},
            )
    dest = tmp_path / "old-backup.concord"
    assert backup_study(store, dest).revision == "0002"
    store.close()

    for kind in BACKENDS:
        target = targets(kind)
        result = backup_service.restore(dest, target)
        assert result.revision == "0002"
        with Workspace(open_study(target), "lee") as workspace:
            assert workspace.store.revision() == head_revision()
            report = audit_service.verify(workspace)
            with workspace.store.reader() as session:
                assert session.scalar(select(func.count()).select_from(Coding)) == 0
        assert (report.unchained, report.events) == (2, 3)
