"""Code queries: find the turns (or coded stretches) where codes meet a condition.

The language
------------

::

    query    := either
    either   := both ( OR both )*
    both     := negated ( AND negated )*
    negated  := NOT negated | sequence
    sequence := atom ( FOLLOWED BY atom [ WITHIN n [TURNS] ] )*
    atom     := CODE | ( query )

* A CODE is one or more plain words (``stagnation``, ``focus on other people``) or a quoted text
  (``"Therapeutic direction > Moving forward"``, ``'not and'``) for a path, or a name holding a
  keyword or a parenthesis. It names a code by its name, its label or its path; a theme or
  sub-theme stands for itself and every code below it.
* The keywords are upper case (AND, OR, NOT, FOLLOWED BY, WITHIN, TURNS): lower-case "and" or
  "not" is part of a code's name.
* FOLLOWED BY binds tightest, then NOT, then AND, then OR; parentheses group (``NOT A FOLLOWED BY
  B`` is NOT (A FOLLOWED BY B)).
* ``A FOLLOWED BY B WITHIN n``: A, and B in one of the n turns after A's turn (never in A's own
  turn). Without WITHIN, n is 1: the next turn.

What a hit is (the unit, ``within``)
------------------------------------

* ``"turn"``: a turn. A code holds in a turn when one of its codings touches the turn.
* ``"overlap"``: a stretch of text. A code holds on the characters its codings cover; AND is the
  text both cover, NOT the text the code does not cover. Adjacent characters make one hit.
* ``n`` (a number of turns): a turn, where a code holds when it is coded in that turn or within n
  turns before or after it. ``exploring AND NOT stagnation`` with 3: turns with exploring and no
  stagnation three turns either side.

In every rule a hit must hold one of the codes the query names outside a NOT (its anchor): ``A OR
NOT B`` finds turns of A (and no turn with neither code), and a query of NOT alone is refused. The
operands of FOLLOWED BY are taken turn by turn (never widened by n). A speaker keeps only hits in
that speaker's turns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

import numpy as np
import pandas as pd

from concord.analysis.cooccurrence import (
    OVERLAP,
    SHIFT,
    TURN,
    TurnGrid,
    _ranges,
    coding_turn_ranges,
    parse_within,
    sorted_unique,
)

KEYWORDS = ("AND", "OR", "NOT", "FOLLOWED", "BY", "WITHIN", "TURNS", "TURN")
DEFAULT_FOLLOW = 1


class QuerySyntaxError(ValueError):
    """A query that cannot be read: where (0-based ``position``) and what is wrong."""

    def __init__(self, query: str, position: int, message: str):
        self.query, self.position, self.message = query, position, message
        super().__init__(pointed(query, position, message))


def pointed(query: str, position: int, message: str) -> str:
    """The message, then the query with a caret under ``position`` (one line each)."""
    shown = query.replace("\n", " ").replace("\t", " ")
    return f"query, column {position + 1}: {message}\n  {shown}\n  {' ' * position}^"


# -- the tree ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    name: str
    position: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class FollowedBy:
    left: Node
    right: Node
    within: int


# A query's tree: a code, or an operator over smaller trees.
Node: TypeAlias = Code | Not | And | Or | FollowedBy


def codes_in(node: Node) -> list[Code]:
    """Every code named in the query, in order."""
    if isinstance(node, Code):
        return [node]
    if isinstance(node, Not):
        return codes_in(node.operand)
    return codes_in(node.left) + codes_in(node.right)


def anchors(node: Node, negated: bool = False) -> list[Code]:
    """The codes named outside NOT (under an even number of them)."""
    if isinstance(node, Code):
        return [] if negated else [node]
    if isinstance(node, Not):
        return anchors(node.operand, not negated)
    return anchors(node.left, negated) + anchors(node.right, negated)


def render(node: Node) -> str:
    """The query written back in its plainest form (for titles and saved queries)."""
    if isinstance(node, Code):
        plain = all(w and w not in KEYWORDS for w in node.name.split(" ")) and not any(
            ch in node.name for ch in "()\"'"
        )
        return node.name if plain else '"' + node.name.replace('"', "'") + '"'
    if isinstance(node, Not):
        return f"NOT {_group(node.operand, Not)}"
    if isinstance(node, FollowedBy):
        tail = f" WITHIN {node.within}" if node.within != DEFAULT_FOLLOW else ""
        return f"{_group(node.left, FollowedBy)} FOLLOWED BY {_group(node.right, FollowedBy)}{tail}"
    word = "AND" if isinstance(node, And) else "OR"
    return f"{_group(node.left, type(node))} {word} {_group(node.right, type(node))}"


_BINDING: dict[type, int] = {Or: 0, And: 1, Not: 2, FollowedBy: 3, Code: 4}


def _group(node: Node, parent: type) -> str:
    text = render(node)
    tighter = _BINDING[type(node)] > _BINDING[parent] or (type(node) is parent and parent in (And, Or))
    return text if tighter else f"({text})"


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, number, keyword, open, close, end
    text: str
    position: int


def tokens(query: str) -> list[Token]:
    found: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            found.append(Token("open" if ch == "(" else "close", ch, i))
            i += 1
        elif ch in "\"'":
            end = query.find(ch, i + 1)
            if end < 0:
                raise QuerySyntaxError(query, i, f"this {ch} is never closed")
            name = " ".join(query[i + 1 : end].split())
            if not name:
                raise QuerySyntaxError(query, i, "an empty code name")
            found.append(Token("quoted", name, i))
            i = end + 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in "()\"'":
                j += 1
            word = query[i:j]
            kind = "keyword" if word in KEYWORDS else "number" if word.isdigit() else "word"
            found.append(Token(kind, word, i))
            i = j
    found.append(Token("end", "", n))
    return found


class _Reader:
    def __init__(self, query: str):
        self.query = query
        self.tokens = tokens(query)
        self.at = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        raise QuerySyntaxError(self.query, (token or self.token).position, message)

    def take(self, kind: str, text: str | None = None) -> Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.at += 1
            return token
        return None

    def either(self) -> Node:
        node = self.both()
        while self.take("keyword", "OR"):
            node = Or(node, self.both())
        return node

    def both(self) -> Node:
        node = self.negated()
        while self.take("keyword", "AND"):
            node = And(node, self.negated())
        return node

    def negated(self) -> Node:
        if self.take("keyword", "NOT"):
            return Not(self.negated())
        return self.sequence()

    def sequence(self) -> Node:
        node = self.atom()
        while True:
            followed = self.take("keyword", "FOLLOWED")
            if not followed:
                return node
            if not self.take("keyword", "BY"):
                self.fail("FOLLOWED must be followed by BY")
            right = self.atom()
            within = DEFAULT_FOLLOW
            if self.take("keyword", "WITHIN"):
                number = self.take("number")
                if number is None:
                    self.fail("WITHIN takes a number of turns, such as WITHIN 3")
                within = int(number.text)
                if within < 1:
                    self.fail("WITHIN takes 1 or more turns", number)
                self.take("keyword", "TURNS") or self.take("keyword", "TURN")
            node = FollowedBy(node, right, within)

    def atom(self) -> Node:
        token = self.token
        if self.take("open"):
            node = self.either()
            if not self.take("close"):
                self.fail(f"expected ) to close the ( at column {token.position + 1}")
            return node
        if self.take("quoted"):
            return Code(token.text, token.position)
        if token.kind in ("word", "number"):
            words: list[str] = []
            while self.token.kind in ("word", "number"):
                words.append(self.token.text)
                self.at += 1
            return Code(" ".join(words), token.position)
        if token.kind == "end":
            self.fail("the query ends where a code was expected")
        if token.kind == "close":
            self.fail("a ) with no ( before it" if self._depth() == 0 else "expected a code before )")
        self.fail(f"expected a code, found {token.text}")

    def _depth(self) -> int:
        depth = 0
        for token in self.tokens[: self.at]:
            depth += token.kind == "open"
            depth -= token.kind == "close"
        return depth


def parse(query: str) -> Node:
    """The query's tree; QuerySyntaxError (with the position) if it cannot be read."""
    if not query.strip():
        raise QuerySyntaxError(query, 0, "the query is empty")
    reader = _Reader(query)
    node = reader.either()
    token = reader.token
    if token.kind != "end":
        if token.kind == "close":
            reader.fail("a ) with no ( before it")
        reader.fail(f"expected AND, OR or FOLLOWED BY before {token.text or 'this'}")
    if not anchors(node):
        raise QuerySyntaxError(query, 0, "the query names no code outside NOT: say which code the hits must hold")
    return node


