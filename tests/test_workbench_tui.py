"""The workbench as coders found it (issue 17), driven by keys at 80x24: the keys on screen are the
keys that fire, memos cannot vanish, undo says what it undid, speakers by role and positions in
words, vim keys in every list, a hint (never a refusal) for a code meant for other speakers."""

from __future__ import annotations

import uuid

import pytest
from textual.widgets import DataTable, RadioSet, Static, TextArea

from concord.app.tui.app import make_app
from concord.app.tui.screens.help import HelpScreen
from concord.app.tui.screens.memo import MemoScreen
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.themes import Confirm
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.services import codes as code_service
from concord.services import coding, transcripts
from concord.storage.models import Code, Codebook, Transcript, Turn
from tests.factories import as_person, build_transcript_text, make_study

SIZE = (80, 24)
LONG_NAME = "focus on other people and external events"


def add_mi_codebook(workspace) -> None:
    """A second codebook numbering its codes from 1 too; its change-talk group is for client turns."""
    with workspace.store.session() as session:
        book = Codebook(key="mi-talk", title="MI talk", version="1", origin="test")
        session.add(book)
        session.flush()
        group = Code(
            codebook_id=book.id, guid=str(uuid.uuid4()), name="change talk", origin="deductive", applies_to="client"
        )
        session.add(group)
        session.flush()
        for position, (name, hotkey) in enumerate((("desire", "1"), ("reasons", "2"), (LONG_NAME, "3"))):
            session.add(
                Code(
                    codebook_id=book.id,
                    parent_id=group.id,
                    guid=str(uuid.uuid4()),
                    name=name,
                    hotkey=hotkey,
                    position=position,
                    origin="deductive",
                )
            )


def add_second_transcript(workspace) -> None:
    text, spans = build_transcript_text()
    with workspace.store.session() as session:
        first = session.get(Transcript, 1)
        second = Transcript(key="S-B", kind="session", session_id=first.session_id, language="en", text=text)
        session.add(second)
        session.flush()
        for number, (label, role, start, end) in enumerate(spans, 1):
            session.add(
                Turn(
                    transcript_id=second.id,
                    number=number,
                    speaker_role=role,
                    speaker_label=label,
                    char_start=start,
                    char_end=end,
                    nonverbal=[],
                )
            )


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """The remembered codebooks go to a folder of the test's own."""
    folder = tmp_path / "state"
    monkeypatch.setenv("CONCORD_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    add_mi_codebook(workspace)
    add_second_transcript(workspace)
    yield workspace
    workspace.close()


def ids(workspace) -> dict[str, int]:
    return {code.name: code.id for code in code_service.visible_codes(workspace)}


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_transcript(pilot, row: int = 0) -> TranscriptScreen:
    await settle(pilot)
    assert isinstance(pilot.app.screen, OverviewScreen)
    pilot.app.screen.table.move_cursor(row=row)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TranscriptScreen) and screen.loaded
    return screen


def panel_labels(screen: TranscriptScreen) -> dict[str, str]:
    panel = screen.panel
    return {panel._code_infos[code_id].name: node.label.plain for code_id, node in panel._code_nodes.items()}


def text_of(widget: Static) -> str:
    return widget.render().plain if hasattr(widget.render(), "plain") else str(widget.render())


