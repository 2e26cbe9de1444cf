"""The blind rule at the service layer, on every backend."""

from __future__ import annotations

import pytest

from concord.services import codes, coding, transcripts
from concord.services.audit import list_events
from concord.services.study import study_status
from concord.storage.errors import PermissionDenied
from tests.factories import as_person, make_study


@pytest.fixture
def blind_study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def _code_id(workspace, name):
    return next(c.id for c in codes.visible_codes(workspace) if c.name == name)


def test_coder_in_blind_study_sees_no_group_scores_or_others_codes(blind_study):
    ann, bob = as_person(blind_study, "ann"), as_person(blind_study, "bob")
    detail = transcripts.get_transcript(ann, "S-A")
    forward = _code_id(ann, "Moving forward")
    coding.apply_code(ann, detail.id, forward, detail.turns[0].char_start, detail.turns[0].char_end)
    coding.apply_code(bob, detail.id, forward, detail.turns[1].char_start, detail.turns[1].char_end)

    assert detail.scores == ()
    assert detail.dyad is None and detail.session_number is None
    assert [a.name for a in detail.attributes] == ["transcriber"]
    summary = transcripts.list_transcripts(ann)[0]
    assert summary.others == () and summary.attributes == ()
    assert summary.progress.codings == 1

    own = coding.list_codings(ann, detail.id)
    assert [(c.coder, c.made_blind) for c in own] == [("ann", True)]
    for layer in ("others", "bob", "consensus"):
        with pytest.raises(PermissionDenied):
            coding.list_codings(ann, detail.id, layer=layer)
    assert study_status(ann)["codings"] == {"ann": 1}
    transcripts.set_done(bob, detail.id)
    codes.create_inductive_code(bob, "bob's secret idea")
    assert not [e for e in list_events(ann) if e.actor == "bob"]
    assert {e.action for e in list_events(as_person(blind_study, "sue")) if e.actor == "bob"} == {
        "coding.apply",
        "transcript.done",
        "code.create",
    }


def test_supervisor_sees_everything_in_blind_study(blind_study):
    ann, sue = as_person(blind_study, "ann"), as_person(blind_study, "sue")
    detail = transcripts.get_transcript(ann, "S-A")
    coding.apply_code(ann, detail.id, _code_id(ann, "Stagnation"), 10, 20)
    seen = transcripts.get_transcript(sue, "S-A")
    assert seen.scores[0].instrument == "WAI-SR" and seen.scores[0].total == 48
    assert {a.name: a.value for a in seen.attributes}["group"] == "high"
    assert seen.dyad == "1" and seen.session_number == 5
    assert [c.coder for c in coding.list_codings(sue, detail.id, layer="others")] == ["ann"]
    assert study_status(sue)["codings"] == {"ann": 1, "bob": 0, "sue": 0}


def test_inductive_codes_of_others_stay_hidden_while_blind(blind_study):
    ann, bob, sue = (as_person(blind_study, n) for n in ("ann", "bob", "sue"))
    mine = codes.create_inductive_code(ann, "client doubts the homework")
    codes.create_inductive_code(bob, "hopelessness")
    assert mine.origin == "inductive" and mine.creator == "ann"
    names = {c.name for c in codes.visible_codes(ann)}
    assert "client doubts the homework" in names and "hopelessness" not in names
    assert "hopelessness" in {c.name for c in codes.visible_codes(sue)}
    detail = transcripts.get_transcript(ann, "S-A")
    bobs = next(c for c in codes.visible_codes(sue) if c.name == "hopelessness")
    with pytest.raises(Exception, match="no code"):
        coding.apply_code(ann, detail.id, bobs.id, 0, 5)


def test_open_study_shows_everything_to_coders(study_target):
    workspace = make_study(study_target, blind=False)
    try:
        ann, bob = as_person(workspace, "ann"), as_person(workspace, "bob")
        detail = transcripts.get_transcript(ann, "S-A")
        assert detail.scores and {a.name for a in detail.attributes} == {"group", "transcriber"}
        coding.apply_code(bob, detail.id, _code_id(bob, "Stagnation"), 0, 4)
        others = coding.list_codings(ann, detail.id, layer="others")
        assert [(c.coder, c.made_blind) for c in others] == [("bob", False)]
    finally:
        workspace.close()


def test_unnamed_caller_is_held_to_the_blind(blind_study):
    nobody = as_person(blind_study, None)
    detail = transcripts.get_transcript(nobody, "S-A")
    assert detail.scores == () and all(not a.blinded for a in detail.attributes)
    with pytest.raises(PermissionDenied):
        coding.list_codings(nobody, detail.id, layer="others")
