"""TranscriptView in a tiny host app: drawing, motions, selection, mouse, messages, a 20,000-turn load."""

from __future__ import annotations

import random
import time
from datetime import datetime

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.color import Color

from concord.app.tui.widgets.transcript_view import CODE_TINT, GUTTER_WIDTH, TranscriptView
from concord.services.dto import CodeInfo, CodingInfo, TranscriptDetail
from tests.test_tui_layout import build_turns

UTTERANCES = [
    ("T", "therapist", "How has the week been since we last met? [laughs] I ask because last time was hard."),
    ("P", "client", "Hard. (sighs) I kept thinking about what Anna said /.../ it never ends. Det är svårt."),
    ("I", "interviewer", "And what did you feel then?"),
    ("P", "client", "That I wanted to give up. But I did the homework, um-hm, some of it."),
]
NOW = datetime(2024, 5, 1, 12, 0)
SIZE = (70, 16)


def make_detail(utterances=UTTERANCES, **kwargs) -> TranscriptDetail:
    text, turns = build_turns(utterances, nonverbal_marks=("[laughs]", "(sighs)"), **kwargs)
    return TranscriptDetail(
        id=1, key="S-A", kind="session", perspective=None, language="sv", text=text, turns=turns, phase="independent"
    )


def make_code(code_id: int, name: str, hotkey: str | None, colour: str | None) -> CodeInfo:
    return CodeInfo(
        id=code_id,
        codebook="test",
        parent_id=None,
        name=name,
        label=None,
        definition=None,
        inclusion=None,
        exclusion=None,
        example=None,
        pole=None,
        high_pole=None,
        hotkey=hotkey,
        colour=colour,
        origin="deductive",
        creator=None,
        position=code_id,
        guid=f"guid-{code_id}",
    )


def make_coding(coding_id: int, code_id: int, start: int, end: int, coder: str = "ann") -> CodingInfo:
    return CodingInfo(
        id=coding_id,
        transcript_id=1,
        coder=coder,
        code_id=code_id,
        start=start,
        end=end,
        memo=None,
        phase="independent",
        made_blind=True,
        created_at=NOW,
        changed_at=NOW,
    )


CODES = {
    1: make_code(1, "Moving forward", "1", "green"),
    2: make_code(2, "Stagnation", "2", "#FF0000"),
    3: make_code(3, "Exploring", "3", "blue"),
    4: make_code(4, "Expert role", None, "gold"),
    5: make_code(5, "Focus on patient", "5", "purple"),
}


class Host(App):
    """Nothing but the view, loaded on mount; records escapes the view lets through."""

    BINDINGS = [Binding("escape", "escaped", "Escape reached the app")]

    def __init__(self, detail: TranscriptDetail, codings=(), overlay=(), cursor: int = 0, codes=CODES) -> None:
        super().__init__()
        self.detail, self.codings, self.overlay, self.start_cursor, self.codes = (
            detail,
            codings,
            overlay,
            cursor,
            codes,
        )
        self.escapes = 0

    def compose(self) -> ComposeResult:
        yield TranscriptView(id="view")

    def on_mount(self) -> None:
        view = self.query_one(TranscriptView)
        view.load(self.detail, self.codes, self.codings, self.overlay, cursor=self.start_cursor)
        view.focus()

    def action_escaped(self) -> None:
        self.escapes += 1


def view_of(app: App) -> TranscriptView:
    return app.query_one("#view", TranscriptView)


def screen_lines(view: TranscriptView) -> list[str]:
    return [view.render_line(y).text for y in range(view.scrollable_content_region.height)]


def segments_on_screen(view: TranscriptView, y: int):
    return [seg for seg in view.render_line(y) if seg.text]


def find_on_screen(view: TranscriptView, fragment: str):
    """(y, segment) of the first drawn segment containing `fragment`."""
    for y in range(view.scrollable_content_region.height):
        for seg in segments_on_screen(view, y):
            if fragment in seg.text:
                return y, seg
    raise AssertionError(f"{fragment!r} is not on screen")


def at(detail: TranscriptDetail, turn: int, fragment: str) -> int:
    """Transcript offset of `fragment` inside turn number `turn`."""
    info = detail.turns[turn - 1]
    index = detail.text.index(fragment, info.char_start, info.char_end)
    return index