async def test_ctrl_b_shows_and_fires_the_new_books_keys_and_each_transcript_remembers(study, state_dir):
    ann = as_person(study, "ann")
    code_ids = ids(ann)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        assert screen.hotkey_book == "cbt-test"
        labels = panel_labels(screen)
        assert labels["Moving forward"].startswith("1 Moving") and labels["desire"].startswith("desire")
        assert text_of(screen.query_one("#key-hints", Static)).startswith("1,2 cbt-test")

        await pilot.press("ctrl+b")
        assert screen.hotkey_book == "mi-talk"
        labels = panel_labels(screen)
        # The panel now lists the keys that fire: mi-talk's, and no longer cbt-test's.
        assert labels["desire"].startswith("1 desire") and labels["Moving forward"].startswith("Moving")
        assert text_of(screen.query_one("#key-hints", Static)).startswith("1–3 mi-talk")
        assert "keys: mi-talk" in text_of(screen.query_one("#title-bar", Static))
        await pilot.press("j", "1")  # turn 2, a client turn
        stored = coding.list_codings(ann, 1)
        assert [c.code_id for c in stored] == [code_ids["desire"]]
        # The margin marks the coding with its codebook's letter, not the ambiguous digit.
        assert screen.view.render_line(0).text[:1] in ("", " ")
        second_line = next(
            y
            for y in range(6)
            if screen.view.layout_index.line(y).turn_index == 1 and screen.view.layout_index.line(y).line_in_turn == 0
        )
        assert screen.view.render_line(second_line).text[0] == "M"

        await pilot.press("q")
        await settle(pilot)
        screen = await open_transcript(pilot)
        assert screen.hotkey_book == "mi-talk"  # remembered for ann in S-A
        await pilot.press("j", "j", "j", "2")  # turn 4, client
        assert [c.code_id for c in coding.list_codings(ann, 1)][-1] == code_ids["reasons"]
        await pilot.press("q")
        await settle(pilot)
        other = await open_transcript(pilot, row=1)
        assert other.summary.key == "S-B" and other.hotkey_book == "cbt-test"  # per transcript
    assert list((state_dir / "workbench").glob("*.json"))
    # Another coder opening S-A starts with the default.
    app = make_app(study.store.target, "bob")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        assert screen.hotkey_book == "cbt-test"


