"""`concord demo`: the demo study is built from the shipped material, once, never half, blind."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.app.demo import build as demo_build
from concord.app.demo.build import DEMO_FILENAME, DEMO_TITLE, MATERIAL, demo_path, ensure_demo
from concord.services.audit import list_events
from concord.services.codes import visible_codes
from concord.services.coding import apply_code, list_codings
from concord.services.study import add_coder, init_study, study_status
from concord.services.transcripts import get_transcript, list_transcripts
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, PermissionDenied

SESSION_KEYS = ("S01", "S02", "S03", "S04", "S05", "S06")
IPR_KEYS = ("IPR-A-client", "IPR-A-therapist")
# (high, low) session transcripts of the same dyad, as the manifest pairs them.
PAIRS = (("S01", "S04"), ("S05", "S02"), ("S03", "S06"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One demo study for the tests that only read it."""
    directory = tmp_path_factory.mktemp("demo")
    result = ensure_demo(directory)
    return result


def copy_of(result, tmp_path: Path) -> Path:
    """A private copy of the built demo, for tests that change it."""
    target = tmp_path / "copy" / DEMO_FILENAME
    target.parent.mkdir()
    shutil.copy(result.path, target)
    return target


def turn_lines(name: str) -> list[str]:
    """Speaker lines of a material file, counted without the transcript parser."""
    lines = (MATERIAL / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith(("[VIDEO", "[/VIDEO"))]