# -- evaluating ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hits:
    """One row per hit, in transcript and text order: transcript_id, turn_id (the turn it lies in) and the
    characters it spans (start, end): in a turn, from the first to the last character its anchor codings
    cover there; for "overlap", the stretch of text."""

    frame: pd.DataFrame  # transcript_id, turn_id, start, end
    units: int  # units searched (turns or stretches of text)


class _Grid:
    """The units a query is evaluated on, and the turn each lies in."""

    def __init__(self, turns: pd.DataFrame, codings: pd.DataFrame, within: str | int):
        self.within = within
        self.turns = TurnGrid.of(turns)
        ordered = turns.set_index("turn_id").loc[self.turns.turn_id]
        self.turn_start = ordered["char_start"].to_numpy(np.int64)
        self.turn_end = ordered["char_end"].to_numpy(np.int64)
        self.codings = codings
        self.piece_keys: np.ndarray  # only for overlap: the boundaries of the pieces of text
        self.unit_piece: np.ndarray
        self.unit_turn: np.ndarray
        self.unit_start: np.ndarray
        self.unit_end: np.ndarray
        if within == OVERLAP:
            tid = self.turns.transcript_id
            cut = [tid * SHIFT + self.turn_start, tid * SHIFT + self.turn_end]
            c_tid = codings["transcript_id"].to_numpy(np.int64) * SHIFT
            cut += [c_tid + codings["start"].to_numpy(np.int64), c_tid + codings["end"].to_numpy(np.int64)]
            keys = sorted_unique(np.concatenate(cut))
            piece_start, piece_end = keys[:-1], keys[1:]
            # A piece belongs to the turn that starts at or before it, if it ends within that turn.
            turn_keys = tid * SHIFT + self.turn_start
            owner = np.searchsorted(turn_keys, piece_start, side="right") - 1
            inside = owner >= 0
            inside[inside] &= piece_end[inside] <= tid[owner[inside]] * SHIFT + self.turn_end[owner[inside]]
            self.piece_keys = keys
            self.unit_turn = owner[inside]
            self.unit_start = piece_start[inside] - tid[self.unit_turn] * SHIFT
            self.unit_end = piece_end[inside] - tid[self.unit_turn] * SHIFT
            self.unit_piece = np.flatnonzero(inside)
        else:
            self.unit_turn = np.arange(len(self.turns), dtype=np.int64)
            self.unit_start, self.unit_end = self.turn_start, self.turn_end
        self.size = len(self.unit_turn)

    def here(self, code_ids: frozenset[int]) -> np.ndarray:
        """Per unit: whether a coding of one of the codes touches (covers, for overlap) it."""
        chosen = self.codings[self.codings["code_id"].isin(code_ids)]
        result = np.zeros(self.size, dtype=bool)
        if chosen.empty or not self.size:
            return result
        if self.within == OVERLAP:
            tid = chosen["transcript_id"].to_numpy(np.int64) * SHIFT
            lo = np.searchsorted(self.piece_keys, tid + chosen["start"].to_numpy(np.int64))
            hi = np.searchsorted(self.piece_keys, tid + chosen["end"].to_numpy(np.int64)) - 1
            covered = np.zeros(max(len(self.piece_keys) - 1, 0) + 1, dtype=np.int64)
            np.add.at(covered, lo, 1)
            np.add.at(covered, hi + 1, -1)
            # numpy's stubs type a comparison and an index as Any: the annotation says what comes back
            touched: np.ndarray = (np.cumsum(covered)[:-1] > 0)[self.unit_piece]
            return touched
        first, last = coding_turn_ranges(chosen, self._turn_frame(), self.turns)
        placed = first >= 0
        _, turn = _ranges(first[placed], last[placed])
        result[turn] = True
        return result

    def _turn_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "turn_id": self.turns.turn_id,
                "transcript_id": self.turns.transcript_id,
                "char_start": self.turn_start,
                "char_end": self.turn_end,
            }
        )

    def widen(self, values: np.ndarray, reach: int) -> np.ndarray:
        """Per turn: whether ``values`` holds in a turn at most ``reach`` turns away (same transcript)."""
        if reach <= 0 or not len(values):
            return values
        positions = np.arange(len(values))
        lo = np.maximum(positions - reach, self.turns.first)
        hi = np.minimum(positions + reach, self.turns.last)
        running = np.r_[0, np.cumsum(values.astype(np.int64))]
        near: np.ndarray = running[hi + 1] - running[lo] > 0
        return near

    def per_turn(self, values: np.ndarray) -> np.ndarray:
        result = np.zeros(len(self.turns), dtype=bool)
        result[self.unit_turn[values]] = True
        return result

    def followed(self, left: np.ndarray, right: np.ndarray, within: int) -> np.ndarray:
        """Per unit: ``left`` holds there and ``right`` holds in one of the ``within`` turns after its turn."""
        in_turn = self.per_turn(right).astype(np.int64)
        running = np.r_[0, np.cumsum(in_turn)]
        positions = np.arange(len(self.turns))
        lo = positions + 1
        hi = np.minimum(positions + within, self.turns.last)
        valid = lo <= hi
        after = np.zeros(len(positions), dtype=bool)
        after[valid] = running[hi[valid] + 1] - running[lo[valid]] > 0
        both: np.ndarray = left & after[self.unit_turn]
        return both


