"""Which session turn(s) each replayed turn of an IPR interview replays.

In an IPR interview the recording of the session is played back and stopped; the stretches played
are transcribed inside the interview ("replayed" turns). Linking each one to its place in the session
transcript lets a reader go from what the client said about a moment to the moment itself.

Two ways, in this order:

* by time, where the replayed turn has a time and the session turns have times: the session turn
  whose span (its start up to the next turn's start) holds the replayed turn's time;
* else by text: the session turn (or two or three consecutive turns, when the transcriber of the
  interview wrote them as one) whose words are most like the replayed turn's, at least
  MIN_SIMILARITY on rapidfuzz's ratio of the normalised texts. A replayed turn of MIN_PART_WORDS
  words or more may also be a part of its session turn (the interview's transcriber wrote down only
  what was played): it then needs MIN_PART_SIMILARITY on rapidfuzz's partial ratio, stricter, since
  a part is easier to find by chance. Replays run forward, so the search starts after the previous
  link and only falls back to the whole session.

A replayed turn that neither finds is reported, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

MIN_SIMILARITY = 80.0
MIN_PART_WORDS = 4
MIN_PART_SIMILARITY = 90.0
# A replayed turn may be a few seconds off the session's clock (a marker typed by hand).
TIME_TOLERANCE = 2.0
MAX_JOINED = 3
_WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NONVERBAL = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


@dataclass(frozen=True)
class LinkTurn:
    id: int
    number: int
    role: str
    text: str
    start: float | None


@dataclass(frozen=True)
class Link:
    interview_turn: int  # id
    session_turns: tuple[int, ...]  # ids, in session order
    method: str  # time | text
    score: float | None


@dataclass(frozen=True)
class LinkResult:
    links: tuple[Link, ...]
    unlinked: tuple[int, ...]  # numbers of the replayed turns no session turn was found for


def normalised(text: str) -> str:
    """Lower-case words without non-verbal notes and punctuation: what two transcribers agree on."""
    return " ".join(_WORDS.findall(_NONVERBAL.sub(" ", text).casefold()))


def link_replayed(replayed: Sequence[LinkTurn], session: Sequence[LinkTurn]) -> LinkResult:
    session = sorted(session, key=lambda t: t.number)
    timed = [t for t in session if t.start is not None]
    texts = [normalised(t.text) for t in session]
    links: list[Link] = []
    unlinked: list[int] = []
    after = 0  # where in the session the next replayed turn is looked for first
    for turn in replayed:
        found = _by_time(turn, timed) if turn.start is not None and timed else None
        if found is not None:
            links.append(Link(turn.id, (found.id,), "time", None))
            after = session.index(found) + 1
            continue
        target = normalised(turn.text)
        if not target:
            unlinked.append(turn.number)
            continue
        roles = [t.role == turn.role for t in session]
        best = _by_text(target, texts, roles, after, len(session)) or _by_text(target, texts, roles, 0, len(session))
        if best is None:
            unlinked.append(turn.number)
            continue
        start, length, score = best
        links.append(Link(turn.id, tuple(t.id for t in session[start : start + length]), "text", round(score, 1)))
        after = start + length
    return LinkResult(tuple(links), tuple(unlinked))


def _by_time(turn: LinkTurn, timed: Sequence[LinkTurn]) -> LinkTurn | None:
    assert turn.start is not None
    if turn.start + TIME_TOLERANCE < timed[0].start:  # type: ignore[operator]
        return None
    chosen = None
    for candidate in timed:
        if candidate.start <= turn.start + TIME_TOLERANCE:  # type: ignore[operator]
            chosen = candidate
        else:
            break
    return chosen


def _by_text(
    target: str, texts: Sequence[str], same_role: Sequence[bool], begin: int, end: int
) -> tuple[int, int, float] | None:
    """(first session turn, how many, similarity) of the best match at or above MIN_SIMILARITY; the first
    turn matched is the replayed speaker's, so a short "Um-hm." is not found in the other's mouth."""
    best: tuple[int, int, float] | None = None
    part_allowed = len(target.split()) >= MIN_PART_WORDS
    for start in range(begin, end):
        if not same_role[start]:
            continue
        joined = ""
        for length in range(1, MAX_JOINED + 1):
            if start + length > end:
                break
            joined = f"{joined} {texts[start + length - 1]}".strip()
            if not joined:
                continue
            # Joined text much longer than the target cannot get better by joining more.
            score = fuzz.ratio(target, joined)
            if score < MIN_SIMILARITY and part_allowed and len(joined) > len(target):
                part = fuzz.partial_ratio(target, joined)
                # Counted a little below a whole match, so a whole turn elsewhere wins over a part.
                score = part - 1 if part >= MIN_PART_SIMILARITY else score
            if score >= MIN_SIMILARITY and (best is None or score > best[2]):
                best = (start, length, score)
            if len(joined) > 1.5 * len(target):
                break
    return best
