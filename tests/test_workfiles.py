"""Coder work files: handout -> code -> collect, refresh, what a work file holds, and who may do what.

The main study runs on SQLite and, with CONCORD_TEST_PG, on PostgreSQL; a work file is always a file.
Planted marker strings (another coder's codings, memos and inductive codes, a blinded value, a score,
the session and the source file name) are searched for in every cell of every table of the work file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from concord.app.cli import main as concord_cli
from concord.services import audit as audit_service
from concord.services import codebooks as codebook_service
from concord.services import codes as code_service
from concord.services import coding, identity, transcripts, workfiles
from concord.services.study import add_coder, update_settings
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from concord.storage.models import (
    Attribute,
    AuditEvent,
    Code,
    Coder,
    Coding,
    Memo,
    Participant,
    QuestionnaireScore,
    Study,
    TherapySession,
    Transcript,
    TranscriptProgress,
    Turn,
)
from concord.storage.workfiles import rows_of
from tests.factories import as_person, build_transcript_text, make_study

MARKERS = ("BOBMARKER", "BLINDMARKER", "SCOREMARKER", "SOURCEMARKER", "SESSIONMARKER", "PARTMARKER", "bob")
LOGIN = identity.current_login()


def code_id(workspace: Workspace, name: str) -> int:
    return next(c.id for c in code_service.visible_codes(workspace) if c.name == name)


def transcript_id(workspace: Workspace, key: str = "S-A") -> int:
    return transcripts.get_transcript(workspace, key).id


@pytest.fixture
def study(study_target):
    """make_study (coders ann and bob, supervisor sue) with everyone's work and planted markers:
    bob's codings, memo, progress and inductive codes, a supervisor's rename and merge of bob's codes
    (whose history names them), a blinded group, a score, the session, the participants and the
    transcript's source file name. ann has two codings, an inductive code with a coding, a memo and progress.
    """
    workspace = make_study(study_target, blind=True)
    with workspace.store.session() as session:
        session.execute(update(Attribute).where(Attribute.blinded.is_(True)).values(value="BLINDMARKER-high"))
        session.execute(update(QuestionnaireScore).values(band="SCOREMARKER-band"))
        session.execute(update(Transcript).values(source_name="SOURCEMARKER-s-a.txt"))
        session.execute(update(TherapySession).values(modality="SESSIONMARKER"))
        session.execute(update(Participant).values(pseudonym=Participant.pseudonym + "-PARTMARKER"))
    tid = transcript_id(workspace)
    bob, sue, ann = as_person(workspace, "bob"), as_person(workspace, "sue"), as_person(workspace, "ann")

    coding.apply_code(bob, tid, code_id(bob, "Stagnation"), 10, 30, memo="BOBMARKER coding memo")
    coding.add_memo(bob, "transcript", tid, "BOBMARKER transcript memo")
    transcripts.set_done(bob, tid)
    kept = code_service.create_inductive_code(bob, "BOBMARKER-code", definition="BOBMARKER definition")
    coding.apply_code(bob, tid, kept.id, 40, 60)
    codebook_service.edit_code(sue, kept.id, name="BOBMARKER-renamed")
    merged = code_service.create_inductive_code(bob, "BOBMARKER-merged")
    coding.apply_code(bob, tid, merged.id, 60, 70)
    codebook_service.merge_codes(sue, merged.id, code_id(sue, "Moving forward"))

    coding.apply_code(ann, tid, code_id(ann, "Moving forward"), 0, 5)
    coding.apply_code(ann, tid, code_id(ann, "Stagnation"), 50, 80, memo="ann's own note")
    own = code_service.create_inductive_code(ann, "ann-own")
    coding.apply_code(ann, tid, own.id, 90, 100)
    coding.add_memo(ann, "transcript", tid, "ann transcript memo")
    transcripts.record_progress(ann, tid, turns_reviewed=2, last_offset=40)
    yield workspace
    workspace.close()


def hand_out(study, tmp_path, name="ann.concord", **options) -> str:
    out = tmp_path / name
    workfiles.handout(as_person(study, "sue"), "ann", out, login=options.pop("login", LOGIN), **options)
    return str(out)


def rows_by_coder(workspace: Workspace, name: str) -> dict[str, list[dict]]:
    """A coder's rows in every table that holds coders' work, for before/after comparisons."""
    with workspace.store.reader() as session:
        coder_id = session.scalar(select(Coder.id).where(Coder.name == name))
        return {
            "codings": rows_of(session, Coding, Coding.coder_id == coder_id),
            "memos": rows_of(session, Memo, Memo.coder_id == coder_id),
            "progress": rows_of(session, TranscriptProgress, TranscriptProgress.coder_id == coder_id),
            "codes": rows_of(session, Code, Code.creator_id == coder_id),
        }


def live_codings(workspace: Workspace, name: str) -> set[tuple[str, int, int, str | None]]:
    """(code name, start, end, memo) of a coder's live independent codings."""
    with workspace.store.reader() as session:
        rows = session.execute(
            select(Code.name, Coding.start_offset, Coding.end_offset, Coding.memo)
            .join(Code, Code.id == Coding.code_id)
            .join(Coder, Coder.id == Coding.coder_id)
            .where(Coder.name == name, Coding.deleted_at.is_(None), Coding.phase == "independent")
        ).all()
    return {tuple(row) for row in rows}


