"""Theme development in the workbench: a supervisor renames, redefines, moves, gathers, merges and splits
codes, and goes through the merge suggestions, all by keys; the services (and so the database) are
checked afterwards. A coder never gets the screen."""

from __future__ import annotations

import pytest
from textual.widgets import Static, Tree

from concord.app.tui.app import make_app
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.themes import (
    Confirm,
    DefinitionEditor,
    SuggestionsScreen,
    TargetPicker,
    TextPrompt,
    ThemesScreen,
)
from concord.services import codebooks, coding, transcripts
from concord.services import codes as code_service
from concord.storage.errors import PermissionDenied
from tests.factories import as_person, make_study
from tests.test_tui_pilot import screen_text, settle

SIZE = (120, 36)


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def live_codes(workspace, book: str) -> dict[str, object]:
    return {code.name: code for code in codebooks.codebook_tree(as_person(workspace, "sue"), book)}


def highlight(screen: ThemesScreen, name: str) -> None:
    """Put the tree's cursor on the code named NAME, as the arrow keys would."""
    tree = screen.query_one(Tree)
    node = next(node for node in screen.walk(tree.root) if getattr(node.data, "name", None) == name)
    tree.cursor_line = screen.visible_line(node)
    assert tree.cursor_node is node


async def open_themes(pilot) -> ThemesScreen:
    await settle(pilot)
    await pilot.press("T")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ThemesScreen)
    return screen


def detail_text(screen: ThemesScreen) -> str:
    return str(screen.query_one("#themes-detail", Static).content)


async def test_a_supervisor_renames_redefines_moves_merges_and_splits(study):
    ann = as_person(study, "ann")
    turn_two = transcripts.get_transcript(ann, "S-A").turns[1]
    never_ends = code_service.create_inductive_code(ann, "it never ends [sighs]")
    made = coding.apply_code(ann, 1, never_ends.id, turn_two.char_start, turn_two.char_end)
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_themes(pilot)
        tree = screen.query_one(Tree)
        # The label is the code's name as written: "[sighs]" is not read as markup.
        assert "it never ends [sighs]" in screen_text(app)
        assert [node.data.key for node in tree.root.children] == ["cbt-test", "inductive"]

        highlight(screen, "Stagnation")
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, TextPrompt)
        await pilot.press("ctrl+a", "ctrl+k", *"Being stuck", "enter")
        await settle(pilot)
        assert "Being stuck" in live_codes(study, "cbt-test") and "Stagnation" not in live_codes(study, "cbt-test")
        assert "Being stuck" in detail_text(screen) and "name: Stagnation → Being stuck" in detail_text(screen)

        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, DefinitionEditor)
        await pilot.press(*"Feels stuck", "ctrl+s")
        await settle(pilot)
        stuck = live_codes(study, "cbt-test")["Being stuck"]
        assert stuck.definition == "Feels stuck"
        assert [c.field for c in codebooks.code_history(study, stuck.id)] == ["name", "definition"]

        highlight(screen, "Therapeutic direction")  # a new category under the theme
        await pilot.press("k", *"Obstacles", "enter")
        await settle(pilot)
        obstacles = live_codes(study, "cbt-test")["Obstacles"]
        assert obstacles.parent_id == live_codes(study, "cbt-test")["Therapeutic direction"].id
        assert tree.cursor_node.data.id == obstacles.id

        highlight(screen, "Being stuck")  # move it under the new category
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, TargetPicker)
        await pilot.press(*"Obstacles", "enter")
        await settle(pilot)
        assert live_codes(study, "cbt-test")["Being stuck"].parent_id == obstacles.id
        assert tree.cursor_node.data.name == "Being stuck" and tree.cursor_node.parent.data.name == "Obstacles"

        highlight(screen, "Moving forward")  # and one to the top of its codebook
        await pilot.press("m", "enter")
        await settle(pilot)
        assert live_codes(study, "cbt-test")["Moving forward"].parent_id is None

        highlight(screen, "it never ends [sighs]")  # merge ann's code into the renamed one
        await pilot.press("M", *"Being stuck", "enter")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot)
        assert "it never ends [sighs]" not in live_codes(study, "inductive")
        assert [(c.id, c.code_id) for c in coding.list_codings(ann, 1)] == [(made.id, stuck.id)]
        assert tree.cursor_node.data.id == stuck.id

        highlight(screen, "Moving forward")
        await pilot.press("s", *"Hope, Homework", "enter")
        await settle(pilot)
        after = live_codes(study, "cbt-test")
        assert {"Moving forward", "Hope", "Homework"} <= set(after)
        assert after["Hope"].parent_id is None and after["Homework"].parent_id is None

        # The picker offers no place beneath the code itself.
        highlight(screen, "Obstacles")
        await pilot.press("m", *"Being stuck")
        await pilot.pause()
        assert app.screen.query_one("#target-options").option_count == 0
        await pilot.press("escape")
        await pilot.pause()
        # A change the service refuses (the tree on screen is out of date) changes nothing and says why.
        codebooks.move_code(as_person(study, "sue"), "Homework", "Hope")
        highlight(screen, "Hope")
        await pilot.press("M", *"Homework", "enter", "y")
        await settle(pilot)
        assert isinstance(app.screen, ThemesScreen)
        assert "Hope" in live_codes(study, "cbt-test")
        assert "cannot merge 'Hope' into its own descendant" in str(screen.query_one("#themes-status", Static).content)

        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)


