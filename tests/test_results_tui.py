"""The results screen: theme prevalence by group, counted by the export's services and drawn as bars."""

from __future__ import annotations

import pytest

from concord.app.tui.app import make_app
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.results import ResultsScreen
from concord.app.tui.widgets.prevalence_chart import bar, chart_lines
from concord.services import codes as code_service
from concord.services import consensus, transcripts
from concord.services.prevalence import theme_prevalence
from concord.services.results import gather
from concord.services.unblinding import unblind
from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import Attribute, Dyad, Participant, TherapySession
from tests.factories import as_person, make_study
from tests.test_agreement_service import add_codings, add_transcript

SIZE = (100, 30)


def add_session_transcript(workspace, key: str, dyad_key: str, group: str) -> list[tuple[int, int]]:
    """A session transcript (four turns) of a new dyad, with a blinded group attribute on its session."""
    spans = add_transcript(workspace, key, ["therapist", "client"] * 2)
    with workspace.store.session() as session:
        client = Participant(pseudonym=f"C{dyad_key}", role="client")
        therapist = Participant(pseudonym=f"T{dyad_key}", role="therapist")
        session.add_all([client, therapist])
        session.flush()
        dyad = Dyad(key=dyad_key, client_id=client.id, therapist_id=therapist.id)
        session.add(dyad)
        session.flush()
        therapy = TherapySession(dyad_id=dyad.id, number=3, modality="online")
        session.add(therapy)
        session.flush()
        from concord.storage.models import Transcript

        session.query(Transcript).filter(Transcript.key == key).update({"session_id": therapy.id})
        session.add(Attribute(target_kind="session", target_id=therapy.id, name="group", value=group, blinded=True))
    return spans


def make_grouped_study(target: str):
    """Three sessions: S-A and S-B high, S-C low. Both coders agree on S-A turn 2 (Stagnation), S-B turn 1
    (Moving forward) and S-C turn 2 (Stagnation); ann alone also codes S-C turn 4 (Moving forward), which
    stays an open disagreement. The agreed units are accepted into the consensus layer, which finishes the
    consensus on S-A and S-B; S-C's stays open, so the consensus layer covers the two high sessions only.
    Both coders marked all three transcripts done."""
    workspace = make_study(target, blind=True)
    add_session_transcript(workspace, "S-B", "2", "high")
    add_session_transcript(workspace, "S-C", "3", "low")
    sue = as_person(workspace, "sue")
    ids = {c.name: c.id for c in code_service.visible_codes(sue)}
    turns = {
        key: [(t.char_start, t.char_end) for t in transcripts.get_transcript(sue, key).turns]
        for key in ("S-A", "S-B", "S-C")
    }
    for coder in ("ann", "bob"):
        add_codings(workspace, coder, "S-A", ids["Stagnation"], [turns["S-A"][1]])
        add_codings(workspace, coder, "S-B", ids["Moving forward"], [turns["S-B"][0]])
        add_codings(workspace, coder, "S-C", ids["Stagnation"], [turns["S-C"][1]])
    add_codings(workspace, "ann", "S-C", ids["Moving forward"], [turns["S-C"][3]])
    for coder in ("ann", "bob"):
        for key in ("S-A", "S-B", "S-C"):
            transcripts.set_done(as_person(workspace, coder), transcripts.get_transcript(sue, key).id)
    consensus.accept_agreed(sue)
    return workspace


@pytest.fixture
def study(tmp_path):
    workspace = make_grouped_study(str(tmp_path / "grouped.concord"))
    yield workspace
    workspace.close()


def table(prevalence) -> dict[str, tuple[float, ...]]:
    return {row.label: tuple(round(p, 1) for p in row.percent) for row in prevalence.rows}


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


# -- the numbers -------------------------------------------------------------------------------


def test_prevalence_per_group_for_the_consensus_layer_and_a_coder(study):
    sue = as_person(study, "sue")
    found = theme_prevalence(sue)
    assert (found.layer, found.unit, found.group_attribute) == ("consensus", "session", "group")
    # The low session's consensus is not finished: 0 of its 1 session is covered, and none counted.
    assert (found.groups, found.sizes, found.in_group) == (("high", "low"), (2, 0), (2, 1))
    assert table(found) == {
        "Therapeutic direction": (100.0, 0.0),
        "Moving forward": (50.0, 0.0),
        "Stagnation": (50.0, 0.0),
    }
    assert found.notes[0].startswith("Coverage: 2 of 3 sessions covered (consensus finished)")
    everything = theme_prevalence(sue, include_uncoded=True)
    assert everything.sizes == (2, 1) and table(everything)["Stagnation"] == (50.0, 100.0)
    assert [row.depth for row in found.rows] == [0, 1, 1]
    assert found.rows[1].present == (1, 0)
    assert found.layers == ("consensus", "ann", "bob", "sue")
    assert found.group_choices == ("group", "transcriber")  # attributes of few values; S-A's transcriber too

    ann_layer = theme_prevalence(sue, layer="ann")
    assert table(ann_layer)["Moving forward"] == (50.0, 100.0)

    no_groups = theme_prevalence(sue, unit="transcript", group_attribute=None)
    assert (no_groups.groups, no_groups.sizes, no_groups.in_group) == (("all transcripts",), (2,), (3,))
    assert table(no_groups) == {"Therapeutic direction": (100.0,), "Moving forward": (50.0,), "Stagnation": (50.0,)}
    with pytest.raises(ConcordError, match="unknown unit 'dyad'"):
        theme_prevalence(sue, unit="dyad")


