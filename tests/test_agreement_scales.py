"""Agreement on values on a scale: Krippendorff's alpha at the ordinal, interval and ratio levels and Cohen's
weighted kappa, against the published worked examples and the reference packages (krippendorff,
scikit-learn, statsmodels) to four decimals, with random comparisons by hypothesis.

Expected values: /work/shared/guides/instruments-and-agreement.md Part 2 (K2011 §2.2, KWIKI §2.3,
K1980 and Hayes & Krippendorff 2007 §2.5, the statsmodels SAS table §2.6).
"""

from __future__ import annotations

import warnings

import hypothesis.extra.numpy as hnp
import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from concord.analysis.agreement_stats import (
    LEVELS,
    MISSING,
    SCALE_STATISTICS,
    RatingsError,
    bootstrap_ci,
    cohen_kappa,
    compute,
    encode_ratings,
    krippendorff_alpha,
    krippendorff_alpha_level,
    weighted_kappa,
)

_ = None

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
K1980 = list(zip(*[(1, 1, 1), (1, 2, 2), (2, 2, 2), (4, 4, 4), (1, 4, 4), (2, 2, 2), (1, 2, 3), (3, 3, 3), (2, 2, 2)]))
HAYES_2007 = """
1 1 2 . 2 | 1 1 0 1 . | 2 3 3 3 . | . 0 0 . 0 | 0 0 0 . 0 | 0 0 0 . 0 | 1 0 2 . 1 | 1 . 2 0 . | 2 2 2 . 2 | 2 1 1 1 .
. 1 0 0 . | 0 0 0 0 . | 1 2 2 2 . | 3 3 2 2 3 | 1 1 1 . 1 | 1 1 1 . 1 | 2 1 2 . 2 | 1 2 3 3 . | 1 1 0 1 . | 0 0 0 . 0
0 0 1 1 . | 0 0 . 0 0 | 2 3 3 3 . | 0 0 0 0 . | 1 2 . 2 2 | 0 1 1 1 . | 0 0 0 1 0 | 1 2 1 2 . | 1 1 2 2 . | 1 1 2 . 2
1 1 0 . 0 | 2 1 2 1 . | 2 2 . 2 2 | 3 2 2 2 . | 2 2 2 . 2 | 2 2 3 . 2 | 2 2 2 . 2 | 2 2 . 1 2 | 2 2 2 2 . | 1 1 1 . 1
"""


def hayes_2007() -> list[list[int | None]]:
    units = [unit.split() for line in HAYES_2007.strip().splitlines() for unit in line.split("|")]
    return [[None if unit[o] == "." else int(unit[o]) for unit in units] for o in range(5)]


def as_nan(rows) -> np.ndarray:
    return np.array([[np.nan if v is None else float(v) for v in row] for row in rows])


def from_table(table: list[list[int]]) -> np.ndarray:
    first, second = [], []
    for row, cells in enumerate(table):
        for column, count in enumerate(cells):
            first += [row] * count
            second += [column] * count
    return np.array([first, second])


# ------------------------------------------------------------------------------ published worked examples


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_k2011_alpha_at_every_level(level, published):
    ratings, values = encode_ratings(K2011)
    ours = krippendorff_alpha_level(ratings, level, values)
    assert round(ours, 3) == published
    assert round(ours, 4) == round(krippendorff.alpha(as_nan(K2011), level_of_measurement=level), 4)


def test_k2011_ordinal_815_and_interval_849_through_compute():
    ratings, values = encode_ratings(K2011)
    ordinal = compute("krippendorff_alpha_ordinal", ratings, values=values)
    interval = compute("krippendorff_alpha_interval", ratings, values=values)
    assert round(ordinal.value, 4) == 0.8154 and round(interval.value, 4) == 0.8491
    assert ordinal.units == 11 and ordinal.coders == 4 and ordinal.note == "ordinal metric"


