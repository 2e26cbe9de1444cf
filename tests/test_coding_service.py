"""Applying, changing, removing codes; memos; undo and redo that survive a restart."""

from __future__ import annotations

import pytest

from concord.services import codes, coding, transcripts
from concord.services.workspace import Workspace
from concord.storage.db import open_study
from concord.storage.errors import ConcordError, PermissionDenied
from tests.factories import as_person, make_study


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def _ids(workspace):
    detail = transcripts.get_transcript(workspace, "S-A")
    by_name = {c.name: c.id for c in codes.visible_codes(workspace)}
    return detail, by_name


def test_apply_change_remove_and_audit(study):
    ann = as_person(study, "ann")
    detail, code = _ids(ann)
    made = coding.apply_code(ann, detail.id, code["Moving forward"], 5, 15, memo="hope")
    assert (made.start, made.end, made.memo, made.phase) == (5, 15, "hope", "independent")
    changed = coding.change_coding(ann, made.id, code_id=code["Stagnation"], end=20)
    assert (changed.code_id, changed.end) == (code["Stagnation"], 20)
    coding.remove_coding(ann, made.id)
    assert coding.list_codings(ann, detail.id) == []
    with pytest.raises(ConcordError, match="outside the transcript"):
        coding.apply_code(ann, detail.id, code["Stagnation"], 0, len(detail.text) + 1)
    with pytest.raises(PermissionDenied):
        bob = as_person(study, "bob")
        kept = coding.apply_code(bob, detail.id, code["Stagnation"], 0, 3)
        coding.remove_coding(ann, kept.id)


def test_undo_redo_persist_across_reopen(study, study_target):
    ann = as_person(study, "ann")
    detail, code = _ids(ann)
    first = coding.apply_code(ann, detail.id, code["Moving forward"], 0, 10)
    second = coding.apply_code(ann, detail.id, code["Stagnation"], 20, 30)
    coding.change_coding(ann, second.id, start=22)
    assert coding.undo(ann, detail.id) == second.id
    assert [c.start for c in coding.list_codings(ann, detail.id)] == [0, 20]

    reopened = Workspace(open_study(study_target), "ann")
    try:
        assert coding.undo(reopened, detail.id) == second.id
        assert [c.id for c in coding.list_codings(reopened, detail.id)] == [first.id]
        assert coding.redo(reopened, detail.id) == second.id
        assert coding.redo(reopened, detail.id) == second.id
        assert [c.start for c in coding.list_codings(reopened, detail.id)] == [0, 22]
        assert coding.redo(reopened, detail.id) is None
        # A new step forgets the undone ones.
        coding.undo(reopened, detail.id)
        coding.apply_code(reopened, detail.id, code["Stagnation"], 40, 50)
        assert coding.redo(reopened, detail.id) is None
    finally:
        reopened.close()


def test_memos_on_transcript_turn_and_coding(study):
    ann, bob, sue = (as_person(study, n) for n in ("ann", "bob", "sue"))
    detail, code = _ids(ann)
    made = coding.apply_code(ann, detail.id, code["Moving forward"], 0, 10)
    coding.add_memo(ann, "transcript", detail.id, "First watch: tense start.")
    coding.add_memo(ann, "turn", detail.turns[1].id, "Sighs before answering.")
    coding.add_memo(ann, "coding", made.id, "Borderline.")
    coding.add_memo(bob, "transcript", detail.id, "bob's note")
    assert [m.text for m in coding.list_memos(ann, transcript_id=detail.id)] == [
        "First watch: tense start.",
        "Sighs before answering.",
        "Borderline.",
    ]
    assert len(coding.list_memos(sue, transcript_id=detail.id)) == 4
    with pytest.raises(PermissionDenied):
        coding.add_memo(bob, "coding", made.id, "not mine")
    with pytest.raises(ConcordError):
        coding.add_memo(ann, "transcript", detail.id, "   ")


def test_progress_and_done(study):
    ann = as_person(study, "ann")
    detail, _ = _ids(ann)
    transcripts.record_progress(ann, detail.id, turns_reviewed=3, last_offset=40)
    transcripts.record_progress(ann, detail.id, turns_reviewed=2, last_offset=10)
    transcripts.set_done(ann, detail.id)
    summary = transcripts.list_transcripts(ann)[0]
    assert summary.progress.turns_reviewed == 3 and summary.progress.done
    assert transcripts.last_position(ann, detail.id) == 10
