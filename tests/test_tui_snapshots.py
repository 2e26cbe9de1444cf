"""Snapshots of the main screens at 80x24 and 160x48 (regenerate with --snapshot-update
after checking the report). Sync tests: snap_compare runs the app itself.

Kept deterministic: a fixed theme, animations off, a study built the same way each
time (its file lives in tmp_path but its path is never shown) and no clock on screen.
"""

from __future__ import annotations

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