def every_cell(path: str) -> dict[str, list[str]]:
    """Every value of every table of a SQLite file, as text, by table."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: [str(value) for row in conn.execute(f'SELECT * FROM "{name}"') for value in row if value is not None]
            for name in names
        }
    finally:
        conn.close()


def count(path: str, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ what the file holds


def test_work_file_holds_nothing_of_another_coder_nor_anything_blinded(study, tmp_path):
    # The markers are really in the main study, so a clean work file is the handout's doing.
    if study.store.backend == "sqlite":
        planted = "\n".join(v for values in every_cell(study.store.target).values() for v in values)
        for marker in MARKERS:
            assert marker in planted, marker
    path = hand_out(study, tmp_path)
    cells = every_cell(path)
    leaks = {
        (table, marker) for table, values in cells.items() for value in values for marker in MARKERS if marker in value
    }
    assert leaks == set()
    for table in ("questionnaire_scores", "sessions", "dyads", "participants", "consensus_decisions"):
        assert count(path, table) == 0, table
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM attributes WHERE blinded").fetchone()[0] == 0
        assert conn.execute("SELECT name, value FROM attributes").fetchall() == [("transcriber", "kb")]
        assert conn.execute("SELECT name, role, active FROM coders ORDER BY name").fetchall() == [
            ("ann", "coder", 1),
            ("sue", "supervisor", 0),
        ]
        assert conn.execute("SELECT session_id, source_name FROM transcripts").fetchall() == [(None, None)]
        ann_id = conn.execute("SELECT id FROM coders WHERE name = 'ann'").fetchone()[0]
        for table in ("codings", "memos", "transcript_progress", "edit_steps"):
            owners = {r[0] for r in conn.execute(f"SELECT coder_id FROM {table}")}
            assert owners == {ann_id}, table
        # The history of a deductive code that names bob's merged code stays out; its own history stays in.
        assert conn.execute("SELECT count(*) FROM code_changes WHERE field = 'merged_from'").fetchone()[0] == 0
    finally:
        conn.close()


def test_work_file_holds_everything_ann_sees_in_the_study(study, tmp_path):
    ann = as_person(study, "ann")
    path = hand_out(study, tmp_path, identity_mode=identity.TRUSTED)
    with Workspace.open(path, "ann") as work:
        assert {c.name for c in code_service.visible_codes(work)} == {c.name for c in code_service.visible_codes(ann)}
        assert live_codings(work, "ann") == live_codings(study, "ann")
        assert [(m.target_kind, m.text) for m in coding.list_memos(work)] == [
            (m.target_kind, m.text) for m in coding.list_memos(ann)
        ]
        tid = transcript_id(work)
        assert transcripts.last_position(work, tid) == 40
        main_detail, work_detail = transcripts.get_transcript(ann, "S-A"), transcripts.get_transcript(work, "S-A")
        assert (work_detail.text, work_detail.turns, work_detail.attributes) == (
            main_detail.text,
            main_detail.turns,
            main_detail.attributes,
        )
        # Her undo history came along: undoing her last step (the inductive coding) works in the file.
        assert coding.undo(work, tid) is not None
        assert ("ann-own", 90, 100, None) not in live_codings(work, "ann")


def test_work_file_starts_its_own_audit_chain_and_names_where_it_came_from(study, tmp_path):
    path = hand_out(study, tmp_path)
    with study.store.reader() as session:
        uid = session.get(Study, 1).study_uid
    with Workspace.open(path) as work, work.store.reader() as session:
        row = session.get(Study, 1)
        assert (row.handout_of, row.handout_for, row.identity_mode) == (uid, "ann", "os-login")
        assert row.study_uid and row.study_uid != uid
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert events[0].action == "workfile.handout"
        assert events[0].details["note"] == f"handout from study {uid} for ann"
        assert {e.actor for e in events} == {"sue"}
        from concord.storage.audit_chain import verify_chain

        assert verify_chain(session).intact


def test_work_file_is_private_from_the_first_byte(study, tmp_path):
    old = os.umask(0)  # a umask that takes nothing away: the mode is the handout's own
    try:
        path = hand_out(study, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path + "-wal")


# ------------------------------------------------------------------------------------ the round trip


def code_in_work_file(path: str) -> dict[str, int]:
    """ann codes in her work file through the services: returns what she did, by kind."""
    with Workspace.open(path, "ann") as work:
        tid = transcript_id(work)
        mine = {(c.start, c.end): c.id for c in coding.list_codings(work, tid)}
        coding.change_coding(work, mine[(0, 5)], start=0, end=9)
        coding.remove_coding(work, mine[(50, 80)])
        first = coding.apply_code(work, tid, code_id(work, "Stagnation"), 110, 130)
        coding.apply_code(work, tid, code_id(work, "Moving forward"), 140, 150)
        new_code = code_service.create_inductive_code(work, "ann-new", definition="made in the work file")
        coding.apply_code(work, tid, new_code.id, 160, 170)
        coding.add_memo(work, "coding", first.id, "why this is stagnation")
        memo = next(m for m in coding.list_memos(work) if m.text == "ann transcript memo")
        coding.update_memo(work, memo.id, "ann transcript memo, rewritten")
        transcripts.set_done(work, tid)
    return {"codes": 1, "codings_added": 3, "codings_updated": 1, "codings_removed": 1}


def test_handout_code_collect_round_trip_with_exact_counts_and_idempotent(study, tmp_path):
    bob_before = rows_by_coder(study, "bob")
    path = hand_out(study, tmp_path)
    code_in_work_file(path)
    with Workspace.open(path, "ann") as work:
        expected = live_codings(work, "ann")

    report = workfiles.collect(as_person(study, "sue"), path, coder="ann")
    assert report.added == {"codes": 1, "codings": 3, "memos": 1, "progress": 0}
    assert report.updated == {"codes": 0, "codings": 1, "memos": 1, "progress": 1}
    assert report.removed == {"codes": 0, "codings": 1, "memos": 0, "progress": 0}
    assert report.skipped == []
    assert live_codings(study, "ann") == expected
    assert len(expected) == 5
    ann = as_person(study, "ann")
    assert "ann-new" in {c.name for c in code_service.visible_codes(ann)}
    tid = transcript_id(study)
    stagnation = next(c for c in coding.list_codings(ann, tid) if (c.start, c.end) == (110, 130))
    assert [m.text for m in coding.list_memos(ann, target_kind="coding", target_id=stagnation.id)] == [
        "why this is stagnation"
    ]
    assert {m.text for m in coding.list_memos(ann)} == {"ann transcript memo, rewritten", "why this is stagnation"}
    assert next(t for t in transcripts.list_transcripts(ann) if t.key == "S-A").progress.done
    # Nobody else's work moved.
    assert rows_by_coder(study, "bob") == bob_before

    ann_after = rows_by_coder(study, "ann")
    again = workfiles.collect(as_person(study, "sue"), path)
    assert again.changes == 0 and again.skipped == []
    assert rows_by_coder(study, "ann") == ann_after
    assert rows_by_coder(study, "bob") == bob_before
    with study.store.reader() as session:
        summaries = session.scalars(select(AuditEvent).where(AuditEvent.action == "collect.summary")).all()
    assert [e.details["added"]["codings"] for e in summaries] == [3, 0]
    # The summary counts ann's work: behind the blind for bob.
    assert [e.action for e in audit_service.list_events(as_person(study, "sue")) if e.entity == "workfile"] == [
        "workfile.handout",
        "collect.summary",
        "collect.summary",
    ]
    assert not [e for e in audit_service.list_events(as_person(study, "bob")) if e.entity == "workfile"]


def test_collect_leaves_alone_what_ann_did_in_the_study_after_the_handout(study, tmp_path):
    path = hand_out(study, tmp_path)
    ann = as_person(study, "ann")
    later = coding.apply_code(ann, transcript_id(study), code_id(ann, "Stagnation"), 200, 210)
    report = workfiles.collect(as_person(study, "sue"), path)
    assert report.changes == 0
    assert later.id in {c.id for c in coding.list_codings(ann, transcript_id(study))}


async def test_the_work_file_opens_in_the_workbench_for_its_coder(study, tmp_path):
    from textual.widgets import DataTable

    from concord.app.tui.app import make_app
    from concord.app.tui.screens.transcript import TranscriptScreen

    path = hand_out(study, tmp_path)
    app = make_app(path, "ann")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#transcripts", DataTable)
        assert table.row_count == 1
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, TranscriptScreen)
        assert app.screen.summary.key == "S-A"


# ------------------------------------------------------------------------------------ refusals


def test_collect_refuses_a_file_from_another_study(study, tmp_path):
    path = hand_out(study, tmp_path)
    other = make_study(str(tmp_path / "other.concord"))
    try:
        with pytest.raises(workfiles.WorkFileRefused, match="handed out from another study"):
            workfiles.collect(as_person(other, "sue"), path)
        with pytest.raises(workfiles.WorkFileRefused, match="handed out from another study"):
            workfiles.refresh(as_person(other, "sue"), path)
    finally:
        other.close()


def test_collect_refuses_a_file_for_another_coder_than_claimed(study, tmp_path):
    path = hand_out(study, tmp_path)
    with pytest.raises(workfiles.WorkFileRefused, match="handed out for ann, not for bob"):
        workfiles.collect(as_person(study, "sue"), path, coder="bob")
    with pytest.raises(workfiles.WorkFileRefused, match="not a work file"):
        workfiles.collect(as_person(study, "sue"), plain_study(tmp_path))


def plain_study(tmp_path) -> str:
    """A study file that is no work file."""
    plain = make_study(str(tmp_path / "plain.concord"))
    plain.close()
    return str(tmp_path / "plain.concord")


def test_only_supervisors_and_admins_hand_out_and_collect(study, tmp_path):
    path = hand_out(study, tmp_path)
    for person in ("ann", "bob", None):
        with pytest.raises(PermissionDenied):
            workfiles.handout(as_person(study, person), "ann", tmp_path / f"by-{person}.concord")
        assert not (tmp_path / f"by-{person}.concord").exists()
        with pytest.raises(PermissionDenied):
            workfiles.collect(as_person(study, person), path)
        with pytest.raises(PermissionDenied):
            workfiles.refresh(as_person(study, person), path)
    with pytest.raises(ConcordError, match="work files are for coders"):
        workfiles.handout(as_person(study, "sue"), "sue", tmp_path / "sue.concord")
    with pytest.raises(NotFound):
        workfiles.handout(as_person(study, "sue"), "zed", tmp_path / "zed.concord")
    with pytest.raises(ConcordError, match="already exists"):
        hand_out(study, tmp_path)
    with study.store.session() as session:
        session.execute(update(Coder).where(Coder.name == "ann").values(active=False))
    with pytest.raises(ConcordError, match="deactivated"):
        hand_out(study, tmp_path, "again.concord")
    # Work already handed out to a coder who has since left can still come back.
    assert workfiles.collect(as_person(study, "sue"), path).changes == 0


def test_in_the_work_file_only_its_coder_acts_and_nobody_can_set_it_up(study, tmp_path):
    path = hand_out(study, tmp_path)
    with pytest.raises(identity.IdentityRefused):
        Workspace.open(path, "sue")
    with Workspace.open(path, "ann") as work:
        with pytest.raises(PermissionDenied):
            add_coder(work, "zed", "supervisor")
        with pytest.raises(PermissionDenied):
            update_settings(work, title="mine now")
        with pytest.raises(PermissionDenied):
            codebook_service.edit_code(work, code_id(work, "Stagnation"), name="renamed")
    trusted = hand_out(study, tmp_path, "trusted.concord", identity_mode=identity.TRUSTED)
    with Workspace.open(trusted, "sue") as work, pytest.raises(PermissionDenied, match="deactivated"):
        _ = work.actor


def test_cli_handout_and_collect_and_one_line_refusals(study, tmp_path):
    target = study.store.target
    out = tmp_path / "cli.concord"
    runner = CliRunner()
    result = runner.invoke(concord_cli, ["handout", target, "--coder", "ann", "--out", str(out), "--as", "ann"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == result.stderr.count("note:")
    assert "this needs a supervisor or admin" in result.stderr
    assert not out.exists()

    result = runner.invoke(
        concord_cli, ["handout", target, "--coder", "ann", "--out", str(out), "--login", LOGIN, "--as", "sue"]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} for ann: 1 transcripts" in result.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600

    result = runner.invoke(concord_cli, ["collect", target, str(out), "--coder", "bob", "--as", "sue"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"concord: error: {out}: handed out for ann, not for bob"

    result = runner.invoke(concord_cli, ["collect", target, str(out), "--as", "sue", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["added"] == {"codes": 0, "codings": 0, "memos": 0, "progress": 0}

    result = runner.invoke(concord_cli, ["handout", target, "--refresh", str(out), "--as", "sue"])
    assert result.exit_code == 0, result.output
    assert "0 new transcripts" in result.stdout

    result = runner.invoke(concord_cli, ["handout", target, "--as", "sue"])
    assert result.exit_code == 2
    assert "--coder NAME --out FILE" in result.stderr


# ------------------------------------------------------------------------------------ refresh


def add_transcript(workspace: Workspace, key: str) -> None:
    text, spans = build_transcript_text([("T", "therapist", f"A new session {key} begins."), ("P", "client", "Yes.")])
    with workspace.store.session() as session:
        row = Transcript(key=key, kind="session", language="en", text=text)
        session.add(row)
        session.flush()
        for number, (label, role, start, end) in enumerate(spans, 1):
            session.add(
                Turn(
                    transcript_id=row.id,
                    number=number,
                    speaker_role=role,
                    speaker_label=label,
                    char_start=start,
                    char_end=end,
                    nonverbal=[],
                )
            )


def test_refresh_brings_new_transcripts_and_codebook_changes_and_keeps_her_codings(study, tmp_path):
    path = hand_out(study, tmp_path)
    with Workspace.open(path, "ann") as work:
        # Her new inductive code takes the work file's next code id, which the study is about to use too.
        mine = code_service.create_inductive_code(work, "ann-in-file")
        coding.apply_code(work, transcript_id(work), mine.id, 120, 125)
        before = rows_by_coder(work, "ann")
        before_codings = live_codings(work, "ann")
    sue = as_person(study, "sue")
    category = codebook_service.create_category(sue, "cbt-test", "A new theme")
    assert category.id == mine.id  # the clash the refresh has to resolve
    codebook_service.edit_code(sue, code_id(sue, "Stagnation"), definition="Sharper definition")
    add_transcript(study, "S-NEW")

    report = workfiles.refresh(sue, path)
    assert (report.transcripts_added, report.codes_added, report.codes_updated) == (1, 1, 1)
    assert report.codes_renumbered == 1
    with Workspace.open(path, "ann") as work:
        assert {t.key for t in transcripts.list_transcripts(work)} == {"S-A", "S-NEW"}
        names = {c.name: c for c in code_service.visible_codes(work)}
        assert names["A new theme"].id == category.id
        assert names["Stagnation"].definition == "Sharper definition"
        assert names["ann-in-file"].id != category.id
        assert live_codings(work, "ann") == before_codings
        after = rows_by_coder(work, "ann")
        # Her rows are as they were, except that the coding on her moved code follows it.
        moved = {names["ann-in-file"].id: mine.id}
        assert [{**row, "code_id": moved.get(row["code_id"], row["code_id"])} for row in after["codings"]] == before[
            "codings"
        ]
        assert after["memos"] == before["memos"] and after["progress"] == before["progress"]
        assert {c.name for c in code_service.visible_codes(work)} >= {"ann-own", "ann-in-file"}
    # Refreshing again brings nothing new; collecting still finds her code by its guid.
    assert workfiles.refresh(sue, path).transcripts_added == 0
    report = workfiles.collect(sue, path)
    assert (report.added["codes"], report.added["codings"]) == (1, 1)
    assert ("ann-in-file", 120, 125, None) in live_codings(study, "ann")
    again = workfiles.refresh(sue, path)
    assert again.codes_renumbered == 0
    with Workspace.open(path, "ann") as work:
        assert live_codings(work, "ann") == live_codings(study, "ann")
    assert workfiles.collect(sue, path).changes == 0


def test_study_uid_is_given_to_new_studies_and_to_older_ones_at_their_first_handout(study, tmp_path):
    with study.store.reader() as session:
        assert session.get(Study, 1).study_uid
    with study.store.session() as session:
        session.execute(update(Study).values(study_uid=None))
    path = hand_out(study, tmp_path)
    with study.store.reader() as session:
        uid = session.get(Study, 1).study_uid
    assert uid
    with Workspace.open(path) as work, work.store.reader() as session:
        assert session.get(Study, 1).handout_of == uid
    assert workfiles.collect(as_person(study, "sue"), path).changes == 0


def test_collect_refuses_a_work_file_whose_audit_log_was_changed(study, tmp_path):
    path = hand_out(study, tmp_path)
    with Workspace.open(path, "ann") as work:
        coding.apply_code(work, transcript_id(work), code_id(work, "Stagnation"), 110, 130)
    conn = sqlite3.connect(path)
    try:
        # What someone editing the file with other tools would do to hide an event.
        triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("DELETE FROM audit_log WHERE id = (SELECT min(id) FROM audit_log)")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(workfiles.WorkFileRefused, match="its audit log is broken"):
        workfiles.collect(as_person(study, "sue"), path)
    assert ("Stagnation", 110, 130, None) not in live_codings(study, "ann")


# ------------------------------------------------------------------------------------ the main study's permissions


@pytest.mark.parametrize("mode", [0o600, 0o660])
def test_the_study_files_journal_keeps_the_study_files_mode(tmp_path, mode):
    """The admin guide's advice: the -wal and -shm files SQLite writes beside a study get the study
    file's permissions, so a study kept to supervisors has no readable side door."""
    target = str(tmp_path / "main.concord")
    workspace = make_study(target)
    workspace.close()
    os.chmod(target, mode)
    old = os.umask(0)
    try:
        with Workspace.open(target, "ann") as ann:
            coding.apply_code(ann, transcript_id(ann), code_id(ann, "Stagnation"), 0, 5)
            for suffix in ("-wal", "-shm"):
                assert stat.S_IMODE(os.stat(target + suffix).st_mode) == mode, suffix
    finally:
        os.umask(old)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another login needs root")
def test_a_login_outside_the_study_files_owner_and_group_cannot_read_it(tmp_path):
    import subprocess

    target = str(tmp_path / "main.concord")
    make_study(target).close()
    os.chmod(tmp_path, 0o755)
    os.chmod(target, 0o600)
    nobody = 65534

    def as_nobody():
        os.setgid(nobody)
        os.setuid(nobody)

    result = subprocess.run(["cat", target], preexec_fn=as_nobody, capture_output=True, check=False)
    assert result.returncode != 0 and b"Permission denied" in result.stderr
    assert subprocess.run(["cat", target], capture_output=True, check=False).returncode == 0
