"""Agreement statistics: published worked examples, edge cases, and agreement with reference packages.

Expected values come from /work/shared/guides/instruments-and-agreement.md Part 2. Where a source gives
three decimals only, the fourth comes from the reference implementation named beside it (krippendorff
0.9.0, scikit-learn, statsmodels), computed independently of this module.
"""

from __future__ import annotations

import time
import warnings
from itertools import combinations

import hypothesis.extra.numpy as hnp
import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from concord.analysis.agreement_stats import (
    MISSING,
    NOTE_NO_PAIRABLE_UNIT,
    NOTE_NO_SHARED_UNIT,
    NOTE_ONE_CATEGORY,
    PERCENT_DEFINITION,
    STATISTICS,
    RatingsError,
    StatResult,
    bootstrap_ci,
    brennan_prediger,
    cohen_kappa,
    coincidence_matrix,
    compute,
    encode_ratings,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from concord.storage.errors import InputError

_ = None  # missing rating in the fixtures below


def from_table(table: list[list[int]]) -> np.ndarray:
    """2 x N ratings whose cross-tabulation (rater 1 rows x rater 2 columns) is ``table``."""
    first, second = [], []
    for row, cells in enumerate(table):
        for column, count in enumerate(cells):
            first += [row] * count
            second += [column] * count
    return np.array([first, second])


def from_counts(counts: list[list[int]]) -> np.ndarray:
    """Raters x subjects ratings whose per-subject category counts are ``counts`` (equal raters)."""
    columns = [np.repeat(np.arange(len(row)), row) for row in counts]
    return np.array(columns).T


def drop_columns(ratings: np.ndarray, columns: list[int]) -> np.ndarray:
    return np.delete(ratings, columns, axis=1)


# ------------------------------------------------------------------------------------------- fixtures

K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]
KWIKI = [
    [_, _, _, _, _, 3, 4, 1, 2, 1, 1, 3, 3, _, 3],
    [1, _, 2, 1, 3, 3, 4, 3, _, _, _, _, _, _, _],
    [_, _, 2, 1, 3, 4, 4, _, 2, 1, 1, 3, 3, _, 4],
]
K2004_DICHOTOMY = [[1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]]
K2004_P227 = [list(pair) for pair in zip(*["aa", "ab", "bb", "bb", "bb", "bb", "bc", "cc", "cc", "cc", "cc", "cc"])]
K1980_P139 = [
    list(unit)
    for unit in zip(
        *[(1, 1, 1), (1, 2, 2), (2, 2, 2), (4, 4, 4), (1, 4, 4), (2, 2, 2), (1, 2, 3), (3, 3, 3), (2, 2, 2)]
    )
]
HAYES_KRIPPENDORFF_2007 = """
1 1 2 . 2 | 1 1 0 1 . | 2 3 3 3 . | . 0 0 . 0 | 0 0 0 . 0 | 0 0 0 . 0 | 1 0 2 . 1 | 1 . 2 0 . | 2 2 2 . 2 | 2 1 1 1 .
. 1 0 0 . | 0 0 0 0 . | 1 2 2 2 . | 3 3 2 2 3 | 1 1 1 . 1 | 1 1 1 . 1 | 2 1 2 . 2 | 1 2 3 3 . | 1 1 0 1 . | 0 0 0 . 0
0 0 1 1 . | 0 0 . 0 0 | 2 3 3 3 . | 0 0 0 0 . | 1 2 . 2 2 | 0 1 1 1 . | 0 0 0 1 0 | 1 2 1 2 . | 1 1 2 2 . | 1 1 2 . 2
1 1 0 . 0 | 2 1 2 1 . | 2 2 . 2 2 | 3 2 2 2 . | 2 2 2 . 2 | 2 2 3 . 2 | 2 2 2 . 2 | 2 2 . 1 2 | 2 2 2 2 . | 1 1 1 . 1
"""
FLEISS_1971 = """
444444 222555 233335 555555 222444 113333 333355 113334 114444 555555 144444 124444 222333 144444 224445
333335 111455 111112 224444 133555 555555 244444 224555 114444 144445 222224 111155 224444 133333 555555
"""
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]
BEN_GERRY = [list("aabbdcccedda"), list("babbbccce") + [_] + list("dd")]