async def test_turns_show_number_speaker_and_text_with_role_colours():
    detail = make_detail()
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        lines = screen_lines(view)
        gutter = " " * GUTTER_WIDTH
        # Speakers by role, whatever the import called them ("T", "P", "I" here), padded to the widest.
        assert lines[0].startswith(gutter + "1 therapist   How has the week been")
        assert any(line.startswith(gutter + "3 interviewer And what did you feel then?") for line in lines)
        for role, label_text in (("therapist", "therapist"), ("client", "client"), ("interviewer", "interviewer")):
            expected = view.get_component_rich_style(f"transcript-view--{role}")
            y = next(i for i, line in enumerate(lines) if line[GUTTER_WIDTH + 2 :].startswith(label_text + " "))
            cell = next(seg for seg in segments_on_screen(view, y) if seg.text.strip() == label_text)
            assert cell.style.color == expected.color and cell.style.bold
        client, therapist = (view.get_component_rich_style(f"transcript-view--{r}") for r in ("client", "therapist"))
        assert client.color != therapist.color


async def test_bracketed_annotations_show_as_typed_and_dimmed():
    detail = make_detail()
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert "[laughs]" in "".join(screen_lines(view))
        _, laughs = find_on_screen(view, "[laughs]")
        assert laughs.text == "[laughs]"  # the whole annotation is one dimmed run, nothing eaten as markup
        nonverbal = view.get_component_rich_style("transcript-view--nonverbal")
        assert laughs.style.italic and laughs.style.color == nonverbal.color
        _, sighs = find_on_screen(view, "(sighs)")
        assert sighs.style.italic


async def test_coded_spans_are_tinted_with_their_code_colour_and_marked_in_the_gutter():
    detail = make_detail()
    start = at(detail, 2, "Hard.")
    codings = [make_coding(1, 1, start, start + 5), make_coding(2, 2, at(detail, 2, "Anna"), at(detail, 2, "Anna") + 4)]
    overlay = [make_coding(9, 3, at(detail, 1, "week"), at(detail, 1, "week") + 4, coder="bob")]
    app = Host(detail, codings, overlay, cursor=detail.turns[3].char_start)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        background = Color.from_rich_color(view.rich_style.bgcolor)
        y, hard = find_on_screen(view, "Hard.")
        assert hard.text == "Hard."
        assert hard.style.bgcolor == background.blend(Color.parse("#008000"), CODE_TINT).rich_color
        _, anna = find_on_screen(view, "Anna")
        assert anna.text == "Anna"
        assert anna.style.bgcolor == background.blend(Color.parse("#FF0000"), CODE_TINT).rich_color
        gutter = list(segments_on_screen(view, y))[:2]
        # Both codes touch the turn's first line; each is marked with its codebook's letter ("test": T),
        # never a hotkey digit, which means another code in every codebook.
        assert [seg.text for seg in gutter] == ["T", "T"]
        assert gutter[0].style.bgcolor == Color.parse("#008000").rich_color
        _, week = find_on_screen(view, "week")
        assert week.text == "week" and week.style.underline
        assert week.style.color == Color.parse("#0000FF").rich_color
        # Uncoded text keeps the plain background.
        _, rest = find_on_screen(view, " I kept")
        assert rest.style.bgcolor == background.rich_color


async def test_many_codes_on_a_line_stay_readable_in_the_gutter():
    detail = make_detail()
    start = detail.turns[0].char_start
    codings = [make_coding(i, i, start + i, start + 10 + i) for i in range(1, 6)]
    app = Host(detail, codings, cursor=detail.turns[3].char_start)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert view.render_line(0).text.startswith("TT+3 ")
        assert [c.code_id for c in view.codings_at(start + 6)] == [1, 2, 3, 4, 5]
        assert [c.code_id for c in view.codings_at(start + 11)] == [2, 3, 4, 5]


async def test_set_codings_redraws_the_changed_spans():
    detail = make_detail()
    word = at(detail, 1, "week")
    app = Host(detail, cursor=detail.turns[3].char_start)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert view.render_line(0).text.startswith(" " * GUTTER_WIDTH)
        view.set_codings([make_coding(1, 2, word, word + 4)])
        await pilot.pause()
        assert view.render_line(0).text.startswith("T    ")
        _, seg = find_on_screen(view, "week")
        assert seg.text == "week" and seg.style.bgcolor != view.rich_style.bgcolor
        assert [c.id for c in view.codings_at(word)] == [1]
        view.set_codings([], overlay=[make_coding(5, 1, word, word + 4, coder="bob")])
        await pilot.pause()
        _, seg = find_on_screen(view, "week")
        assert seg.style.underline and view.codings_at(word) == []


