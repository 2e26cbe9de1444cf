"""The coding workbench driven by keys in a headless pilot; each test checks what the
services (and so the database) hold afterwards, and what the widgets show."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from rich.text import Text
from sqlalchemy import update
from textual.widgets import DataTable, Input, OptionList, RadioSet, TextArea

from concord.app.cli import main as concord_cli
from concord.app.commands.code import code as code_command
from concord.app.tui.app import ConcordApp, make_app
from concord.app.tui.keymap import load_keymap
from concord.app.tui.screens.code_picker import CodePicker, rank_codes
from concord.app.tui.screens.find import FindScreen, find_fuzzy, find_plain, kwic
from concord.app.tui.screens.help import HelpScreen
from concord.app.tui.screens.memo import MemoScreen
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.services import codes as code_service
from concord.services import coding, transcripts
from concord.storage.errors import ConcordError, InputError, NotFound, PermissionDenied
from concord.storage.models import Code
from tests.factories import as_person, make_study

SIZE = (120, 36)


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    with workspace.store.session() as session:
        session.execute(
            update(Code)
            .where(Code.name == "Moving forward")
            .values(
                definition="Talk of goals, homework and hope: change is in the client's hands.",
                inclusion="Plans, homework done, hope voiced.",
                exclusion="Plans the therapist imposes.",
            )
        )
        session.execute(
            update(Code)
            .where(Code.name == "Stagnation")
            .values(
                definition="Hard circumstances, resignation, 'it never ends'.",
                inclusion="Frustration, hopelessness.",
                exclusion="Sadness without resignation.",
            )
        )
    yield workspace
    workspace.close()


@pytest.fixture
def open_study(study_target):
    workspace = make_study(study_target, blind=False)
    yield workspace
    workspace.close()


def code_ids(workspace) -> dict[str, int]:
    return {code.name: code.id for code in code_service.visible_codes(workspace)}


def turn(workspace, number: int):
    return transcripts.get_transcript(workspace, "S-A").turns[number - 1]


def text_of(workspace) -> str:
    return transcripts.get_transcript(workspace, "S-A").text


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_first_transcript(pilot) -> TranscriptScreen:
    await settle(pilot)
    assert isinstance(pilot.app.screen, OverviewScreen)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TranscriptScreen) and screen.loaded
    return screen


def cells(table: DataTable) -> list[list[str]]:
    return [
        [cell.plain if isinstance(cell, Text) else str(cell) for cell in table.get_row_at(index)]
        for index in range(table.row_count)
    ]


def screen_text(app) -> str:
    """Everything the active screen shows, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


# -- the overview ------------------------------------------------------------------------------


async def test_overview_lists_own_progress_and_opens_a_transcript(study):
    ann = as_person(study, "ann")
    coding.apply_code(ann, 1, code_ids(ann)["Stagnation"], 0, 5)
    transcripts.record_progress(ann, 1, turns_reviewed=3, last_offset=0)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#transcripts", DataTable)
        assert [str(column.label) for column in table.columns.values()] == [
            "Transcript",
            "Kind",
            "Turns",
            "Reviewed",
            "Codings",
            "Done",
        ]
        assert cells(table) == [["S-A", "session", "4", "3/4", "1", ""]]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TranscriptScreen)
        assert app.screen.summary.key == "S-A"
        assert [c.code_id for c in app.screen.view.codings_at(2)] == [code_ids(ann)["Stagnation"]]


async def test_overview_filter_and_sort(study):
    with study.store.session() as session:
        from concord.storage.models import Transcript, Turn

        for key in ("S-C", "S-B"):
            row = Transcript(key=key, kind="session", language="en", text="T: hello")
            session.add(row)
            session.flush()
            session.add(
                Turn(
                    transcript_id=row.id,
                    number=1,
                    speaker_role="therapist",
                    speaker_label="T",
                    char_start=3,
                    char_end=8,
                    nonverbal=[],
                )
            )
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#transcripts", DataTable)
        assert [row[0] for row in cells(table)] == ["S-A", "S-B", "S-C"]
        await pilot.press("r")
        assert [row[0] for row in cells(table)] == ["S-C", "S-B", "S-A"]
        await pilot.press("s", "s")  # by kind, then by turns (ascending)
        assert [row[2] for row in cells(table)] == ["1", "1", "4"]
        await pilot.press("slash", *"s-b")
        assert app.screen.query_one("#filter", Input).value == "s-b"
        assert [row[0] for row in cells(table)] == ["S-B"]
        await pilot.press("escape")
        assert len(cells(table)) == 3 and app.focused is table


