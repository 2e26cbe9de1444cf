"""Where every character of a transcript goes on screen, and how a cursor moves through it.

Pure Python (no Textual), so the geometry can be tested and timed on its own.

A transcript's text holds its turns' utterances at ``TurnInfo.char_start:char_end``; whatever lies
between them (``"T: "`` labels, line breaks) is not shown as text: each turn gets a header column
(turn number, timestamp, a video mark for replayed IPR stretches, speaker label) and its utterance
is word-wrapped to the width that remains.

Two objects, because they change at different times:

- ``LayoutSource`` is built once per transcript. It checks the turns, finds which turns need
  per-character cell widths (wide or zero-width characters), sizes the header column, and knows
  how the cursor moves by character, word, sentence and turn (none of which depends on width).
- ``TranscriptLayout`` is the wrap at one width. Its lines tile each turn's character range
  exactly (a line owns the space or line break it was broken at), so a character offset always
  has one line, and lookups in either direction are bisections over flat lists of ints.

A cursor position is an offset in ``[char_start, char_end]`` of some turn: the end of a turn is a
position of its own (a selection must be able to reach it), the text between turns is not.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, Protocol, TypeVar

from rich.cells import get_character_cell_size

from concord.services.dto import TurnInfo

LABEL_MAX_CELLS = 12
MIN_TEXT_WIDTH = 10
VIDEO_MARK = "▶"
ELLIPSIS = "…"

# Control characters are shown as one blank cell: their own width (0) would shift every column after.
_CONTROL_CODES = (*range(0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0))
_CONTROL = re.compile("[" + "".join(re.escape(chr(code)) for code in _CONTROL_CODES) + "]")
CONTROL_TO_SPACE = dict.fromkeys(_CONTROL_CODES, " ")
# Blocks whose every character takes one cell (tests check this against rich's table): Latin,
# Greek, Cyrillic, common punctuation (curly quotes, dashes, ellipsis), currency, arrows, boxes.
# Anything else is looked at one distinct character at a time.
ONE_CELL_BLOCKS = (
    (0x0000, 0x02FF),
    (0x0370, 0x0482),
    (0x048A, 0x052F),
    (0x2010, 0x2027),
    (0x2030, 0x205E),
    (0x20A0, 0x20C0),
    (0x2100, 0x214F),
    (0x2190, 0x21FF),
    (0x2500, 0x257F),
)
_MAYBE_NOT_ONE_CELL = re.compile(
    "[^" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ONE_CELL_BLOCKS) + "]"
)

# A word is a run of letters/digits; inner apostrophes and hyphens keep "don't" and "um-hm" whole.
_WORD_START = re.compile(r"(?<![\w'’\-])\w")
_WORD_END = re.compile(r"\w(?!\w|['’\-]\w)")
# A sentence ends at . ! ? or … (closing quotes and brackets stay with it) followed by white space.
# "/.../" elisions are followed by a slash, not by space, so they do not end a sentence.
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"'”’)\]]*(\s+)")


def cell_width(character: str) -> int:
    """Cells a character takes on screen; control characters are drawn as one blank cell."""
    if _CONTROL.match(character):
        return 1
    return get_character_cell_size(character)


def _odd_characters(text: str) -> set[str]:
    """The distinct characters of `text` that are not one cell wide (line breaks aside).

    Checked cheaply first, since this runs on every load: CPython knows whether a string is ASCII,
    and encoding to Latin-1 (which holds the Scandinavian letters) fails fast on anything else.
    """
    if text.isascii():
        return set()
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        return set()
    candidates = set(_MAYBE_NOT_ONE_CELL.findall(text))
    return {c for c in candidates if c != "\n" and cell_width(c) != 1}


def format_time(seconds: float, with_hours: bool) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if with_hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes + 60 * hours:02d}:{secs:02d}"


def _fit_label(label: str, cells: int) -> str:
    """The label cut to `cells` cells (with an ellipsis when cut), padded on the right."""
    used, kept = 0, []
    for character in label:
        size = cell_width(character)
        if used + size > cells:
            while kept and used + 1 > cells:
                used -= cell_width(kept.pop())
            kept.append(ELLIPSIS)
            used += 1
            break
        kept.append(character)
        used += size
    return "".join(kept) + " " * (cells - used)


@dataclass(frozen=True)
class HeaderPart:
    """One field of a turn's header column, already padded to its width."""

    kind: str  # "number" | "time" | "mark" | "label" | "space"
    text: str


