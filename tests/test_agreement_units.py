"""Units x coders matrices from plain coding records: turn overlap, spans, groups, uncoded units."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from concord.analysis.agreement_stats import MISSING, krippendorff_alpha
from concord.analysis.agreement_units import (
    CodingRecord,
    Group,
    TurnRecord,
    UnitsError,
    align_spans,
    corpus_from_records,
    group_tables,
    presence_tables,
    review_units,
    stack,
    turn_hits,
)

# Two transcripts: T1 with three turns (gaps of 3 characters for the "X: " prefixes), T2 with one.
TURNS = [
    TurnRecord("T1", 1, 3, 10, "therapist"),
    TurnRecord("T1", 2, 13, 30, "client"),
    TurnRecord("T1", 3, 33, 50, "therapist"),
    TurnRecord("T2", 1, 3, 40, "client"),
]


def rows_of(table):
    return [[table.categories[v] if v != MISSING else None for v in row] for row in table.ratings.tolist()]


def test_a_coding_hits_every_turn_it_overlaps_and_none_in_the_gaps():
    codings = [
        CodingRecord("ann", "T1", "X", 5, 8),  # inside turn 1
        CodingRecord("ann", "T1", "X", 8, 35),  # turns 1, 2 and 3
        CodingRecord("ann", "T1", "X", 10, 13),  # only the gap between turns 1 and 2
        CodingRecord("ann", "T1", "X", 48, 60),  # the end of turn 3 and past the last turn
        CodingRecord("ann", "T2", "X", 0, 4),  # the prefix and one character of T2's turn
    ]
    corpus = corpus_from_records(TURNS, codings)
    coding_rows, turn_rows = turn_hits(corpus)
    assert sorted(zip(coding_rows.tolist(), turn_rows.tolist())) == [(0, 0), (1, 0), (1, 1), (1, 2), (3, 2), (4, 3)]


def test_presence_tables_rate_absent_missing_and_present():
    codings = [
        CodingRecord("ann", "T1", "X", 5, 8),
        CodingRecord("bob", "T1", "X", 14, 40),
        CodingRecord("ann", "T1", "Y", 35, 36),
        CodingRecord("bob", "T2", "Y", 5, 9),
    ]
    corpus = corpus_from_records(TURNS, codings)
    x, y = presence_tables(corpus, "turn")
    # ann never coded T2, so she did not rate its turn; bob rated both transcripts.
    assert rows_of(x) == [["present", "absent", "absent", None], ["absent", "present", "present", "absent"]]
    assert rows_of(y) == [["absent", "absent", "present", None], ["absent", "absent", "absent", "present"]]
    assert x.disagreements().tolist() == [True, True, True, False]
    assert y.disagreements().tolist() == [False, False, True, False]
    assert x.n_categories == 2 and x.unit_turn.tolist() == [1, 2, 3, 1]
    # Where ann's rating of turn 1 came from: her first coding.
    assert x.sources_of(0, 0).tolist() == [0]


def test_uncoded_units_dropped_or_kept_and_speaker_filter():
    codings = [
        CodingRecord("ann", "T1", "X", 5, 8),
        CodingRecord("bob", "T1", "X", 5, 9),
        CodingRecord("bob", "T1", "X", 35, 40),
    ]
    corpus = corpus_from_records(TURNS, codings)
    (kept,) = presence_tables(corpus, "turn", uncoded="category")
    (dropped,) = presence_tables(corpus, "turn", uncoded="exclude")
    # T2 was rated by nobody, so it is never a unit; turn 2 of T1 nobody coded.
    assert kept.unit_turn.tolist() == [1, 2, 3] and dropped.unit_turn.tolist() == [1, 3]
    (therapist,) = presence_tables(corpus, "turn", speaker="therapist")
    assert therapist.unit_turn.tolist() == [1, 3]
    assert rows_of(therapist) == [["present", "absent"], ["present", "present"]]


def test_group_reading_with_none_and_combination_categories():
    codings = [
        CodingRecord("ann", "T1", "forward", 5, 8),
        CodingRecord("bob", "T1", "stuck", 4, 6),
        CodingRecord("ann", "T1", "forward", 14, 16),
        CodingRecord("ann", "T1", "stuck", 20, 22),
        CodingRecord("bob", "T1", "forward-goals", 14, 30),
    ]
    corpus = corpus_from_records(TURNS, codings, codes=["direction", "forward", "stuck", "forward-goals"])
    group = Group("direction", ("forward", "stuck"), ((1, 3), (2,)))
    (table,) = group_tables(corpus, "turn", [group])
    assert rows_of(table) == [["forward", "forward + stuck", "(none)"], ["stuck", "forward", "(none)"]]
    assert table.categories == ("forward", "stuck", "(none)", "forward + stuck")
    (coded_only,) = group_tables(corpus, "turn", [group], uncoded="exclude")
    assert coded_only.n_units == 2


def test_align_spans_by_share_of_the_shorter_span():
    # ann 0-10 and bob 4-12 share 6 characters: 75% of bob's 8.
    assert align_spans([0, 1], [0, 4], [10, 12], 0.5).tolist() == [0, 0]
    assert align_spans([0, 1], [0, 4], [10, 12], 0.75).tolist() == [0, 0]
    assert align_spans([0, 1], [0, 4], [10, 12], 0.8).tolist() == [0, 1]
    # Touching spans share nothing.
    assert align_spans([0, 1], [0, 10], [10, 20], 0.01).tolist() == [0, 1]
    # One span per coder per unit: bob's better match wins, his second span stays alone.
    assert align_spans([0, 1, 1], [0, 0, 5], [10, 10, 9], 0.3).tolist() == [0, 0, 1]
    # Without the constraint the same coder's spans may join.
    assert align_spans([0, 1, 1], [0, 0, 5], [10, 10, 9], 0.3, one_per_coder=False).tolist() == [0, 0, 0]
    with pytest.raises(UnitsError, match="overlap must be a share"):
        align_spans([0], [0], [1], 1.5)


def test_span_units_count_an_unmatched_span_as_a_disagreement():
    codings = [
        CodingRecord("ann", "T1", "X", 3, 10),
        CodingRecord("bob", "T1", "X", 4, 10),
        CodingRecord("ann", "T1", "X", 20, 30),
        CodingRecord("bob", "T1", "X", 26, 40),
    ]
    corpus = corpus_from_records(TURNS, codings)
    (loose,) = presence_tables(corpus, "span", overlap=0.3)
    (strict,) = presence_tables(corpus, "span", overlap=0.5)
    assert rows_of(loose) == [["present", "present"], ["present", "present"]]
    # 20-30 and 26-40 share 4 of the shorter 10: matched at 0.3, two units at 0.5.
    assert rows_of(strict) == [["present", "present", "absent"], ["present", "absent", "present"]]
    assert strict.disagreements().tolist() == [False, True, True]
    assert (strict.unit_start.tolist(), strict.unit_end.tolist()) == ([3, 20, 26], [10, 30, 40])


def test_transcript_units_and_stacking():
    codings = [
        CodingRecord("ann", "T1", "X", 5, 8),
        CodingRecord("bob", "T1", "Y", 5, 8),
        CodingRecord("ann", "T2", "X", 5, 8),
        CodingRecord("bob", "T2", "X", 5, 8),
    ]
    corpus = corpus_from_records(TURNS, codings)
    x, y = presence_tables(corpus, "transcript")
    assert rows_of(x) == [["present", "present"], ["absent", "present"]]
    both = stack([x, y], "all")
    assert both.n_units == 4 and both.categories == x.categories and not both.mixed_categories
    assert both.disagreements().tolist() == [True, False, True, False]


def test_review_units_readings_and_agreement():
    codings = [
        CodingRecord("ann", "T1", "X", 5, 8),
        CodingRecord("bob", "T1", "X", 4, 9),
        CodingRecord("ann", "T1", "Y", 14, 20),
        CodingRecord("bob", "T1", "X", 35, 40),
    ]
    corpus = corpus_from_records(TURNS, codings)
    units = review_units(corpus, 0, "turn")
    assert [(u.turn, u.agreed(corpus)) for u in units] == [(1, True), (2, False), (3, False)]
    assert units[1].readings == {0: (2,), 1: ()}
    spans = review_units(corpus, 0, "span", 0.5)
    assert [(u.start, u.end) for u in spans] == [(4, 9), (14, 20), (35, 40)]


def test_records_with_unknown_names_or_overlapping_turns_are_refused():
    with pytest.raises(UnitsError, match="coding record 0: unknown coder 'cai'"):
        corpus_from_records(TURNS, [CodingRecord("cai", "T1", "X", 1, 2)], coders=["ann"])
    bad_turns = TURNS + [TurnRecord("T1", 4, 45, 60, "client")]
    with pytest.raises(UnitsError, match=r"turns 3 .* and 4 .* overlap"):
        corpus_from_records(bad_turns, [])
    with pytest.raises(UnitsError, match="empty or negative"):
        corpus_from_records(TURNS, [CodingRecord("ann", "T1", "X", 5, 5)])


def test_k2011_through_the_builder_equals_the_krippendorff_package():
    """Krippendorff (2011): 4 observers x 12 units with gaps; each unit its own one-turn transcript."""
    nan = np.nan
    k2011 = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    turns = [TurnRecord(f"U{u}", 1, 0, 10, "client") for u in range(12)]
    codings = [
        CodingRecord(f"c{c}", f"U{u}", str(int(v)), 2, 5)
        for c, row in enumerate(k2011)
        for u, v in enumerate(row)
        if not np.isnan(v)
    ]
    corpus = corpus_from_records(turns, codings, codes=[str(v) for v in range(1, 6)])
    group = Group("rating", tuple(str(v) for v in range(1, 6)), tuple((v,) for v in range(5)))
    (table,) = group_tables(corpus, "turn", [group])
    expected = krippendorff.alpha(reliability_data=k2011, level_of_measurement="nominal")
    assert round(krippendorff_alpha(table.ratings, table.n_categories), 4) == round(expected, 4) == 0.7434


def test_turn_hits_equal_a_brute_force_overlap_on_random_transcripts():
    rng = np.random.default_rng(11)
    turns, codings = [], []
    for t in range(6):
        offset = int(rng.integers(0, 5))
        for number in range(1, int(rng.integers(0, 40)) + 1):  # some transcripts have no turns
            gap, length = int(rng.integers(0, 4)), int(rng.integers(0, 150))  # short, long and empty turns
            turns.append(TurnRecord(f"T{t}", number, offset + gap, offset + gap + length, "client"))
            offset += gap + length
        for _ in range(200):
            start = int(rng.integers(0, offset + 80))
            codings.append(CodingRecord("ann", f"T{t}", "X", start, start + int(rng.integers(1, 400))))
    corpus = corpus_from_records(turns, codings, transcripts=[f"T{t}" for t in range(6)])
    coding_rows, turn_rows = turn_hits(corpus)
    expected = sorted(
        (c, u)
        for c in range(corpus.n_codings)
        for u in range(corpus.n_turns)
        if corpus.coding_transcript[c] == corpus.turn_transcript[u]
        and corpus.coding_start[c] < corpus.turn_end[u]
        and corpus.coding_end[c] > corpus.turn_start[u]
    )
    assert sorted(zip(coding_rows.tolist(), turn_rows.tolist())) == expected
    assert len(expected) > 500