def test_kwiki_interval_811_and_computed_ordinal_ratio():
    ratings, values = encode_ratings(KWIKI)
    assert round(krippendorff_alpha_level(ratings, "interval", values), 3) == 0.811
    assert round(krippendorff_alpha_level(ratings, "ordinal", values), 4) == 0.8067
    assert round(krippendorff_alpha_level(ratings, "ratio", values), 4) == 0.8089


def test_k1980_interval_547():
    ratings, values = encode_ratings(K1980)
    assert round(krippendorff_alpha_level(ratings, "interval", values), 3) == 0.547


def test_hayes_krippendorff_2007_ordinal_7598():
    data = hayes_2007()
    ratings, values = encode_ratings(data)
    assert round(krippendorff_alpha_level(ratings, "ordinal", values), 4) == 0.7598
    assert round(krippendorff_alpha_level(ratings, "interval", values), 4) == 0.7574


def test_statsmodels_sas_table_linear_weighted_4701():
    table = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    ratings = from_table(table)
    ours = weighted_kappa(ratings, "linear", [0, 1, 2])
    reference = cohens_kappa(np.array(table), wt="linear", return_results=False)
    assert round(ours, 4) == round(reference, 4) == 0.4701


def test_weighted_kappa_uses_values_not_positions():
    """Scores (0, 1, 4) make the last step count three times the first; positions would weigh them alike."""
    table = [[5, 2, 0], [1, 6, 2], [0, 3, 4]]
    ratings = from_table(table)
    by_value = weighted_kappa(ratings, "linear", [0, 1, 4])
    reference = cohens_kappa(np.array(table), wt="linear", weights=np.array([0.0, 1.0, 4.0]), return_results=False)
    assert round(by_value, 4) == round(reference, 4)
    assert round(weighted_kappa(ratings, "linear"), 4) == round(
        cohen_kappa_score(ratings[0], ratings[1], weights="linear"), 4
    )
    assert round(by_value, 4) != round(weighted_kappa(ratings, "linear"), 4)


def test_two_category_weighted_kappa_is_cohens_kappa():
    ratings = from_table([[20, 5], [10, 15]])
    assert weighted_kappa(ratings, "linear") == pytest.approx(cohen_kappa(ratings)) == pytest.approx(0.4)
    assert weighted_kappa(ratings, "quadratic") == pytest.approx(0.4)


# ------------------------------------------------------------------------------------------- edge cases


def test_undefined_and_bad_input():
    one_value = np.array([[0, 0, 0], [0, 0, 0]])
    assert np.isnan(krippendorff_alpha_level(one_value, "interval", [3.0]))
    assert (
        compute("krippendorff_alpha_interval", one_value, values=[3.0]).note == "undefined: only one category observed"
    )
    assert np.isnan(weighted_kappa(one_value, "quadratic", [1.0]))
    nobody = np.array([[0, MISSING], [MISSING, 1]])
    assert compute("weighted_kappa_linear", nobody, values=[1, 2]).note == "undefined: no unit rated by both coders"
    with pytest.raises(RatingsError, match="unknown level"):
        krippendorff_alpha_level(one_value, "cardinal")
    with pytest.raises(RatingsError, match="unknown weights"):
        weighted_kappa(one_value, "cubic")
    with pytest.raises(RatingsError, match=r"category index 2 is outside 0\.\.1"):
        krippendorff_alpha_level(np.array([[0, 2], [1, 2]]), "interval", [1, 2])
    with pytest.raises(RatingsError, match="one number per category: 3 categories, got 2 values"):
        krippendorff_alpha_level(np.array([[0, 2], [1, 2]]), "interval", [1, 2], n_categories=3)
    with pytest.raises(RatingsError, match="same value"):
        krippendorff_alpha_level(np.array([[0, 1], [1, 1]]), "ordinal", [2, 2])
    with pytest.raises(RatingsError, match="ratio values cannot be negative"):
        krippendorff_alpha_level(np.array([[0, 1], [1, 1]]), "ratio", [-1, 2])
    with pytest.raises(RatingsError, match="exactly 2 coders"):
        weighted_kappa(np.zeros((3, 4), dtype=int), "linear", [1])


