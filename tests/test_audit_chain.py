"""The audit log's hash chain: every way of rewriting the log is found by `concord audit --verify`.

The attacker here can write the database: on SQLite they drop the append-only triggers (and put them back
afterwards); on PostgreSQL they are the superuser of the test connection and disable them. Each test
tampers through raw SQL, then checks that --verify exits 2 naming the first broken link.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from concord.app.cli import main as concord_cli
from concord.services import audit as audit_service
from concord.services.study import add_coder
from concord.services.workspace import Workspace
from concord.storage.audit_chain import CHAIN_START, GENESIS, event_hash, verify_chain
from concord.storage.db import create_study_store, open_study
from concord.storage.errors import PermissionDenied
from concord.storage.models import AuditEvent
from tests.factories import as_person, make_study

SQLITE_TRIGGERS = {
    "audit_log_no_update": "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "audit_log_no_delete": "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "audit_checkpoints_no_update": "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "audit_checkpoints_no_delete": "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
}


@contextmanager
def attacker(target: str):
    """A raw connection with the log's protections lifted, put back when done, as a careful attacker would."""
    if "://" in target:
        engine = create_engine(target)
        try:
            with engine.begin() as conn:
                for table in ("audit_log", "audit_checkpoints"):
                    conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
                yield conn
                for table in ("audit_log", "audit_checkpoints"):
                    conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        finally:
            engine.dispose()
        return
    raw = sqlite3.connect(target, isolation_level=None)
    engine = create_engine("sqlite://", creator=lambda: raw)
    try:
        with engine.begin() as conn:
            for name in SQLITE_TRIGGERS:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            yield conn
            for statement in SQLITE_TRIGGERS.values():
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
        raw.close()


def verify_cli(target: str):
    return CliRunner().invoke(concord_cli, ["audit", target, "--as", "sue", "--verify"])


@pytest.fixture
def study(study_target):
    """The factory study (4 events), then six more people added by the supervisor: 10 events."""
    workspace = make_study(study_target)
    sue = as_person(workspace, "sue")
    for name in ("cat", "dan", "eve", "fay", "gus", "hal"):
        add_coder(sue, name)
    yield study_target
    workspace.close()


def event_row(conn, event_id: int) -> dict:
    return dict(conn.execute(text("SELECT * FROM audit_log WHERE id = :i"), {"i": event_id}).mappings().one())


def test_an_untouched_log_verifies_and_its_head_is_the_last_event(study):
    result = verify_cli(study)
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout
    head = CliRunner().invoke(concord_cli, ["audit", study, "--as", "sue", "--head", "--format", "json"])
    assert '"event": 10' in head.stdout and '"events": 10' in head.stdout
    with Workspace(open_study(study), "sue") as workspace, workspace.store.reader() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [r.id for r in rows] == list(range(1, 11))
    assert rows[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))


def test_an_edited_event_is_named(study):
    with attacker(study) as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 6"))
    result = verify_cli(study)
    assert result.exit_code == 2
    assert "event #6 does not match its hash" in result.stderr


def test_an_edited_detail_is_named(study):
    # The hash covers details too: a change of role inside the JSON shows.
    with attacker(study) as conn:
        conn.execute(text("""UPDATE audit_log SET details = '{"name": "cat", "role": "admin"}' WHERE id = 5"""))
    assert "event #5 does not match its hash" in verify_cli(study).stderr


def test_a_deleted_event_breaks_the_next_link(study):
    with attacker(study) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 4"))
    result = verify_cli(study)
    assert result.exit_code == 2
    assert "event #5 does not follow the event before it" in result.stderr


def test_a_deleted_first_event_is_found(study):
    with attacker(study) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 1"))
    assert "event #2 does not follow" in verify_cli(study).stderr


def test_a_forged_event_inserted_in_the_middle_is_found(study):
    """The attacker knows the algorithm: the forged event chains correctly onto the one before it, in a
    supervisor's name; the events after it are moved up one to make room."""
    with attacker(study) as conn:
        before = event_row(conn, 3)
        conn.execute(text("UPDATE audit_log SET id = id + 1000 WHERE id > 3"))
        conn.execute(text("UPDATE audit_log SET id = id - 999 WHERE id > 1000"))
        at = before["at"]
        forged_hash = event_hash(4, _moment(at), "sue", "study.unblind", "study", 1, {"forced": True}, before["hash"])
        conn.execute(
            text(
                "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, details, prev_hash, hash)"
                " VALUES (4, :at, 'sue', 'study.unblind', 'study', 1, '{\"forced\": true}', :prev, :hash)"
            ),
            {"at": at, "prev": before["hash"], "hash": forged_hash},
        )
    result = verify_cli(study)
    assert result.exit_code == 2
    # The forged event itself links up; the event it pushed aside no longer does.
    assert "event #5 does not follow the event before it" in result.stderr


