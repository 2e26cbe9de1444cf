"""Snapshots of the main screens at 80x24 and 160x48 (regenerate with --snapshot-update
after checking the report). Sync tests: snap_compare runs the app itself.

Kept deterministic: a fixed theme, animations off, a study built the same way each
time (its file lives in tmp_path but its path is never shown) and no clock on screen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.app.tui.app import make_app
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.services import codes as code_service
from concord.services import coding, transcripts
from tests.factories import as_person, make_study
from tests.test_results_tui import make_grouped_study

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.fixture
def study_file(tmp_path):
    target = str(tmp_path / "snapshots.concord")
    workspace = make_study(target, blind=True)
    bob = as_person(workspace, "bob")
    ids = {code.name: code.id for code in code_service.visible_codes(bob)}
    second = transcripts.get_transcript(bob, "S-A").turns[1]
    coding.apply_code(bob, 1, ids["Stagnation"], second.char_start, second.char_end)
    transcripts.record_progress(bob, 1, turns_reviewed=4, last_offset=0)
    workspace.close()
    return target


def quiet_app(target: str, actor: str):
    app = make_app(target, actor, theme="textual-dark")
    app.animation_level = "none"
    return app


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_and_code(pilot) -> None:
    """Open S-A, code turn 1 by hotkey, select words in turn 2 and code them with 2."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, TranscriptScreen)
    await pilot.press("1", "j", "v", "w", "w", "w", "2")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_overview_blind_coder(snap_compare, study_file, size):
    assert snap_compare(quiet_app(study_file, "ann"), run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_overview_supervisor(snap_compare, study_file, size):
    assert snap_compare(quiet_app(study_file, "sue"), run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_transcript_blind_coder(snap_compare, study_file, size):
    assert snap_compare(quiet_app(study_file, "ann"), run_before=open_and_code, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_transcript_open_mode_with_overlay(snap_compare, study_file, size):
    async def open_with_overlay(pilot) -> None:
        await open_and_code(pilot)
        await pilot.press("k", "o")
        await settle(pilot)

    assert snap_compare(quiet_app(study_file, "sue"), run_before=open_with_overlay, terminal_size=size)


def test_results_supervisor_80x24(snap_compare, tmp_path):
    """Theme prevalence by group (consensus layer, two high sessions and one low) as bars."""
    target = str(tmp_path / "grouped.concord")
    make_grouped_study(target).close()

    async def open_results(pilot) -> None:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)

    assert snap_compare(quiet_app(target, "sue"), run_before=open_results, terminal_size=(80, 24))


# -- issue 17: the keys on screen, memos, help, at both sizes ---------------------------------------


@pytest.fixture
def two_books_file(tmp_path, monkeypatch):
    """The snapshot study with a second codebook (mi-talk, also numbered from 1, a long code name)."""
    from tests.test_workbench_tui import add_mi_codebook

    monkeypatch.setenv("CONCORD_STATE_DIR", str(tmp_path / "state"))
    target = str(tmp_path / "two-books.concord")
    workspace = make_study(target, blind=True)
    add_mi_codebook(workspace)
    workspace.close()
    return target


@pytest.mark.parametrize("size", SIZES)
def test_transcript_after_switching_codebooks(snap_compare, two_books_file, size):
    """After ctrl+b the panel, the key line and the title show mi-talk's keys; 1 applies its first code
    (on a therapist turn: the speaker hint) and the margin marks it M."""

    async def switch_and_code(pilot) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+b", "1", "j", "2")
        await settle(pilot)
        await pilot.press("k", "ctrl+b", "ctrl+b")
        await settle(pilot)

    assert snap_compare(quiet_app(two_books_file, "ann"), run_before=switch_and_code, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_memo_editor_after_tab(snap_compare, study_file, size):
    """A memo typed after tab (focus on the target list) lands in the text box."""

    async def write_memo(pilot) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("j", "m")
        await settle(pilot)
        # A blinking cursor would make the picture depend on the moment it is taken.
        pilot.app.screen.query_one("#memo-text").cursor_blink = False
        await pilot.press("tab", *"resignation, or tiredness?")
        await settle(pilot)

    assert snap_compare(quiet_app(study_file, "ann"), run_before=write_memo, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_help_grouped_by_task(snap_compare, study_file, size):
    async def open_help(pilot) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    app = quiet_app(study_file, "ann")
    app.keymap_file = Path("~/.config/concord/keys.toml")  # the help names it: not the test's temporary path
    assert snap_compare(app, run_before=open_help, terminal_size=size)