def hayes_krippendorff_ratings() -> np.ndarray:
    units = [unit.split() for unit in HAYES_KRIPPENDORFF_2007.replace("\n", "|").split("|") if unit.strip()]
    assert len(units) == 40 and all(len(unit) == 5 for unit in units)
    rows = [[None if value == "." else int(value) for value in observer] for observer in zip(*units)]
    return encode_ratings(rows, categories=[0, 1, 2, 3])[0]


def fleiss_1971_ratings() -> np.ndarray:
    subjects = FLEISS_1971.split()
    assert len(subjects) == 30
    rows = [[int(subject[rater]) for subject in subjects] for rater in range(6)]
    return encode_ratings(rows, categories=[1, 2, 3, 4, 5])[0]


def encoded(rows) -> np.ndarray:
    return encode_ratings(rows)[0]


# ------------------------------------------------------------------------- Krippendorff's alpha fixtures


def test_k2011_alpha_percent_and_brennan_prediger():
    ratings = encoded(K2011)
    assert krippendorff_alpha(ratings) == pytest.approx(0.743421, abs=5e-5)
    assert percent_agreement(ratings) == pytest.approx(0.818182, abs=5e-5)
    assert brennan_prediger(ratings, 5) == pytest.approx(0.772727, abs=5e-5)


def test_k2011_coincidence_matrix_gives_published_disagreements():
    coincidences = coincidence_matrix(encoded(K2011))
    n = coincidences.sum()
    totals = coincidences.sum(axis=1)
    observed = (n - np.trace(coincidences)) / n
    expected = (n * n - (totals**2).sum()) / (n * (n - 1))
    assert n == 40
    assert observed == pytest.approx(0.200, abs=5e-4)
    assert expected == pytest.approx(0.779, abs=5e-4)
    np.testing.assert_allclose(coincidences, coincidences.T)


def test_k2011_fleiss_refuses_unequal_ratings_per_unit():
    with pytest.raises(ValueError, match="same number of ratings") as raised:
        fleiss_kappa(encoded(K2011))
    assert "unit column 10" in str(raised.value)


def test_kwiki_alpha():
    assert krippendorff_alpha(encoded(KWIKI)) == pytest.approx(0.691358, abs=5e-5)


def test_k2004_dichotomy():
    ratings = np.array(K2004_DICHOTOMY)
    coincidences = coincidence_matrix(ratings)
    n, totals = coincidences.sum(), coincidences.sum(axis=1)
    assert (n - np.trace(coincidences)) / n == pytest.approx(0.400, abs=5e-5)
    assert 1 - (n * n - (totals**2).sum()) / (n * (n - 1)) == pytest.approx(0.558, abs=5e-4)
    assert percent_agreement(ratings) == pytest.approx(0.60, abs=5e-5)
    assert krippendorff_alpha(ratings) == pytest.approx(0.095238, abs=5e-5)
    assert cohen_kappa(ratings) == pytest.approx(0.0909, abs=5e-5)


def test_k2004_page_227():
    ratings = encoded(K2004_P227)
    assert percent_agreement(ratings) == pytest.approx(0.833333, abs=5e-5)
    assert krippendorff_alpha(ratings) == pytest.approx(0.734104, abs=5e-5)
    assert cohen_kappa(ratings) == pytest.approx(0.724138, abs=5e-5)


def test_k1980_page_139():
    # Published 0.642 (D_o .259, D_e .724); fourth decimal from krippendorff.alpha: 0.641732.
    assert krippendorff_alpha(encoded(K1980_P139)) == pytest.approx(0.641732, abs=5e-5)