def test_an_event_inserted_without_a_hash_is_found(study):
    with attacker(study) as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, details)"
                " VALUES (11, CURRENT_TIMESTAMP, 'sue', 'study.unblind', 'study', 1, '{}')"
            )
        )
    assert "event #11 has no hash" in verify_cli(study).stderr


def test_two_events_swapped_are_found(study):
    with attacker(study) as conn:
        conn.execute(text("UPDATE audit_log SET id = -1 WHERE id = 7"))
        conn.execute(text("UPDATE audit_log SET id = 7 WHERE id = 8"))
        conn.execute(text("UPDATE audit_log SET id = 8 WHERE id = -1"))
    assert "event #7 does not follow" in verify_cli(study).stderr


def test_a_cut_off_tail_shows_against_the_checkpoint(study):
    with Workspace(open_study(study), "sue") as workspace:
        audit_service.checkpoint(workspace, "end of week 1")  # checkpoint at #10, then event #11
    with attacker(study) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id >= 9"))
    result = verify_cli(study)
    assert result.exit_code == 2
    assert "end of week 1" in result.stderr
    assert "saw event #10" in result.stderr and "cut off or emptied" in result.stderr


def test_an_emptied_log_shows_against_the_checkpoint(study, backend):
    with Workspace(open_study(study), "sue") as workspace:
        audit_service.checkpoint(workspace)
    with attacker(study) as conn:
        conn.execute(text("TRUNCATE audit_log" if backend == "postgresql" else "DELETE FROM audit_log"))
    result = verify_cli(study)
    assert result.exit_code == 2
    assert "saw event #10" in result.stderr and "ends at nothing" in result.stderr


def test_an_emptied_log_without_checkpoints_is_still_found(study, backend):
    with attacker(study) as conn:
        conn.execute(text("TRUNCATE audit_log" if backend == "postgresql" else "DELETE FROM audit_log"))
    assert "the audit log is empty" in verify_cli(study).stderr


def test_a_rewritten_prefix_shows_against_the_checkpoint_count(study):
    """The attacker removes events 2 and 3 and re-hashes everything after: the chain holds again, but the
    checkpoint counted 10 events up to #10."""
    with Workspace(open_study(study), "sue") as workspace:
        audit_service.checkpoint(workspace)
    with attacker(study) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id IN (2, 3)"))
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings().all()
        running = GENESIS
        for row in rows:
            new = event_hash(
                row["id"],
                _moment(row["at"]),
                row["actor"],
                row["action"],
                row["entity"],
                row["entity_id"],
                _details(row),
                running,
            )
            conn.execute(
                text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :i"),
                {"p": running, "h": new, "i": row["id"]},
            )
            running = new
    result = verify_cli(study)
    assert result.exit_code == 2
    assert "event #10 no longer has the hash it had then" in result.stderr


def _details(row):
    # Raw SQL on SQLite returns the stored text; psycopg parses JSON and times itself.
    value = row["details"]
    return json.loads(value) if isinstance(value, str) else value


def _moment(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def test_verifying_and_checkpoints_are_for_supervisors(study):
    with Workspace(open_study(study), "ann") as workspace:
        for call in (audit_service.verify, audit_service.head, audit_service.checkpoint):
            with pytest.raises(PermissionDenied, match="ann is a coder"):
                call(workspace)
    result = CliRunner().invoke(concord_cli, ["audit", study, "--as", "ann", "--verify"])
    assert result.exit_code == 2 and "supervisor or admin" in result.stderr


def test_concurrent_writers_keep_one_chain(study_target, monkeypatch):
    monkeypatch.setenv("CONCORD_BUSY_TIMEOUT_MS", "20000")
    make_study(study_target).close()
    errors = []

    def add_many(prefix):
        try:
            with Workspace(open_study(study_target), "sue") as workspace:
                for i in range(8):
                    add_coder(workspace, f"{prefix}{i}")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add_many, args=(p,)) for p in "wxyz"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Workspace(open_study(study_target), "sue") as workspace:
        report = audit_service.verify(workspace)
    assert report.events == 4 + 32
    assert report.head.event_id == 36