async def test_a_memo_typed_after_tab_is_kept_and_saved_with_where_it_went(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("j", "m")
        await settle(pilot)
        memo = app.screen
        assert isinstance(memo, MemoScreen)
        await pilot.press("tab")
        assert isinstance(app.focused, RadioSet)  # the footer's tab took focus off the text box
        await pilot.press(*"she is tired")
        assert memo.query_one(TextArea).text == "she is tired"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        second = transcripts.get_transcript(ann, "S-A").turns[1]
        saved = coding.list_memos(ann, transcript_id=1)
        assert [(m.target_kind, m.target_id, m.text) for m in saved] == [("turn", second.id, "she is tired")]
        assert "Memo saved on turn 2 ✓" in screen.message.plain

        # ctrl+s with nothing new says so instead of closing silently.
        await pilot.press("m", "ctrl+s")
        await settle(pilot)
        assert "Memo unchanged" in screen.message.plain


async def test_leaving_the_memo_editor_with_unsaved_text_asks_first(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("m", *"draft", "escape")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "turn 1" in app.screen.question.plain
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, MemoScreen) and app.screen.query_one(TextArea).text == "draft"
        await pilot.press("escape", "y")
        await settle(pilot)
        assert app.screen is screen and coding.list_memos(ann, transcript_id=1) == []
        # Nothing typed: escape leaves at once.
        await pilot.press("m", "escape")
        await settle(pilot)
        assert app.screen is screen


async def test_undo_says_what_it_undid_and_asks_before_removing_a_memo(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("j", "j", "2")
        assert "Coded “Stagnation” on turn 3 ✓" in screen.message.plain
        # The cursor is on the new coding: the memo goes on it (the editor's first target).
        await pilot.press("m", *"hello", "ctrl+s")
        await settle(pilot)
        assert "Memo saved on “Stagnation” (turn 3) ✓" in screen.message.plain
        assert [c.memo for c in coding.list_codings(ann, 1)] == ["hello"]
        await pilot.press("u")
        # The first u says what the next would remove, and removes nothing.
        assert "u again removes memo on “Stagnation” (turn 3): “hello”" in screen.message.plain
        assert [c.memo for c in coding.list_codings(ann, 1)] == ["hello"]
        await pilot.press("u")
        assert "Undone: memo on “Stagnation” (turn 3)" in screen.message.plain
        assert [c.memo for c in coding.list_codings(ann, 1)] == [None]
        await pilot.press("u")
        assert "Undone: “Stagnation” on turn 3" in screen.message.plain
        assert coding.list_codings(ann, 1) == []
        await pilot.press("ctrl+r")
        assert "Redone: “Stagnation” on turn 3" in screen.message.plain
        await pilot.press("ctrl+r")
        assert "Redone: memo on “Stagnation” (turn 3)" in screen.message.plain
        assert [c.memo for c in coding.list_codings(ann, 1)] == ["hello"]
        await pilot.press("ctrl+r")
        assert "Nothing to redo" in screen.message.plain
        # A memo on the turn (the second target) is undone the same way, naming the turn.
        await pilot.press("m", "tab", "down", "enter", *"a turn note", "ctrl+s")
        await settle(pilot)
        assert [m.text for m in coding.list_memos(ann, transcript_id=1)] == ["a turn note"]
        await pilot.press("u", "u")
        assert "Undone: memo on turn 3" in screen.message.plain
        assert coding.list_memos(ann, transcript_id=1) == []


async def test_a_code_meant_for_client_turns_gets_a_hint_on_a_therapist_turn(study):
    ann = as_person(study, "ann")
    code_ids = ids(ann)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("ctrl+b", "1")  # "desire" on turn 1, the therapist's
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [code_ids["desire"]]  # never refused
        assert "meant for client turns; this is therapist" in screen.message.plain
        status = screen.query_one("#status", Static)
        assert "meant for client" in text_of(status)  # the hint fits the status line at 80 columns
        await pilot.press("j", "1")
        assert "note:" not in screen.message.plain and "Coded “desire” on turn 2 ✓" in screen.message.plain


async def test_80x24_speakers_by_role_positions_in_words_and_whole_names_on_the_status_line(study):
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        first_line = screen.view.render_line(0).text
        assert "therapist" in first_line and " T " not in first_line
        await pilot.press("j", "w", "w")
        at_cursor = text_of(screen.query_one("#at-cursor", Static))
        assert at_cursor.startswith("Turn 2, word 3\nclient (P)")
        await pilot.press("v", "w")
        status = text_of(screen.query_one("#status", Static))
        assert "selected" in status and "char" not in status and len(status) <= 80
        # The long name is cut in the middle in the panel, and given whole on the status line.
        label = panel_labels(screen)[LONG_NAME]
        assert "…" in label and label.startswith("focus on") and label.rstrip().endswith("events")
        # A highlight the panel makes itself (following a jump) leaves the message alone.
        screen.panel.select_code(ids(as_person(app.workspace, "ann"))[LONG_NAME])
        await settle(pilot)
        assert LONG_NAME not in screen.message.plain
        screen.panel.tree.focus()
        await pilot.press("k", "j")
        await settle(pilot)
        assert LONG_NAME in screen.message.plain


async def test_vim_keys_in_the_overview_list_the_codebook_tree_and_the_help(study):
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        overview = app.screen
        table = overview.table
        assert table.row_count == 2 and table.cursor_row == 0
        await pilot.press("j")
        assert table.cursor_row == 1
        await pilot.press("k")
        assert table.cursor_row == 0
        await pilot.press("G")
        assert table.cursor_row == 1
        await pilot.press("g")  # to the first row: agreement moved to A
        assert table.cursor_row == 0 and app.screen is overview
        screen = await open_transcript(pilot)
        tree = screen.panel.tree
        tree.focus()
        await pilot.pause()
        start = tree.cursor_line
        await pilot.press("j")
        assert tree.cursor_line == start + 1
        await pilot.press("G")
        assert tree.cursor_line == tree.last_line
        await pilot.press("g")
        assert tree.cursor_line == 0
        await pilot.press("question_mark")
        await settle(pilot)
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        help_table = help_screen.query_one(DataTable)
        first_rows = [[str(cell) for cell in help_table.get_row_at(i)] for i in range(3)]
        # Grouped by task, coding first, the ten "apply hotkey N" rows as one.
        assert first_rows[0][0] == "Code"
        assert first_rows[1][0] == "1–9, 0" and first_rows[2][0] == "c"
        await pilot.press("G")
        assert help_table.cursor_row == help_table.row_count - 1
        await pilot.press("g")
        assert help_table.cursor_row == 0