def test_nominal_level_is_the_nominal_alpha():
    ratings, values = encode_ratings(KWIKI)
    assert krippendorff_alpha_level(ratings, "nominal", values) == krippendorff_alpha(ratings)


@pytest.mark.parametrize("statistic", SCALE_STATISTICS)
def test_scale_bootstrap_equals_resampling_one_by_one(statistic):
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 5, 80)
    coders = 2 if statistic.startswith("weighted") else 4
    ratings = np.clip(truth + rng.integers(-1, 2, (coders, 80)), 0, 4)
    values = [1.0, 2.0, 3.0, 5.0, 8.0]
    kind, _, variant = statistic.rpartition("_")

    def one_by_one(resampled):
        if kind == "weighted_kappa":
            return weighted_kappa(resampled, variant, values)
        return krippendorff_alpha_level(resampled, variant, values)

    fast = bootstrap_ci(statistic, ratings, 200, level=0.9, seed=3, values=values)
    slow = bootstrap_ci(one_by_one, ratings, 200, level=0.9, seed=3)
    assert fast == pytest.approx(slow, abs=1e-12)
    result = compute(statistic, ratings, values=values, bootstrap=200, seed=3)
    assert result.ci_low <= result.value <= result.ci_high


# ------------------------------------------------------------- property tests against reference packages

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scale_ratings(draw, coders=st.integers(2, 6), missing=True):  # noqa: B008 (strategies are immutable values)
    k = draw(st.integers(2, 6))
    shape = (draw(coders), draw(st.integers(1, 30)))
    lowest = MISSING if missing else 0
    ratings = draw(hnp.arrays(np.int64, shape, elements=st.integers(lowest, k - 1)))
    values = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k, unique=True))
    return ratings, sorted(values)


@PROPERTY
@given(scale_ratings(), st.sampled_from(LEVELS[1:]))
def test_metric_alpha_matches_krippendorff_package(case, level):
    ratings, values = case
    per_unit = (ratings != MISSING).sum(axis=0)
    pairable = ratings[:, per_unit >= 2]
    pairable = pairable[pairable != MISSING]
    ours = krippendorff_alpha_level(ratings, level, values)
    lookup = np.array(values, dtype=float)
    data = np.where(ratings == MISSING, np.nan, lookup[np.maximum(ratings, 0)])
    if np.unique(pairable).size < 2 or (level == "ratio" and np.unique(lookup[pairable]).tolist() == [0.0]):
        assert np.isnan(ours)
        return
    expected = krippendorff.alpha(data, level_of_measurement=level, value_domain=values)
    assert ours == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(scale_ratings(coders=st.just(2), missing=False), st.sampled_from(("linear", "quadratic")))
def test_weighted_kappa_matches_sklearn(case, weights):
    ratings, values = case
    k = len(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cohen_kappa_score(ratings[0], ratings[1], labels=list(range(k)), weights=weights)
    # Positions 0..k-1 as values: scikit-learn weighs by a label's position in the label list.
    ours = weighted_kappa(ratings, weights, list(range(k)))
    if np.isnan(expected):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(scale_ratings(coders=st.just(2)), st.sampled_from(("linear", "quadratic")))
def test_weighted_kappa_matches_sklearn_on_shared_units(case, weights):
    ratings, values = case
    shared = (ratings != MISSING).all(axis=0)
    assume(shared.any())
    k = len(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cohen_kappa_score(ratings[0, shared], ratings[1, shared], labels=list(range(k)), weights=weights)
    ours = weighted_kappa(ratings, weights, n_categories=k)
    assert (np.isnan(ours) and np.isnan(expected)) or ours == pytest.approx(expected, abs=1e-9)