def test_a_blind_coder_gets_no_results_until_unblinding(study):
    ann = as_person(study, "ann")
    with pytest.raises(PermissionDenied, match="results by group are for supervisors"):
        theme_prevalence(ann, layer="ann")
    with pytest.raises(PermissionDenied):
        gather(ann, layer="consensus")
    with pytest.raises(PermissionDenied):
        make_app(study.store.target, "ann", start="results")

    unblind(as_person(study, "sue"), force=True, reason="test")
    assert table(theme_prevalence(ann))["Stagnation"] == (50.0, 0.0)


def test_bars_are_exact_to_an_eighth_and_lines_fit_the_width(study):
    assert bar(50, 10) == "█████"
    assert bar(56.25, 8) == "████▌"
    assert bar(0, 10) == "" and bar(100, 4) == "████"
    assert bar(130, 4) == "████"  # never longer than its room
    found = theme_prevalence(as_person(study, "sue"))
    for width in (40, 80, 160):
        lines = [line.plain for line in chart_lines(found, width)]
        assert all(len(line) <= width for line in lines), width
        assert len(lines) == 1 + 3 * 2  # the header, then one line per row and group
        if width >= 80:
            assert lines[0].startswith("Theme / sub-theme") and lines[0].endswith("% of covered sessions with it")
        else:  # names are cut, never the bars and percentages
            assert lines[1].startswith("Therape…") and lines[1].endswith("100%") and "█" in lines[1]
    lines = [line.plain for line in chart_lines(found, 80)]
    first = lines[1]
    assert first.startswith("Therapeutic direction") and "high (n=2)" in first and first.endswith("100%")
    assert lines[3].startswith("  Moving forward") and lines[3].endswith("50%")
    assert lines[4].endswith("0%") and "█" not in lines[4]
    # The 50% bar is half the 100% bar.
    assert bar(50, first.count("█")) + " " in lines[3]


# -- the screen --------------------------------------------------------------------------------


async def test_overview_to_results_shows_bars_and_switches_layer(study):
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("R")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        shown = screen.query_one("#results-chart").text()
        assert "Therapeutic direction" in shown and "Stagnation" in shown
        stagnation = next(line for line in shown.splitlines() if "Stagnation" in line)
        assert "high (n=2)" in stagnation and stagnation.rstrip().endswith("50%") and "█" in stagnation
        headline = str(screen.query_one("#results-headline").render())
        assert "consensus codings" in headline and "high (n=2), low (0 covered / 1)" in headline
        assert "covered units only" in headline

        await pilot.press("l")  # the next layer: ann's independent codings
        await settle(pilot)
        assert screen.coding_layer == "ann" and table(screen.prevalence)["Moving forward"] == (50.0, 100.0)
        assert "ann's codings" in str(screen.query_one("#results-headline").render())

        await pilot.press("u")  # transcripts instead of sessions (the same here: one transcript a session)
        await settle(pilot)
        assert screen.prevalence.unit == "transcript"
        assert "% of transcripts with it" in screen.query_one("#results-chart").text()  # ann covers all three

        await pilot.press("g")  # the next attribute, which only S-A carries
        await settle(pilot)
        assert (screen.prevalence.group_attribute, screen.prevalence.groups) == ("transcriber", ("kb",))
        assert "2 transcripts with no 'transcriber' value are in no group" in str(
            screen.query_one("#results-status").render()
        )
        await pilot.press("g")  # then none: every unit in one bar
        await settle(pilot)
        assert screen.prevalence.groups == ("all transcripts",)

        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)


async def test_results_opened_at_start_and_errors_shown_not_raised(study):
    app = make_app(study.store.target, "sue", start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ResultsScreen) and screen.prevalence is not None
        screen.coding_layer = "nobody"  # a layer that does not exist: the worker fails, the app goes on
        screen.action_reload()
        await settle(pilot)
        assert screen.prevalence is None and "no layer 'nobody'" in screen.error
        assert "no layer 'nobody'" in str(screen.query_one("#results-headline").render())
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