async def test_turn_sentence_word_and_character_motions():
    detail = make_detail()
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        turns = detail.turns
        assert view.cursor == turns[0].char_start
        await pilot.press("j")
        assert view.cursor == turns[1].char_start and view.current_turn().number == 2
        await pilot.press("down", "down")
        assert view.current_turn().number == 4
        await pilot.press("k", "up")
        assert view.cursor == turns[1].char_start
        await pilot.press("w")
        assert view.cursor == at(detail, 2, "sighs")
        await pilot.press("ctrl+right", "w")
        assert view.cursor == at(detail, 2, "kept")
        await pilot.press("b", "ctrl+left")
        assert view.cursor == at(detail, 2, "sighs")
        await pilot.press(")")
        assert view.cursor == at(detail, 2, "Det är")
        await pilot.press("(")
        assert view.cursor == at(detail, 2, "(sighs)")
        await pilot.press("l", "l", "right")
        assert view.cursor == at(detail, 2, "(sighs)") + 3
        await pilot.press("h", "left")
        assert view.cursor == at(detail, 2, "(sighs)") + 1
        await pilot.press("G")
        assert view.cursor == turns[-1].char_end
        await pilot.press("g")
        assert view.cursor == turns[0].char_start
        await pilot.press("end")
        assert view.cursor == turns[-1].char_end
        await pilot.press("home")
        assert view.cursor == turns[0].char_start
        await pilot.press("h")
        assert view.cursor == turns[0].char_start  # nowhere to go before the first character
        assert view.selection() is None