# -- selecting and coding ----------------------------------------------------------------------


async def test_select_a_span_by_keys_and_apply_a_code_by_hotkey(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        second = turn(ann, 2)
        await pilot.press("j")
        assert screen.view.cursor == second.char_start
        await pilot.press("v", "w", "w", "w")
        start, end = screen.view.selection()
        assert text_of(ann)[start:end] == "Hard. (sighs) I"
        await pilot.press("1")
        stored = coding.list_codings(ann, 1)
        assert [(c.code_id, c.start, c.end) for c in stored] == [(code_ids(ann)["Moving forward"], start, end)]
        assert [c.id for c in screen.own] == [c.id for c in stored]
        assert screen.panel.count_of(code_ids(ann)["Moving forward"]) == 1
        # Where the coding went, as a coder counts: turn and words, not characters.
        assert "Coded “Moving forward” on turn 2, words 1–3 ✓" in screen.message.plain


async def test_hotkey_without_selection_codes_the_turn(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("j", "j", "2")
        third = turn(ann, 3)
        assert [(c.start, c.end) for c in coding.list_codings(ann, 1)] == [(third.char_start, third.char_end)]
        await pilot.press("9")  # no code has hotkey 9: nothing is stored
        assert len(coding.list_codings(ann, 1)) == 1
        assert "No code of cbt-test has the key 9" in app.screen.message.plain


async def test_letter_hotkey_applies_when_no_key_binding_has_it(study):
    with study.store.session() as session:
        session.execute(update(Code).where(Code.name == "Stagnation").values(hotkey="z"))
        session.execute(update(Code).where(Code.name == "Moving forward").values(hotkey="w"))
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        assert "hotkeys w are taken by other keys" in screen.message.plain
        await pilot.press("z")
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [code_ids(ann)["Stagnation"]]
        before = screen.view.cursor
        await pilot.press("w")  # the view's next-word key wins over the code's hotkey
        assert screen.view.cursor > before
        assert len(coding.list_codings(ann, 1)) == 1


async def test_apply_a_code_through_the_fuzzy_picker(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("j", "c")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, CodePicker)
        await pilot.press(*"stagnat")
        await pilot.pause()
        definition = picker.query_one("#picker-definition").render()
        assert "Hard circumstances, resignation" in str(definition)
        assert "Exclude: Sadness without resignation." in str(definition)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TranscriptScreen)
        second = turn(ann, 2)
        assert [(c.code_id, c.start, c.end) for c in coding.list_codings(ann, 1)] == [
            (code_ids(ann)["Stagnation"], second.char_start, second.char_end)
        ]


async def test_picker_escape_commits_nothing(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("c", *"moving", "escape")
        await settle(pilot)
        assert isinstance(app.screen, TranscriptScreen)
        assert coding.list_codings(ann, 1) == []


async def test_create_an_inductive_code_from_the_picker_and_with_n(study):
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("c", *"feeling stuck")
        await pilot.pause()
        options = app.screen.query_one("#picker-options", OptionList)
        last = options.get_option_at_index(options.option_count - 1)
        assert last.id == "create"
        await pilot.press(*["down"] * options.option_count, "enter")
        await settle(pilot)
        made = {c.name: c for c in code_service.visible_codes(ann)}["feeling stuck"]
        assert (made.origin, made.creator) == ("inductive", "ann")
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [made.id]
        assert made.id in screen.codes and screen.panel.count_of(made.id) == 1

        await pilot.press("j", "n", *"asks for help", "enter")  # n puts "create" first
        await settle(pilot)
        assert "asks for help" in code_ids(ann)
        assert len(coding.list_codings(ann, 1)) == 2
    # The blind: bob sees the codebook without ann's inductive codes.
    assert "feeling stuck" not in code_ids(bob)


async def test_in_vivo_code_from_the_selected_words(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        text = text_of(ann)
        start = text.index("it never ends")
        screen.view.jump_to(start, select_to=start + len("it never ends."))
        await pilot.press("i")
        made = {c.name: c for c in code_service.visible_codes(ann)}["it never ends"]
        assert made.origin == "inductive"
        [stored] = coding.list_codings(ann, 1)
        assert (stored.code_id, text[stored.start : stored.end]) == (made.id, "it never ends.")
        screen.view.jump_to(0)
        await pilot.press("i")  # no selection: nothing created
        assert len(code_service.visible_codes(ann)) == len(code_ids(ann))
        assert len(coding.list_codings(ann, 1)) == 1


async def test_remove_and_change_the_coding_at_the_cursor(study):
    ann = as_person(study, "ann")
    ids = code_ids(ann)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("j", "1", "e")
        await pilot.pause()
        assert isinstance(app.screen, CodePicker)
        await pilot.press(*"stagnation", "enter")
        await settle(pilot)
        [changed] = coding.list_codings(ann, 1)
        assert changed.code_id == ids["Stagnation"]
        assert screen.panel.count_of(ids["Moving forward"]) == 0
        await pilot.press("x")
        assert coding.list_codings(ann, 1) == []
        assert screen.own == []
        await pilot.press("x")
        assert "None of your codings is under the cursor" in screen.message.plain


async def test_undo_and_redo_are_persisted_across_a_restart(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("1", "j", "2")
        assert len(coding.list_codings(ann, 1)) == 2
        await pilot.press("u")
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [code_ids(ann)["Moving forward"]]
        assert [c.code_id for c in screen.own] == [code_ids(ann)["Moving forward"]]
        await pilot.press("ctrl+r")
        assert len(coding.list_codings(ann, 1)) == 2
        await pilot.press("u", "u")
        assert coding.list_codings(ann, 1) == [] and screen.own == []
        await pilot.press("u")
        assert "Nothing to undo" in screen.message.plain
    restarted = make_app(study.store.target, "ann")
    async with restarted.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("ctrl+r")
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [code_ids(ann)["Moving forward"]]
        assert [c.code_id for c in screen.own] == [code_ids(ann)["Moving forward"]]


async def test_memos_on_a_coding_the_turn_and_the_transcript(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("j", "2", "m")
        await pilot.pause()
        memo = app.screen
        assert isinstance(memo, MemoScreen)
        assert [t.kind for t in memo.targets] == ["coding", "turn", "transcript"]
        await pilot.press(*"resigned [sighs]", "ctrl+s")
        await settle(pilot)
        [stored] = coding.list_codings(ann, 1)
        assert stored.memo == "resigned [sighs]"
        assert "resigned [sighs]" in str(screen.query_one("#at-cursor").render())

        await pilot.press("m")
        await pilot.pause()
        assert app.screen.query_one(TextArea).text == "resigned [sighs]"
        radio = app.screen.query_one(RadioSet)
        radio.focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.screen.selected == 2
        app.screen.query_one(TextArea).focus()
        await pilot.press(*"first look: a heavy session", "ctrl+s")
        await settle(pilot)
        [note] = coding.list_memos(ann, target_kind="transcript", target_id=1)
        assert note.text == "first look: a heavy session"

        await pilot.press("m")  # edit the turn memo; clearing the coding memo at the same time
        await pilot.pause()
        app.screen.query_one(TextArea).clear()
        radio = app.screen.query_one(RadioSet)
        radio.focus()
        await pilot.press("down", "enter")
        app.screen.query_one(TextArea).focus()
        await pilot.press(*"turn two", "ctrl+s")
        await settle(pilot)
        assert [m.text for m in coding.list_memos(ann, target_kind="turn", target_id=turn(ann, 2).id)] == ["turn two"]
        assert coding.list_codings(ann, 1)[0].memo is None


async def test_find_plain_and_fuzzy_jumps_to_the_hit(study):
    ann = as_person(study, "ann")
    text = text_of(ann)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("f", *"homework")
        await settle(pilot)
        finder = app.screen
        assert isinstance(finder, FindScreen)
        assert len(finder.hits) == 1 and finder.hits[0].turn_number == 4
        await pilot.press("enter")
        await settle(pilot)
        start, end = screen.view.selection()
        assert text[start:end] == "homework"
        assert screen.view.current_turn().number == 4
        await pilot.press("escape", "g", "slash", "ctrl+a", "ctrl+k", *"homewrok", "ctrl+f")
        await settle(pilot)
        assert app.screen.fuzzy and [h.turn_number for h in app.screen.hits] == [4]
        await pilot.press("enter")
        await settle(pilot)
        start, end = screen.view.selection()
        assert "homework" in text[start - 2 : end + 2]


def test_find_functions_and_kwic():
    text = "T: Ab ab AB\nP: nothing [laughs] here"
    from concord.services.dto import TurnInfo

    turns = (
        TurnInfo(1, 1, "therapist", "T", None, None, 3, 11, False, ()),
        TurnInfo(2, 2, "client", "P", None, None, 15, 35, False, ()),
    )
    assert [(h.start, h.end, h.turn_number) for h in find_plain(text, turns, "ab")] == [
        (3, 5, 1),
        (6, 8, 1),
        (9, 11, 1),
    ]
    assert find_plain(text, turns, "") == []
    [fuzzy] = find_fuzzy(text, turns, "lauhgs")
    assert fuzzy.turn_number == 2 and "laugh" in text[fuzzy.start : fuzzy.end]
    assert find_fuzzy(text, turns, "ab") == []  # too short to be fuzzy
    line = kwic(text, find_plain(text, turns, "[laughs]")[0], width=8)
    assert line.plain.endswith("nothing [laughs] here")
    assert line.plain.startswith("T2")


def test_rank_codes_by_name_label_and_definition(study):
    codes = code_service.visible_codes(study)
    assert next(c.name for c in rank_codes("stagn", codes)) == "Stagnation"
    assert next(c.name for c in rank_codes("homework", codes)) == "Moving forward"
    assert rank_codes("", codes) == codes
    assert rank_codes("zzzzqqq", codes) == []


async def test_enter_on_a_code_in_the_codebook_applies_it(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("j", "tab")
        assert app.focused is screen.panel.tree
        await pilot.press("down", "down")
        assert screen.panel.highlighted_code_id == code_ids(ann)["Stagnation"]
        assert "Exclude: Sadness without resignation." in str(screen.query_one("#code-detail").render())
        await pilot.press("enter")
        second = turn(ann, 2)
        assert [(c.code_id, c.start, c.end) for c in coding.list_codings(ann, 1)] == [
            (code_ids(ann)["Stagnation"], second.char_start, second.char_end)
        ]
        assert screen.panel.count_of(code_ids(ann)["Stagnation"]) == 1


async def test_jump_to_next_and_previous_coding_of_the_code(study):
    ann = as_person(study, "ann")
    ids = code_ids(ann)
    for number in (1, 3, 4):
        t = turn(ann, number)
        coding.apply_code(ann, 1, ids["Moving forward"], t.char_start, t.char_end)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("right_square_bracket")
        assert screen.view.cursor == turn(ann, 3).char_start
        await pilot.press("right_square_bracket")
        assert screen.view.cursor == turn(ann, 4).char_start
        await pilot.press("right_square_bracket")  # wraps around
        assert screen.view.cursor == turn(ann, 1).char_start
        await pilot.press("left_square_bracket")
        assert screen.view.cursor == turn(ann, 4).char_start
        assert "“Moving forward” 3 of 3" in screen.message.plain


async def test_mark_done_and_progress_is_restored_on_open(study):
    ann = as_person(study, "ann")
    third = turn(ann, 3)
    transcripts.record_progress(ann, 1, turns_reviewed=2, last_offset=third.char_start + 5)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        assert screen.view.cursor == third.char_start + 5
        await pilot.press("j", "d")
        [summary] = transcripts.list_transcripts(ann)
        assert summary.progress.done and screen.done
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        assert transcripts.last_position(ann, 1) == turn(ann, 4).char_start
        [summary] = transcripts.list_transcripts(ann)
        assert summary.progress.turns_reviewed == 4
        assert cells(app.screen.query_one("#transcripts", DataTable))[0][3:6] == ["4/4", "0", "✓"]


async def test_quitting_saves_the_place(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("j", "j")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert transcripts.last_position(ann, 1) == turn(ann, 3).char_start


# -- the blind and open mode ---------------------------------------------------------------


async def test_blind_mode_hides_group_scores_and_other_coders(study):
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    coding.apply_code(bob, 1, code_ids(bob)["Stagnation"], 0, 20)
    bob_code = code_service.create_inductive_code(bob, "bob's secret code")
    transcripts.set_done(bob, 1)
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        overview = screen_text(app)
        assert "blind" in overview
        for hidden in ("high", "bob", "Dyad", "Phase", "WAI"):
            assert hidden not in overview
        screen = await open_first_transcript(pilot)
        assert not screen.open_mode
        assert not screen.query("#session-info")
        assert screen.check_action("cycle_overlay", ()) is False
        await pilot.press("o")
        assert screen.overlay == [] and screen.overlay_layers == ()
        assert bob_code.id not in screen.codes
        shown = screen_text(app)
        for hidden in ("high", "WAI", "48", "bob", "secret", "Overlay"):
            assert hidden not in shown
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "transcript.overlay" not in {row.binding_id for row in app.screen.rows}
    # And the services refuse what the screen leaves out.
    with pytest.raises(PermissionDenied):
        coding.list_codings(ann, 1, layer="others")
    assert "group" not in {a.name for a in transcripts.get_transcript(ann, "S-A").attributes}


async def test_open_mode_shows_session_scores_and_the_overlays(open_study):
    ann, bob = as_person(open_study, "ann"), as_person(open_study, "bob")
    ids = code_ids(ann)
    second = turn(ann, 2)
    coding.apply_code(bob, 1, ids["Stagnation"], second.char_start, second.char_end)
    transcripts.record_progress(bob, 1, turns_reviewed=4, last_offset=0)
    app = make_app(open_study.store.target, "ann")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#transcripts", DataTable)
        header = [str(column.label) for column in table.columns.values()]
        assert {"Dyad", "Session", "Phase", "Coders", "Attributes"} <= set(header)
        row = dict(zip(header, cells(table)[0]))
        assert (row["Dyad"], row["Session"], row["Phase"]) == ("1", "5", "independent")
        assert "bob 4/4" in row["Coders"] and "group=high" in row["Attributes"]

        screen = await open_first_transcript(pilot)
        session = str(screen.query_one("#session-text").render())
        assert "group: high" in session and "WAI-SR (client): 48" in session and "dyad 1 · session 5" in session
        await pilot.press("j", "o")
        assert screen.overlay_layers == ("others",)
        assert [(c.coder, c.code_id) for c in screen.overlay] == [("bob", ids["Stagnation"])]
        assert "bob: Stagnation" in str(screen.query_one("#at-cursor").render())
        await pilot.press("o")
        assert screen.overlay_layers == ("consensus",) and screen.overlay == []
        await pilot.press("o", "o")
        assert screen.overlay_layers == ()
        # Coding still works with the overlay cycling around it, and counts only ann's own.
        await pilot.press("1")
        assert [c.coder for c in coding.list_codings(ann, 1)] == ["ann"]


async def test_supervisor_in_a_blind_study_sees_through_it(study):
    bob = as_person(study, "bob")
    coding.apply_code(bob, 1, code_ids(bob)["Stagnation"], 0, 20)
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_first_transcript(pilot)
        assert screen.open_mode
        assert "group: high" in str(screen.query_one("#session-text").render())
        await pilot.press("o")
        assert [c.coder for c in screen.overlay] == ["bob"]


# -- help, palette, keys, errors ---------------------------------------------------------------


async def test_help_lists_every_action_with_its_key(study):
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        rows = {row.binding_id: row for row in help_screen.rows}
        assert rows["transcript.undo"].keys == ("u",)
        assert rows["transcript.remove"].keys == ("x", "del")
        assert rows["transcript.next-turn"].where == "Transcript text"
        assert rows["transcript.apply-1"].keys == ("1",)
        assert rows["app.quit"].keys == ("^q",)
        assert help_screen.query_one(DataTable).row_count == len(help_screen.rows)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TranscriptScreen)


async def test_command_palette_runs_actions_and_applies_codes(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_transcript(pilot)
        await pilot.press("ctrl+p", *"apply code: stagnation")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert [c.code_id for c in coding.list_codings(ann, 1)] == [code_ids(ann)["Stagnation"]]
        await pilot.press("ctrl+p", *"undo")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert coding.list_codings(ann, 1) == []


async def test_keys_remapped_from_the_key_file(study, tmp_path, monkeypatch):
    ann = as_person(study, "ann")
    keys = tmp_path / "keys.toml"
    keys.write_text('"transcript.undo" = "z"\n[transcript]\npick-code = ["p", "space"]\n', encoding="utf-8")
    monkeypatch.setenv("CONCORD_KEYMAP", str(keys))
    app = make_app(study.store.target, "ann")
    assert app.keymap == {"transcript.undo": "z", "transcript.pick-code": "p,space"}
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("1", "u")
        assert len(coding.list_codings(ann, 1)) == 1
        await pilot.press("z")
        assert coding.list_codings(ann, 1) == []
        await pilot.press("space")
        await pilot.pause()
        assert isinstance(app.screen, CodePicker)
        await pilot.press("escape")
        await pilot.pause()
        rows = {row.binding_id: row for row in app.key_rows_for(screen)}
        assert rows["transcript.undo"].keys == ("z",)
        assert rows["transcript.pick-code"].keys == ("p", "space")


def test_key_file_errors_name_the_file_and_line(tmp_path, monkeypatch):
    keys = tmp_path / "keys.toml"
    keys.write_text('"transcript.undo" = "z"\n"transcript.nope" = "y"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"keys.toml:2: unknown binding id 'transcript.nope'"):
        load_keymap(keys, known_ids={"transcript.undo"})
    keys.write_text("[transcript]\nundo = 3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"keys.toml:2: transcript.undo: give a key"):
        load_keymap(keys, known_ids={"transcript.undo"})
    keys.write_text('undo = "z\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"keys.toml:1: not valid TOML"):
        load_keymap(keys)
    with pytest.raises(InputError, match="no such key file"):
        load_keymap(tmp_path / "missing.toml")
    monkeypatch.delenv("CONCORD_KEYMAP", raising=False)
    assert load_keymap() == {}  # no file in the (test) user config folder: no remapping


def test_make_app_refuses_unknown_people_themes_and_key_ids(study, tmp_path):
    with pytest.raises(NotFound, match="no coder named 'zed'"):
        make_app(study.store.target, "zed")
    with pytest.raises(ConcordError, match="unknown theme 'no-such-theme'"):
        make_app(study.store.target, "ann", theme="no-such-theme")
    keys = tmp_path / "k.toml"
    keys.write_text('"transcript.fly" = "z"\n', encoding="utf-8")
    with pytest.raises(InputError, match="unknown binding id"):
        make_app(study.store.target, "ann", config_path=keys)
    app = make_app(study.store.target, "ann", theme="nord")
    assert isinstance(app, ConcordApp) and app.theme == "nord"
    app.workspace.close()


def run_code_command(runner: CliRunner, args: list[str]):
    """`concord code ARGS` with the context settings `concord` gives it: click caches a command's help
    option on first use, so a bare invocation would leave `code` without -h for the command reference."""
    return runner.invoke(code_command, args, **concord_cli.context_settings)


def test_code_command_reports_errors_and_has_help(study):
    runner = CliRunner()
    result = run_code_command(runner, ["--help"])
    assert result.exit_code == 0 and "--as NAME" in result.output and "--theme" in result.output
    result = run_code_command(runner, [study.store.target, "--as", "zed"])
    assert isinstance(result.exception, NotFound)


async def test_user_text_is_never_read_as_markup(study):
    with study.store.session() as session:
        session.execute(update(Code).where(Code.name == "Stagnation").values(name="[bold]Stuck[/bold]"))
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        await pilot.press("2")
        labels = [node.label.plain for node in screen.panel.tree.root.children[0].children[0].children]
        assert "2 [bold]Stuck[/bold]  1" in labels
        assert "[bold]Stuck[/bold]" in screen.message.plain
        assert "[bold]Stuck[/bold]" in screen_text(app)
        assert len(coding.list_codings(ann, 1)) == 1


async def test_hotkeys_apply_within_one_codebook_and_ctrl_b_switches(study):
    from concord.services.codebooks import add_codebook

    add_codebook(as_person(study, "sue"), "cbt-alliance-themes")
    ann = as_person(study, "ann")
    ids = {(c.codebook, c.name): c.id for c in code_service.visible_codes(ann)}
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_transcript(pilot)
        assert screen.hotkey_book == "cbt-test"
        await pilot.press("1")
        await pilot.press("ctrl+b")
        assert screen.hotkey_book == "cbt-alliance-themes"
        assert "keys: cbt-alliance-themes" in screen_text(app)
        await pilot.press("j", "1")
        stored = sorted(c.code_id for c in coding.list_codings(ann, 1))
        assert stored == sorted([ids[("cbt-test", "Moving forward")], ids[("cbt-alliance-themes", "exploring")]])


def test_bundled_codebook_hotkeys_never_clash_with_workbench_keys():
    from concord.app.tui.widgets.transcript_view import TranscriptView
    from concord.codebooks.loader import RESERVED_HOTKEYS, bundled_ids, load_bundled

    bound = {
        key
        for widget in (TranscriptView, TranscriptScreen)
        for binding in widget.BINDINGS
        for key in binding.key.split(",")
    }
    single = {key for key in bound if len(key) == 1 and not key.isdigit()}
    named = {"left_square_bracket": "[", "right_square_bracket": "]", "slash": "/"}
    single |= {char for name, char in named.items() if name in bound}
    assert single <= set(RESERVED_HOTKEYS), sorted(single - set(RESERVED_HOTKEYS))
    for book in bundled_ids():
        for key in load_bundled(book).hotkeys():
            assert key not in RESERVED_HOTKEYS, (book, key)


# -- consensus, agreement and results from the overview ----------------------------------------

SECTION_IDS = {"overview.consensus", "overview.agreement", "overview.results"}


def section_rows(app) -> set[str]:
    return {row.binding_id for row in app.key_rows_for(app.screen)} & SECTION_IDS


async def test_a_blind_coder_cannot_reach_consensus_agreement_or_results(study):
    from concord.services import consensus
    from concord.services.agreement import compute_agreement
    from concord.services.prevalence import theme_prevalence

    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        # No key, no help row, no palette command, no footer entry.
        assert section_rows(app) == set()
        assert [overview.check_action(name, ()) for name in ("consensus", "agreement", "results")] == [False] * 3
        footer = screen_text(app).splitlines()[-1]
        assert "Consensus" not in footer and "Results" not in footer and "Agreement" not in footer
        for key in ("c", "A", "R"):
            await pilot.press(key)
            await settle(pilot)
            assert app.screen is overview
        assert not await app.run_action("screen.results")
        # Asked directly, the app asks the services, which refuse: nothing opens.
        for open_section in (app.open_consensus, app.open_agreement, app.open_results):
            assert open_section() is False
            await settle(pilot)
            assert app.screen is overview
    ann = as_person(study, "ann")
    with pytest.raises(PermissionDenied):
        consensus.consensus_queue(ann)
    with pytest.raises(PermissionDenied):
        compute_agreement(ann)
    with pytest.raises(PermissionDenied):
        theme_prevalence(ann, layer="ann")
    for start in ("consensus", "agreement", "results"):
        with pytest.raises(PermissionDenied):
            make_app(study.store.target, "ann", start=start)
    with pytest.raises(ConcordError, match="unknown start 'codebook'"):
        make_app(study.store.target, "sue", start="codebook")


async def test_after_unblinding_a_coder_gets_agreement_and_results_but_not_consensus(study):
    from concord.app.tui.screens.agreement import AgreementScreen
    from concord.app.tui.screens.results import ResultsScreen
    from concord.services.unblinding import unblind

    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert section_rows(app) == set()
        unblind(as_person(study, "sue"), force=True, reason="pilot test")
        app.screen.reload()  # the overview notices the study is open now
        await settle(pilot)
        assert app.blind is False
        assert section_rows(app) == {"overview.agreement", "overview.results"}
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("A")
        await settle(pilot)
        assert isinstance(app.screen, AgreementScreen)
        await pilot.press("escape", "R")
        await settle(pilot)
        assert isinstance(app.screen, ResultsScreen) and app.screen.prevalence is not None


async def test_a_supervisor_finds_the_sections_in_help_and_the_palette(study):
    from concord.app.tui.screens.results import ResultsScreen

    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert section_rows(app) == SECTION_IDS
        await pilot.press("question_mark")
        await pilot.pause()
        rows = {row.binding_id: row for row in app.screen.rows}
        assert (rows["overview.consensus"].keys, rows["overview.agreement"].keys, rows["overview.results"].keys) == (
            ("c",),
            ("A",),
            ("R",),
        )
        assert rows["overview.results"].where == "Overview"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p", *"results")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ResultsScreen)


def test_code_command_can_start_in_a_section(study):
    runner = CliRunner()
    result = run_code_command(runner, ["--help"])
    assert "--start" in result.output and "results" in result.output
    result = run_code_command(runner, [study.store.target, "--as", "ann", "--start", "consensus"])
    assert isinstance(result.exception, PermissionDenied)