@dataclass(frozen=True)
class LineInfo:
    turn_index: int
    line_in_turn: int
    start: int  # first transcript offset the line owns
    end: int  # one past the last; the next line of the turn starts here


class LayoutSource:
    """A transcript prepared for wrapping: checked turns, width classes, header sizes, motions."""

    def __init__(self, text: str, turns: Sequence[TurnInfo], label_of: Callable[[TurnInfo], str] | None = None) -> None:
        self.text = text
        # What the header column calls each speaker (the workbench shows roles; default: the label as imported).
        self.label_of: Callable[[TurnInfo], str] = label_of or attrgetter("speaker_label")
        self.turns: tuple[TurnInfo, ...] = tuple(turns)
        self.starts: list[int] = list(map(attrgetter("char_start"), self.turns))
        self.ends: list[int] = list(map(attrgetter("char_end"), self.turns))
        self._check_turns()
        self.simple: list[bool] = self._find_simple_turns()
        self._size_header()

    def _check_turns(self) -> None:
        length = len(self.text)
        previous_end = 0
        for turn, start, end in zip(self.turns, self.starts, self.ends):
            if not 0 <= start <= end <= length:
                raise ValueError(
                    f"turn {turn.number}: characters {start}..{end} are outside the transcript text (0..{length})"
                )
            if start < previous_end:
                raise ValueError(
                    f"turn {turn.number}: starts at character {start}, before the previous turn ends "
                    f"({previous_end}); turns must be in text order and must not overlap"
                )
            previous_end = end

    def _find_simple_turns(self) -> list[bool]:
        """Per turn: is every character one cell wide (so cells == characters)?"""
        odd = sorted(_odd_characters(self.text))
        if not odd:
            return [True] * len(self.turns)
        pattern = re.compile("[" + "".join(re.escape(c) for c in odd) + "]")
        return [pattern.search(self.text, start, end) is None for start, end in zip(self.starts, self.ends)]

    def _size_header(self) -> None:
        turns = self.turns
        numbers = list(map(attrgetter("number"), turns)) or [0]
        self.number_width = max(len(str(max(numbers))), len(str(min(numbers))))
        times = [time for time in map(attrgetter("start_time"), turns) if time is not None]
        self.with_hours = bool(times) and max(times) >= 3600
        self.time_width = (8 if self.with_hours else 5) if times else 0
        self.mark_width = 2 if any(map(attrgetter("replayed"), turns)) else 0
        labels = set(map(self.label_of, turns))
        widest = max((sum(cell_width(c) for c in label) for label in labels), default=1)
        self.label_width = max(1, min(LABEL_MAX_CELLS, widest))

    @property
    def header_width(self) -> int:
        """Cells of the header column, including the blank after each field."""
        width = self.number_width + 1 + self.label_width + 1 + self.mark_width
        if self.time_width:
            width += self.time_width + 1
        return width

    def header(self, turn_index: int) -> list[HeaderPart]:
        turn = self.turns[turn_index]
        parts = [HeaderPart("number", str(turn.number).rjust(self.number_width)), HeaderPart("space", " ")]
        if self.time_width:
            shown = "" if turn.start_time is None else format_time(turn.start_time, self.with_hours)
            parts += [HeaderPart("time", shown.rjust(self.time_width)), HeaderPart("space", " ")]
        if self.mark_width:
            parts.append(HeaderPart("mark", (VIDEO_MARK if turn.replayed else " ").ljust(self.mark_width)))
        parts += [HeaderPart("label", _fit_label(self.label_of(turn), self.label_width)), HeaderPart("space", " ")]
        return parts

    def cells(self, start: int, end: int, turn_index: int | None = None) -> int:
        """Screen cells taken by text[start:end] (line breaks count as nothing)."""
        if turn_index is not None and self.simple[turn_index]:
            return end - start
        return sum(cell_width(c) for c in self.text[start:end] if c != "\n")

    # --- positions -------------------------------------------------------------------------

    def turn_at(self, offset: int) -> int:
        """Index of the turn an offset belongs to: the last turn starting at or before it."""
        if not self.turns:
            raise ValueError("the transcript has no turns")
        return max(0, bisect_right(self.starts, offset) - 1)

    def clamp(self, offset: int) -> int:
        """The nearest cursor position: text between turns belongs to the turn it introduces."""
        index = self.turn_at(offset)
        if offset < self.starts[index]:
            return self.starts[index]
        if offset <= self.ends[index]:
            return offset
        if index + 1 < len(self.turns):
            return self.starts[index + 1]
        return self.ends[index]

    @property
    def first_position(self) -> int:
        return self.starts[0]

    @property
    def last_position(self) -> int:
        return self.ends[-1]

    # --- motions: each takes and returns a cursor position --------------------------------------

    def char_right(self, offset: int) -> int:
        index = self.turn_at(offset)
        if offset < self.ends[index]:
            return offset + 1
        return self.starts[index + 1] if index + 1 < len(self.turns) else offset

    def char_left(self, offset: int) -> int:
        index = self.turn_at(offset)
        if offset > self.starts[index]:
            return offset - 1
        return self.ends[index - 1] if index > 0 else offset

    def turn_next_start(self, offset: int) -> int:
        index = self.turn_at(offset)
        return self.starts[index + 1] if index + 1 < len(self.turns) else self.ends[index]

    def turn_next_end(self, offset: int) -> int:
        index = self.turn_at(offset)
        if offset < self.ends[index]:
            return self.ends[index]
        return self.ends[index + 1] if index + 1 < len(self.turns) else offset

    def turn_prev_start(self, offset: int) -> int:
        index = self.turn_at(offset)
        if offset > self.starts[index]:
            return self.starts[index]
        return self.starts[index - 1] if index > 0 else offset

    def _stops(self, pattern: re.Pattern[str], index: int, use_end: bool) -> list[int]:
        start, end = self.starts[index], self.ends[index]
        return [m.end() if use_end else m.start() for m in pattern.finditer(self.text, start, end)]

    def _sentence_starts(self, index: int) -> list[int]:
        start, end = self.starts[index], self.ends[index]
        found = [start]
        found += [m.end() for m in _SENTENCE_BREAK.finditer(self.text, start, end) if m.end() < end]
        return found

    def _sentence_ends(self, index: int) -> list[int]:
        start, end = self.starts[index], self.ends[index]
        found = [m.start(1) for m in _SENTENCE_BREAK.finditer(self.text, start, end)]
        return [*(p for p in found if p < end), end]

    def _next_start(self, offset: int, stops_of) -> int:
        """First stop after `offset` in its turn, else the first stop (or start) of the next turn."""
        index = self.turn_at(offset)
        for stop in stops_of(index):
            if stop > offset:
                return stop
        if index + 1 < len(self.turns):
            following = stops_of(index + 1)
            return following[0] if following else self.starts[index + 1]
        return self.ends[index]

    def _next_end(self, offset: int, stops_of) -> int:
        """First stop after `offset` up to its turn's end, else the first stop of the next turn."""
        index = self.turn_at(offset)
        for stop in stops_of(index):
            if stop > offset:
                return stop
        if offset < self.ends[index]:
            return self.ends[index]
        if index + 1 < len(self.turns):
            following = stops_of(index + 1)
            return following[0] if following else self.ends[index + 1]
        return offset

    def _prev_start(self, offset: int, stops_of) -> int:
        """Last stop before `offset` in its turn (or the turn's start), else the previous turn's last."""
        index = self.turn_at(offset)
        earlier = [stop for stop in stops_of(index) if stop < offset]
        if earlier:
            return earlier[-1]
        if offset > self.starts[index]:
            return self.starts[index]
        if index > 0:
            previous = stops_of(index - 1)
            return previous[-1] if previous else self.starts[index - 1]
        return offset

    def word_next_start(self, offset: int) -> int:
        return self._next_start(offset, lambda i: self._stops(_WORD_START, i, use_end=False))

    def word_next_end(self, offset: int) -> int:
        return self._next_end(offset, lambda i: self._stops(_WORD_END, i, use_end=True))

    def word_prev_start(self, offset: int) -> int:
        return self._prev_start(offset, lambda i: self._stops(_WORD_START, i, use_end=False))

    def sentence_next_start(self, offset: int) -> int:
        return self._next_start(offset, self._sentence_starts)

    def sentence_next_end(self, offset: int) -> int:
        return self._next_end(offset, self._sentence_ends)

    def sentence_prev_start(self, offset: int) -> int:
        return self._prev_start(offset, self._sentence_starts)


