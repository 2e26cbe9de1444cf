"""Consensus mode and the agreement screen of the workbench app (opened straight in consensus mode, as
`concord consensus` does), driven by keys in a headless app."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Static

from concord.app.tui.app import make_app
from concord.app.tui.screens.agreement import AgreementScreen, DisagreementsScreen
from concord.app.tui.screens.consensus import (
    CodeChoiceDialog,
    ConsensusScreen,
    ConsensusSetup,
    RationaleDialog,
    SpanDialog,
)
from concord.app.tui.screens.overview import OverviewScreen
from concord.services import consensus, transcripts
from concord.services.study import update_settings
from concord.storage.errors import PermissionDenied
from tests.factories import as_person, make_study
from tests.test_consensus import coded


@pytest.fixture
def study(tmp_path):
    workspace = make_study(str(tmp_path / "study.concord"), blind=True)
    yield workspace
    workspace.close()


def decisions(workspace):
    return {(i.turn, i.status): i.decision for i in consensus.consensus_queue(workspace, include_settled=True)}


def consensus_app(workspace, name: str = "sue", **setup):
    """The workbench for NAME, opened in consensus mode as `concord consensus STUDY --as NAME` opens it."""
    return make_app(workspace.store.target, name, start="consensus", consensus=ConsensusSetup(**setup))


def rendered(widget: Static) -> str:
    """What a Static shows, as plain text (a rich Table included)."""
    console = Console(width=140, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_deciding_with_keys_asks_a_rationale_when_no_coder_matches(study):
    _detail, _ids, _made = coded(study)
    sue = as_person(study, "sue")
    app = consensus_app(sue, present=("sue", "ann"))
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConsensusScreen)
        assert [i.turn for i in screen.items] == [2, 4]
        assert "Stagnation" in str(screen.query_one("#queue", DataTable).get_row_at(0)[4])

        await pilot.press("1")  # turn 2: take Coder A (ann)
        await pilot.pause()
        assert [i.turn for i in screen.items] == [4]

        await pilot.press("c")  # turn 4: another code, which nobody applied there
        await pilot.pause()
        assert isinstance(app.screen, CodeChoiceDialog)
        await pilot.press(*"stag", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RationaleDialog)
        await pilot.press("escape")  # cancelled: nothing decided
        await pilot.pause()
        assert isinstance(app.screen, ConsensusScreen) and [i.turn for i in screen.items] == [4]

        await pilot.press("c")
        await pilot.pause()
        await pilot.press(*"stag", "enter")
        await pilot.pause()
        await pilot.press("enter")  # an empty rationale is refused
        await pilot.pause()
        assert isinstance(app.screen, RationaleDialog)
        await pilot.press(*"gives up", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConsensusScreen) and screen.items == []
        assert "every disagreement has a decision" in rendered(screen.query_one("#unit-context", Static))

    settled = decisions(sue)
    assert settled[(1, "agreed")].decision == "agreed"
    assert settled[(2, "decided")].coder == "ann" and settled[(2, "decided")].present == ("sue", "ann")
    assert settled[(4, "decided")].decision == "code" and settled[(4, "decided")].rationale == "gives up"
    assert transcripts.list_transcripts(sue)[0].phase == "consensus_done"


async def test_revising_settled_units_none_all_span_and_anonymous_names(study):
    detail, _ids, _made = coded(study)
    sue = as_person(study, "sue")
    update_settings(sue, anonymous_consensus=True)
    t = detail.turns
    app = consensus_app(sue)
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = app.screen
        readings = rendered(screen.query_one("#unit-readings", Static))
        assert "Coder A" in readings and "ann" not in readings and "bob" not in readings
        await pilot.press("x")  # turn 2: none (matches Coder B, who coded nothing)
        await pilot.pause()
        await pilot.press("a")  # turn 4: all of them (only Coder B coded: matches B)
        await pilot.pause()
        assert screen.items == []

        await pilot.press("v")  # show the settled units: 1 agreed, 2 and 4 decided
        await pilot.pause()
        assert [(i.turn, i.status) for i in screen.items] == [(1, "agreed"), (2, "decided"), (4, "decided")]
        await pilot.press("down")
        await pilot.pause()
        await pilot.press("s")  # adjust turn 2 to Coder A's code over the whole turn
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SpanDialog)
        assert dialog.query_one("#span-coder", Input).value == "A"
        assert dialog.query_one("#span-start", Input).value == str(t[1].char_start)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConsensusScreen)
        assert screen.items[1].decision.decision == "span"
        assert len(screen.items[1].history) == 2

        await pilot.press("0")  # and back to none
        await pilot.pause()
        assert [h.decision for h in screen.items[1].history] == ["none", "span", "none"]

    turn2 = decisions(sue)[(2, "decided")]
    assert turn2.decision == "none" and turn2.result == ()


async def test_agreement_screen_worst_first_and_drill_down(study):
    coded(study)
    sue = as_person(study, "sue")
    app = consensus_app(sue)
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        await pilot.press("A")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AgreementScreen)
        # Stagnation (alpha 0) is worse than Moving forward (alpha 0.5333).
        assert [s.name for s in screen.rows] == ["Stagnation", "Moving forward"]
        table = screen.query_one("#agreement-table", DataTable)
        assert str(table.get_row_at(0)[3]) == "0.000" and str(table.get_row_at(1)[3]) == "0.533"
        await pilot.press("down", "enter")
        await pilot.pause()
        drill = app.screen
        assert isinstance(drill, DisagreementsScreen)
        assert [(u.turn, [r.category for r in u.ratings]) for u in drill.units] == [(4, ["absent", "present"])]
        assert "That I wanted to give up" in rendered(drill.query_one("#disagreement-text", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConsensusScreen)
        await pilot.press("escape")  # consensus mode sits over the overview of the same app
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)


def test_consensus_mode_is_for_supervisors(study):
    with pytest.raises(PermissionDenied):
        consensus_app(study, "ann")


# -- reached from the overview of the one workbench app ------------------------------------------


def overview_row(app) -> list[str]:
    table = app.screen.query_one("#transcripts", DataTable)
    return [str(cell) for cell in table.get_row_at(0)]


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_overview_to_consensus_decide_one_disagreement_and_back(study):
    coded(study)
    sue = as_person(study, "sue")
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=(150, 45)) as pilot:
        await settle(pilot)
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        assert overview_row(app)[:3] == ["S-A", "session", "independent"]
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConsensusScreen)
        assert [i.turn for i in screen.items] == [2, 4]
        await pilot.press("1")  # turn 2: take Coder A (ann)
        await settle(pilot)
        assert [i.turn for i in screen.items] == [4]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is overview
        # The overview reloads on return: one unit decided, one still open.
        assert overview_row(app)[2] == "in consensus"
        assert "1 in consensus" in str(overview.query_one("#overview-status", Static).render())
    settled = decisions(sue)
    assert settled[(2, "decided")].decision == "take" and settled[(2, "decided")].coder == "ann"
    assert (4, "open") in settled


async def test_overview_to_agreement_and_into_a_code(study):
    coded(study)
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=(150, 45)) as pilot:
        await settle(pilot)
        overview = app.screen
        await pilot.press("A")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AgreementScreen)
        assert [s.name for s in screen.rows] == ["Stagnation", "Moving forward"]
        await pilot.press("enter")  # Stagnation: turn 2, coded by ann only
        await settle(pilot)
        drill = app.screen
        assert isinstance(drill, DisagreementsScreen)
        assert [(u.turn, [r.category for r in u.ratings]) for u in drill.units] == [(2, ["present", "absent"])]
        assert "I kept thinking about what Anna said" in rendered(drill.query_one("#disagreement-text", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is overview