def test_hayes_krippendorff_2007_nominal():
    assert krippendorff_alpha(hayes_krippendorff_ratings()) == pytest.approx(0.476510, abs=5e-5)


def test_ben_gerry_two_raters_with_a_gap():
    ratings, categories = encode_ratings(BEN_GERRY, categories="abcde")
    assert categories == list("abcde")
    assert percent_agreement(ratings) == pytest.approx(0.727273, abs=5e-5)
    assert brennan_prediger(ratings, 5) == pytest.approx(0.659091, abs=5e-5)
    assert krippendorff_alpha(ratings) == pytest.approx(0.664894, abs=5e-5)


# ----------------------------------------------------------------------------------- Cohen's kappa


@pytest.mark.parametrize(
    ("table", "kappa", "observed"),
    [
        ([[88, 14, 18], [10, 40, 10], [2, 6, 12]], 0.491525, 0.70),  # Cohen (1960) example 2
        ([[25, 12, 3], [13, 2, 15], [12, 16, 2]], -0.092308, 0.29),  # Cohen (1960) example 1
        ([[20, 5], [10, 15]], 0.40, 0.70),  # Wikipedia, 50 grant proposals
        ([[0, 4, 1], [0, 8, 0], [0, 1, 5]], 0.484163, 0.684211),  # statsmodels SAS example
        ([[13, 0, 0], [0, 20, 7], [0, 4, 56]], 0.796409, 0.89),  # Gwet 3x3 abstractors (.796)
        ([[40, 4, 4, 17], [6, 25, 2, 13], [4, 1, 21, 12], [15, 5, 9, 45]], 0.431501, 0.587444),  # Gwet 4x4
        ([[12, 9, 9], [9, 14, 9], [9, 9, 20]], 0.185766, 0.46),  # Krippendorff 2004 p. 246, 4a (.186)
        ([[12, 18, 18], [0, 14, 18], [0, 0, 20]], 0.258242, 0.46),  # same page, 4b (.258)
    ],
)
def test_cohen_fixtures(table, kappa, observed):
    ratings = from_table(table)
    assert cohen_kappa(ratings) == pytest.approx(kappa, abs=5e-5)
    assert percent_agreement(ratings) == pytest.approx(observed, abs=5e-5)


def test_cohen_sklearn_doctest_labels():
    ratings = encoded([["neg", "pos", "neg", "neu", "pos"], ["neg", "pos", "neg", "neu", "neg"]])
    assert cohen_kappa(ratings) == pytest.approx(0.6875, abs=5e-5)


def test_identical_agreement_different_marginals_alpha_and_bp_equal_kappa_not():
    table_a = from_table([[12, 9, 9], [9, 14, 9], [9, 9, 20]])
    table_b = from_table([[12, 18, 18], [0, 14, 18], [0, 0, 20]])
    for ratings in (table_a, table_b):
        assert brennan_prediger(ratings, 3) == pytest.approx(0.19, abs=5e-5)
        assert krippendorff_alpha(ratings) == pytest.approx(0.189837, abs=5e-5)
    assert cohen_kappa(table_b) - cohen_kappa(table_a) == pytest.approx(0.258242 - 0.185766, abs=1e-4)


# ----------------------------------------------------------------------------------- Fleiss' kappa


def test_wikipedia_fleiss():
    ratings = from_counts(WIKIPEDIA_FLEISS)
    assert ratings.shape == (14, 10)
    assert fleiss_kappa(ratings) == pytest.approx(0.209931, abs=5e-5)
    assert brennan_prediger(ratings, 5) == pytest.approx(0.222527, abs=5e-5)


def test_fleiss_1971_diagnoses():
    ratings = fleiss_1971_ratings()
    assert np.bincount(ratings.ravel()).tolist() == [26, 26, 30, 55, 43]
    assert fleiss_kappa(ratings) == pytest.approx(0.4302445, abs=5e-5)
    assert brennan_prediger(ratings, 5) == pytest.approx(0.444444, abs=5e-5)
    assert krippendorff_alpha(ratings) == pytest.approx(0.433410, abs=5e-5)