def evaluate(
    node: Node,
    code_ids: Mapping[str, frozenset[int]],
    codings: pd.DataFrame,
    turns: pd.DataFrame,
    within: str | int = TURN,
    *,
    keep_turn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Hits:
    """The hits of ``node`` over ``turns`` (turn_id, transcript_id, char_start, char_end). ``code_ids``
    maps each code name in the query to the codes it stands for (with those below it); ``keep_turn``
    takes the turn ids in grid order and says which may hold a hit (a speaker, a transcript attribute)."""
    within = parse_within(within)
    grid = _Grid(turns, codings, within)
    reach = within if isinstance(within, int) else 0
    here_cache: dict[str, np.ndarray] = {}

    def here(name: str) -> np.ndarray:
        if name not in here_cache:
            here_cache[name] = grid.here(code_ids[name])
        return here_cache[name]

    def value(current: Node, widened: bool) -> np.ndarray:
        if isinstance(current, Code):
            found = here(current.name)
            return grid.widen(found, reach) if widened and reach else found
        if isinstance(current, Not):
            return ~value(current.operand, widened)
        if isinstance(current, And):
            both: np.ndarray = value(current.left, widened) & value(current.right, widened)
            return both
        if isinstance(current, Or):
            either: np.ndarray = value(current.left, widened) | value(current.right, widened)
            return either
        return grid.followed(value(current.left, False), value(current.right, False), current.within)

    hit = value(node, True)
    anchor = np.zeros(grid.size, dtype=bool)
    for code in anchors(node):
        anchor |= here(code.name)
    hit &= anchor
    if keep_turn is not None and grid.size:
        hit &= keep_turn(grid.turns.turn_id)[grid.unit_turn]
    spans = None if within == OVERLAP else _anchor_spans(grid, codings, node, code_ids)
    return Hits(_stretches(grid, hit, spans), grid.size)


def _anchor_spans(
    grid: _Grid, codings: pd.DataFrame, node: Node, code_ids: Mapping[str, frozenset[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per turn, the stretch its anchor codings cover inside it (from the first coded character to the
    last), so a turn's hit shows the coded words rather than the whole turn; -1 where there is none."""
    wanted = frozenset().union(*(code_ids[code.name] for code in anchors(node)))
    chosen = codings[codings["code_id"].isin(wanted)]
    start = np.full(len(grid.turns), -1, dtype=np.int64)
    end = np.full(len(grid.turns), -1, dtype=np.int64)
    if chosen.empty:
        return start, end
    first, last = coding_turn_ranges(chosen, grid._turn_frame(), grid.turns)
    placed = first >= 0
    owner, turn = _ranges(first[placed], last[placed])
    a = np.maximum(chosen["start"].to_numpy(np.int64)[placed][owner], grid.turn_start[turn])
    b = np.minimum(chosen["end"].to_numpy(np.int64)[placed][owner], grid.turn_end[turn])
    lowest = pd.Series(a).groupby(turn).min()
    highest = pd.Series(b).groupby(turn).max()
    start[lowest.index.to_numpy()] = lowest.to_numpy()
    end[highest.index.to_numpy()] = highest.to_numpy()
    return start, end


def _stretches(grid: _Grid, hit: np.ndarray, spans: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    where = np.flatnonzero(hit)
    turn = grid.unit_turn[where]
    start, end = grid.unit_start[where], grid.unit_end[where]
    if spans is not None and len(where):
        # A hit turn holding an anchor coding shows the coded words; one near it (within N) the whole turn.
        coded = spans[0][turn] >= 0
        start = np.where(coded, spans[0][turn], start)
        end = np.where(coded, spans[1][turn], end)
    if grid.within == OVERLAP and len(where):
        # Adjacent pieces of one turn make one stretch of text.
        new = np.r_[True, (turn[1:] != turn[:-1]) | (start[1:] != end[:-1])]
        firsts = np.flatnonzero(new)
        lasts = np.r_[firsts[1:] - 1, len(where) - 1]
        turn, start, end = turn[firsts], start[firsts], end[lasts]
    return pd.DataFrame(
        {
            "transcript_id": grid.turns.transcript_id[turn],
            "turn_id": grid.turns.turn_id[turn],
            "start": start,
            "end": end,
        }
    )