class TranscriptLayout:
    """The source wrapped at one width, with O(log n) lookups between lines and offsets.

    Columns are virtual: x counts from the left edge of the widget's content, gutter included.
    """

    def __init__(self, source: LayoutSource, width: int, gutter_width: int = 0) -> None:
        self.source = source
        self.gutter_width = gutter_width
        self.text_x = gutter_width + source.header_width
        # One column stays free on the right so a cursor after a full line's last character shows.
        self.text_width = max(MIN_TEXT_WIDTH, width - self.text_x - 1)
        self.width = max(width, self.text_x + self.text_width + 1)
        self.line_starts: list[int] = []
        self.line_ends: list[int] = []
        self.turn_first_line: list[int] = []
        self._wrap_all()

    def _wrap_all(self) -> None:
        source, text, limit = self.source, self.source.text, self.text_width
        starts, ends, firsts = self.line_starts, self.line_ends, self.turn_first_line
        add_start, add_end, add_first = starts.append, ends.append, firsts.append
        simple = source.simple
        for index, (start, end) in enumerate(zip(source.starts, source.ends)):
            add_first(len(starts))
            if end - start <= limit and simple[index] and text.find("\n", start, end) == -1:
                add_start(start)  # the common case: a turn that fits on one line
                add_end(end)
                continue
            if not simple[index]:
                for line_start, line_end in self._wrap_measured(start, end):
                    add_start(line_start)
                    add_end(line_end)
                continue
            position = start
            while True:
                newline = text.find("\n", position, end)
                stop = end if newline == -1 else newline
                while stop - position > limit:
                    brk = text.rfind(" ", position + 1, position + limit + 1)
                    if brk == -1:  # one word longer than the line: cut it
                        add_start(position)
                        add_end(position + limit)
                        position += limit
                    else:
                        add_start(position)
                        add_end(brk + 1)
                        position = brk + 1
                add_start(position)
                if newline == -1:
                    add_end(end)
                    break
                add_end(newline + 1)
                position = newline + 1
                if position == end:  # a turn ending in a line break gets its empty last line
                    add_start(end)
                    add_end(end)
                    break
        add_first(len(starts))

    def _wrap_measured(self, start: int, end: int) -> Iterable[tuple[int, int]]:
        """The same greedy wrap, counting cells per character (wide and zero-width text)."""
        text, limit = self.source.text, self.text_width
        position = start
        while True:
            newline = text.find("\n", position, end)
            stop = end if newline == -1 else newline
            while True:
                used, cut = 0, position
                while cut < stop:
                    size = cell_width(text[cut])
                    if used + size > limit:
                        break
                    used += size
                    cut += 1
                if cut >= stop:
                    break
                if cut == position:  # a character wider than the whole line still gets one
                    cut += 1
                while cut < stop and cell_width(text[cut]) == 0:  # keep accents with their letter
                    cut += 1
                brk = text.rfind(" ", position + 1, cut + 1)
                if brk == -1:
                    yield position, cut
                    position = cut
                else:
                    yield position, brk + 1
                    position = brk + 1
            if newline == -1:
                yield position, end
                return
            yield position, newline + 1
            position = newline + 1
            if position == end:
                yield end, end
                return

    # --- sizes ---------------------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def turn_lines(self, turn_index: int) -> range:
        return range(self.turn_first_line[turn_index], self.turn_first_line[turn_index + 1])

    # --- y -> text -----------------------------------------------------------------------------

    def turn_of_line(self, y: int) -> int:
        return bisect_right(self.turn_first_line, y) - 1

    def line(self, y: int) -> LineInfo:
        if not 0 <= y < self.line_count:
            raise IndexError(f"line {y} is outside the layout (0..{self.line_count - 1})")
        turn_index = self.turn_of_line(y)
        return LineInfo(turn_index, y - self.turn_first_line[turn_index], self.line_starts[y], self.line_ends[y])

    def shown_end(self, y: int) -> int:
        """End of the characters drawn on line y: a line break it owns is not drawn."""
        end = self.line_ends[y]
        if end > self.line_starts[y] and self.source.text[end - 1] == "\n":
            return end - 1
        return end

    # --- offsets <-> (y, x) -------------------------------------------------------------------

    def line_of(self, offset: int) -> int:
        """The line showing a cursor position (offsets between turns are clamped first)."""
        offset = self.source.clamp(offset)
        turn_index = self.source.turn_at(offset)
        first, after = self.turn_first_line[turn_index], self.turn_first_line[turn_index + 1]
        return max(first, bisect_right(self.line_starts, offset, first, after) - 1)

    def offset_to_yx(self, offset: int) -> tuple[int, int]:
        offset = self.source.clamp(offset)
        y = self.line_of(offset)
        turn_index = self.turn_of_line(y)
        return y, self.text_x + self.source.cells(self.line_starts[y], offset, turn_index)

    def yx_to_offset(self, y: int, x: int) -> int:
        """The cursor position drawn at (y, x); past a line's end gives its last position."""
        y = min(max(y, 0), self.line_count - 1)
        turn_index = self.turn_of_line(y)
        start, end = self.line_starts[y], self.line_ends[y]
        is_last = y + 1 == self.turn_first_line[turn_index + 1]
        # A wrapped line's last character is the space (or break) it was cut at: the cursor may sit
        # on it; the position after it is the next line's first.
        limit = end if is_last or end == start else end - 1
        column = x - self.text_x
        if column <= 0:
            return start
        if self.source.simple[turn_index]:
            return min(start + column, limit)
        text, used, position = self.source.text, 0, start
        while position < limit:
            size = 0 if text[position] == "\n" else cell_width(text[position])
            if used + size > column:
                break
            used += size
            position += 1
        return position

    def lines_between(self, start: int, end: int) -> range:
        """The lines showing any position from `start` to `end` (both included)."""
        if start > end:
            start, end = end, start
        return range(self.line_of(start), self.line_of(end) + 1)