async def test_shift_motions_select_and_a_plain_motion_drops_the_selection():
    detail = make_detail()
    app = Host(detail, cursor=at(detail, 2, "I kept"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        start = view.cursor
        await pilot.press("shift+right", "shift+right")
        assert view.selection() == (start, start + 2)
        await pilot.press("ctrl+shift+right")
        assert view.selection() == (start, at(detail, 2, "kept") + 4)  # forward word motion ends on a word end
        await pilot.press("ctrl+shift+left", "ctrl+shift+left")
        assert view.selection() == (start, start)  # back over "kept" and "I": empty, but still anchored
        await pilot.press("shift+down")
        assert view.selection() == (start, detail.turns[1].char_end)
        await pilot.press("shift+up")  # from the turn's end back to its start
        assert view.anchor == start and view.cursor == detail.turns[1].char_start
        assert view.selection() == (detail.turns[1].char_start, start)
        await pilot.press("shift+left")
        assert view.cursor == detail.turns[0].char_end
        await pilot.press("l")
        assert view.selection() is None


async def test_visual_mode_extends_with_any_motion_and_escape_clears():
    detail = make_detail()
    app = Host(detail, cursor=at(detail, 4, "That"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        start = view.cursor
        await pilot.press("v", "w")
        assert view.visual and view.selection() == (start, start + len("That"))  # selecting: to word ends
        await pilot.press("w", "w")
        assert view.selection() == (start, at(detail, 4, "wanted") + len("wanted"))
        await pilot.press(")")
        assert view.selection() == (start, at(detail, 4, "give up.") + len("give up."))
        await pilot.press("escape")
        assert view.selection() is None and not view.visual
        assert app.escapes == 0
        await pilot.press("escape")  # nothing left to clear: the key goes on to the app
        assert app.escapes == 1
        await pilot.press("v", "l", "v")
        assert view.selection() is None and not view.visual


async def test_one_key_selects_the_whole_current_turn():
    detail = make_detail()
    app = Host(detail, cursor=at(detail, 2, "thinking"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        await pilot.press("t")
        turn = detail.turns[1]
        assert view.selection() == (turn.char_start, turn.char_end)
        selected = detail.text[turn.char_start : turn.char_end]
        assert selected.startswith("Hard.") and selected.endswith("svårt.")
        selection_bg = view.get_component_rich_style("transcript-view--selection").bgcolor
        _, seg = find_on_screen(view, "thinking")
        assert seg.style.bgcolor == selection_bg


async def test_click_moves_the_cursor_and_drag_selects():
    detail = make_detail()
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        layout = view.layout_index
        target = at(detail, 2, "thinking")
        y, x = layout.offset_to_yx(target)
        await pilot.click("#view", offset=(x, y))
        assert view.cursor == target and view.selection() is None
        drag_from = at(detail, 2, "Hard.")
        drag_to = at(detail, 4, "give")
        (y1, x1), (y2, x2) = layout.offset_to_yx(drag_from), layout.offset_to_yx(drag_to)
        await pilot.mouse_down("#view", offset=(x1, y1))
        await pilot.hover("#view", offset=(x1 + 3, y1))
        await pilot.hover("#view", offset=(x2, y2))
        await pilot.mouse_up("#view", offset=(x2, y2))
        assert view.selection() == (drag_from, drag_to)
        # Clicking the header column puts the cursor at the start of that line's text.
        await pilot.click("#view", offset=(1, y1))
        assert view.cursor == detail.turns[1].char_start and view.selection() is None


async def test_messages_report_cursor_and_selection():
    detail = make_detail()
    seen = []

    def record(message) -> None:  # the hook sees a bubbling message at every node it reaches
        if not any(message is earlier for earlier in seen):
            seen.append(message)

    app = Host(detail)
    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await pilot.pause()
        seen.clear()
        await pilot.press("j", "shift+right")
        await pilot.pause()
        moved = [m for m in seen if isinstance(m, TranscriptView.CursorMoved)]
        changed = [m for m in seen if isinstance(m, TranscriptView.SelectionChanged)]
        start = detail.turns[1].char_start
        assert (moved[-1].offset, moved[-1].turn_number) == (start + 1, 2)
        assert moved[-1].control is view_of(app)
        assert [m.selection for m in changed] == [(start, start + 1)]
        await pilot.press("escape")
        await pilot.pause()
        assert [m.selection for m in seen if isinstance(m, TranscriptView.SelectionChanged)][-1] is None
    first, second = TranscriptView.CursorMoved(1, 1), TranscriptView.CursorMoved(2, 1)
    assert first.can_replace(second)
    assert not first.can_replace(TranscriptView.SelectionChanged(None))


async def test_setting_cursor_and_anchor_clamps_redraws_and_reports():
    detail = make_detail()
    seen = []
    app = Host(detail)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await pilot.pause()
        view = view_of(app)
        view.cursor = detail.turns[2].char_start - 2  # inside the "I: " label: moves to the text
        await pilot.pause()
        assert view.cursor == detail.turns[2].char_start
        assert [m.offset for m in seen if isinstance(m, TranscriptView.CursorMoved)][-1] == view.cursor
        view.anchor = detail.turns[1].char_start
        await pilot.pause()
        assert view.selection() == (detail.turns[1].char_start, detail.turns[2].char_start)
        _, seg = find_on_screen(view, "Anna")
        assert seg.style.bgcolor == view.get_component_rich_style("transcript-view--selection").bgcolor
        view.anchor = None
        await pilot.pause()
        _, seg = find_on_screen(view, "Anna")
        assert seg.style.bgcolor == view.rich_style.bgcolor


async def test_jump_to_selects_and_brings_far_text_into_view():
    detail = make_detail(UTTERANCES * 30)
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        turn = detail.turns[100]
        view.jump_to(turn.char_start, select_to=turn.char_start + 12)
        await pilot.pause()
        assert view.selection() == (turn.char_start, turn.char_start + 12)
        assert view.current_turn().number == 101
        assert any(line[GUTTER_WIDTH:].lstrip().startswith("101 ") for line in screen_lines(view))


async def test_page_keys_move_by_a_screen_and_keep_the_cursor_visible():
    detail = make_detail(UTTERANCES * 30)
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        height = view.scrollable_content_region.height
        await pilot.press("pagedown", "pagedown")
        y, _ = view.layout_index.offset_to_yx(view.cursor)
        assert y == 2 * height
        assert view.scroll_y <= y < view.scroll_y + height
        await pilot.press("pageup")
        y, _ = view.layout_index.offset_to_yx(view.cursor)
        assert y == height and view.scroll_y <= y < view.scroll_y + height


async def test_resizing_rewraps_and_keeps_the_cursor_on_screen():
    detail = make_detail(UTTERANCES * 10)
    app = Host(detail)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        view.jump_to(detail.turns[25].char_start + 20)
        await pilot.pause()
        lines_before = view.layout_index.line_count
        await pilot.resize_terminal(40, 16)
        await pilot.pause()
        layout = view.layout_index
        assert layout.line_count > lines_before
        y, _ = layout.offset_to_yx(view.cursor)
        assert view.scroll_y <= y < view.scroll_y + view.scrollable_content_region.height


async def test_bindings_have_ids_and_leave_the_coding_keys_free():
    reserved = {
        *"123456789",
        "c",
        "n",
        "i",
        "m",
        "u",
        "ctrl+r",
        "x",
        "delete",
        "e",
        "slash",
        "/",
        "question_mark",
        "?",
        "f",
        "d",
        "o",
        "left_square_bracket",
        "[",
        "right_square_bracket",
        "]",
        "ctrl+q",
    }
    keys = set()
    for binding in TranscriptView.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id and binding.id.startswith("transcript.") and binding.description
        assert not binding.priority
        keys.update(binding.key.split(","))
    assert not keys & reserved
    assert {
        "j",
        "k",
        "down",
        "up",
        ")",
        "(",
        "w",
        "b",
        "l",
        "h",
        "g",
        "G",
        "home",
        "end",
        "pageup",
        "pagedown",
        "shift+right",
        "ctrl+shift+right",
        "v",
        "t",
        "escape",
    } <= keys


async def test_a_20000_turn_transcript_loads_and_reaches_its_end():
    rng = random.Random(11)
    words = [
        "jag",
        "tycker",
        "att",
        "det",
        "är",
        "svårt",
        "när",
        "hon",
        "säger",
        "så",
        "och",
        "sedan",
        "um-hm",
        "[laughs]",
        "well",
        "I",
        "do",
        "not",
        "know",
    ]
    utterances = [
        (
            "T" if i % 2 else "P",
            "therapist" if i % 2 else "client",
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 60))),
        )
        for i in range(20_000)
    ]
    detail = make_detail(utterances, times=[i * 7.0 for i in range(20_000)])
    start = detail.turns[0].char_start
    codings = [
        make_coding(i, 1 + i % 5, detail.turns[i * 10].char_start, detail.turns[i * 10].char_end) for i in range(2_000)
    ]
    app = Host(detail, codings)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert view.cursor == start
        assert view.layout_index.line_count > 20_000
        started = time.perf_counter()
        await pilot.press("G")
        assert view.cursor == detail.turns[-1].char_end
        assert view.current_turn().number == 20_000
        assert any("20000" in line for line in screen_lines(view))
        for _ in range(20):
            await pilot.press("pageup")
        await pilot.press("g")
        assert screen_lines(view)[0][GUTTER_WIDTH:].lstrip().startswith("1 ")
        assert time.perf_counter() - started < 10  # generous: this run takes well under a second


class LoadsInCompose(App):
    """Loads the view before it is mounted or has a size, as a screen's compose may."""

    def __init__(self, detail: TranscriptDetail, cursor: int) -> None:
        super().__init__()
        self.detail, self.start_cursor = detail, cursor

    def compose(self) -> ComposeResult:
        view = TranscriptView(id="view")
        view.load(self.detail, CODES, [], cursor=self.start_cursor)
        yield view


async def test_a_view_loaded_before_mounting_opens_at_its_cursor():
    detail = make_detail(UTTERANCES * 40)
    target = detail.turns[120]
    app = LoadsInCompose(detail, cursor=target.char_start + 3)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert view.cursor == target.char_start + 3 and view.current_turn().number == 121
        assert any(line[GUTTER_WIDTH:].lstrip().startswith("121 ") for line in screen_lines(view))


async def test_a_transcript_without_turns_shows_nothing_and_ignores_keys():
    empty = TranscriptDetail(
        id=2, key="E", kind="session", perspective=None, language="en", text="", turns=(), phase="independent"
    )
    app = Host(empty)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = view_of(app)
        await pilot.press("j", "w", "t", "v", "pagedown", "G")
        assert view.selection() is None and view.cursor == 0
        assert all(not line.strip() for line in screen_lines(view))
        assert view.codings_at(0) == []
