"""The plain result of parsing a transcript file: text, turns and attributes, no database."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SPEAKER_ROLES = ("therapist", "client", "interviewer", "other")

# A word is a run of letters or digits; inner apostrophes and hyphens keep "don't" and "um-hm" whole.
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# Timestamps typed inside an utterance are not spoken words.
_INLINE_TIMESTAMP = re.compile(r"[\[(]?\b\d{1,3}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?\b[\])]?")


@dataclass(frozen=True)
class ParsedTurn:
    number: int
    speaker_label: str
    speaker_role: str  # therapist | client | interviewer | other
    text_start: int  # char range of the spoken text in ParsedTranscript.text
    text_end: int
    start_time: float | None  # seconds
    end_time: float | None
    replayed: bool = False  # IPR: a stretch of the session video transcribed inside the interview
    nonverbal: tuple[tuple[int, int], ...] = ()  # ranges in ParsedTranscript.text
    source_line: int | None = None


@dataclass(frozen=True)
class DroppedValue:
    """An auxiliary value --lenient left empty: where it was and what it held, for the import report."""

    file: str
    line: int | None
    column: str  # the column or JSON key it came from ("start", "attribute 'group'", "timestamp")
    value: str
    reason: str

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.column} {self.value!r} left empty ({self.reason})"


@dataclass(frozen=True)
class Design:
    """Where a transcript sits in the study, when the file itself says so (a turn table's or JSON
    conversation's dyad, session, kind and perspective); None leaves it to the command line."""

    dyad: str | None = None
    session: int | None = None
    kind: str | None = None  # session | ipr
    perspective: str | None = None  # client | therapist (an IPR interview's)


@dataclass(frozen=True)
class ParsedTranscript:
    key: str
    source_name: str
    sha256: str | None
    encoding: str | None
    format: str
    text: str
    turns: tuple[ParsedTurn, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    blinded_attributes: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    dropped: tuple[DroppedValue, ...] = ()  # values --lenient left empty
    design: Design = field(default_factory=Design)

    def turn_text(self, turn: ParsedTurn) -> str:
        return self.text[turn.text_start : turn.text_end]

    def turn_word_count(self, turn: ParsedTurn) -> int:
        shifted = [(s - turn.text_start, e - turn.text_start) for s, e in turn.nonverbal]
        return word_count(self.turn_text(turn), shifted)

    def word_count(self) -> int:
        return sum(self.turn_word_count(turn) for turn in self.turns)


def word_count(text: str, nonverbal_ranges: Iterable[tuple[int, int]] = ()) -> int:
    """Spoken words in `text`, leaving out the non-verbal annotation ranges (indexes into `text`).

    Elisions such as /.../ contain no letters and so count as nothing; interjections such as
    um-hm are spoken and count as one word each.
    """
    pieces: list[str] = []
    position = 0
    for start, end in sorted(nonverbal_ranges):
        start = max(start, position)
        if start > position:
            pieces.append(text[position:start])
        position = max(position, end)
    pieces.append(text[position:])
    spoken = " ".join(pieces)
    spoken = _INLINE_TIMESTAMP.sub(" ", spoken)
    return len(_WORD.findall(spoken))