@pytest.mark.parametrize(
    ("counts", "n_categories", "fleiss", "randolph"),
    [
        ([[7, 1], [3, 5]], 2, 0.161905, 0.214286),
        ([[6, 1, 0], [0, 7, 0]], 3, 0.708333, 0.785714),  # third category available, never used
    ],
)
def test_randolph_calculator_checks(counts, n_categories, fleiss, randolph):
    ratings = from_counts(counts)
    assert fleiss_kappa(ratings) == pytest.approx(fleiss, abs=5e-5)
    assert brennan_prediger(ratings, n_categories) == pytest.approx(randolph, abs=5e-5)


def test_fleiss_allows_different_coders_per_unit_with_equal_counts():
    complete = from_counts(WIKIPEDIA_FLEISS[:4])[:3]
    staggered = np.full((4, 4), MISSING)
    for unit in range(4):
        rows = [(unit + shift) % 4 for shift in range(3)]
        staggered[rows, unit] = complete[:, unit]
    assert fleiss_kappa(staggered) == pytest.approx(fleiss_kappa(complete), abs=1e-12)


# ------------------------------------------------------------------------------ Brennan-Prediger q


@pytest.mark.parametrize(("q", "expected"), [(2, 0.5), (4, 2 / 3)])
def test_brennan_prediger_q_is_categories_available(q, expected):
    ratings = np.array([[0, 0, 1, 1], [0, 0, 1, 0]])  # agreement 0.75
    assert brennan_prediger(ratings, q) == pytest.approx(expected, abs=5e-5)


def test_brennan_prediger_requires_q_and_enough_categories():
    ratings = np.array([[0, 2, 1], [0, 2, 2]])
    with pytest.raises(ValueError, match="n_categories"):
        brennan_prediger(ratings, None)
    with pytest.raises(ValueError, match=r"coder row 0, unit column 1: category index 2 is outside 0\.\.1"):
        brennan_prediger(ratings, 2)
    with pytest.raises(ValueError, match="at least 2 categories"):
        brennan_prediger(np.zeros((2, 3), dtype=int), 1)
    with pytest.raises(ValueError, match="n_categories"):
        compute("brennan_prediger", ratings)


# ------------------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("statistic", ["cohen_kappa", "fleiss_kappa", "krippendorff_alpha"])
def test_one_category_everywhere_is_undefined(statistic):
    ratings = np.zeros((2, 6), dtype=int)
    result = compute(statistic, ratings, n_categories=3)
    assert np.isnan(result.value)
    assert result.note == NOTE_ONE_CATEGORY
    assert result.units == 6 and result.coders == 2
    assert (result.ci_low, result.ci_high) == (None, None)


def test_krippendorff_package_raises_where_we_return_nan():
    with pytest.raises(ValueError):
        krippendorff.alpha(np.zeros((2, 6)), level_of_measurement="nominal")
    assert np.isnan(krippendorff_alpha(np.zeros((2, 6), dtype=int)))


def test_one_category_everywhere_is_full_agreement_for_percent_and_bp():
    ratings = np.zeros((3, 5), dtype=int)
    assert percent_agreement(ratings) == 1.0
    assert brennan_prediger(ratings, 4) == 1.0


def test_one_category_among_pairable_ratings_is_undefined_even_if_others_occur_alone():
    ratings = np.array([[0, 0, 1], [0, 0, MISSING]])
    assert np.isnan(krippendorff_alpha(ratings))
    assert compute("krippendorff_alpha", ratings).note == NOTE_ONE_CATEGORY


