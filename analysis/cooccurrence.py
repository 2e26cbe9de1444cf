"""Which codes occur together: a code x code matrix over the turns of transcripts.

Pure functions over plain arrays (codings with their character spans, turns with their bounds); they
read no study. What "together" means is the unit rule, ``within``:

* ``"turn"``: two codings meet when they touch a common turn (a coding touches a turn when it
  shares at least one character with it);
* ``"overlap"``: two codings meet when their spans share at least one character;
* ``N`` (a number of turns, 0 or more): two codings meet when the turns they touch are at most N
  turns apart (0 is the same as ``"turn"``; 1 adds the neighbouring turns).

Per pair of codes A and B (A != B):

* ``count``: the co-occurrence frequency, the number of pairs (a coding of A, a coding of B) that
  meet. On the diagonal: the code's number of codings.
* ``c``: the c-coefficient of ATLAS.ti, n12 / (n1 + n2 - n12), with n1 and n2 the codes' numbers of
  codings and n12 the count. 0 when they never meet, 1 when every coding of each meets exactly one
  of the other. When one coding meets several codings of the other code, n12 can outgrow the
  codings and the coefficient exceeds 1, or is not defined (n1 + n2 - n12 <= 0: left empty). ATLAS.ti
  flags such cells; ``over_one`` counts them.
* ``jaccard``: the overlap of what the two codes cover, |A and B| / |A or B|, which cannot exceed 1:
  over turns for ``"turn"``; over characters for ``"overlap"``; for N, the turns of A or B that
  have the other code within N turns, over the turns of A or B.

Directed (``directed=True``, N >= 1): ``count`` is the number of codings of A followed by a coding
of B that starts within N turns after A's last turn (1 to N turns later, never in A's own turn), and
``share`` that count over A's codings: how often A is followed by B. The diagonal is a code
following itself.

Codings that touch no turn (a span inside a speaker label) cannot be placed and are left out of the
turn-based rules; their number is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from scipy import sparse

TURN = "turn"
OVERLAP = "overlap"
SHIFT = np.int64(1) << np.int64(32)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values in order: a sort and a comparison (np.unique takes several times longer on a
    million integers)."""
    ordered = np.sort(values, kind="stable")
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def parse_within(value: str | int) -> str | int:
    """ "turn", "overlap" or a number of turns (0 or more); anything else is a ValueError."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a number of turns is 0 or more")
        return value
    text = str(value).strip().lower()
    if text in (TURN, OVERLAP):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--within takes turn, overlap or a number of turns, not {value!r}")


@dataclass(frozen=True)
class TurnGrid:
    """Every turn in one order (transcript, then start): its position, and where its transcript's turns
    begin and end in that order."""

    turn_id: np.ndarray
    transcript_id: np.ndarray
    first: np.ndarray  # position of the transcript's first turn, per turn
    last: np.ndarray  # position of the transcript's last turn, per turn

    @classmethod
    def of(cls, turns: pd.DataFrame) -> TurnGrid:
        ordered = turns.sort_values(["transcript_id", "char_start"], kind="stable")
        tid = ordered["transcript_id"].to_numpy(np.int64)
        positions = np.arange(len(tid), dtype=np.int64)
        starts = np.r_[True, tid[1:] != tid[:-1]] if len(tid) else np.zeros(0, bool)
        first = np.maximum.accumulate(np.where(starts, positions, 0)) if len(tid) else positions
        ends = np.r_[tid[1:] != tid[:-1], True] if len(tid) else np.zeros(0, bool)
        last = np.minimum.accumulate(np.where(ends, positions, len(tid))[::-1])[::-1] if len(tid) else positions
        return cls(ordered["turn_id"].to_numpy(np.int64), tid, first, last)

    def __len__(self) -> int:
        return len(self.turn_id)


def coding_turn_ranges(codings: pd.DataFrame, turns: pd.DataFrame, grid: TurnGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per coding, the positions (in ``grid``) of the first and last turn it touches; -1 for a coding that
    touches none."""
    n = len(codings)
    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    if not n or not len(grid):
        return first, last
    ordered = turns.set_index("turn_id").loc[grid.turn_id]
    key_start = grid.transcript_id * SHIFT + ordered["char_start"].to_numpy(np.int64)
    key_end = np.maximum.accumulate(grid.transcript_id * SHIFT + ordered["char_end"].to_numpy(np.int64))
    tid = codings["transcript_id"].to_numpy(np.int64) * SHIFT
    c_start = tid + codings["start"].to_numpy(np.int64)
    c_end = tid + codings["end"].to_numpy(np.int64)
    lo = np.searchsorted(key_end, c_start, side="right")  # first turn ending after the coding starts
    hi = np.searchsorted(key_start, c_end, side="left") - 1  # last turn starting before it ends
    ok = (lo <= hi) & (lo < len(grid))
    ok[ok] &= grid.transcript_id[lo[ok]] == codings["transcript_id"].to_numpy(np.int64)[ok]
    first[ok], last[ok] = lo[ok], hi[ok]
    return first, last


