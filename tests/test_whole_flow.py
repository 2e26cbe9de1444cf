"""The whole study cycle on every backend: blind coding, agreement, consensus in the TUI, unblinding."""

from __future__ import annotations

import pytest
from sklearn.metrics import cohen_kappa_score

from concord.app.tui.app import make_app
from concord.app.tui.screens.consensus import ConsensusScreen, ConsensusSetup, RationaleDialog
from concord.services import codes, coding, consensus, transcripts
from concord.services.agreement import AgreementOptions, compute_agreement
from concord.services.unblinding import unblind
from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import Coding, ConsensusSource
from tests.factories import as_person, make_study
from tests.test_agreement_service import add_transcript

# Which turns each coder codes with which pole, per transcript (turn number -> code name).
PLAN = {
    "S-A": {
        "ann": {1: "Moving forward", 2: "Stagnation", 4: "Moving forward"},
        "bob": {1: "Moving forward", 2: "Stagnation", 3: "Stagnation"},
    },
    "S-B": {
        "ann": {1: "Stagnation", 3: "Moving forward", 5: "Moving forward", 6: "Stagnation"},
        "bob": {1: "Stagnation", 2: "Moving forward", 5: "Stagnation", 6: "Stagnation"},
    },
}


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    add_transcript(workspace, "S-B", ["therapist", "client"] * 3)
    yield workspace
    workspace.close()


def code_blind(workspace):
    for name in ("ann", "bob"):
        person = as_person(workspace, name)
        by_name = {c.name: c.id for c in codes.visible_codes(person)}
        for key, plan in PLAN.items():
            detail = transcripts.get_transcript(person, key)
            # The blind: no group, no scores, nobody else's codings.
            assert detail.scores == () and "group" not in {a.name for a in detail.attributes}
            with pytest.raises(PermissionDenied):
                coding.list_codings(person, detail.id, layer="others")
            for number, code_name in plan[name].items():
                turn = detail.turns[number - 1]
                made = coding.apply_code(person, detail.id, by_name[code_name], turn.char_start, turn.char_end)
                assert made.made_blind is True
            transcripts.set_done(person, detail.id)


def presence(key, coder, code_name, turns):
    return [int(PLAN[key][coder].get(n) == code_name) for n in range(1, turns + 1)]


async def resolve_everything_in_the_tui(sue):
    app = make_app(sue.store.target, "sue", start="consensus", consensus=ConsensusSetup(present=("sue",)))
    pressed = []
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConsensusScreen)
        keys = iter(["1", "2", "a", "x", "1", "a", "2", "0"] * 3)
        while screen.items:
            key = next(keys)
            before = len(screen.items)
            await pilot.press(key)
            await pilot.pause()
            if isinstance(app.screen, RationaleDialog):
                await pilot.press(*"both poles are voiced here", "enter")
                await pilot.pause()
            pressed.append(key)
            assert len(screen.items) == before - 1
    return pressed


async def test_blind_coding_agreement_consensus_in_the_tui_and_unblinding(study):
    code_blind(study)
    sue = as_person(study, "sue")

    # Agreement is the supervisor's while the study is blind.
    with pytest.raises(PermissionDenied):
        compute_agreement(as_person(study, "ann"))
    report = compute_agreement(sue, AgreementOptions(codes=("Moving forward", "Stagnation"), statistics=("cohen",)))
    assert report.transcripts == ("S-A", "S-B") and report.coders == ("ann", "bob") and report.units_total == 10
    for code_name in ("Moving forward", "Stagnation"):
        ann = presence("S-A", "ann", code_name, 4) + presence("S-B", "ann", code_name, 6)
        bob = presence("S-A", "bob", code_name, 4) + presence("S-B", "bob", code_name, 6)
        row = next(r for r in report.rows if r.scope == "code" and r.code == code_name)
        assert round(row.value, 4) == round(cohen_kappa_score(ann, bob), 4)

    open_before = consensus.consensus_queue(sue)
    assert [(i.transcript, i.turn) for i in open_before] == [("S-A", 3), ("S-A", 4), ("S-B", 2), ("S-B", 3), ("S-B", 5)]
    with pytest.raises(ConcordError, match="lack a finished consensus"):
        unblind(sue)

    pressed = await resolve_everything_in_the_tui(sue)
    assert len(pressed) == len(open_before)

    # The consensus layer is complete: every transcript done, nothing open, every unit settled and traced.
    assert {s.key: s.phase for s in transcripts.list_transcripts(sue)} == {
        "S-A": "consensus_done",
        "S-B": "consensus_done",
    }
    assert consensus.consensus_queue(sue) == []
    settled = consensus.consensus_queue(sue, include_settled=True)
    assert {i.status for i in settled} == {"agreed", "decided"}
    assert sum(i.status == "agreed" for i in settled) == 4  # S-A 1, 2 and S-B 1, 6
    with study.store.reader() as session:
        layer = session.query(Coding).filter(Coding.phase == "consensus", Coding.deleted_at.is_(None)).all()
        assert layer and all(c.coder_id == sue.actor.id and c.made_blind for c in layer)
        for made in layer:
            assert session.query(ConsensusSource).filter(ConsensusSource.consensus_coding_id == made.id).count() >= 1

    # Unblinding needs no force now, and reveals the group and the scores to the coders.
    result = unblind(sue, reason="consensus finished")
    assert not result.forced
    ann = as_person(study, "ann")
    detail = transcripts.get_transcript(ann, "S-A")
    assert {a.name: a.value for a in detail.attributes}["group"] == "high"
    assert [(s.instrument, s.total) for s in detail.scores] == [("WAI-SR", 48)]
    assert transcripts.list_transcripts(ann)[0].attributes
    by_name = {c.name: c.id for c in codes.visible_codes(ann)}
    assert coding.apply_code(ann, detail.id, by_name["Stagnation"], 0, 4).made_blind is False
    # Now the coders may read the agreement and the consensus layer too.
    assert compute_agreement(ann, AgreementOptions(codes=("Stagnation",))).rows
    assert coding.list_codings(ann, detail.id, layer="consensus")