def test_units_rated_once_are_ignored():
    ratings = np.array([[0, 1, 1, 0, 2, MISSING, 1], [0, 1, 0, 0, MISSING, 2, 1], [0, 1, 1, 0, MISSING, MISSING, 1]])
    kept = drop_columns(ratings, [4, 5])
    assert krippendorff_alpha(ratings) == krippendorff_alpha(kept)
    assert fleiss_kappa(ratings) == pytest.approx(fleiss_kappa(kept), abs=1e-12)
    assert percent_agreement(ratings) == percent_agreement(kept)
    assert compute("fleiss_kappa", ratings).units == 5
    pair = ratings[:2]
    assert cohen_kappa(pair) == pytest.approx(cohen_kappa(drop_columns(pair, [4, 5])), abs=1e-12)
    assert compute("cohen_kappa", pair).units == 5


@pytest.mark.parametrize("statistic", STATISTICS)
def test_all_missing_is_undefined(statistic):
    ratings = np.full((2, 4), MISSING)
    result = compute(statistic, ratings, n_categories=3)
    assert np.isnan(result.value)
    assert result.units == 0 and result.coders == 0
    expected = NOTE_NO_SHARED_UNIT if statistic == "cohen_kappa" else NOTE_NO_PAIRABLE_UNIT
    assert result.note == expected


def test_no_units_at_all_is_undefined():
    assert np.isnan(krippendorff_alpha(np.empty((3, 0), dtype=int)))
    assert np.isnan(percent_agreement([[], []]))


@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize("ratings", [[[0, 1, 1]], np.empty((0, 3), dtype=int), [0, 1, 1]])
def test_fewer_than_two_coders_is_an_error(statistic, ratings):
    with pytest.raises(ValueError, match=r"2-D|at least 2 coders"):
        compute(statistic, ratings, n_categories=2)


def test_cohen_needs_exactly_two_coders():
    with pytest.raises(ValueError, match="exactly 2 coders"):
        cohen_kappa(np.zeros((3, 4), dtype=int))


def test_bad_ratings_name_the_cell():
    with pytest.raises(RatingsError, match="coder row 1, unit column 2: -4 is not a category index"):
        krippendorff_alpha(np.array([[0, 1, 1], [0, 1, -4]]))
    with pytest.raises(RatingsError, match="integer category indices"):
        krippendorff_alpha(np.array([[0.0, 1.0], [1.0, np.nan]]))


def test_ratings_error_is_both_a_value_error_and_an_input_error():
    with pytest.raises(RatingsError) as raised:
        percent_agreement([[1, 2]])
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, InputError)


# --------------------------------------------------------------------------------- encode_ratings


def test_encode_ratings_sorts_labels_and_maps_gaps():
    ratings, categories = encode_ratings([["b", None, "a"], ["c", "a", float("nan")]])
    assert categories == ["a", "b", "c"]
    assert ratings.tolist() == [[1, MISSING, 0], [2, 0, MISSING]]
    assert ratings.dtype == np.int64


def test_encode_ratings_keeps_given_category_order_and_unused_codes():
    ratings, categories = encode_ratings([["x", "z"], ["z", "z"]], categories=["z", "y", "x"])
    assert categories == ["z", "y", "x"]
    assert ratings.tolist() == [[2, 0], [0, 0]]


def test_encode_ratings_unorderable_labels_keep_first_appearance():
    ratings, categories = encode_ratings([[("t", 1), 3], ["s", 3]])
    assert categories == [("t", 1), 3, "s"]
    assert ratings.tolist() == [[0, 1], [2, 1]]


def test_encode_ratings_errors_name_row_and_column():
    with pytest.raises(RatingsError, match="coder row 1, unit column 1: label 'q' is not one of the categories"):
        encode_ratings([["a", "b"], ["a", "q"]], categories=["a", "b"])
    with pytest.raises(RatingsError, match="coder row 1 has 1 units but row 0 has 2"):
        encode_ratings([["a", "b"], ["a"]])
    with pytest.raises(RatingsError, match="duplicate"):
        encode_ratings([["a"], ["a"]], categories=["a", "a"])


# ------------------------------------------------------------------------------------------ compute