def test_events_from_before_the_chain_are_sealed_by_its_first_link(study_target, backend, tmp_path, monkeypatch):
    """A study made before schema 0003: its events have no hash. Opening it migrates it and starts the chain
    with one event that covers them, so changing an old event afterwards still shows."""
    monkeypatch.chdir(tmp_path)
    store = create_study_store(study_target, revision="0002")
    with store.session() as session:
        session.execute(
            text(
                "INSERT INTO study (id, title, language, blind, anonymous_consensus, created_at)"
                " VALUES (1, 'Old', 'en', true, false, CURRENT_TIMESTAMP)"
            )
        )
        for i, (actor, action) in enumerate((("lee", "study.init"), ("lee", "coder.add"), ("ann", "coding.apply"))):
            session.execute(
                text(
                    "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, details)"
                    " VALUES (:i, CURRENT_TIMESTAMP, :a, :b, 'study', 1, '{\"n\": 1}')"
                ),
                {"i": i + 1, "a": actor, "b": action},
            )
    store.close()

    with Workspace(open_study(study_target)) as workspace:
        with workspace.store.reader() as session:
            report = verify_chain(session)
            start = session.scalars(select(AuditEvent).where(AuditEvent.action == CHAIN_START)).one()
        add_coder(workspace, "sue", "supervisor")
    assert report.intact and report.unchained == 3 and report.events == 4
    assert start.id == 4 and start.details["earlier_events"] == 3

    assert verify_cli(study_target).exit_code == 0
    with attacker(study_target) as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'kim' WHERE id = 3"))
    result = verify_cli(study_target)
    assert result.exit_code == 2
    assert "event #4 does not cover the 3 events written before the chain began" in result.stderr


def test_the_chain_holds_across_reopening(study):
    """A study that only ever took Concord's writes verifies after being reopened many times."""
    for n in range(3):
        with Workspace(open_study(study), "sue") as workspace:
            add_coder(workspace, f"p{n}")
    with Workspace(open_study(study), "sue") as workspace:
        assert audit_service.verify(workspace).events == 13


# -- what the database itself refuses -----------------------------------------------------------------


def test_checkpoints_are_append_only(study):
    with Workspace(open_study(study), "sue") as workspace:
        audit_service.checkpoint(workspace)
        for statement in ("UPDATE audit_checkpoints SET event_count = 1", "DELETE FROM audit_checkpoints"):
            with pytest.raises(Exception, match="append-only"):
                with workspace.store.engine.begin() as conn:
                    conn.execute(text(statement))


@pytest.mark.parametrize("table", ["audit_log", "audit_checkpoints"])
def test_postgres_refuses_truncate_and_replica_mode(study, backend, table):
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    with Workspace(open_study(study), "sue") as workspace:
        audit_service.checkpoint(workspace)
    engine = create_engine(study)
    try:
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {table}")
        # Replication mode skips ordinary triggers; these fire ALWAYS.
        for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
            with pytest.raises(Exception, match="append-only"):
                with engine.begin() as conn:
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                    conn.exec_driver_sql(statement)
        with engine.connect() as conn:
            modes = conn.execute(
                text(
                    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"
                ),
                {"t": table},
            ).all()
        assert len(modes) == 2 and {mode for _, mode in modes} == {"A"}
    finally:
        engine.dispose()


def test_a_head_kept_in_the_lab_record_catches_a_cut_after_the_last_checkpoint(study):
    """No checkpoint covers the last events, but the head printed for the lab record does."""
    head = CliRunner().invoke(concord_cli, ["audit", study, "--as", "sue", "--head", "--format", "json"])
    record = json.loads(head.stdout)["for_the_record"]
    assert record.startswith("10:")
    assert (
        CliRunner().invoke(concord_cli, ["audit", study, "--as", "sue", "--verify", "--expect", record]).exit_code == 0
    )
    with attacker(study) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 10"))
    # Without the recorded head the shortened chain is consistent...
    assert verify_cli(study).exit_code == 0
    # ...with it, the cut shows.
    result = CliRunner().invoke(concord_cli, ["audit", study, "--as", "sue", "--verify", "--expect", record])
    assert result.exit_code == 2 and "the head you gave (event #10) saw event #10" in result.stderr
    bad = CliRunner().invoke(concord_cli, ["audit", study, "--as", "sue", "--verify", "--expect", "10:nothex"])
    assert bad.exit_code == 2 and "EVENT:HASH" in bad.stderr