def _pairs_after(keys: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with i < j < stop[i], for rows sorted by ``keys`` (stop already an index)."""
    index = np.arange(len(keys), dtype=np.int64)
    sizes = np.clip(stop - index - 1, 0, None)
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    left = np.repeat(index, sizes)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return left, left + 1 + offsets


def meeting_pairs(
    tid: np.ndarray, start: np.ndarray, end: np.ndarray, first: np.ndarray, last: np.ndarray, within: str | int
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of codings (indices into the given arrays, each pair once) that meet by ``within``."""
    if within == OVERLAP:
        order = np.lexsort((start, tid))
        keys = tid[order] * SHIFT + start[order]
        stop = np.searchsorted(keys, tid[order] * SHIFT + end[order], side="left")
    else:
        reach = 0 if within == TURN else int(within)
        placed = np.flatnonzero(first >= 0)
        order = placed[np.lexsort((first[placed], tid[placed]))]
        keys = tid[order] * SHIFT + first[order]
        stop = np.searchsorted(keys, tid[order] * SHIFT + last[order] + reach, side="right")
    left, right = _pairs_after(keys, stop)
    return order[left], order[right]


def following_pairs(tid: np.ndarray, first: np.ndarray, last: np.ndarray, within: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) where coding j starts 1 to ``within`` turns after coding i's last turn."""
    placed = np.flatnonzero(first >= 0)
    order = placed[np.lexsort((first[placed], tid[placed]))]
    keys = tid[order] * SHIFT + first[order]
    base = tid[placed] * SHIFT + last[placed]
    lo = np.searchsorted(keys, base, side="right")
    hi = np.searchsorted(keys, base + within, side="right")
    sizes = np.clip(hi - lo, 0, None)
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    left = np.repeat(placed, sizes)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return left, order[np.repeat(lo, sizes) + offsets]


@dataclass(frozen=True)
class Cooccurrence:
    codes: tuple[int, ...]  # the row and column order
    within: str | int
    directed: bool
    segments: np.ndarray  # codings per code
    counts: np.ndarray  # K x K; see the module notes
    c: np.ndarray | None  # K x K, undirected only
    jaccard: np.ndarray | None  # K x K, undirected only
    share: np.ndarray | None  # K x K, directed only
    unplaced: int  # codings that touch no turn (left out of turn-based rules)

    @property
    def over_one(self) -> int:
        """Pairs of codes whose c-coefficient exceeds 1 or is not defined (see the module notes)."""
        if self.c is None:
            return 0
        off = ~np.eye(len(self.codes), dtype=bool)
        return int((((self.c > 1) | np.isnan(self.c)) & off & (self.counts > 0)).sum() // 2)


def _incidence(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int, weights: np.ndarray | None = None
) -> sparse.csr_matrix:
    from scipy import sparse

    data = np.ones(len(rows)) if weights is None else weights.astype(float)
    matrix = sparse.coo_matrix((data, (rows, cols)), shape=(n_rows, n_cols)).tocsr()
    if weights is None:
        matrix.data[:] = 1.0  # a turn counts once however many codings of the code touch it
    return matrix


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each index i repeated over lo[i]..hi[i], and the positions themselves."""
    sizes = np.clip(hi - lo + 1, 0, None)
    owner = np.repeat(np.arange(len(lo), dtype=np.int64), sizes)
    offsets = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return owner, np.repeat(lo, sizes) + offsets


def cooccurrence(
    codings: pd.DataFrame,
    turns: pd.DataFrame,
    codes: Sequence[int],
    within: str | int = TURN,
    *,
    directed: bool = False,
) -> Cooccurrence:
    """The matrix over ``codes`` (in that order) from ``codings`` (transcript_id, code_id, start, end) and
    ``turns`` (turn_id, transcript_id, char_start, char_end). Codings of other codes are ignored."""
    within = parse_within(within)
    if directed and (not isinstance(within, int) or within < 1):
        raise ValueError("directed co-occurrence needs a number of turns, 1 or more (--within N)")
    codes = tuple(int(c) for c in codes)
    k = len(codes)
    index_of = {code: i for i, code in enumerate(codes)}
    kept = codings[codings["code_id"].isin(index_of)]
    ci = kept["code_id"].map(index_of).to_numpy(np.int64)
    tid = kept["transcript_id"].to_numpy(np.int64)
    start = kept["start"].to_numpy(np.int64)
    end = kept["end"].to_numpy(np.int64)
    segments = np.bincount(ci, minlength=k).astype(np.int64)
    grid = TurnGrid.of(turns) if len(turns) else TurnGrid.of(_no_turns())
    first, last = coding_turn_ranges(kept, turns, grid)
    unplaced = int((first < 0).sum()) if within != OVERLAP else 0

    counts = np.zeros((k, k), dtype=np.int64)
    if directed:
        left, right = following_pairs(tid, first, last, int(within))
        # A coding of A followed by several codings of B counts once for (A, B).
        seen = sorted_unique(left * k + ci[right])
        np.add.at(counts, (ci[seen // k], seen % k), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(segments[:, None] > 0, counts / segments[:, None], np.nan)
        return Cooccurrence(codes, within, True, segments, counts, None, None, share, unplaced)

    left, right = meeting_pairs(tid, start, end, first, last, within)
    a, b = ci[left], ci[right]
    other = a != b
    np.add.at(counts, (a[other], b[other]), 1)
    np.add.at(counts, (b[other], a[other]), 1)
    np.fill_diagonal(counts, segments)

    off = ~np.eye(k, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = segments[:, None] + segments[None, :] - counts
        c = np.where(off & (denominator > 0), counts / np.where(denominator > 0, denominator, 1), np.nan)
    jaccard = _jaccard(ci, tid, start, end, first, last, grid, k, within)
    jaccard[~off] = np.nan
    return Cooccurrence(codes, within, False, segments, counts, c, jaccard, None, unplaced)


def _jaccard(
    ci: np.ndarray,
    tid: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    grid: TurnGrid,
    k: int,
    within: str | int,
) -> np.ndarray:
    if k == 0:
        return np.zeros((0, 0))
    if within == OVERLAP:
        # Elementary pieces between every coding boundary of a transcript, weighted by their length.
        keys = sorted_unique(np.r_[tid * SHIFT + start, tid * SHIFT + end])
        lo = np.searchsorted(keys, tid * SHIFT + start)
        hi = np.searchsorted(keys, tid * SHIFT + end) - 1
        owner, piece = _ranges(lo, hi)
        lengths = (keys[1:] - keys[:-1]) if len(keys) > 1 else np.zeros(0, np.int64)
        m = _incidence(piece, ci[owner], max(len(keys) - 1, 0), k)
        weighted = m.multiply(lengths[:, None]) if len(lengths) else m
        both = (m.T @ weighted).toarray()
        return _ratio(both, np.diag(both).copy(), both)
    placed = first >= 0
    owner, turn = _ranges(first[placed], last[placed])
    codes = ci[placed][owner]
    m = _incidence(turn, codes, len(grid), k)
    both = (m.T @ m).toarray()
    sizes = np.diag(both).copy()
    if within == TURN or within == 0:
        return _ratio(both, sizes, both)
    reach = int(within)
    lo = np.maximum(first[placed] - reach, grid.first[first[placed]])
    hi = np.minimum(last[placed] + reach, grid.last[last[placed]])
    owner, turn = _ranges(lo, hi)
    near = _incidence(turn, ci[placed][owner], len(grid), k)
    a_near_b = (m.T @ near).toarray()  # turns of A with B within reach
    meeting = a_near_b + a_near_b.T - both
    return _ratio(meeting, sizes, both)


def _ratio(numerator: np.ndarray, sizes: np.ndarray, both: np.ndarray) -> np.ndarray:
    union = sizes[:, None] + sizes[None, :] - both
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, numerator / np.where(union > 0, union, 1), np.nan)


def _no_turns() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([], dtype="int64") for c in ("turn_id", "transcript_id", "char_start", "char_end")}
    )