def test_compute_reports_what_the_value_rests_on():
    ratings = encoded(K2011)
    alpha = compute("krippendorff_alpha", ratings)
    assert alpha == StatResult("krippendorff_alpha", krippendorff_alpha(ratings), 11, 4, None, None, None)
    percent = compute("percent", ratings)
    assert percent.value == pytest.approx(0.818182, abs=5e-5)
    assert percent.note == PERCENT_DEFINITION
    assert compute("brennan_prediger", ratings, n_categories=7).note == "q = 7 categories available"


def test_compute_names_are_exact():
    assert STATISTICS == ("percent", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "brennan_prediger")
    with pytest.raises(ValueError, match="unknown statistic 'alpha'"):
        compute("alpha", np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="bootstrap"):
        compute("percent", np.zeros((2, 2), dtype=int), bootstrap=-1)


def test_compute_bootstrap_interval_brackets_the_value_and_repeats_with_the_seed():
    ratings = fleiss_1971_ratings()
    for statistic in ("percent", "fleiss_kappa", "krippendorff_alpha", "brennan_prediger"):
        result = compute(statistic, ratings, n_categories=5, bootstrap=500, seed=7)
        assert result.ci_low < result.value < result.ci_high, statistic
        assert result == compute(statistic, ratings, n_categories=5, bootstrap=500, seed=7)
    cohen = compute("cohen_kappa", ratings[:2], bootstrap=500, seed=7)
    assert cohen.ci_low < cohen.value < cohen.ci_high


def test_compute_notes_undefined_resamples():
    ratings = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])  # a resample without the last unit has one code
    result = compute("krippendorff_alpha", ratings, bootstrap=200, seed=1)
    assert result.value == 1.0
    undefined = int(result.note.split(" of ")[0])
    assert 30 < undefined < 110  # (4/5)^5 = 33% of 200 expected
    assert result.note.endswith("of 200 bootstrap resamples undefined and left out")


# ---------------------------------------------------------------------------------------- bootstrap


def complete_ratings(seed: int, coders: int, units: int, k: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, units)
    noise = rng.integers(0, k, (coders, units))
    return np.where(rng.random((coders, units)) < 0.6, truth, noise)


@pytest.mark.parametrize(
    "function", [percent_agreement, fleiss_kappa, krippendorff_alpha, brennan_prediger, cohen_kappa]
)
def test_vectorised_bootstrap_equals_resampling_one_by_one(function):
    ratings = complete_ratings(3, 2 if function is cohen_kappa else 4, 60)

    def one_by_one(resampled, n_categories):
        return function(resampled, n_categories)

    fast = bootstrap_ci(function, ratings, 300, level=0.9, seed=11, n_categories=4)
    slow = bootstrap_ci(one_by_one, ratings, 300, level=0.9, seed=11, n_categories=4)
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bootstrap_resamples_only_the_units_the_statistic_uses():
    ratings = complete_ratings(5, 3, 80)
    with_singletons = np.concatenate([ratings, np.array([[1, 2], [MISSING, MISSING], [MISSING, MISSING]])], axis=1)
    assert bootstrap_ci(krippendorff_alpha, with_singletons, 400, seed=2) == bootstrap_ci(
        "krippendorff_alpha", ratings, 400, seed=2
    )


def test_bootstrap_is_deterministic_and_seed_sensitive():
    ratings = complete_ratings(8, 3, 200)
    first = bootstrap_ci(krippendorff_alpha, ratings, 500, seed=4)
    assert first == bootstrap_ci(krippendorff_alpha, ratings, 500, seed=4)
    assert first != bootstrap_ci(krippendorff_alpha, ratings, 500, seed=5)
    narrow = bootstrap_ci(krippendorff_alpha, ratings, 500, level=0.5, seed=4)
    assert first[0] < narrow[0] < narrow[1] < first[1]


def test_bootstrap_with_every_resample_undefined_gives_nan():
    low, high = bootstrap_ci(cohen_kappa, np.zeros((2, 5), dtype=int), 50)
    assert np.isnan(low) and np.isnan(high)