class Span(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


SpanT = TypeVar("SpanT", bound=Span)


class SpanIndex(Generic[SpanT]):
    """Spans (codings) filed under every turn they touch, so a line asks only its own turn."""

    def __init__(self, spans: Iterable[SpanT], source: LayoutSource) -> None:
        self.spans: list[SpanT] = sorted(spans, key=lambda span: (span.start, span.end))
        self._by_turn: dict[int, list[SpanT]] = {}
        starts, ends = source.starts, source.ends
        for span in self.spans:
            first = bisect_right(ends, span.start)  # first turn ending after the span starts
            last = bisect_left(starts, span.end) - 1  # last turn starting before the span ends
            for index in range(first, last + 1):
                self._by_turn.setdefault(index, []).append(span)

    def in_turn(self, turn_index: int) -> list[SpanT]:
        return self._by_turn.get(turn_index, [])

    def overlapping(self, turn_index: int, start: int, end: int) -> list[SpanT]:
        """Spans sharing at least one character with [start, end) of one turn."""
        return [span for span in self._by_turn.get(turn_index, ()) if span.start < end and span.end > start]

    def at(self, turn_index: int, offset: int) -> list[SpanT]:
        return [span for span in self._by_turn.get(turn_index, ()) if span.start <= offset < span.end]
