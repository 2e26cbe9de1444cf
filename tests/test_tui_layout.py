"""The transcript wrap index (app/tui/layout.py): wrapping, lookups both ways, motions, spans."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest

from concord.app.tui.layout import (
    ONE_CELL_BLOCKS,
    LayoutSource,
    SpanIndex,
    TranscriptLayout,
    cell_width,
    format_time,
)
from concord.services.dto import TurnInfo


def build_turns(
    utterances: list[tuple[str, str, str]],
    *,
    times: list[float | None] | None = None,
    replayed: set[int] = frozenset(),
    nonverbal_marks: tuple[str, ...] = (),
) -> tuple[str, tuple[TurnInfo, ...]]:
    """Transcript text written as "LABEL: utterance" lines, with turns pointing at the utterances."""
    lines, turns, offset = [], [], 0
    for index, (label, role, utterance) in enumerate(utterances):
        prefix = f"{label}: "
        start = offset + len(prefix)
        nonverbal = []
        for mark in nonverbal_marks:
            at = utterance.find(mark)
            if at >= 0:
                nonverbal.append((start + at, start + at + len(mark)))
        turns.append(
            TurnInfo(
                id=index + 1,
                number=index + 1,
                speaker_role=role,
                speaker_label=label,
                start_time=times[index] if times else None,
                end_time=None,
                char_start=start,
                char_end=start + len(utterance),
                replayed=index in replayed,
                nonverbal=tuple(sorted(nonverbal)),
            )
        )
        lines.append(prefix + utterance)
        offset += len(prefix) + len(utterance) + 1
    return "\n".join(lines), tuple(turns)


def shown(layout: TranscriptLayout, y: int) -> str:
    return layout.source.text[layout.line_starts[y] : layout.shown_end(y)]


def all_positions(source: LayoutSource) -> list[int]:
    return [p for start, end in zip(source.starts, source.ends) for p in range(start, end + 1)]


SWEDISH = [
    ("T", "therapist", "Jag tycker att det är svårt när hon säger så."),
    ("P", "client", "Ja. Överväldigande känslor, förstås! Hmm."),
]


def test_words_wrap_at_spaces_and_lines_tile_each_turn():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    layout = TranscriptLayout(source, width=source.header_width + 18)
    assert layout.text_width == 17
    assert [shown(layout, y) for y in range(layout.line_count)] == [
        "Jag tycker att ",
        "det är svårt när ",
        "hon säger så.",
        "Ja. ",
        "Överväldigande ",
        "känslor, förstås! ",
        "Hmm.",
    ]
    assert layout.turn_first_line == [0, 3, 7]
    for index, turn in enumerate(turns):
        lines = layout.turn_lines(index)
        assert layout.line_starts[lines.start] == turn.char_start
        assert layout.line_ends[lines.stop - 1] == turn.char_end
        for y in range(lines.start, lines.stop - 1):
            assert layout.line_ends[y] == layout.line_starts[y + 1]


def test_no_line_is_wider_than_the_text_column_except_its_break_space():
    rng = random.Random(7)
    words = ["å", "ärlig", "överväldigande", "självklart", "um-hm", "(sighs)", "[laughs]", "I", "don't"]
    utterances = [
        (
            "T" if i % 2 else "P",
            "therapist" if i % 2 else "client",
            " ".join(rng.choice(words) for _ in range(rng.randint(1, 40))),
        )
        for i in range(60)
    ]
    text, turns = build_turns(utterances)
    source = LayoutSource(text, turns)
    for width in (source.header_width + 12, 40, 71, 200):
        layout = TranscriptLayout(source, width=width)
        for y in range(layout.line_count):
            visible = shown(layout, y).rstrip(" ")
            assert len(visible) <= layout.text_width, (width, y, visible)
            # A word that fits is never cut: a line ends at a space or its turn's end, or it is
            # a full-width piece of a word too long for any line.
            end = layout.line_ends[y]
            turn_end = turns[layout.turn_of_line(y)].char_end
            cut_word = " " not in visible and len(visible) == layout.text_width
            assert end == turn_end or text[end - 1] == " " or cut_word, (width, y, visible)


def test_a_word_longer_than_the_line_is_cut_into_pieces():
    word = "Superkalifragilistiskexpialidosiskt" * 2  # 70 letters, no space
    text, turns = build_turns([("P", "client", f"Det var {word} helt enkelt")])
    source = LayoutSource(text, turns)
    layout = TranscriptLayout(source, width=source.header_width + 21)
    assert layout.text_width == 20
    lines = [shown(layout, y) for y in range(layout.line_count)]
    assert lines == ["Det var ", word[0:20], word[20:40], word[40:60], word[60:70] + " helt ", "enkelt"]


def test_line_breaks_inside_a_turn_start_new_lines():
    text, turns = build_turns([("T", "therapist", "first part\n\nthird line")])
    source = LayoutSource(text, turns)
    layout = TranscriptLayout(source, width=60)
    assert [shown(layout, y) for y in range(layout.line_count)] == ["first part", "", "third line"]


def test_offsets_round_trip_through_screen_positions():
    utterances = [
        *SWEDISH,
        ("P", "client", "Nej, jag vet inte... [laughs] Kanske. Øh, det er fælles for os."),
        ("T", "therapist", ""),
        ("I", "interviewer", "Ordet " + "ä" * 45 + " slut."),
    ]
    text, turns = build_turns(utterances)
    source = LayoutSource(text, turns)
    assert all(source.simple)  # Scandinavian letters are one cell each: the fast path holds
    for width in (source.header_width + 11, 33, 80):
        layout = TranscriptLayout(source, width=width, gutter_width=5)
        for offset in all_positions(source):
            y, x = layout.offset_to_yx(offset)
            assert layout.yx_to_offset(y, x) == offset, (width, offset, y, x)
            line = layout.line(y)
            assert line.start <= offset <= line.end
            assert turns[line.turn_index].char_start <= offset <= turns[line.turn_index].char_end


def test_wide_characters_take_two_cells_and_still_round_trip():
    text, turns = build_turns([("P", "client", "漢字の文章です とても長い 文章を 書きました"), *SWEDISH])
    source = LayoutSource(text, turns)
    assert source.simple == [False, True, True]
    layout = TranscriptLayout(source, width=source.header_width + 11)
    assert layout.text_width == 10
    first = turns[0]
    for y in layout.turn_lines(0):
        assert source.cells(layout.line_starts[y], layout.shown_end(y)) <= 11  # break space may stick out
    for offset in range(first.char_start, first.char_end + 1):
        y, x = layout.offset_to_yx(offset)
        assert layout.yx_to_offset(y, x) == offset
    # The second cell of a wide character is that character.
    y, x = layout.offset_to_yx(first.char_start + 1)
    assert x == layout.text_x + 2
    assert layout.yx_to_offset(y, x + 1) == first.char_start + 1


def test_the_blocks_taken_as_one_cell_wide_are_one_cell_wide():
    wrong = [
        hex(code)
        for lo, hi in ONE_CELL_BLOCKS
        for code in range(lo, hi + 1)
        if chr(code) != "\n" and cell_width(chr(code)) != 1
    ]
    assert wrong == []


def test_curly_quotes_keep_the_fast_path_and_accents_written_apart_do_not():
    text, turns = build_turns(
        [
            ("P", "client", "“Det är väl så” – sa hon… ’nej’"),
            ("T", "therapist", "Combining: a\u0308r"),
            ("P", "client", "plain"),
        ]
    )
    source = LayoutSource(text, turns)
    assert source.simple == [True, False, True]
    layout = TranscriptLayout(source, width=40)
    second = turns[1]
    # The decomposed "ä" takes one cell, so "r" sits right after it.
    _y, x = layout.offset_to_yx(second.char_end - 1)
    assert x - layout.text_x == len("Combining: a")


def test_screen_positions_outside_the_text_clamp_to_the_line():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    layout = TranscriptLayout(source, width=source.header_width + 18)
    assert layout.yx_to_offset(0, 0) == turns[0].char_start  # on the header column
    # Past the end of a wrapped line: its break space, not the next line's first letter.
    assert layout.yx_to_offset(0, 200) == layout.line_ends[0] - 1
    # Past the end of a turn's last line: the turn's end.
    assert layout.yx_to_offset(2, 200) == turns[0].char_end
    assert layout.yx_to_offset(99, 5) == layout.line_starts[-1] + 5 - layout.text_x


def test_line_lookup_names_turn_line_and_characters():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    layout = TranscriptLayout(source, width=source.header_width + 18)
    line = layout.line(5)
    assert (line.turn_index, line.line_in_turn) == (1, 2)
    assert text[line.start : line.end] == "känslor, förstås! "
    with pytest.raises(IndexError):
        layout.line(7)


def test_header_shows_number_time_video_mark_and_cut_label():
    text, turns = build_turns(
        [("T", "therapist", "a"), ("Interviewer Johansson", "interviewer", "b"), ("P", "client", "c")],
        times=[5.0, 75.5, None],
        replayed={2},
    )
    source = LayoutSource(text, turns)
    header = source.header(1)
    assert [(p.kind, p.text) for p in header] == [
        ("number", "2"),
        ("space", " "),
        ("time", "01:15"),
        ("space", " "),
        ("mark", "  "),
        ("label", "Interviewer…"),
        ("space", " "),
    ]
    assert [p.text for p in source.header(2) if p.kind in ("time", "mark", "label")] == ["     ", "▶ ", "P           "]
    assert source.header_width == sum(len(p.text) for p in header)


def test_times_use_hours_once_a_transcript_passes_one_hour():
    assert format_time(75.9, with_hours=False) == "01:15"
    assert format_time(3 * 3600 + 62, with_hours=True) == "03:01:02"
    text, turns = build_turns([("T", "therapist", "a"), ("P", "client", "b")], times=[59.0, 3700.0])
    source = LayoutSource(text, turns)
    assert source.time_width == 8
    assert source.header(0)[2].text == "00:00:59"


def test_no_times_no_time_column():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    assert source.time_width == 0
    assert [p.kind for p in source.header(0)] == ["number", "space", "label", "space"]


def test_bad_turns_are_refused_with_the_turn_number():
    text, turns = build_turns(SWEDISH)
    beyond = turns[1].__class__(**{**turns[1].__dict__, "char_end": len(text) + 5})
    with pytest.raises(ValueError, match="turn 2: characters"):
        LayoutSource(text, (turns[0], beyond))
    with pytest.raises(ValueError, match="turn 1: starts at character"):
        LayoutSource(text, (turns[1], turns[0]))


def test_clamp_moves_label_text_to_the_turn_it_introduces():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    assert source.clamp(0) == turns[0].char_start
    label_of_second = turns[0].char_end + 2  # inside "\nP: "
    assert source.clamp(label_of_second) == turns[1].char_start
    assert source.clamp(len(text) + 10) == turns[1].char_end
    assert source.clamp(turns[0].char_end) == turns[0].char_end


def test_character_motion_crosses_turns_through_their_ends():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    assert source.char_right(turns[0].char_end) == turns[1].char_start
    assert source.char_left(turns[1].char_start) == turns[0].char_end
    assert source.char_left(turns[0].char_start) == turns[0].char_start
    assert source.char_right(turns[1].char_end) == turns[1].char_end


def test_word_motions():
    text, turns = build_turns([("P", "client", "Well, um-hm. I don't know"), ("T", "therapist", "Okay then")])
    source = LayoutSource(text, turns)
    start = turns[0].char_start
    at = {word: start + text[start:].index(word) for word in ("Well", "um-hm", "I", "don't", "know")}
    assert source.word_next_start(at["Well"]) == at["um-hm"]
    assert source.word_next_start(at["um-hm"] + 2) == at["I"]  # "um-hm" is one word
    assert source.word_next_start(at["know"]) == turns[1].char_start
    assert source.word_prev_start(at["don't"] + 3) == at["don't"]
    assert source.word_prev_start(at["don't"]) == at["I"]
    assert source.word_prev_start(turns[1].char_start) == at["know"]
    assert source.word_next_end(at["Well"]) == at["Well"] + 4
    assert source.word_next_end(at["don't"]) == at["don't"] + 5
    assert source.word_next_end(at["know"] + 4) == turns[1].char_start + 4  # end of "Okay"


def test_sentence_motions():
    utterance = "Hard. (sighs) I kept thinking /.../ it never ends! Really?"
    text, turns = build_turns([("P", "client", utterance), ("T", "therapist", "Go on.")])
    source = LayoutSource(text, turns)
    start = turns[0].char_start
    sighs, really = start + utterance.index("(sighs)"), start + utterance.index("Really")
    assert source.sentence_next_start(start) == sighs
    assert source.sentence_next_start(sighs) == really  # "/.../" does not end a sentence
    assert source.sentence_next_start(really) == turns[1].char_start
    assert source.sentence_prev_start(really + 3) == really
    assert source.sentence_prev_start(really) == sighs
    assert source.sentence_next_end(start) == start + len("Hard.")
    assert source.sentence_next_end(sighs) == start + utterance.index("!") + 1


def test_turn_motions():
    text, turns = build_turns(SWEDISH)
    source = LayoutSource(text, turns)
    middle = turns[0].char_start + 5
    assert source.turn_next_start(middle) == turns[1].char_start
    assert source.turn_next_start(turns[1].char_start) == turns[1].char_end
    assert source.turn_next_end(middle) == turns[0].char_end
    assert source.turn_next_end(turns[0].char_end) == turns[1].char_end
    assert source.turn_prev_start(middle) == turns[0].char_start
    assert source.turn_prev_start(turns[1].char_start) == turns[0].char_start


@dataclass(frozen=True)
class FakeSpan:
    start: int
    end: int
    name: str


def test_span_index_files_spans_under_the_turns_they_touch():
    text, turns = build_turns([*SWEDISH, ("T", "therapist", "Mm.")])
    source = LayoutSource(text, turns)
    across = FakeSpan(turns[0].char_end - 4, turns[1].char_start + 2, "across")
    inner = FakeSpan(turns[1].char_start + 4, turns[1].char_start + 8, "inner")
    in_gap = FakeSpan(turns[0].char_end + 1, turns[0].char_end + 2, "gap")
    index = SpanIndex([inner, across, in_gap], source)
    assert [s.name for s in index.in_turn(0)] == ["across"]
    assert [s.name for s in index.in_turn(1)] == ["across", "inner"]
    assert index.in_turn(2) == []
    assert [s.name for s in index.overlapping(1, turns[1].char_start + 2, turns[1].char_start + 5)] == ["inner"]
    assert [s.name for s in index.at(1, turns[1].char_start + 1)] == ["across"]
    assert index.at(1, turns[1].char_start + 2) == []  # spans are half-open


def test_relayout_of_20000_turns_is_fast():
    rng = random.Random(3)
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
        "går",
        "jag",
        "hem",
        "um-hm",
        "[laughs]",
    ]
    utterances = [
        (
            "T" if i % 2 else "P",
            "therapist" if i % 2 else "client",
            " ".join(rng.choice(words) for _ in range(rng.randint(2, 50))),
        )
        for i in range(20_000)
    ]
    text, turns = build_turns(utterances, times=[i * 6.0 for i in range(20_000)])
    source = LayoutSource(text, turns)
    timings = []
    for width in (80, 120, 61):
        started = time.perf_counter()
        layout = TranscriptLayout(source, width=width, gutter_width=5)
        timings.append(time.perf_counter() - started)
        assert layout.line_count >= 20_000
        y, _x = layout.offset_to_yx(turns[-1].char_end)
        assert y == layout.line_count - 1
    assert max(timings) < 1.0, timings