def test_bootstrap_rejects_bad_arguments():
    ratings = complete_ratings(1, 2, 10)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(percent_agreement, ratings, 0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(percent_agreement, ratings, 10, level=1.5)
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap_ci("kappa", ratings, 10)
    with pytest.raises(ValueError, match="n_categories"):
        bootstrap_ci(brennan_prediger, ratings, 10)


@pytest.mark.parametrize("statistic", STATISTICS)
def test_bootstrap_thousand_resamples_on_thousand_units_is_quick(statistic):
    ratings = complete_ratings(9, 2 if statistic == "cohen_kappa" else 5, 1000, k=6)
    started = time.perf_counter()
    low, high = bootstrap_ci(statistic, ratings, 1000, n_categories=6)
    assert time.perf_counter() - started < 1.0
    assert low < high


# ------------------------------------------------------------- property tests against reference packages


@st.composite
def rating_matrices(draw, coders=st.integers(2, 6), missing=True):  # noqa: B008 (strategies are immutable values)
    k = draw(st.integers(2, 5))
    shape = (draw(coders), draw(st.integers(1, 30)))
    lowest = MISSING if missing else 0
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(lowest, k - 1))), k


def as_float_with_nan(ratings: np.ndarray) -> np.ndarray:
    return np.where(ratings == MISSING, np.nan, ratings.astype(np.float64))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rating_matrices())
def test_alpha_matches_krippendorff_package(case):
    ratings, _k = case
    per_unit = (ratings != MISSING).sum(axis=0)
    pairable_values = ratings[:, per_unit >= 2]
    pairable_values = pairable_values[pairable_values != MISSING]
    ours = krippendorff_alpha(ratings)
    if np.unique(pairable_values).size < 2:
        assert np.isnan(ours)
        return
    expected = krippendorff.alpha(as_float_with_nan(ratings), level_of_measurement="nominal")
    assert ours == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(rating_matrices(coders=st.just(2)))
def test_cohen_matches_sklearn(case):
    ratings, k = case
    shared = (ratings != MISSING).all(axis=0)
    assume(shared.any())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cohen_kappa_score(ratings[0, shared], ratings[1, shared], labels=list(range(k)))
    ours = cohen_kappa(ratings, k)
    if np.isnan(expected):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(rating_matrices(missing=False))
def test_fleiss_and_randolph_match_statsmodels(case):
    ratings, k = case
    table, _ = aggregate_raters(ratings.T, n_cat=k)
    assert brennan_prediger(ratings, k) == pytest.approx(sm_fleiss_kappa(table, method="randolph"), abs=1e-9)
    ours = fleiss_kappa(ratings, k)
    if np.unique(ratings).size < 2:
        assert np.isnan(ours)
        return
    assert ours == pytest.approx(sm_fleiss_kappa(table), abs=1e-9)


def pairwise_by_hand(ratings: np.ndarray) -> tuple[float, np.ndarray]:
    """Percent agreement and coincidence matrix the slow way: every ordered pair of coders in every unit."""
    k = int(ratings.max()) + 1
    shares, coincidences = [], np.zeros((k, k))
    for unit in ratings.T:
        values = [value for value in unit if value != MISSING]
        if len(values) < 2:
            continue
        pairs = list(combinations(values, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
        for a, b in pairs:
            coincidences[a, b] += 1 / (len(values) - 1)
            coincidences[b, a] += 1 / (len(values) - 1)
    return (float(np.mean(shares)) if shares else float("nan")), coincidences


@PROPERTY
@given(rating_matrices())
def test_percent_and_coincidences_match_pairwise_counting(case):
    ratings, _k = case
    assume((ratings != MISSING).any())
    percent, coincidences = pairwise_by_hand(ratings)
    np.testing.assert_allclose(coincidence_matrix(ratings), coincidences, atol=1e-12)
    if np.isnan(percent):
        assert np.isnan(percent_agreement(ratings))
    else:
        assert percent_agreement(ratings) == pytest.approx(percent, abs=1e-12)