def material_rows(name: str) -> list[dict[str, str]]:
    with open(MATERIAL / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def status_as(path: Path, name: str) -> dict:
    with Workspace.open(str(path), name) as workspace:
        return study_status(workspace)


# -- building, once ------------------------------------------------------------------------------


def test_a_second_run_reuses_the_demo_and_adds_nothing(built):
    assert built.action == "built"
    with Workspace.open(str(built.path), "sam") as workspace:
        before_status = study_status(workspace)
        before_events = len(list_events(workspace))
    again = ensure_demo(built.path.parent)
    assert again.action == "reused" and again.path == built.path
    with Workspace.open(str(built.path), "sam") as workspace:
        assert study_status(workspace) == before_status
        assert len(list_events(workspace)) == before_events
    assert again.summary == built.summary
    assert sorted(p.name for p in built.path.parent.iterdir()) == [DEMO_FILENAME]


def test_counts_match_the_material(built):
    status = status_as(built.path, "sam")
    manifest = material_rows("manifest.csv")
    assert status["title"] == DEMO_TITLE and status["blind_now"] is True
    assert status["transcripts"] == len(manifest) == 8
    assert status["turns"] == sum(len(turn_lines(row["file"])) for row in manifest)
    expected = Counter(row["coder"] for row in material_rows("codings.csv"))
    expected.update(row["coder"] for row in material_rows("inductive-codings.csv"))
    assert status["codings"] == {"alex": expected["alex"], "kim": expected["kim"], "sam": 0}
    assert expected["alex"] > 90 and expected["kim"] > 90
    assert built.summary.codings == {"alex": expected["alex"], "kim": expected["kim"]}
    assert built.summary.memos == dict(Counter(row["coder"] for row in material_rows("memos.csv")))
    assert built.summary.done == {"alex": 1, "kim": 1}
    assert built.summary.forms == {"wai-sr.csv": 38, "wai-s-demo.csv": 38, "bdi-ii.csv": 38}
    with Workspace.open(str(built.path), "sam") as workspace:
        summaries = {summary.key: summary for summary in list_transcripts(workspace)}
    assert sorted(summaries) == sorted(SESSION_KEYS + IPR_KEYS)
    for key in SESSION_KEYS:
        assert 25 <= summaries[key].turns <= 40, key
    coded = {s.key for s in summaries.values() if any(p.codings for p in s.others)}
    assert coded == {"S01", "S02", "S04"}


def test_the_coders_coded_part_of_three_transcripts_and_mostly_agree(built):
    with Workspace.open(str(built.path), "sam") as workspace:
        s01 = get_transcript(workspace, "S01")
        s02 = get_transcript(workspace, "S02")
        by_turn = {}
        for coder in ("alex", "kim"):
            for coding in list_codings(workspace, s02.id, layer=coder):
                turn = next(t.number for t in s02.turns if t.char_start <= coding.start < t.char_end)
                by_turn.setdefault(coder, {}).setdefault(turn, set()).add(coding.code_id)
        summaries = {s.key: s for s in list_transcripts(workspace)}
    alex, kim = by_turn["alex"], by_turn["kim"]
    # About 60% of S02: nothing coded after turn 24 of its 40.
    assert max(alex) == max(kim) == 24 and len(s02.turns) == 40
    shared = set(alex) & set(kim)
    agreeing = [turn for turn in shared if alex[turn] == kim[turn]]
    assert len(agreeing) >= 0.7 * len(shared) and len(agreeing) < len(set(alex) | set(kim))
    progress = {p.coder: p for p in summaries["S01"].others}
    assert progress["alex"].done and progress["kim"].done
    assert progress["alex"].turns_reviewed == len(s01.turns)
    assert {p.coder: p.turns_reviewed for p in summaries["S02"].others} == {"alex": 24, "kim": 24}


def test_inductive_codes_belong_to_their_coder(built):
    with Workspace.open(str(built.path), "alex") as alex:
        alex_codes = {code.name for code in visible_codes(alex) if code.origin == "inductive"}
    with Workspace.open(str(built.path), "kim") as kim:
        kim_codes = {code.name for code in visible_codes(kim) if code.origin == "inductive"}
    assert alex_codes == {"homework not done", "it never ends"}
    assert kim_codes == {"one-word answers", "shared humour"}


# -- the blind -----------------------------------------------------------------------------------


def test_the_blind_hides_group_and_scores_from_alex_and_shows_them_to_sam(built):
    with Workspace.open(str(built.path), "alex") as alex:
        seen_by_alex = get_transcript(alex, "S01")
        listed = {s.key: s for s in list_transcripts(alex)}
        with pytest.raises(PermissionDenied):
            list_codings(alex, seen_by_alex.id, layer="kim")
    assert seen_by_alex.dyad is None and seen_by_alex.session_number is None
    assert seen_by_alex.scores == ()
    assert "group" not in {a.name for a in seen_by_alex.attributes}
    assert {a.name: a.value for a in seen_by_alex.attributes} == {"language": "en", "modality": "in person"}
    assert all(s.dyad is None and not s.attributes and not s.others for s in listed.values())

    with Workspace.open(str(built.path), "sam") as sam:
        seen_by_sam = get_transcript(sam, "S01")
    assert (seen_by_sam.dyad, seen_by_sam.session_number) == ("102", 9)
    group = [a for a in seen_by_sam.attributes if a.name == "group"]
    assert [(a.value, a.blinded) for a in group] == [("high", True)]
    scores = {(s.instrument, s.respondent): s for s in seen_by_sam.scores}
    assert set(scores) == {("BDI-II", "client"), ("WAI-S-DEMO", "therapist"), ("WAI-SR", "client")}
    assert scores[("WAI-SR", "client")].subscales.keys() == {"Task", "Bond", "Goal"}
    assert scores[("WAI-S-DEMO", "therapist")].subscales == {}
    assert scores[("BDI-II", "client")].band in ("minimal", "mild", "moderate", "severe")


def test_high_sessions_have_the_higher_alliance_and_a_later_place(built):
    with Workspace.open(str(built.path), "sam") as sam:
        details = {key: get_transcript(sam, key) for key in SESSION_KEYS}

    def total(key: str, instrument: str) -> float:
        return next(s.total for s in details[key].scores if s.instrument == instrument)

    for high, low in PAIRS:
        assert details[high].dyad == details[low].dyad
        groups = {key: next(a.value for a in details[key].attributes if a.name == "group") for key in (high, low)}
        assert groups == {high: "high", low: "low"}
        assert total(high, "WAI-SR") > total(low, "WAI-SR")
        assert total(high, "WAI-S-DEMO") > total(low, "WAI-S-DEMO")
        assert details[high].session_number > details[low].session_number


def test_the_ipr_interviews_hold_replayed_stretches_of_their_session(built):
    with Workspace.open(str(built.path), "sam") as sam:
        session = get_transcript(sam, "S04")
        interviews = [get_transcript(sam, key) for key in IPR_KEYS]
    session_turns = {session.text[t.char_start : t.char_end] for t in session.turns}
    for interview, perspective in zip(interviews, ("client", "therapist")):
        assert interview.kind == "ipr" and interview.perspective == perspective
        assert (interview.dyad, interview.session_number) == ("102", 2)
        replayed = [t for t in interview.turns if t.replayed]
        assert len(replayed) == 7
        assert {t.speaker_role for t in replayed} == {"therapist", "client"}
        assert all(interview.text[t.char_start : t.char_end] in session_turns for t in replayed)
        assert "interviewer" in {t.speaker_role for t in interview.turns if not t.replayed}
        assert "[VIDEO 00:12:30]" in interview.text


def test_the_demo_instrument_is_a_total_only_user_definition():
    from concord.analysis.scoring import load_instrument

    definition = load_instrument(str(MATERIAL / "wai-s-demo.yaml"))
    assert (definition.status, definition.respondent, len(definition.items)) == ("user", "therapist", 12)
    assert definition.reverse == () and not definition.subscales
    assert definition.total_range == (12, 84)


# -- never half-built --------------------------------------------------------------------------


def test_an_incomplete_demo_is_rebuilt_from_scratch(tmp_path):
    target = demo_path(tmp_path)
    # As if a build that wrote into the study in place had stopped after adding the people.
    with init_study(str(target), title=DEMO_TITLE) as workspace:
        for name, role in (("alex", "coder"), ("kim", "coder"), ("sam", "supervisor")):
            add_coder(workspace, name, role)
    stale = target.with_name(f".{DEMO_FILENAME}.999999999.building")
    stale.write_bytes(b"half a study")
    result = ensure_demo(tmp_path)
    assert result.action == "rebuilt"
    assert result.reason == "it holds 0 transcripts with 0 turns, not 8 with 271"
    assert status_as(target, "sam")["transcripts"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEMO_FILENAME]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(store):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(demo_build, "_coders_own_work", fail)
    directory = tmp_path / "not" / "yet"
    with pytest.raises(RuntimeError, match="interrupted"):
        ensure_demo(directory)
    assert directory.is_dir() and list(directory.iterdir()) == []


def test_another_study_in_the_demo_place_is_never_replaced(tmp_path):
    target = demo_path(tmp_path)
    init_study(str(target), title="Our real study").close()
    size = target.stat().st_size
    for rebuild in (False, True):
        with pytest.raises(ConcordError, match="another study"):
            ensure_demo(tmp_path, rebuild=rebuild)
    assert target.stat().st_size == size


def test_the_default_place_is_the_user_data_folder(tmp_path):
    # tests/conftest.py points XDG_DATA_HOME into tmp_path.
    assert demo_path() == tmp_path / "xdg-data" / "concord" / "demo" / DEMO_FILENAME


# -- the command -------------------------------------------------------------------------------


def test_cli_prints_what_it_made_and_the_next_commands(built):
    result = CliRunner().invoke(main, ["demo", "--dir", str(built.path.parent), "--no-tui"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"The demo study is already built: {built.path}" in out
    assert f"codings       alex {built.summary.codings['alex']}, kim {built.summary.codings['kim']}" in out
    assert "already pseudonymised" in out
    for command in (
        "concord code",
        "concord agreement",
        "concord consensus",
        "concord select-sessions",
        "concord unblind",
        "concord export frequencies",
    ):
        assert f"  {command} {built.path}" in out, command


def test_cli_rebuild_throws_away_changes(built, tmp_path):
    target = copy_of(built, tmp_path)
    with Workspace.open(str(target), "alex") as alex:
        detail = get_transcript(alex, "S03")
        code = next(c for c in visible_codes(alex) if c.name == "exploring")
        apply_code(alex, detail.id, code.id, detail.turns[0].char_start, detail.turns[0].char_end)
    assert status_as(target, "alex")["codings"] == {"alex": built.summary.codings["alex"] + 1}
    result = CliRunner().invoke(main, ["demo", "--dir", str(target.parent), "--no-tui", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt the demo study (asked to rebuild)" in result.output
    assert status_as(target, "alex")["codings"] == {"alex": built.summary.codings["alex"]}


def test_cli_without_a_terminal_builds_but_does_not_open_the_workbench(built):
    result = CliRunner().invoke(main, ["demo", "--dir", str(built.path.parent)])
    assert result.exit_code == 0, result.output
    assert "Not a terminal, so the workbench was not opened." in result.output
    assert "concord agreement" in result.output


# -- the workbench on the demo -----------------------------------------------------------------


async def wait_until(pilot, condition, tries: int = 200) -> None:
    for _ in range(tries):
        await pilot.pause(0.02)
        if condition():
            return
    raise AssertionError("the workbench did not get there in time")


@pytest.mark.skipif(
    not (Path(__file__).parents[1] / "app" / "tui" / "app.py").exists(), reason="the workbench is not in this tree"
)
async def test_alex_opens_the_first_demo_transcript_in_the_workbench(built, tmp_path):
    from concord.app.tui.app import make_app

    target = copy_of(built, tmp_path)
    app = make_app(str(target), "alex")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: getattr(app.screen, "data", None) is not None)
        overview = app.screen
        assert overview.table.row_count == 8
        assert "dyad" not in {str(column.value) for column in overview.table.columns}
        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        screen = app.screen
        assert screen.detail.key == "IPR-A-client" and screen.open_mode is False
        assert screen.detail.text == (MATERIAL / "IPR-A-client.txt").read_text(encoding="utf-8")
        assert str(screen.query_one("#status").render()).startswith("turn 1/31 interviewer")
        assert not screen.query("#session-info")


async def test_the_demo_opens_straight_on_a_half_coded_transcript(built, tmp_path):
    from concord.app.demo.build import FIRST_TRANSCRIPT
    from concord.app.tui.app import make_app

    target = copy_of(built, tmp_path)
    app = make_app(str(target), "alex", transcript=FIRST_TRANSCRIPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        screen = app.screen
        assert screen.detail.key == FIRST_TRANSCRIPT == "S02"
        assert len(screen.own) == 31  # alex's blind codings so far
        await pilot.press("q")
        await wait_until(pilot, lambda: getattr(app.screen, "table", None) is not None)
        assert app.screen.table.row_count == 8
