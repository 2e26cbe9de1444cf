"""Units x coders rating matrices built from plain coding records, for the agreement statistics.

This module is numpy and plain Python only: it never talks to the database. The service layer hands it a
``Corpus`` (transcripts, their turns, the coders, the codes and every coding as columns of integers) and
gets back ``RatingTable``s whose ``ratings`` go straight into ``analysis.agreement_stats.compute``.

What a unit is (``UNIT_KINDS``):

- ``turn``: one speaker turn. A coder applied code X to turn t when any of their codings of X overlaps t
  (shares at least one character with it).
- ``span``: an aligned span. Spans of different coders are matched when they overlap by at least
  ``overlap`` (a share, 0 < overlap <= 1) of the shorter of the two. Matching is single-linkage (a span joins
  a unit when it overlaps one of the unit's spans enough), best overlaps first, and a unit holds at most one
  span per coder. A span nobody else matched is a unit of its own, so it counts as a disagreement.
- ``transcript``: the whole transcript; a coder applied X when they coded X anywhere in it.

Who rated what: a coder *rated* a transcript when the corpus says so (``Corpus.raters``): the service marks a
coder as a rater of every transcript they coded or marked done. A rater who did not apply a code to a unit
rated it "absent"; a coder who did not rate the transcript gives no rating (``MISSING``), which Krippendorff's
alpha handles and Fleiss' kappa refuses.

Two readings:

- presence (``presence_tables``): one table per code, categories ``present`` / ``absent``;
- group (``group_tables``): a theme or parent code whose children are mutually exclusive values becomes one
  categorical variable. A rater who applied none of the values rated the unit ``(none)``; one who applied
  several rated it their combination ("A + B"), a category of its own, so the conflict stays visible.

``uncoded`` says what happens to units no rater coded with any code under analysis: ``exclude`` drops them,
``category`` keeps them (rated ``absent`` / ``(none)`` by every rater). Span units are coded by definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from concord.analysis.agreement_stats import MISSING
from concord.storage.errors import InputError

UNIT_KINDS = ("turn", "span", "transcript")
UNCODED_CHOICES = ("exclude", "category")
PRESENT, ABSENT = "present", "absent"
NONE_LABEL = "(none)"
COMBINATION_SEPARATOR = " + "

# Offsets are packed with their transcript into one int64 key: transcript * _SHIFT + offset.
_SHIFT = np.int64(1) << np.int64(32)
_MAX_VALUES = 62


class UnitsError(InputError, ValueError):
    """The records cannot be turned into units (the message names the record and what is wrong)."""


# --------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class TurnRecord:
    transcript: str
    number: int
    start: int
    end: int
    speaker: str


@dataclass(frozen=True)
class CodingRecord:
    coder: str
    transcript: str
    code: str
    start: int
    end: int
    ident: int = -1
    value: float | None = None


@dataclass(frozen=True)
class Corpus:
    """Everything the builders need, as parallel integer columns.

    ``turn_*`` columns are sorted by transcript, then start; turns of one transcript must not overlap.
    ``coding_*`` columns index into ``coders``, ``transcripts`` and ``codes``; ``coding_ident`` carries the
    caller's own id for each coding (the database id) so units can be traced back to codings.
    ``raters[c, t]`` is True when coder c rated transcript t.
    """

    transcripts: tuple[str, ...]
    coders: tuple[str, ...]
    codes: tuple[str, ...]
    turn_transcript: np.ndarray
    turn_number: np.ndarray
    turn_start: np.ndarray
    turn_end: np.ndarray
    turn_speaker: np.ndarray
    coding_coder: np.ndarray
    coding_transcript: np.ndarray
    coding_code: np.ndarray
    coding_start: np.ndarray
    coding_end: np.ndarray
    coding_ident: np.ndarray
    raters: np.ndarray
    # The value each coding carries on its code's rating scale; nan where it carries none.
    coding_value: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    @property
    def n_codings(self) -> int:
        return int(self.coding_coder.size)

    @property
    def n_turns(self) -> int:
        return int(self.turn_start.size)


def _int_column(values: object, name: str) -> np.ndarray:
    column = np.asarray(values)
    if column.size == 0:
        return np.zeros(0, dtype=np.int64)
    if column.ndim != 1 or column.dtype.kind not in "iu":
        raise UnitsError(f"{name} must be a 1-D column of whole numbers, got {column.dtype} {column.shape}")
    return column.astype(np.int64, copy=False)


def make_corpus(
    transcripts: Sequence[str],
    coders: Sequence[str],
    codes: Sequence[str],
    *,
    turn_transcript: object,
    turn_number: object,
    turn_start: object,
    turn_end: object,
    turn_speaker: object,
    coding_coder: object,
    coding_transcript: object,
    coding_code: object,
    coding_start: object,
    coding_end: object,
    coding_ident: object | None = None,
    raters: object | None = None,
    coding_value: object | None = None,
) -> Corpus:
    """Check the columns and build a ``Corpus``; the fast path for callers that already hold arrays.

    Without ``raters`` a coder rated exactly the transcripts they coded. With ``raters`` (coders x
    transcripts booleans) the coders' own codings still make them raters of those transcripts.
    """
    n_transcripts, n_coders, n_codes = len(transcripts), len(coders), len(codes)
    if len(set(coders)) != n_coders:
        raise UnitsError("the coder names contain a duplicate")
    t_tr = _int_column(turn_transcript, "turn_transcript")
    t_no = _int_column(turn_number, "turn_number")
    t_s = _int_column(turn_start, "turn_start")
    t_e = _int_column(turn_end, "turn_end")
    t_sp = np.asarray(turn_speaker, dtype=object) if len(t_tr) else np.zeros(0, dtype=object)
    if not (t_tr.size == t_no.size == t_s.size == t_e.size == t_sp.size):
        raise UnitsError("the turn columns differ in length")
    c_co = _int_column(coding_coder, "coding_coder")
    c_tr = _int_column(coding_transcript, "coding_transcript")
    c_cd = _int_column(coding_code, "coding_code")
    c_s = _int_column(coding_start, "coding_start")
    c_e = _int_column(coding_end, "coding_end")
    c_id = np.arange(c_co.size, dtype=np.int64) if coding_ident is None else _int_column(coding_ident, "coding_ident")
    if coding_value is None:
        c_val = np.full(c_co.size, np.nan)
    else:
        try:
            c_val = np.asarray(coding_value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise UnitsError("coding_value must be a column of numbers (nan where a coding has no value)") from None
    if not (c_co.size == c_tr.size == c_cd.size == c_s.size == c_e.size == c_id.size == c_val.size):
        raise UnitsError("the coding columns differ in length")

    for column, limit, what in (
        (t_tr, n_transcripts, "turn transcript"),
        (c_tr, n_transcripts, "coding transcript"),
        (c_co, n_coders, "coding coder"),
        (c_cd, n_codes, "coding code"),
    ):
        # As unsigned numbers, negative indices are huge: one comparison checks both ends.
        if column.size and (column.view(np.uint64) >= limit).any():
            row = int(np.flatnonzero((column < 0) | (column >= limit))[0])
            raise UnitsError(f"{what} index {int(column[row])} at row {row} is outside 0..{limit - 1}")
    if t_s.size and (t_s.min() < 0 or (t_e < t_s).any()):
        row = int(np.flatnonzero((t_s < 0) | (t_e < t_s))[0])
        raise UnitsError(f"turn row {row}: range {int(t_s[row])}-{int(t_e[row])} is not a valid range")
    if c_s.size and ((c_s.view(np.uint64) >= c_e.view(np.uint64)).any() or c_e.max() >= _SHIFT):
        row = int(np.flatnonzero((c_s < 0) | (c_e <= c_s))[0])
        if (c_s[row] < c_e[row]) and c_s[row] >= 0:
            raise UnitsError(f"coding row {row}: offset {int(c_e[row])} is beyond {int(_SHIFT) - 1}")
        raise UnitsError(f"coding row {row}: span {int(c_s[row])}-{int(c_e[row])} is empty or negative")
    if t_e.size and t_e.max() >= _SHIFT:
        raise UnitsError(f"a turn offset is beyond {int(_SHIFT) - 1}")

    turn_key = t_tr * _SHIFT + t_s
    if t_tr.size and not (turn_key[1:] >= turn_key[:-1]).all():
        order = np.argsort(turn_key, kind="stable")
        t_tr, t_no, t_s, t_e, t_sp = t_tr[order], t_no[order], t_s[order], t_e[order], t_sp[order]
    same = t_tr[1:] == t_tr[:-1]
    overlapping = same & (t_s[1:] < t_e[:-1])
    if overlapping.any():
        row = int(np.flatnonzero(overlapping)[0])
        raise UnitsError(
            f"transcript {transcripts[int(t_tr[row])]!r}: turns {int(t_no[row])} ({int(t_s[row])}-{int(t_e[row])})"
            f" and {int(t_no[row + 1])} ({int(t_s[row + 1])}-{int(t_e[row + 1])}) overlap"
        )

    coded = (
        np.bincount(c_co * n_transcripts + c_tr, minlength=n_coders * n_transcripts).reshape(n_coders, n_transcripts)
        > 0
    )
    if raters is None:
        rated = coded
    else:
        rated = np.asarray(raters, dtype=bool)
        if rated.shape != (n_coders, n_transcripts):
            raise UnitsError(f"raters must be coders x transcripts {(n_coders, n_transcripts)}, got {rated.shape}")
        rated = rated | coded
    return Corpus(
        tuple(transcripts),
        tuple(coders),
        tuple(codes),
        t_tr,
        t_no,
        t_s,
        t_e,
        t_sp,
        c_co,
        c_tr,
        c_cd,
        c_s,
        c_e,
        c_id,
        rated,
        c_val,
    )


def corpus_from_records(
    turns: Iterable[TurnRecord],
    codings: Iterable[CodingRecord],
    *,
    transcripts: Sequence[str] | None = None,
    coders: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    raters: Iterable[tuple[str, str]] = (),
) -> Corpus:
    """Build a ``Corpus`` from plain records; names are looked up and unknown names are errors.

    Without ``transcripts``/``coders``/``codes`` they are the names that occur, in order of first
    appearance. ``raters`` adds (coder, transcript) pairs rated without a coding (a coder who read a
    transcript and found nothing to code).
    """
    turns, codings, raters = list(turns), list(codings), list(raters)

    def names(given: Sequence[str] | None, found: Iterable[str]) -> list[str]:
        if given is not None:
            return list(given)
        return list(dict.fromkeys(found))

    transcript_names = names(transcripts, [t.transcript for t in turns] + [c.transcript for c in codings])
    coder_names = names(coders, [c.coder for c in codings] + [coder for coder, _ in raters])
    code_names = names(codes, [c.code for c in codings])
    index = {
        "transcript": {name: i for i, name in enumerate(transcript_names)},
        "coder": {name: i for i, name in enumerate(coder_names)},
        "code": {name: i for i, name in enumerate(code_names)},
    }

    def look(kind: str, name: str, where: str) -> int:
        try:
            return index[kind][name]
        except KeyError:
            raise UnitsError(f"{where}: unknown {kind} {name!r}") from None

    rated = np.zeros((len(coder_names), len(transcript_names)), dtype=bool)
    for position, (coder, transcript) in enumerate(raters):
        rated[look("coder", coder, f"rater {position}"), look("transcript", transcript, f"rater {position}")] = True
    return make_corpus(
        transcript_names,
        coder_names,
        code_names,
        turn_transcript=[look("transcript", t.transcript, f"turn record {i}") for i, t in enumerate(turns)],
        turn_number=[t.number for t in turns],
        turn_start=[t.start for t in turns],
        turn_end=[t.end for t in turns],
        turn_speaker=[t.speaker for t in turns],
        coding_coder=[look("coder", c.coder, f"coding record {i}") for i, c in enumerate(codings)],
        coding_transcript=[look("transcript", c.transcript, f"coding record {i}") for i, c in enumerate(codings)],
        coding_code=[look("code", c.code, f"coding record {i}") for i, c in enumerate(codings)],
        coding_start=[c.start for c in codings],
        coding_end=[c.end for c in codings],
        coding_ident=[c.ident if c.ident >= 0 else i for i, c in enumerate(codings)],
        raters=rated,
        coding_value=[np.nan if c.value is None else c.value for c in codings],
    )


# ---------------------------------------------------------------------------------------- the tables


def disagreeing(ratings: np.ndarray) -> np.ndarray:
    """Mask of the unit columns with at least two ratings that are not all the same category."""
    if ratings.shape[1] == 0:
        return np.zeros(0, dtype=bool)
    if ratings.shape[0] == 2:
        first, second = ratings
        return (first != MISSING) & (second != MISSING) & (first != second)
    rated = ratings != MISSING
    # MISSING is below every category, so the highest rating needs no mask.
    high = ratings.max(axis=0)
    low = np.where(rated, ratings, np.iinfo(np.int64).max).min(axis=0)
    return (rated.sum(axis=0) >= 2) & (high != low)


@dataclass(frozen=True)
class RatingTable:
    """One variable (a code, a group, or several stacked) rated by every coder on every unit.

    ``ratings[c, u]`` indexes ``categories`` or is ``MISSING``. ``n_categories`` is the number of
    categories available (Brennan-Prediger's q): every value of the variable plus ``absent``/``(none)``
    plus the combinations observed. ``source_unit``/``source_coding`` pair every unit with the codings
    (``Corpus`` rows) behind its ratings; ``source_coder`` (derived on demand, through ``coding_coder``, the
    corpus column, and ``coder_row``, corpus coder -> table row) says whose rating each one made.
    """

    variable: str
    reading: str
    unit: str
    coders: tuple[str, ...]
    categories: tuple[str, ...]
    ratings: np.ndarray
    unit_transcript: np.ndarray
    unit_start: np.ndarray
    unit_end: np.ndarray
    unit_turn: np.ndarray
    source_unit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_coding: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coding_coder: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coder_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    variables: tuple[str, ...] = ()
    # True when stacked variables kept their own categories (then Brennan-Prediger's q means nothing).
    mixed_categories: bool = False
    # The category that stands for "no value given" ((none) of a group): a category of the design only
    # where some rater actually left a unit without a value.
    empty_label: str | None = None
    # Values on a scale: the number each category stands for, and the level of measurement.
    category_values: tuple[float, ...] = ()
    level: str = "nominal"
    # The speaker roles whose turns are the units (None: every speaker).
    speakers: tuple[str, ...] | None = None
    # Ratings left out because one coder gave one unit two different values.
    conflicts: int = 0

    @property
    def n_units(self) -> int:
        return int(self.ratings.shape[1])

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    def design_ratings(self, ratings: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The ratings over the categories of the design, and how many there are (Brennan-Prediger's q).

        A group's "(none)" is a category only where a rater gave it; when every rating names a value it is
        dropped (and the categories after it move down one), so q is the number of the group's codes.
        ``ratings``: the table's distinct unit columns instead of all of them (the same categories occur).
        """
        ratings = self.ratings if ratings is None else ratings
        if self.empty_label is None or self.empty_label not in self.categories:
            return ratings, self.n_categories
        empty = self.categories.index(self.empty_label)
        if (ratings == empty).any():
            return ratings, self.n_categories
        shifted = np.where(ratings > empty, ratings - 1, ratings)
        return shifted, self.n_categories - 1

    @property
    def source_coder(self) -> np.ndarray:
        return self.coder_row[self.coding_coder[self.source_coding]]

    def rated_per_unit(self) -> np.ndarray:
        return (self.ratings != MISSING).sum(axis=0)

    def disagreements(self) -> np.ndarray:
        """Mask of units with at least two ratings that are not all the same category."""
        return disagreeing(self.ratings)

    def select_units(self, keep: np.ndarray) -> RatingTable:
        """The same table restricted to the units where ``keep`` is True (sources follow)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return self
        new_index = np.cumsum(keep) - 1
        kept_sources = keep[self.source_unit] if self.source_unit.size else np.zeros(0, dtype=bool)
        return replace(
            self,
            ratings=self.ratings[:, keep],
            unit_transcript=self.unit_transcript[keep],
            unit_start=self.unit_start[keep],
            unit_end=self.unit_end[keep],
            unit_turn=self.unit_turn[keep],
            source_unit=new_index[self.source_unit[kept_sources]],
            source_coding=self.source_coding[kept_sources],
        )

    def select_coders(self, rows: Sequence[int]) -> RatingTable:
        """The same units rated by the given coders only (for coder pairs)."""
        rows = list(rows)
        position = np.full(len(self.coders), -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        coder_row = np.where(self.coder_row >= 0, position[self.coder_row], -1)
        kept = coder_row[self.coding_coder[self.source_coding]] >= 0
        return replace(
            self,
            coders=tuple(self.coders[r] for r in rows),
            ratings=self.ratings[rows],
            source_unit=self.source_unit[kept],
            source_coding=self.source_coding[kept],
            coder_row=coder_row,
        )

    def sources_of(self, unit: int, coder: int | None = None) -> np.ndarray:
        """Corpus rows of the codings behind one unit (optionally one coder's only)."""
        hit = self.source_unit == unit
        if coder is not None:
            hit &= self.source_coder == coder
        return np.unique(self.source_coding[hit])


def stack(tables: Sequence[RatingTable], variable: str) -> RatingTable:
    """Several variables' units side by side as one table (for pooled, per-transcript, per-pair scopes).

    Every (variable, unit) becomes one unit. Tables with the same categories keep them (presence tables
    all share present/absent); otherwise each table's categories stay distinct (``"group: label"``), since
    a value of one group can never agree with a value of another.
    """
    if not tables:
        raise UnitsError("nothing to stack")
    coders = tables[0].coders
    if any(t.coders != coders for t in tables):
        raise UnitsError("only tables rated by the same coders can be stacked")
    shared = all(t.categories == tables[0].categories for t in tables)
    if shared:
        categories = tables[0].categories
        parts = [t.ratings for t in tables]
    else:
        categories, parts, offset = [], [], 0
        for table in tables:
            categories += [f"{table.variable}: {label}" for label in table.categories]
            parts.append(np.where(table.ratings == MISSING, MISSING, table.ratings + offset))
            offset += table.n_categories
        categories = tuple(categories)
    offsets = np.cumsum([0] + [t.n_units for t in tables[:-1]])
    return RatingTable(
        variable=variable,
        reading=tables[0].reading,
        unit=tables[0].unit,
        coders=coders,
        categories=tuple(categories),
        ratings=np.concatenate(parts, axis=1) if parts else np.zeros((len(coders), 0), dtype=np.int64),
        unit_transcript=np.concatenate([t.unit_transcript for t in tables]),
        unit_start=np.concatenate([t.unit_start for t in tables]),
        unit_end=np.concatenate([t.unit_end for t in tables]),
        unit_turn=np.concatenate([t.unit_turn for t in tables]),
        source_unit=np.concatenate([t.source_unit + o for t, o in zip(tables, offsets)]),
        source_coding=np.concatenate([t.source_coding for t in tables]),
        coding_coder=tables[0].coding_coder,
        coder_row=tables[0].coder_row,
        variables=tuple(t.variable for t in tables),
        mixed_categories=not shared,
        empty_label=tables[0].empty_label if shared else None,
        speakers=tables[0].speakers if all(t.speakers == tables[0].speakers for t in tables) else None,
    )


# ------------------------------------------------------------------------------------- turn overlap


def turn_hits(corpus: Corpus, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every (coding row, turn row) pair where the coding overlaps the turn (``rows``: only these codings).

    Turns are sorted and disjoint within a transcript, so the turns a coding overlaps are one run: from the
    first turn ending after the coding starts to the last turn starting before it ends. One binary search
    finds the first; most codings end inside that turn, and only the others need a second search.
    """
    coding_rows, turn_rows, _ = _turn_hits(corpus, rows)
    return coding_rows, turn_rows


def _turn_hits(corpus: Corpus, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """``turn_hits``, and whether the pairs are exactly (coding i, its one turn) for every coding i."""
    if rows is not None and len(rows) == corpus.n_codings and _is_every_row(rows):
        rows = None
    all_rows = rows is None
    rows = np.arange(corpus.n_codings, dtype=np.int64) if all_rows else np.asarray(rows, dtype=np.int64)
    if rows.size == 0 or corpus.n_turns == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, False
    transcript = corpus.coding_transcript if all_rows else corpus.coding_transcript[rows]
    start = corpus.coding_start if all_rows else corpus.coding_start[rows]
    end = corpus.coding_end if all_rows else corpus.coding_end[rows]
    # Offsets keyed by transcript, so one sorted array serves all transcripts; a sentinel turn after the
    # last one starts and ends beyond every key.
    turn_end_key = corpus.turn_transcript * _SHIFT + corpus.turn_end
    beyond_all = np.iinfo(np.int64).max
    padded_start_key = np.r_[corpus.turn_transcript * _SHIFT + corpus.turn_start, beyond_all]
    padded_end_key = np.r_[turn_end_key, beyond_all]
    start_key = transcript * _SHIFT
    end_key = start_key + end
    start_key += start

    first = np.searchsorted(turn_end_key, start_key, side="right")
    # A turn of another transcript starts beyond end_key, so this also checks the transcript.
    reaches_first = padded_start_key[first] < end_key
    within_first = end_key <= padded_end_key[first]
    if (within_first & reaches_first).all():
        return rows, first, all_rows  # every coding lies within one turn: the common case, one search each
    # ``ending``: the first turn ending at or after the coding's end. For most codings that is ``first``.
    ending = first.copy()
    beyond = np.flatnonzero(~within_first)
    if beyond.size:
        ending[beyond] = np.searchsorted(turn_end_key, end_key[beyond] - 1, side="right")
    # The run ends at ``ending`` if that turn starts before the coding ends, otherwise one turn earlier.
    counts = ending - first + (padded_start_key[ending] < end_key)
    coding_rows = np.repeat(rows, counts)
    run_start = np.repeat(np.cumsum(counts) - counts, counts)
    turn_rows = np.repeat(first, counts) + (np.arange(int(counts.sum()), dtype=np.int64) - run_start)
    return coding_rows, turn_rows, False


def _is_every_row(rows: np.ndarray) -> bool:
    """Whether ``rows`` (as long as the coding columns) is 0, 1, 2, ... in order."""
    return rows.size == 0 or (rows[0] == 0 and rows[-1] == rows.size - 1 and bool((np.diff(rows) == 1).all()))


def speaker_rows(corpus: Corpus, speaker: str | Sequence[str] | None) -> np.ndarray:
    """Coding rows kept under a speaker filter: those overlapping at least one turn of those roles."""
    rows = np.arange(corpus.n_codings, dtype=np.int64)
    roles = roles_of(speaker)
    if roles is None:
        return rows
    coding_rows, turn_rows = turn_hits(corpus, rows)
    return np.unique(coding_rows[_spoken_by(corpus, roles)[turn_rows]])


# ----------------------------------------------------------------------------------- span alignment


def align_spans(
    coder: Sequence[int], start: Sequence[int], end: Sequence[int], overlap: float, *, one_per_coder: bool = True
) -> np.ndarray:
    """Group the spans of one transcript into units; returns a unit number per span.

    Two spans of different coders are candidates when their shared extent is at least ``overlap`` times the
    shorter span's length. Candidates are joined best overlap first (single linkage); with ``one_per_coder``
    two groups merge only when they hold no coder in common, so every unit has at most one span per coder.
    Without it (``one_per_coder=False``) spans of the same coder may share a unit and spans of one coder are
    candidates too. Units are numbered by their first start.
    """
    check_overlap(overlap)
    coder = np.asarray(coder, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    n = coder.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((end, start))
    candidates: list[tuple[float, int, int, int]] = []
    active: list[int] = []
    for i in order.tolist():
        s_i, e_i = int(start[i]), int(end[i])
        active = [j for j in active if int(end[j]) > s_i]
        for j in active:
            if one_per_coder and coder[j] == coder[i]:
                continue
            shared = min(e_i, int(end[j])) - max(s_i, int(start[j]))
            shorter = min(e_i - s_i, int(end[j]) - int(start[j]))
            if shared > 0 and shared >= overlap * shorter:
                candidates.append((-shared / shorter, -shared, j, i))
        active.append(i)
    candidates.sort()

    parent = list(range(n))
    members = [1 << int(c) for c in coder.tolist()]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, _, a, b in candidates:
        ra, rb = root(a), root(b)
        if ra == rb or (one_per_coder and members[ra] & members[rb]):
            continue
        parent[rb] = ra
        members[ra] |= members[rb]
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    first_start = {}
    for i in order.tolist():
        first_start.setdefault(int(roots[i]), len(first_start))
    return np.array([first_start[int(r)] for r in roots], dtype=np.int64)


def check_overlap(overlap: float) -> None:
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 < overlap <= 1.0:
        raise UnitsError(f"overlap must be a share above 0 and at most 1 (e.g. 0.5), got {overlap!r}")


# ------------------------------------------------------------------------------------ table building


@dataclass(frozen=True)
class _Units:
    """Unit metadata, and which coding rows hit which unit."""

    transcript: np.ndarray
    start: np.ndarray
    end: np.ndarray
    turn: np.ndarray
    hit_coding: np.ndarray
    hit_unit: np.ndarray

    # True when hit i is coding row i for every coding: columns then need no reordering.
    one_hit_per_coding: bool = False

    def coding_column(self, column: np.ndarray) -> np.ndarray:
        """A corpus coding column, one value per hit."""
        return column if self.one_hit_per_coding else column[self.hit_coding]


def _turn_units(corpus: Corpus, rows: np.ndarray | None) -> _Units:
    coding_rows, turn_rows, one_each = _turn_hits(corpus, rows)
    return _Units(
        corpus.turn_transcript, corpus.turn_start, corpus.turn_end, corpus.turn_number, coding_rows, turn_rows, one_each
    )


def _transcript_units(corpus: Corpus, rows: np.ndarray) -> _Units:
    """One unit per transcript, from offset 0 to the end of its last turn or coding."""
    n = len(corpus.transcripts)
    ends = np.zeros(n, dtype=np.int64)
    np.maximum.at(ends, corpus.turn_transcript, corpus.turn_end)
    np.maximum.at(ends, corpus.coding_transcript[rows], corpus.coding_end[rows])
    return _Units(
        np.arange(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        ends,
        np.full(n, -1, dtype=np.int64),
        rows,
        corpus.coding_transcript[rows],
    )


def _span_units(corpus: Corpus, rows: np.ndarray, overlap: float) -> _Units:
    transcripts, starts, ends, hit_coding, hit_unit = [], [], [], [], []
    order = rows[np.lexsort((corpus.coding_start[rows], corpus.coding_transcript[rows]))] if rows.size else rows
    if order.size:
        boundaries = np.flatnonzero(np.diff(corpus.coding_transcript[order])) + 1
        for group in np.split(order, boundaries):
            labels = align_spans(
                corpus.coding_coder[group], corpus.coding_start[group], corpus.coding_end[group], overlap
            )
            offset = len(starts)
            n_units = int(labels.max()) + 1
            unit_start = np.full(n_units, np.iinfo(np.int64).max)
            unit_end = np.zeros(n_units, dtype=np.int64)
            np.minimum.at(unit_start, labels, corpus.coding_start[group])
            np.maximum.at(unit_end, labels, corpus.coding_end[group])
            transcripts += [int(corpus.coding_transcript[group[0]])] * n_units
            starts += unit_start.tolist()
            ends += unit_end.tolist()
            hit_coding.append(group)
            hit_unit.append(labels + offset)
    as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return _Units(
        as_array(transcripts),
        as_array(starts),
        as_array(ends),
        np.full(len(starts), -1, dtype=np.int64),
        np.concatenate(hit_coding) if hit_coding else as_array([]),
        np.concatenate(hit_unit) if hit_unit else as_array([]),
    )


def _units_for(corpus: Corpus, unit: str, rows: np.ndarray | None, overlap: float) -> _Units:
    """The units of one kind, and which of the given coding rows (None: all) hit which."""
    if unit == "turn":
        return _turn_units(corpus, rows)
    if rows is None:
        rows = np.arange(corpus.n_codings, dtype=np.int64)
    if unit == "transcript":
        return _transcript_units(corpus, rows)
    if unit == "span":
        return _span_units(corpus, rows, overlap)
    raise UnitsError(f"unknown unit {unit!r}; choose one of {', '.join(UNIT_KINDS)}")


def _categories_of(
    corpus: Corpus,
    units: _Units,
    value_of_coding: np.ndarray,
    value_names: Sequence[str],
    empty_label: str,
    every_hit_has_a_value: bool = False,
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """coders x units ratings: each value, then the empty label, then observed combinations, or ``MISSING``
    where the coder did not rate the unit's transcript; and which hits carry a value of this variable (None:
    all of them).

    A cell most often holds one coding, whose value is the category; where several codings meet, their
    values are combined as bits and each distinct combination becomes a category of its own. A coding always
    lands in a rated cell: coding a transcript makes its coder a rater of it.
    """
    n_coders, n_units, n_values = len(corpus.coders), units.transcript.size, len(value_names)
    values = units.coding_column(value_of_coding)
    cells = units.coding_column(corpus.coding_coder) * n_units
    cells += units.hit_unit
    useful = None if every_hit_has_a_value else values >= 0
    if useful is not None and useful.all():
        useful = None
    if useful is not None:
        values, cells = values[useful], cells[useful]
    size = n_coders * n_units
    rated = corpus.raters[:, units.transcript]
    ratings = np.where(rated, n_values, MISSING).ravel()
    ratings[cells] = values
    # Where two codings of one cell carry different values, the later write won and the earlier one no
    # longer reads back: only then are combinations needed (the same value twice is still that value).
    if (ratings[cells] == values).all():
        return ratings.reshape(n_coders, n_units), (*value_names, empty_label), useful
    masks = np.zeros(size, dtype=np.int64)
    crowded = np.bincount(cells, minlength=size)[cells] > 1
    bits = np.left_shift(np.int64(1), values)
    masks[cells[~crowded]] = bits[~crowded]
    np.bitwise_or.at(masks, cells[crowded], bits[crowded])
    categories_of, categories = _categorise(masks.reshape(n_coders, n_units), value_names, empty_label)
    return np.where(rated, categories_of, MISSING), categories, useful


def _categorise(masks: np.ndarray, value_names: Sequence[str], empty_label: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn bit masks into category indices: each value, then the empty label, then observed combinations."""
    n_values = len(value_names)
    categories = list(value_names) + [empty_label]
    flat = masks.ravel()
    top = int(flat.max()) if flat.size else 0
    if top < 1 << 16:
        # Few values: a lookup table indexed by the mask itself beats sorting a million masks.
        observed = np.flatnonzero(np.bincount(flat, minlength=1))
        inverse = None
    else:
        observed, inverse = np.unique(flat, return_inverse=True)
    index_of: dict[int, int] = {0: n_values}
    index_of.update({1 << value: value for value in range(n_values)})
    for mask in observed.tolist():
        if mask not in index_of:
            index_of[mask] = len(categories)
            categories.append(COMBINATION_SEPARATOR.join(value_names[v] for v in range(n_values) if mask >> v & 1))
    if inverse is None:
        lookup = np.zeros(top + 1, dtype=np.int64)
        for mask in observed.tolist():
            lookup[mask] = index_of[mask]
        return lookup[masks], tuple(categories)
    mapped = np.array([index_of[mask] for mask in observed.tolist()], dtype=np.int64)
    return mapped[inverse].reshape(masks.shape), tuple(categories)


def _table(
    corpus: Corpus,
    variable: str,
    reading: str,
    unit: str,
    units: _Units,
    value_of_coding: np.ndarray,
    value_names: Sequence[str],
    empty_label: str,
    every_hit_has_a_value: bool = False,
) -> RatingTable:
    ratings, categories, useful = _categories_of(
        corpus, units, value_of_coding, value_names, empty_label, every_hit_has_a_value
    )
    hit_unit, hit_coding = (
        (units.hit_unit, units.hit_coding) if useful is None else (units.hit_unit[useful], units.hit_coding[useful])
    )
    return RatingTable(
        variable=variable,
        reading=reading,
        unit=unit,
        coders=corpus.coders,
        categories=categories,
        ratings=ratings,
        unit_transcript=units.transcript,
        unit_start=units.start,
        unit_end=units.end,
        unit_turn=units.turn,
        source_unit=hit_unit,
        source_coding=hit_coding,
        coding_coder=corpus.coding_coder,
        coder_row=np.arange(len(corpus.coders), dtype=np.int64),
        variables=(variable,),
    )


def _check_choices(unit: str, uncoded: str) -> None:
    if unit not in UNIT_KINDS:
        raise UnitsError(f"unknown unit {unit!r}; choose one of {', '.join(UNIT_KINDS)}")
    if uncoded not in UNCODED_CHOICES:
        raise UnitsError(f"unknown uncoded choice {uncoded!r}; choose one of {', '.join(UNCODED_CHOICES)}")


def roles_of(speaker: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """One role, several, or None (every speaker), as a tuple or None."""
    if speaker is None:
        return None
    return (speaker,) if isinstance(speaker, str) else tuple(speaker)


def _spoken_by(corpus: Corpus, roles: tuple[str, ...]) -> np.ndarray:
    """Mask of the turns spoken by one of ``roles``."""
    mask = np.zeros(corpus.n_turns, dtype=bool)
    for role in roles:
        mask |= corpus.turn_speaker == role
    return mask


def _base_keep(corpus: Corpus, unit: str, units: _Units, speaker: str | Sequence[str] | None) -> np.ndarray:
    """Units that exist for the analysis: rated by someone, and (turn units) spoken by the chosen roles."""
    keep = corpus.raters.any(axis=0)[units.transcript]
    roles = roles_of(speaker)
    if unit == "turn" and roles is not None:
        keep &= _spoken_by(corpus, roles)
    return keep


def roles_coded(corpus: Corpus, codes: Iterable[int]) -> tuple[str, ...]:
    """The speaker roles of the turns that some coding of ``codes`` (corpus code indices) overlaps."""
    rows = np.flatnonzero(np.isin(corpus.coding_code, np.fromiter(codes, dtype=np.int64)))
    _, turn_rows = turn_hits(corpus, rows)
    return tuple(sorted(set(corpus.turn_speaker[turn_rows].tolist())))


def turns_by_role(corpus: Corpus) -> dict[str, int]:
    """How many turns each speaker role has in the transcripts someone rated."""
    rated = corpus.raters.any(axis=0)[corpus.turn_transcript] if corpus.n_turns else np.zeros(0, dtype=bool)
    roles, counts = np.unique(corpus.turn_speaker[rated].astype(str), return_counts=True)
    return dict(zip(roles.tolist(), counts.tolist()))


def _coded(units: _Units) -> np.ndarray:
    """Units some coding hit (the codings given to the builder: those of the codes under analysis)."""
    coded = np.zeros(units.transcript.size, dtype=bool)
    coded[units.hit_unit] = True
    return coded


def presence_tables(
    corpus: Corpus,
    unit: str,
    codes: Sequence[int] | None = None,
    *,
    speaker: str | Sequence[str] | None = None,
    uncoded: str = "category",
    overlap: float = 0.5,
    code_speakers: Mapping[int, Sequence[str] | None] | None = None,
) -> list[RatingTable]:
    """One present/absent table per code (``codes`` are indices into ``corpus.codes``; default all).

    With turn and transcript units every table with the same speakers has the same units, and
    ``uncoded="exclude"`` drops the units that no rater coded with any of those codes. Span units are
    aligned per code. ``code_speakers`` gives some codes speakers of their own (instead of ``speaker``).
    """
    _check_choices(unit, uncoded)
    check_overlap(overlap)
    codes = list(range(len(corpus.codes))) if codes is None else [int(c) for c in codes]
    if code_speakers:
        # Codes meant for the same speakers share their units: build each such set once.
        by_roles: dict[tuple[str, ...] | None, list[int]] = {}
        for code in codes:
            by_roles.setdefault(roles_of(code_speakers.get(code, speaker)), []).append(code)
        built: dict[int, RatingTable] = {}
        for roles, members in by_roles.items():
            tables = presence_tables(corpus, unit, members, speaker=roles, uncoded=uncoded, overlap=overlap)
            built.update(zip(members, tables))
        return [built[code] for code in codes]
    speaker = roles_of(speaker)
    rows = speaker_rows(corpus, speaker) if unit != "turn" else np.arange(corpus.n_codings, dtype=np.int64)
    selected = np.isin(corpus.coding_code[rows], codes)
    rows = rows[selected]
    tables = []
    if unit == "span":
        for code in codes:
            code_rows = rows[corpus.coding_code[rows] == code]
            units = _span_units(corpus, code_rows, overlap)
            value_of = np.where(corpus.coding_code == code, 0, -1)
            table = _table(corpus, corpus.codes[code], "code", unit, units, value_of, (PRESENT,), ABSENT)
            tables.append(replace(table, speakers=speaker))
        return tables
    units = _units_for(corpus, unit, rows, overlap)
    keep = _base_keep(corpus, unit, units, speaker)
    if uncoded == "exclude":
        keep &= _coded(units)
    for code in codes:
        value_of = np.where(corpus.coding_code == code, 0, -1)
        table = _table(corpus, corpus.codes[code], "code", unit, units, value_of, (PRESENT,), ABSENT)
        tables.append(replace(table.select_units(keep), speakers=speaker))
    return tables


@dataclass(frozen=True)
class Group:
    """A categorical variable: ``values[i]`` is a value's name, ``codes[i]`` the code indices that mean it
    (the child code and its descendants)."""

    name: str
    values: tuple[str, ...]
    codes: tuple[tuple[int, ...], ...]
    # The speaker roles whose turns the group is rated on; None: whatever ``speaker`` the builder is given.
    speakers: tuple[str, ...] | None = None

    def value_of_code(self, n_codes: int) -> np.ndarray:
        if not 1 <= len(self.values) <= _MAX_VALUES:
            raise UnitsError(f"group {self.name!r} must have 1..{_MAX_VALUES} values, got {len(self.values)}")
        if len(self.codes) != len(self.values):
            raise UnitsError(f"group {self.name!r}: {len(self.values)} values but {len(self.codes)} code lists")
        lookup = np.full(n_codes, -1, dtype=np.int64)
        for value, code_indices in enumerate(self.codes):
            for code in code_indices:
                if lookup[code] != -1:
                    raise UnitsError(f"group {self.name!r}: code {code} belongs to two values")
                lookup[code] = value
        return lookup


def group_tables(
    corpus: Corpus,
    unit: str,
    groups: Sequence[Group],
    *,
    speaker: str | Sequence[str] | None = None,
    uncoded: str = "category",
    overlap: float = 0.5,
) -> list[RatingTable]:
    """One categorical table per group; spans are aligned by place, whatever value each coder gave.

    A group's own ``speakers`` take the place of ``speaker`` for that group."""
    _check_choices(unit, uncoded)
    check_overlap(overlap)
    tables = []
    for group in groups:
        roles = group.speakers if group.speakers is not None else roles_of(speaker)
        base_rows = speaker_rows(corpus, roles) if unit != "turn" and roles is not None else None
        value_of_code = group.value_of_code(len(corpus.codes))
        value_of = value_of_code[corpus.coding_code]
        every = base_rows is None
        in_group = value_of >= 0 if every else value_of[base_rows] >= 0
        rows = base_rows if in_group.all() else (np.flatnonzero(in_group) if every else base_rows[in_group])
        units = _units_for(corpus, unit, rows, overlap)
        # The rows were chosen by their value, so every hit carries one.
        table = _table(corpus, group.name, "group", unit, units, value_of, group.values, NONE_LABEL, True)
        table = replace(table, empty_label=NONE_LABEL, speakers=roles)
        if unit == "span":
            tables.append(table)
            continue
        keep = _base_keep(corpus, unit, units, roles)
        if uncoded == "exclude":
            keep &= _coded(units)
        tables.append(table.select_units(keep))
    return tables


@dataclass(frozen=True)
class Scale:
    """A code that carries a value: ``code`` is its corpus index, ``points`` the values its scale allows
    (None for a continuous range: then the categories are the values observed)."""

    name: str
    code: int
    level: str
    points: tuple[float, ...] | None = None
    speakers: tuple[str, ...] | None = None


def _value_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def scale_tables(
    corpus: Corpus,
    unit: str,
    scales: Sequence[Scale],
    *,
    speaker: str | Sequence[str] | None = None,
    overlap: float = 0.5,
) -> list[RatingTable]:
    """One table per code that carries a value: each coder's value on each unit where they applied it.

    A unit is one where at least one coder gave the code a value; a coder who did not apply the code there
    gave no rating (``MISSING``), so the table measures agreement on the value, given the code; whether
    the code applies at all is the presence reading's question. A coder who gave one unit two different
    values has no rating there either; ``conflicts`` counts those cells. Categories are the scale's points
    in order of value (observed values outside them follow), ``category_values`` their numbers.
    """
    check_overlap(overlap)
    if unit not in UNIT_KINDS:
        raise UnitsError(f"unknown unit {unit!r}; choose one of {', '.join(UNIT_KINDS)}")
    tables = []
    for scale in scales:
        roles = scale.speakers if scale.speakers is not None else roles_of(speaker)
        rows = np.flatnonzero((corpus.coding_code == scale.code) & ~np.isnan(corpus.coding_value))
        if roles is not None:
            rows = np.intersect1d(rows, speaker_rows(corpus, roles))
        units = _units_for(corpus, unit, rows, overlap)
        hit_rows = units.coding_column(np.arange(corpus.n_codings, dtype=np.int64))
        if unit == "turn" and roles is not None and hit_rows.size:
            # A span reaching into another speaker's turn rates only the turns of the chosen speakers.
            on_role = _spoken_by(corpus, roles)[units.hit_unit]
            hit_rows, hit_unit = hit_rows[on_role], units.hit_unit[on_role]
        else:
            hit_unit = units.hit_unit
        values = corpus.coding_value[hit_rows]
        observed = np.unique(values)
        points = np.asarray(sorted(scale.points), dtype=np.float64) if scale.points else np.zeros(0)
        domain = np.union1d(points, observed) if points.size else observed
        n_coders, n_units = len(corpus.coders), units.transcript.size
        cell = corpus.coding_coder[hit_rows] * n_units + hit_unit
        # Per cell the lowest and highest value given: equal, that value is the rating; different, a conflict.
        low = np.full(n_coders * n_units, np.inf)
        high = np.full(n_coders * n_units, -np.inf)
        np.minimum.at(low, cell, values)
        np.maximum.at(high, cell, values)
        given = np.isfinite(low)
        agreed = given & (low == high)
        ratings = np.full(n_coders * n_units, MISSING, dtype=np.int64)
        ratings[agreed] = np.searchsorted(domain, low[agreed])
        ratings = ratings.reshape(n_coders, n_units)
        keep = given.reshape(n_coders, n_units).any(axis=0)
        table = RatingTable(
            variable=scale.name,
            reading="scale",
            unit=unit,
            coders=corpus.coders,
            categories=tuple(_value_label(v) for v in domain.tolist()),
            ratings=ratings,
            unit_transcript=units.transcript,
            unit_start=units.start,
            unit_end=units.end,
            unit_turn=units.turn,
            source_unit=hit_unit,
            source_coding=hit_rows,
            coding_coder=corpus.coding_coder,
            coder_row=np.arange(n_coders, dtype=np.int64),
            variables=(scale.name,),
            category_values=tuple(domain.tolist()),
            level=scale.level,
            speakers=roles,
            conflicts=int((given & ~agreed).sum()),
        )
        tables.append(table.select_units(keep))
    return tables


# -------------------------------------------------------------------------------- consensus units


@dataclass(frozen=True)
class ReviewUnit:
    """A stretch of one transcript and, per rater, the corpus rows of the codings they put on it."""

    transcript: int
    start: int
    end: int
    turn: int | None
    readings: dict[int, tuple[int, ...]]

    def code_sets(self, corpus: Corpus) -> dict[int, frozenset[int]]:
        return {coder: frozenset(int(corpus.coding_code[r]) for r in rows) for coder, rows in self.readings.items()}

    def agreed(self, corpus: Corpus) -> bool:
        """Two or more raters who all applied the same, non-empty set of codes."""
        sets = list(self.code_sets(corpus).values())
        return len(sets) >= 2 and bool(sets[0]) and all(s == sets[0] for s in sets)


def review_units(corpus: Corpus, transcript: int, unit: str = "turn", overlap: float = 0.5) -> list[ReviewUnit]:
    """The units of one transcript a consensus works through: every unit some rater coded.

    Turn units are the turns. Span units group every coding of the transcript, whatever its code and coder,
    with the codings it overlaps by at least ``overlap`` of the shorter (single linkage), so the readings
    compare each rater's set of codes on the same stretch. A rater with no coding on a unit reads it empty.
    """
    if unit not in ("turn", "span"):
        raise UnitsError(f"consensus works on turn or span units, not {unit!r}")
    check_overlap(overlap)
    rows = np.flatnonzero(corpus.coding_transcript == transcript)
    raters = np.flatnonzero(corpus.raters[:, transcript]).tolist()
    if unit == "turn":
        coding_rows, turn_rows = turn_hits(corpus, rows)
        keys = [(int(corpus.turn_start[t]), int(corpus.turn_end[t]), int(corpus.turn_number[t])) for t in turn_rows]
        member_rows = coding_rows.tolist()
    else:
        labels = align_spans(
            corpus.coding_coder[rows], corpus.coding_start[rows], corpus.coding_end[rows], overlap, one_per_coder=False
        )
        extent: dict[int, list[int]] = {}
        for label, row in zip(labels.tolist(), rows.tolist()):
            low, high = extent.setdefault(label, [int(corpus.coding_start[row]), int(corpus.coding_end[row])])
            extent[label] = [min(low, int(corpus.coding_start[row])), max(high, int(corpus.coding_end[row]))]
        keys = [(extent[label][0], extent[label][1], None) for label in labels.tolist()]
        member_rows = rows.tolist()
    grouped: dict[tuple, dict[int, list[int]]] = {}
    for key, row in zip(keys, member_rows):
        grouped.setdefault(key, {}).setdefault(int(corpus.coding_coder[row]), []).append(row)
    units = []
    for (start, end, turn), by_coder in sorted(grouped.items(), key=lambda item: (item[0][0], item[0][1])):
        readings = {coder: tuple(sorted(by_coder.get(coder, ()))) for coder in raters}
        units.append(ReviewUnit(transcript, start, end, turn, readings))
    return units
