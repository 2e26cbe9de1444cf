"""Consensus: the queue, decisions and their history, the consensus layer, phases, the CSV path, unblinding."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.services import codes, coding, consensus, transcripts
from concord.services.audit import list_events
from concord.services.consensus import DecisionRequest, RationaleRequired
from concord.services.study import update_settings
from concord.services.unblinding import unblind
from concord.storage.errors import ConcordError, InputError, PermissionDenied
from concord.storage.models import Coding, ConsensusDecision, ConsensusSource
from tests.factories import as_person, make_study


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def coded(workspace):
    """ann and bob code S-A: they agree on turn 1, differ on turns 2 and 4; turn 3 nobody codes."""
    ann, bob = as_person(workspace, "ann"), as_person(workspace, "bob")
    detail = transcripts.get_transcript(ann, "S-A")
    ids = {c.name: c.id for c in codes.visible_codes(ann)}
    t = detail.turns
    made = {
        "ann1": coding.apply_code(ann, detail.id, ids["Moving forward"], t[0].char_start, t[0].char_end),
        "bob1": coding.apply_code(bob, detail.id, ids["Moving forward"], t[0].char_start + 4, t[0].char_end),
        "ann2": coding.apply_code(
            ann, detail.id, ids["Stagnation"], t[1].char_start, t[1].char_start + 20, memo="sighs"
        ),
        "bob4": coding.apply_code(bob, detail.id, ids["Moving forward"], t[3].char_start + 26, t[3].char_end),
    }
    return detail, ids, made


def live_consensus(workspace):
    with workspace.store.reader() as session:
        return sorted(
            (c.code_id, c.start_offset, c.end_offset, c.made_blind, c.coder_id)
            for c in session.query(Coding).filter(Coding.phase == "consensus", Coding.deleted_at.is_(None))
        )


def test_queue_shows_differing_units_with_every_reading(study):
    detail, _ids, made = coded(study)
    sue = as_person(study, "sue")
    queue = consensus.consensus_queue(sue)
    assert [(i.transcript, i.turn, i.status) for i in queue] == [("S-A", 2, "open"), ("S-A", 4, "open")]
    first = queue[0]
    assert [(r.letter, r.label, r.codes) for r in first.readings] == [("A", "ann", ("Stagnation",)), ("B", "bob", ())]
    assert first.readings[0].codings[0].memo == "sighs"
    assert first.readings[0].codings[0].text == detail.text[made["ann2"].start : made["ann2"].end]
    assert [c.in_unit for c in first.context] == [False, True, False]
    assert first.text == detail.text[detail.turns[1].char_start : detail.turns[1].char_end]
    settled = consensus.consensus_queue(sue, include_settled=True)
    assert [(i.turn, i.status) for i in settled] == [(1, "agreed-pending"), (2, "open"), (4, "open")]
    with pytest.raises(PermissionDenied):
        consensus.consensus_queue(as_person(study, "ann"))
    update_settings(sue, anonymous_consensus=True)
    hidden = consensus.consensus_queue(sue)[0]
    assert [(r.label, r.coder) for r in hidden.readings] == [("Coder A", None), ("Coder B", None)]
    assert consensus.coder_keys(sue) == ["Coder A", "Coder B"]


def test_decisions_fill_the_consensus_layer_and_move_the_phase(study):
    detail, ids, made = coded(study)
    sue = as_person(study, "sue")
    assert transcripts.list_transcripts(sue)[0].phase == "independent"
    taken = consensus.decide(sue, DecisionRequest("S-A", "take", turn=2, coder="A"), present=("sue", "ann", "bob"))
    assert (taken.decision, taken.coder, taken.present) == ("take", "ann", ("sue", "ann", "bob"))
    assert taken.result == (("Stagnation", made["ann2"].start, made["ann2"].end),)
    # The first decision also put the agreed turn 1 into the layer, as the union of both coders' spans.
    t = detail.turns
    sue_id = sue.actor.id
    assert live_consensus(study) == sorted(
        [
            (ids["Moving forward"], t[0].char_start, t[0].char_end, True, sue_id),
            (ids["Stagnation"], made["ann2"].start, made["ann2"].end, True, sue_id),
        ]
    )
    assert transcripts.list_transcripts(sue)[0].phase == "in_consensus"
    with study.store.reader() as session:
        agreed = session.query(ConsensusDecision).filter(ConsensusDecision.decision == "agreed").one()
        sources = sorted(
            s.independent_coding_id
            for s in session.query(ConsensusSource).filter(
                ConsensusSource.consensus_coding_id == agreed.result_coding_ids[0]
            )
        )
    assert sources == sorted([made["ann1"].id, made["bob1"].id])

    with pytest.raises(RationaleRequired, match="matches no coder"):
        consensus.decide(sue, DecisionRequest("S-A", "code", turn=4, code="Stagnation"))
    decided = consensus.decide(
        sue, DecisionRequest("S-A", "code", turn=4, code="Stagnation", rationale="resignation, not hope")
    )
    assert decided.result == (("Stagnation", t[3].char_start, t[3].char_end),)
    assert transcripts.list_transcripts(sue)[0].phase == "consensus_done"
    assert consensus.consensus_queue(sue) == []

    # Revising keeps the history: the old result is soft-deleted, the new decision supersedes it.
    revised = consensus.decide(sue, DecisionRequest("S-A", "take", turn=4, coder="bob"))
    assert revised.supersedes_id == decided.id and revised.result[0][0] == "Moving forward"
    item = next(i for i in consensus.consensus_queue(sue, include_settled=True) if i.turn == 4)
    assert [h.decision for h in item.history] == ["take", "code"] and item.history[1].rationale
    with study.store.reader() as session:
        old = session.get(Coding, session.get(ConsensusDecision, decided.id).result_coding_ids[0])
        assert old.deleted_at is not None
    assert transcripts.list_transcripts(sue)[0].phase == "consensus_done"
    events = [e.action for e in list_events(sue) if e.entity == "consensus"]
    assert events.count("consensus.decide") == 3 and events.count("consensus.agreed") == 1


def test_all_none_and_span_decisions(study):
    detail, _ids, made = coded(study)
    sue = as_person(study, "sue")
    t = detail.turns
    # Turn 2: ann Stagnation, bob nothing. "none" matches bob; "all" matches ann.
    assert consensus.decide(sue, DecisionRequest("S-A", "none", turn=2)).result == ()
    everything = consensus.decide(sue, DecisionRequest("S-A", "all", turn=2))
    assert everything.result == (("Stagnation", made["ann2"].start, made["ann2"].end),)
    # Extend ann's span to the whole turn: her codes, so no rationale.
    extended = consensus.decide(
        sue, DecisionRequest("S-A", "span", turn=2, coder=1, start=t[1].char_start, end=t[1].char_end)
    )
    assert extended.result == (("Stagnation", t[1].char_start, t[1].char_end),)
    with pytest.raises(ConcordError, match="has none here"):
        consensus.decide(sue, DecisionRequest("S-A", "span", turn=2, coder="bob", start=1, end=5))
    with pytest.raises(ConcordError, match="no Coder C"):
        consensus.decide(sue, DecisionRequest("S-A", "take", turn=2, coder=3))
    with pytest.raises(ConcordError, match="nobody coded turn 3"):
        consensus.decide(sue, DecisionRequest("S-A", "none", turn=3))
    with pytest.raises(PermissionDenied):
        consensus.decide(as_person(study, "ann"), DecisionRequest("S-A", "none", turn=2))


def test_a_coding_over_two_turns_is_decided_turn_by_turn_and_span_units(study):
    ann, bob, sue = (as_person(study, n) for n in ("ann", "bob", "sue"))
    detail = transcripts.get_transcript(ann, "S-A")
    ids = {c.name: c.id for c in codes.visible_codes(ann)}
    t = detail.turns
    coding.apply_code(ann, detail.id, ids["Stagnation"], t[0].char_start + 5, t[1].char_end)
    coding.apply_code(bob, detail.id, ids["Stagnation"], t[1].char_start, t[1].char_start + 30)
    queue = consensus.consensus_queue(sue)
    assert [i.turn for i in queue] == [1]
    made = consensus.decide(sue, DecisionRequest("S-A", "take", turn=1, coder="ann"))
    assert made.result == (("Stagnation", t[0].char_start + 5, t[0].char_end),)
    # Turn 2 was agreed and entered clipped to the turn, as the union of both spans.
    assert (ids["Stagnation"], t[1].char_start, t[1].char_end, True, sue.actor.id) in live_consensus(study)
    # With span units the two codings overlap by 30 characters of bob's 30: one unit, agreed.
    spans = consensus.consensus_queue(sue, unit="span", include_settled=True)
    assert [(i.start, i.end, i.status) for i in spans] == [(t[0].char_start + 5, t[1].char_end, "agreed-pending")]


def test_accept_agreed_and_decisions_from_csv(study, tmp_path):
    detail, _ids, _made = coded(study)
    sue = as_person(study, "sue")
    assert consensus.accept_agreed(sue) == {"S-A": 1}
    assert transcripts.list_transcripts(sue)[0].phase == "in_consensus"
    t = detail.turns
    good = tmp_path / "decisions.csv"
    good.write_text(
        "transcript,turn,unit_start,unit_end,code,decision,coder,start,end,rationale\n"
        "S-A,2,,,,take,ann,,,\n"
        f"S-A,,{t[3].char_start},{t[3].char_end},Stagnation,code,,,,heard as resignation\n"
    )
    made_decisions = consensus.apply_decisions(sue, consensus.read_decisions(good))
    assert [d.decision for d in made_decisions] == ["take", "code"]
    assert transcripts.list_transcripts(sue)[0].phase == "consensus_done"

    bad = tmp_path / "bad.csv"
    bad.write_text("transcript,turn,decision,coder\nS-A,2,take,ann\nS-A,4,maybe,ann\n")
    with pytest.raises(InputError) as error:
        consensus.apply_decisions(sue, consensus.read_decisions(bad))
    assert f"{bad}:3" in str(error.value) and "unknown decision 'maybe'" in str(error.value)
    before = live_consensus(study)
    partly = tmp_path / "partly.csv"
    partly.write_text("transcript,turn,decision,coder\nS-A,2,none,\nS-A,9,none,\n")
    with pytest.raises(ConcordError, match=r"partly\.csv:3: transcript 'S-A' has no turn 9"):
        consensus.apply_decisions(sue, consensus.read_decisions(partly))
    assert live_consensus(study) == before  # all or nothing
    with pytest.raises(InputError, match="unknown column"):
        header = tmp_path / "header.csv"
        header.write_text("transcript,turn,verdict\n")
        consensus.read_decisions(header)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_consensus_and_unblind_commands(study, study_target, tmp_path):
    _detail, _ids, _made = coded(study)
    listed = run("consensus", study_target, "--as", "sue", "--list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [(i["turn"], i["status"]) for i in items] == [(2, "open"), (4, "open")]
    assert items[0]["readings"][0]["codes"] == ["Stagnation"]
    assert run("consensus", study_target, "--as", "ann", "--list").exit_code == 2

    refused = run("unblind", study_target, "--as", "sue")
    assert refused.exit_code == 2 and "1 transcript(s) lack a finished consensus (S-A)" in refused.stderr
    assert "needs a reason" in run("unblind", study_target, "--as", "sue", "--force").stderr

    decisions = tmp_path / "d.csv"
    decisions.write_text("transcript,turn,decision,coder\nS-A,2,take,1\nS-A,4,take,2\n")
    applied = run(
        "consensus", study_target, "--as", "sue", "--present", "sue,ann", "--accept-agreed", "--decisions", decisions
    )
    assert applied.exit_code == 0, applied.output
    assert "Applied 2 decision(s)" in applied.stdout
    assert "1 transcript (1 consensus done): 0 open units" in applied.stdout
    assert run("consensus", study_target, "--as", "sue", "--list").stdout.strip().startswith("(none)")

    assert run("unblind", study_target, "--as", "ann").exit_code == 2
    done = run("unblind", study_target, "--as", "sue", "--reason", "consensus finished")
    assert done.exit_code == 0 and "Unblinded by sue" in done.stdout
    again = run("unblind", study_target, "--as", "sue")
    assert again.exit_code == 2 and "already unblinded by sue" in again.stderr


def test_unblinding_reveals_groups_and_scores_and_marks_new_codings(study):
    ann, sue = as_person(study, "ann"), as_person(study, "sue")
    detail = transcripts.get_transcript(ann, "S-A")
    assert "group" not in {a.name for a in detail.attributes} and detail.scores == ()
    with pytest.raises(ConcordError, match="lack a finished consensus"):
        unblind(sue)
    result = unblind(sue, force=True, reason="pilot: no consensus planned")
    assert result.forced and result.unfinished == ("S-A",)
    after = transcripts.get_transcript(ann, "S-A")
    assert {a.name: a.value for a in after.attributes}["group"] == "high"
    assert after.scores[0].instrument == "WAI-SR" and after.scores[0].total == 48
    ids = {c.name: c.id for c in codes.visible_codes(ann)}
    made = coding.apply_code(ann, detail.id, ids["Stagnation"], 0, 5)
    assert made.made_blind is False
    event = next(e for e in list_events(sue) if e.action == "study.unblind")
    assert event.actor == "sue" and event.details["reason"] == "pilot: no consensus planned"
    assert event.details["unfinished"] == ["S-A"]
    assert study.settings().unblinded_at is not None