async def test_merge_suggestions_are_accepted_or_rejected_one_by_one(study):
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    negative = code_service.create_inductive_code(ann, "client expresses negative feelings")
    feeling = code_service.create_inductive_code(bob, "expressing negative feeling")
    code_service.create_inductive_code(ann, "shared humour")
    code_service.create_inductive_code(bob, "sharing humor")
    turn = transcripts.get_transcript(bob, "S-A").turns[3]
    bobs = coding.apply_code(bob, 1, feeling.id, turn.char_start, turn.char_end)
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        await open_themes(pilot)
        await pilot.press("S")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SuggestionsScreen)
        assert [s.names for s in dialog.suggestions] == [
            ("client expresses negative feelings", "expressing negative feeling"),
            ("shared humour", "sharing humor"),
        ]
        assert "(ann)" in screen_text(app) and "(bob)" in screen_text(app)
        await pilot.press("y")  # merge bob's code into ann's
        await pilot.pause()
        assert [s.names[0] for s in dialog.suggestions] == ["shared humour"]
        await pilot.press("n")  # keep the humour codes apart
        await pilot.pause()
        assert dialog.suggestions == [] and (dialog.merged, dialog.rejected) == (1, 1)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ThemesScreen)
    inductive = live_codes(study, "inductive")
    assert set(inductive) == {"client expresses negative feelings", "shared humour", "sharing humor"}
    assert [(c.id, c.code_id) for c in coding.list_codings(bob, 1)] == [(bobs.id, negative.id)]
    assert [s.names for s in codebooks.merge_suggestions(as_person(study, "sue"))] == [
        ("shared humour", "sharing humor")
    ]


async def test_a_coder_cannot_open_theme_development(study):
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        overview = app.screen
        assert overview.check_action("themes", ()) is False
        assert "overview.themes" not in {row.binding_id for row in app.key_rows_for(overview)}
        assert "Themes" not in screen_text(app).splitlines()[-1]
        await pilot.press("T")
        await settle(pilot)
        assert app.screen is overview
        assert app.open_themes() is False
        await settle(pilot)
        assert app.screen is overview
    with pytest.raises(PermissionDenied):
        codebooks.merge_codes(as_person(study, "ann"), "Stagnation", "Moving forward")


async def test_a_supervisor_finds_theme_development_in_help(study):
    app = make_app(study.store.target, "sue")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = {row.binding_id: row for row in app.key_rows_for(app.screen)}
        assert rows["overview.themes"].keys == ("T",)
        screen = await open_themes(pilot)
        rows = {row.binding_id for row in app.key_rows_for(screen)}
        assert {
            "themes.rename",
            "themes.definition",
            "themes.move",
            "themes.category",
            "themes.merge",
            "themes.split",
            "themes.suggestions",
            "themes.back",
        } <= rows
