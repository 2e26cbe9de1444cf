"""Inter-coder agreement statistics on a coders x units matrix: nominal codes and rating scales.

Layout: ``ratings[i, j]`` is the category index (0..k-1) that coder *i* gave unit *j*, or ``MISSING`` (-1)
when coder *i* did not rate unit *j*. ``encode_ratings`` turns rows of labels into that matrix. This module
is numpy only; it knows nothing about the database.

Decisions shared by every statistic:

- A unit counts only when it carries at least two ratings (for Cohen's kappa: a rating from both coders).
  A unit rated once says nothing about agreement, so it is left out rather than treated as an error.
- Fewer than two coders (rows) is an error: ``RatingsError``, which is both a ``ValueError`` and the
  project's ``InputError``.
- An undefined statistic is ``nan``, never an exception, so a study whose coders have not yet overlapped
  still gets a table. ``compute`` gives the reason in ``StatResult.note``: no unit with two ratings, or only
  one category among the counted ratings (chance agreement is then 1 and kappa and alpha would divide by
  zero; the ``krippendorff`` package raises there and scikit-learn returns nan).

Rating scales (codes that carry a value) use the same matrix: each category is one point of the scale and
``values[c]`` is the number it stands for. Krippendorff's alpha then takes the level's metric difference
(Krippendorff 2011, "Computing Krippendorff's alpha-reliability": ordinal, interval, ratio) and Cohen's
weighted kappa weighs each disagreement by its distance (linear or quadratic).

Each statistic is written as column sums of per-unit features followed by a closed-form finish. The
bootstrap reweights the same per-unit rows, so one resample costs a row of a matrix product rather than a
fresh computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from concord.storage.errors import InputError

MISSING = -1

STATISTICS = ("percent", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "brennan_prediger")
LEVELS = ("nominal", "ordinal", "interval", "ratio")
WEIGHTS = ("linear", "quadratic")
# Statistics for values on a scale: they need each category's value (``compute(..., values=...)``).
SCALE_STATISTICS = (
    "krippendorff_alpha_ordinal",
    "krippendorff_alpha_interval",
    "krippendorff_alpha_ratio",
    "weighted_kappa_linear",
    "weighted_kappa_quadratic",
)

NOTE_ONE_CATEGORY = "undefined: only one category observed"
NOTE_NO_PAIRABLE_UNIT = "undefined: no unit rated by two or more coders"
NOTE_NO_SHARED_UNIT = "undefined: no unit rated by both coders"
PERCENT_DEFINITION = "mean share of agreeing coder pairs over units with >= 2 ratings"

# Upper bound on resamples x units held in memory at once by the bootstrap.
_BOOTSTRAP_CELLS_PER_CHUNK = 4_000_000


class RatingsError(InputError, ValueError):
    """The ratings cannot be used for the requested statistic (the message says where and why)."""


@dataclass(frozen=True)
class StatResult:
    """One agreement statistic as reported: value, what it rests on, optional bootstrap interval."""

    statistic: str
    value: float
    units: int
    coders: int
    ci_low: float | None
    ci_high: float | None
    note: str | None


# --------------------------------------------------------------------------------------------- input


def _is_missing_label(label: object) -> bool:
    if label is None:
        return True
    return isinstance(label, (float, np.floating)) and math.isnan(label)


def encode_ratings(
    rows: Sequence[Sequence[Hashable | None]], categories: Sequence[Hashable] | None = None
) -> tuple[np.ndarray, list[Hashable]]:
    """Turn one row of labels per coder into a ratings matrix and its list of categories.

    ``None`` (and a float NaN, as pandas writes a gap) means the coder did not rate that unit. Without
    ``categories`` the categories are the labels that occur, sorted when they can be compared and in order
    of first appearance otherwise. With ``categories`` (for instance a codebook's codes, so that unused codes
    still count for Brennan-Prediger's q) their order is kept and any other label is an error.
    """
    table = [list(row) for row in rows]
    if not table:
        raise RatingsError("no coder rows given")
    width = len(table[0])
    for coder, row in enumerate(table):
        if len(row) != width:
            raise RatingsError(f"coder row {coder} has {len(row)} units but row 0 has {width}")

    if categories is None:
        seen: dict[Any, None] = {}  # Any: sorted() below may meet labels that do not compare
        for row in table:
            for label in row:
                if not _is_missing_label(label):
                    seen.setdefault(label, None)
        try:
            ordered = sorted(seen)
        except TypeError:
            ordered = list(seen)
    else:
        ordered = list(categories)
        if len(set(ordered)) != len(ordered):
            raise RatingsError("the categories contain a duplicate")
    index = {label: position for position, label in enumerate(ordered)}

    encoded = np.full((len(table), width), MISSING, dtype=np.int64)
    for coder, row in enumerate(table):
        for unit, label in enumerate(row):
            if _is_missing_label(label):
                continue
            try:
                encoded[coder, unit] = index[label]
            except KeyError:
                raise RatingsError(
                    f"coder row {coder}, unit column {unit}: label {label!r} is not one of the categories"
                ) from None
    return encoded, ordered


def _checked(ratings: object, n_categories: int | None = None) -> tuple[np.ndarray, int]:
    """Validate a ratings matrix; return it as int64 with the number of categories k."""
    matrix = np.asarray(ratings)
    if matrix.ndim != 2:
        raise RatingsError(f"ratings must be a 2-D array (coders x units), got shape {matrix.shape}")
    if matrix.size == 0 and matrix.dtype.kind == "f":
        matrix = matrix.astype(np.int64)
    if matrix.dtype.kind not in "iu":
        raise RatingsError(
            f"ratings must hold integer category indices (-1 for missing), got dtype {matrix.dtype};"
            " encode labels with encode_ratings"
        )
    if matrix.shape[0] < 2:
        raise RatingsError(f"agreement needs at least 2 coders (rows), got {matrix.shape[0]}")
    matrix = matrix.astype(np.int64, copy=False)

    if n_categories is not None and (isinstance(n_categories, bool) or int(n_categories) != n_categories):
        raise RatingsError(f"n_categories must be a whole number, got {n_categories!r}")
    if n_categories is not None and n_categories < 1:
        raise RatingsError(f"n_categories must be at least 1, got {n_categories}")

    highest = MISSING
    if matrix.size:
        if matrix.min() < MISSING:
            coder, unit = np.argwhere(matrix < MISSING)[0]
            raise RatingsError(
                f"coder row {coder}, unit column {unit}: {matrix[coder, unit]} is not a category index"
                " (use 0..k-1, or -1 for missing)"
            )
        highest = int(matrix.max())
    if n_categories is None:
        return matrix, highest + 1
    if highest >= n_categories:
        coder, unit = np.argwhere(matrix >= n_categories)[0]
        raise RatingsError(
            f"coder row {coder}, unit column {unit}: category index {matrix[coder, unit]} is outside"
            f" 0..{int(n_categories) - 1} (n_categories={int(n_categories)})"
        )
    return matrix, int(n_categories)


def _value_counts(matrix: np.ndarray, k: int) -> np.ndarray:
    """Units x categories table: how many coders put each unit in each category (one bincount)."""
    n_units = matrix.shape[1]
    slots = k + 1  # slot 0 of every unit collects the missing ratings and is dropped
    flat = matrix + (1 + slots * np.arange(n_units, dtype=np.int64))
    counts = np.bincount(flat.ravel(), minlength=slots * n_units)
    return counts.reshape(n_units, slots)[:, 1:]


def _coders_in(matrix: np.ndarray, used_units: np.ndarray) -> int:
    return int((matrix[:, used_units] != MISSING).any(axis=1).sum())


# ------------------------------------------------------------------------- per-unit plans and finishes


@dataclass(frozen=True)
class _Plan:
    """A statistic as ``finish(column sums of features)``; one feature row per unit the statistic uses."""

    features: np.ndarray
    finish: Callable[[np.ndarray], np.ndarray]
    coders: int
    undefined_note: str
    note: str | None = None
    # Which unit columns of the ratings the feature rows stand for (None: not recorded).
    used: np.ndarray | None = None

    @property
    def units(self) -> int:
        return int(self.features.shape[0])

    def value(self) -> float:
        return float(self.finish(self.features.sum(axis=0)))


def _only_one_category(category_totals: np.ndarray) -> np.ndarray:
    return np.asarray(np.count_nonzero(category_totals, axis=-1) <= 1)


def _percent_finish(sums: np.ndarray) -> np.ndarray:
    units, agreement = sums[..., 0], sums[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(units > 0, agreement / units, np.nan)


def _pairwise_agreement_rows(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit with >= 2 ratings: [1, share of agreeing coder pairs]; plus the mask of those units."""
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    used = per_unit >= 2
    counts, per_unit = counts[used].astype(np.float64), per_unit[used].astype(np.float64)
    agreeing_pairs = (counts * (counts - 1)).sum(axis=1)
    rows = np.column_stack([np.ones_like(per_unit), agreeing_pairs / (per_unit * (per_unit - 1))])
    return rows, used


def _percent_plan(matrix: np.ndarray, k: int) -> _Plan:
    rows, used = _pairwise_agreement_rows(matrix, k)
    return _Plan(rows, _percent_finish, _coders_in(matrix, used), NOTE_NO_PAIRABLE_UNIT, PERCENT_DEFINITION, used)


def _brennan_prediger_plan(matrix: np.ndarray, k: int) -> _Plan:
    rows, used = _pairwise_agreement_rows(matrix, k)
    chance = 1.0 / k

    def finish(sums: np.ndarray) -> np.ndarray:
        return (_percent_finish(sums) - chance) / (1.0 - chance)

    note = f"q = {k} categories available"
    return _Plan(rows, finish, _coders_in(matrix, used), NOTE_NO_PAIRABLE_UNIT, note, used)


def _cohen_plan(matrix: np.ndarray, k: int) -> _Plan:
    if matrix.shape[0] != 2:
        raise RatingsError(f"cohen_kappa needs exactly 2 coders (rows), got {matrix.shape[0]}")
    first, second = matrix
    used = (first != MISSING) & (second != MISSING)
    first, second = first[used], second[used]
    n = first.size
    rows = np.zeros((n, 2 + 2 * k))
    rows[:, 0] = 1.0
    rows[:, 1] = first == second
    rows[np.arange(n), 2 + first] = 1.0
    rows[np.arange(n), 2 + k + second] = 1.0

    def finish(sums: np.ndarray) -> np.ndarray:
        units = sums[..., 0:1]
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = sums[..., 1] / units[..., 0]
            first_share, second_share = sums[..., 2 : 2 + k] / units, sums[..., 2 + k :] / units
            chance = (first_share * second_share).sum(axis=-1)
            kappa = (observed - chance) / (1.0 - chance)
        undefined = _only_one_category(sums[..., 2 : 2 + k] + sums[..., 2 + k :])
        return np.where(undefined | (units[..., 0] == 0), np.nan, kappa)

    return _Plan(rows, finish, 2 if n else 0, NOTE_NO_SHARED_UNIT, used=used)


def _fleiss_plan(matrix: np.ndarray, k: int) -> _Plan:
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    used = per_unit >= 2
    sizes, first_unit, how_many = np.unique(per_unit[used], return_index=True, return_counts=True)
    if sizes.size > 1:
        used_columns = np.flatnonzero(used)
        found = ", ".join(
            f"{count} unit(s) with {size} ratings (first: unit column {used_columns[first]})"
            for size, first, count in zip(sizes, first_unit, how_many)
        )
        raise RatingsError(
            "fleiss_kappa needs the same number of ratings on every unit (units rated fewer than twice are"
            f" left out); found {found}. Use krippendorff_alpha for data with missing ratings"
        )
    raters = float(sizes[0]) if sizes.size else 2.0
    counts = counts[used].astype(np.float64)
    rows = np.column_stack([np.ones(counts.shape[0]), (counts * counts).sum(axis=1), counts])

    def finish(sums: np.ndarray) -> np.ndarray:
        units, squares, totals = sums[..., 0], sums[..., 1], sums[..., 2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = (squares / units - raters) / (raters * (raters - 1.0))
            shares = totals / (units[..., None] * raters)
            chance = (shares * shares).sum(axis=-1)
            kappa = (observed - chance) / (1.0 - chance)
        return np.where(_only_one_category(totals) | (units == 0), np.nan, kappa)

    return _Plan(rows, finish, _coders_in(matrix, used), NOTE_NO_PAIRABLE_UNIT, used=used)


def _alpha_finish(sums: np.ndarray) -> np.ndarray:
    """Nominal alpha from [trace of the coincidence matrix, its row totals n_c...]."""
    agreeing, totals = sums[..., 0], sums[..., 1:]
    n = totals.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (n * n - (totals * totals).sum(axis=-1)) / (n - 1.0)
        alpha = 1.0 - (n - agreeing) / expected
    return np.where(_only_one_category(totals), np.nan, alpha)


def _alpha_plan(matrix: np.ndarray, k: int) -> _Plan:
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    used = per_unit >= 2
    counts, per_unit = counts[used].astype(np.float64), per_unit[used].astype(np.float64)
    agreeing = (counts * (counts - 1)).sum(axis=1) / (per_unit - 1)
    rows = np.column_stack([agreeing, counts])
    return _Plan(rows, _alpha_finish, _coders_in(matrix, used), NOTE_NO_PAIRABLE_UNIT, used=used)


def _category_values(values: object, k: int, level: str) -> np.ndarray:
    """The number each category stands for, checked: one finite, distinct value per category."""
    if values is None:
        numbers = np.arange(k, dtype=np.float64)
    else:
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise RatingsError(f"values must be numbers, one per category, got {values!r}") from None
    if numbers.ndim != 1 or numbers.size != k:
        raise RatingsError(f"values must give one number per category: {k} categories, got {numbers.size} values")
    if not np.isfinite(numbers).all():
        raise RatingsError("values must be finite numbers")
    if np.unique(numbers).size != numbers.size:
        raise RatingsError("two categories have the same value; a scale point is one value")
    if level == "ratio" and (numbers < 0).any():
        raise RatingsError("ratio values cannot be negative (a ratio scale starts at an absolute zero)")
    return numbers


def _level_distance(level: str, values: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Squared metric difference delta^2(c, d) between every two categories (Krippendorff 2011).

    ``totals`` are the coincidence marginals n_c (any leading dimensions, for the bootstrap); only the
    ordinal difference depends on them: the number of pairable values from c to d, less half of the
    two end points, squared.
    """
    k = values.size
    if level == "interval":
        delta = (values[:, None] - values[None, :]) ** 2
        return np.broadcast_to(delta, (*totals.shape[:-1], k, k))
    if level == "ratio":
        total = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(total > 0, ((values[:, None] - values[None, :]) / total) ** 2, 0.0)
        return np.broadcast_to(delta, (*totals.shape[:-1], k, k))
    # Ordinal: walk the categories in the order of their values.
    order = np.argsort(values, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    ranked = totals[..., order]
    running = np.cumsum(ranked, axis=-1)
    low, high = np.minimum.outer(rank, rank), np.maximum.outer(rank, rank)
    between = running[..., high] - running[..., low] + (ranked[..., low] - ranked[..., high]) / 2.0
    return np.asarray(between**2)


def _metric_alpha_plan(matrix: np.ndarray, k: int, values: np.ndarray, level: str) -> _Plan:
    """Alpha at any level: per unit its share of the coincidence matrix, k x k, flattened."""
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    used = per_unit >= 2
    counts, per_unit = counts[used].astype(np.float64), per_unit[used].astype(np.float64)
    pairs = counts[:, :, None] * counts[:, None, :]
    pairs[:, np.arange(k), np.arange(k)] -= counts
    rows = (pairs / (per_unit - 1.0)[:, None, None]).reshape(-1, k * k)

    def finish(sums: np.ndarray) -> np.ndarray:
        coincidences = sums.reshape(*sums.shape[:-1], k, k)
        totals = coincidences.sum(axis=-1)
        n = totals.sum(axis=-1)
        delta = _level_distance(level, values, totals)
        observed = (coincidences * delta).sum(axis=(-2, -1))
        expected = (totals[..., :, None] * totals[..., None, :] * delta).sum(axis=(-2, -1))
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = 1.0 - (n - 1.0) * observed / expected
        return np.where((expected > 0) & (n > 1), alpha, np.nan)

    return _Plan(rows, finish, _coders_in(matrix, used), NOTE_NO_PAIRABLE_UNIT, f"{level} metric", used)


def _weighted_kappa_plan(matrix: np.ndarray, k: int, values: np.ndarray, weights: str) -> _Plan:
    if matrix.shape[0] != 2:
        raise RatingsError(f"weighted kappa needs exactly 2 coders (rows), got {matrix.shape[0]}")
    first, second = matrix
    used = (first != MISSING) & (second != MISSING)
    first, second = first[used], second[used]
    n = first.size
    gap = np.abs(values[:, None] - values[None, :])
    disagreement = gap if weights == "linear" else gap**2
    rows = np.zeros((n, 2 + 2 * k))
    rows[:, 0] = 1.0
    rows[:, 1] = disagreement[first, second]
    rows[np.arange(n), 2 + first] = 1.0
    rows[np.arange(n), 2 + k + second] = 1.0

    def finish(sums: np.ndarray) -> np.ndarray:
        units = sums[..., 0]
        first_totals, second_totals = sums[..., 2 : 2 + k], sums[..., 2 + k :]
        expected = np.einsum("...i,ij,...j->...", first_totals, disagreement, second_totals)
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = 1.0 - sums[..., 1] * units / expected
        return np.where((units > 0) & (expected > 0), kappa, np.nan)

    return _Plan(rows, finish, 2 if n else 0, NOTE_NO_SHARED_UNIT, f"{weights} weights", used)


# ------------------------------------------------------------------------------------ public statistics


def percent_agreement(ratings: object, n_categories: int | None = None) -> float:
    """Percent agreement, Gwet/Fleiss definition, as a proportion in [0, 1].

    Definition: over the units with at least two ratings, the mean of each unit's share of agreeing coder
    pairs (pairs that chose the same category / all coder pairs on that unit). For two coders this is the
    share of units both rated on which they agree. It is not Krippendorff's A_o (0.805 on Krippendorff's
    2011 example, where this gives 0.818) nor DKPro's variant (0.800). ``nan`` when no unit has two ratings.
    """
    return _planned(percent_agreement, ratings, n_categories).value()


def cohen_kappa(ratings: object, n_categories: int | None = None) -> float:
    """Cohen's kappa for exactly two coders (two rows); units either coder left unrated are dropped.

    kappa = (p_o - p_e) / (1 - p_e), with p_e from each coder's own category shares. ``nan`` when no unit
    was rated by both, or when both used one and the same category throughout (p_e = 1).
    """
    return _planned(cohen_kappa, ratings, n_categories).value()


def fleiss_kappa(ratings: object, n_categories: int | None = None) -> float:
    """Fleiss' kappa (1971) for any number of coders; the coders may differ from unit to unit.

    Units with fewer than two ratings are dropped. The rest must all carry the same number of ratings,
    as Fleiss' formula assumes; otherwise ``RatingsError`` names the counts found. Incomplete units are
    not silently dropped, because which units survive would then depend on who happened to skip what:
    use ``krippendorff_alpha`` for data with missing ratings. ``nan`` when only one category occurs.
    """
    return _planned(fleiss_kappa, ratings, n_categories).value()


def coincidence_matrix(ratings: object, n_categories: int | None = None) -> np.ndarray:
    """Krippendorff's coincidence matrix o (k x k) over the units with at least two ratings.

    o[c, d] = sum over units u of n_uc * (n_ud - [c == d]) / (m_u - 1), where n_uc is how many coders put
    u in c and m_u how many rated u. Built from one bincount and one small matrix product.
    """
    matrix, k = _checked(ratings, n_categories)
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    pairable = per_unit >= 2
    counts = counts[pairable].astype(np.float64)
    weighted = counts / (per_unit[pairable] - 1.0)[:, None]
    coincidences = weighted.T @ counts
    coincidences[np.diag_indices(k)] -= weighted.sum(axis=0)
    return np.asarray(coincidences)


def krippendorff_alpha(ratings: object, n_categories: int | None = None) -> float:
    """Krippendorff's alpha, nominal level, with missing ratings allowed.

    alpha = 1 - D_o / D_e from the coincidence matrix; units rated once are unpairable and ignored.
    ``nan`` when no unit has two ratings or when the pairable ratings use only one category (the
    ``krippendorff`` package raises ValueError for the latter).
    """
    coincidences = coincidence_matrix(ratings, n_categories)
    sums = np.concatenate([[np.trace(coincidences)], coincidences.sum(axis=1)])
    return float(_alpha_finish(sums))


def brennan_prediger(ratings: object, n_categories: int) -> float:
    """Brennan-Prediger kappa, (p_a - 1/q) / (1 - 1/q), with q = ``n_categories``.

    q is the number of categories available (the codebook's codes), not the number observed, so it must
    be given. p_a is ``percent_agreement``; with many coders this is Randolph's free-marginal kappa
    (statsmodels ``fleiss_kappa(method='randolph')`` on a table with q columns), with two coders Bennett,
    Alpert & Goldstein's S. Missing ratings are allowed. ``nan`` when no unit has two ratings.
    """
    return _planned(brennan_prediger, ratings, n_categories).value()


def krippendorff_alpha_level(
    ratings: object, level: str, values: object = None, n_categories: int | None = None
) -> float:
    """Krippendorff's alpha at a level of measurement: ``nominal``, ``ordinal``, ``interval`` or ``ratio``.

    ``values[c]`` is the number category c stands for (default: its index). alpha = 1 - (n - 1) *
    sum(o_cd * delta_cd) / sum(n_c * n_d * delta_cd), with o the coincidence matrix, n_c its marginals and
    delta the level's squared difference from Krippendorff (2011): ordinal, the pairable values from c to d
    less half of each end, squared (only the order of the values matters); interval, (v_c - v_d)^2; ratio,
    ((v_c - v_d) / (v_c + v_d))^2. Missing ratings are allowed; ``nan`` when no unit has two ratings or the
    pairable ratings show no difference to expect (one value only).
    """
    if level == "nominal":
        return krippendorff_alpha(ratings, n_categories)
    return _scale_plan(f"krippendorff_alpha_{_checked_level(level)}", ratings, values, n_categories).value()


def weighted_kappa(
    ratings: object, weights: str = "linear", values: object = None, n_categories: int | None = None
) -> float:
    """Cohen's weighted kappa for two coders (two rows): 1 - sum(w * observed) / sum(w * expected).

    The disagreement weight of categories c and d is |v_c - v_d| (``linear``) or (v_c - v_d)^2
    (``quadratic``), where ``values[c]`` is the number category c stands for (default: its index, which is
    what scikit-learn's ``cohen_kappa_score(weights=...)`` uses: the position in the list of labels). Expected
    counts come from each coder's own marginals. Units either coder left unrated are dropped; ``nan`` when
    none is left or no disagreement is possible.
    """
    if weights not in WEIGHTS:
        raise RatingsError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    return _scale_plan(f"weighted_kappa_{weights}", ratings, values, n_categories).value()


def _checked_level(level: str) -> str:
    if level not in LEVELS:
        raise RatingsError(f"unknown level of measurement {level!r}; choose one of {', '.join(LEVELS)}")
    return level


def _scale_plan(statistic: str, ratings: object, values: object, n_categories: int | None) -> _Plan:
    """Validate the ratings and values for one of ``SCALE_STATISTICS`` and lay out its per-unit rows."""
    if n_categories is None and values is not None:
        n_categories = int(np.asarray(values).size)
    matrix, k = _checked(ratings, n_categories)
    kind, _, variant = statistic.rpartition("_")
    numbers = _category_values(values, k, variant)
    if kind == "krippendorff_alpha":
        return _metric_alpha_plan(matrix, k, numbers, variant)
    return _weighted_kappa_plan(matrix, k, numbers, variant)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "percent": percent_agreement,
    "cohen_kappa": cohen_kappa,
    "fleiss_kappa": fleiss_kappa,
    "krippendorff_alpha": krippendorff_alpha,
    "brennan_prediger": brennan_prediger,
}
_PLANNERS: dict[Callable[..., float], Callable[[np.ndarray, int], _Plan]] = {
    percent_agreement: _percent_plan,
    cohen_kappa: _cohen_plan,
    fleiss_kappa: _fleiss_plan,
    krippendorff_alpha: _alpha_plan,
    brennan_prediger: _brennan_prediger_plan,
}


def _planned(function: Callable[..., float], ratings: object, n_categories: int | None) -> _Plan:
    """Validate the ratings for one of this module's statistics and lay out its per-unit rows."""
    if function is brennan_prediger and n_categories is None:
        raise RatingsError("brennan_prediger needs n_categories: the number of categories available")
    matrix, k = _checked(ratings, n_categories)
    if function is brennan_prediger and k < 2:
        raise RatingsError(f"brennan_prediger needs at least 2 categories available, got {k}")
    return _PLANNERS[function](matrix, k)


# ---------------------------------------------------------------------------------------- bootstrap


def _statistic_function(statistic: str | Callable[..., float]) -> Callable[..., float]:
    if isinstance(statistic, str):
        try:
            return _FUNCTIONS[statistic]
        except KeyError:
            raise RatingsError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}") from None
    if not callable(statistic):
        raise RatingsError(f"statistic must be a name or a function, got {statistic!r}")
    return statistic


def _resample_values_from_plan(plan: _Plan, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = plan.units
    if n == 0:
        return np.full(n_resamples, np.nan)
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CELLS_PER_CHUNK // n))
    values = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        drawn = rng.integers(0, n, size=(size, n))
        # How often each unit was drawn in each resample: the resampled sums are then one matrix product.
        offsets = (np.arange(size, dtype=np.int64) * n)[:, None]
        multiplicity = np.bincount((drawn + offsets).ravel(), minlength=size * n).reshape(size, n)
        values[start : start + size] = plan.finish(multiplicity.astype(np.float64) @ plan.features)
    return values


def _resample_values_by_calling(
    function: Callable[..., float],
    matrix: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    kwargs: dict[str, Any],
) -> np.ndarray:
    n = matrix.shape[1]
    values = np.full(n_resamples, np.nan)
    if n == 0:
        return values
    for resample in range(n_resamples):
        values[resample] = function(matrix[:, rng.integers(0, n, size=n)], **kwargs)
    return values


def _check_bootstrap_arguments(n_resamples: object, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise RatingsError(f"n_resamples must be a whole number >= 1, got {n_resamples!r}")
    if not 0.0 < level < 1.0:
        raise RatingsError(f"level must lie strictly between 0 and 1, got {level!r}")


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    """Percentile interval of the defined values, and how many were undefined (nan) and left out."""
    defined = values[~np.isnan(values)]
    undefined = int(values.size - defined.size)
    if defined.size == 0:
        return math.nan, math.nan, undefined
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(defined, [tail, 100.0 - tail])
    return float(low), float(high), undefined


def bootstrap_ci(
    statistic: str | Callable[..., float],
    ratings: object,
    n_resamples: int,
    level: float = 0.95,
    seed: int = 0,
    **kwargs: object,
) -> tuple[float, float]:
    """Percentile bootstrap interval for ``statistic``, resampling units (columns) with replacement.

    ``statistic`` is one of this module's functions (or its name in ``STATISTICS`` or ``SCALE_STATISTICS``);
    ``kwargs`` go to it (``n_categories``; ``values`` for a scale statistic). For those, the units resampled are the units the statistic uses (those with two or
    more ratings; for Cohen's kappa those both coders rated), all resamples are evaluated together from
    per-unit sums, and the result is the same for the same ``seed``. Any other function is called once per
    resample on all columns. Resamples where the statistic is undefined (nan, e.g. only one category drawn)
    are left out; (nan, nan) if none is defined.
    """
    _check_bootstrap_arguments(n_resamples, level)
    rng = np.random.default_rng(seed)
    if isinstance(statistic, str) and statistic in SCALE_STATISTICS:
        values = kwargs.pop("values", None)
        n_categories = cast("int | None", kwargs.pop("n_categories", None))
        if kwargs:
            raise RatingsError(f"unexpected arguments for {statistic}: {', '.join(kwargs)}")
        plan = _scale_plan(statistic, ratings, values, n_categories)
        low, high, _ = _percentile_interval(_resample_values_from_plan(plan, int(n_resamples), rng), level)
        return low, high
    function = _statistic_function(statistic)
    if function in _PLANNERS:
        n_categories = cast("int | None", kwargs.pop("n_categories", None))
        if kwargs:
            raise RatingsError(f"unexpected arguments for {function.__name__}: {', '.join(kwargs)}")
        values = _resample_values_from_plan(_planned(function, ratings, n_categories), int(n_resamples), rng)
    else:
        values = _resample_values_by_calling(function, np.asarray(ratings), int(n_resamples), rng, kwargs)
    low, high, _ = _percentile_interval(values, level)
    return low, high


# ------------------------------------------------------------------------------- patterns and groups

# Below this many units a matrix is used as it is: compressing it would save nothing worth the bookkeeping.
_COMPRESS_FROM = 1024


def rating_patterns(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct unit columns of a ratings matrix (coders x patterns) and each unit's pattern index.

    Every statistic here depends on a unit only through its column of ratings, and a study's units repeat a
    few columns (two coders and a present/absent code give at most 9), so the statistics can be computed
    on the patterns with their counts as weights. Each column is read as a number in base k + 1 and counted
    with one bincount (a sort when there are too many possible numbers)."""
    coders, n_units = matrix.shape
    base = k + 1
    if base**coders > 2**62:
        patterns, index = np.unique(matrix, axis=1, return_inverse=True)
        return patterns, index.reshape(-1)
    ids = np.zeros(n_units, dtype=np.int64)
    scale = 1
    for row in matrix:
        ids += (row + 1) * scale
        scale *= base
    if scale <= max(4 * n_units, 1 << 16):
        present = np.flatnonzero(np.bincount(ids, minlength=scale))
        lookup = np.zeros(scale, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        index = lookup[ids]
    else:
        present, index = np.unique(ids, return_inverse=True)
    patterns = np.empty((coders, present.size), dtype=np.int64)
    scale = 1
    for row in range(coders):
        patterns[row] = (present // scale) % base - 1
        scale *= base
    return patterns, index


def _weighted_value(plan: _Plan, weights: np.ndarray) -> tuple[float, int]:
    """A plan laid out on rating patterns: its value and units, each pattern counted ``weights`` times."""
    used = weights if plan.used is None else weights[plan.used]
    return float(plan.finish(used.astype(np.float64) @ plan.features)), int(used.sum())


def _group_sums(features: np.ndarray, groups: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """Weighted column sums of the feature rows per group: one bincount per feature."""
    sums = np.empty((n_groups, features.shape[1]))
    for column in range(features.shape[1]):
        sums[:, column] = np.bincount(groups, weights=features[:, column] * weights, minlength=n_groups)
    return sums


def statistics_by_group(
    statistic_names: Sequence[str],
    ratings: object,
    n_categories: int | None,
    groups: object,
    n_groups: int,
    *,
    q: object = None,
) -> dict[str, list[StatResult | RatingsError]]:
    """The nominal statistics of every group of units at once, as ``compute`` gives them for
    ``ratings[:, groups == g]`` without a bootstrap (a ``RatingsError`` where ``compute`` would raise one).

    ``groups[u]`` is the group (0..n_groups-1) of unit column u. Each statistic is column sums of per-unit
    features and a finish that works on many sums at once. The units are first counted per group and rating
    pattern (``rating_patterns``, one bincount), the features laid out once per (group, pattern) that occurs,
    summed per group weighted by those counts and finished together: linear in the units, whatever the number
    of groups. ``q`` (one per group, default ``n_categories``) is Brennan-Prediger's number of categories
    available.
    """
    matrix, k = _checked(ratings, n_categories)
    group_of = np.asarray(groups, dtype=np.int64)
    if group_of.shape != (matrix.shape[1],):
        raise RatingsError(f"groups must give one group per unit column: {matrix.shape[1]} units")
    if group_of.size and (group_of.min() < 0 or group_of.max() >= n_groups):
        raise RatingsError(f"groups must lie in 0..{n_groups - 1}")
    unknown = [name for name in statistic_names if name not in STATISTICS]
    if unknown:
        raise RatingsError(f"unknown statistic {unknown[0]!r}; choose one of {', '.join(STATISTICS)}")
    # Each (group, pattern) that occurs becomes one weighted unit.
    patterns, pattern_of = rating_patterns(matrix, k)
    width = max(patterns.shape[1], 1)
    keys = group_of * width + pattern_of
    if n_groups * width <= max(4 * keys.size, 1 << 16):
        tally = np.bincount(keys, minlength=n_groups * width)
        pairs = np.flatnonzero(tally)
        weights = tally[pairs]
    else:
        pairs, weights = np.unique(keys, return_counts=True)
    group_of, matrix = pairs // width, patterns[:, pairs % width]
    counts = _value_counts(matrix, k)
    per_unit = counts.sum(axis=1)
    used = per_unit >= 2
    used_groups, used_weights = group_of[used], weights[used]
    pairable = np.bincount(used_groups, weights=used_weights, minlength=n_groups).astype(np.int64)
    pairable_coders = np.zeros(n_groups, dtype=np.int64)
    for row in matrix:
        pairable_coders += np.bincount(group_of[used & (row != MISSING)], minlength=n_groups) > 0
    kept = counts[used].astype(np.float64)
    kept_per_unit = per_unit[used].astype(np.float64)
    found: dict[str, list[StatResult | RatingsError]] = {}

    def results(
        name: str,
        values: np.ndarray,
        units: np.ndarray,
        coders: np.ndarray,
        notes: Sequence[str | None],
        undefined_note: str,
        errors: Sequence[RatingsError | None] | None = None,
    ) -> list[StatResult | RatingsError]:
        out: list[StatResult | RatingsError] = []
        for g in range(n_groups):
            error = None if errors is None else errors[g]
            if error is not None:
                out.append(error)
                continue
            value = float(values[g])
            note = notes[g]
            if math.isnan(value):
                note = undefined_note if units[g] == 0 else NOTE_ONE_CATEGORY
            out.append(StatResult(name, value, int(units[g]), int(coders[g]), None, None, note))
        return out

    if {"percent", "brennan_prediger"} & set(statistic_names):
        agreeing_pairs = (kept * (kept - 1)).sum(axis=1)
        shares = np.column_stack([np.ones_like(kept_per_unit), agreeing_pairs / (kept_per_unit * (kept_per_unit - 1))])
        percent = _percent_finish(_group_sums(shares, used_groups, n_groups, used_weights))
        if "percent" in statistic_names:
            found["percent"] = results(
                "percent", percent, pairable, pairable_coders, [PERCENT_DEFINITION] * n_groups, NOTE_NO_PAIRABLE_UNIT
            )
        if "brennan_prediger" in statistic_names:
            available = np.full(n_groups, k, dtype=np.int64) if q is None else np.asarray(q, dtype=np.int64)
            errors = [
                None
                if size >= 2
                else RatingsError(f"brennan_prediger needs at least 2 categories available, got {size}")
                for size in available.tolist()
            ]
            with np.errstate(divide="ignore", invalid="ignore"):
                chance = 1.0 / available
                value = (percent - chance) / (1.0 - chance)
            notes = [f"q = {size} categories available" for size in available.tolist()]
            found["brennan_prediger"] = results(
                "brennan_prediger", value, pairable, pairable_coders, notes, NOTE_NO_PAIRABLE_UNIT, errors
            )
    if "cohen_kappa" in statistic_names:
        if matrix.shape[0] != 2:
            error = RatingsError(f"cohen_kappa needs exactly 2 coders (rows), got {matrix.shape[0]}")
            found["cohen_kappa"] = [error] * n_groups
        else:
            plan = _cohen_plan(matrix, k)
            both_groups, both_weights = group_of[plan.used], weights[plan.used]
            shared = np.bincount(both_groups, weights=both_weights, minlength=n_groups).astype(np.int64)
            values = plan.finish(_group_sums(plan.features, both_groups, n_groups, both_weights))
            found["cohen_kappa"] = results(
                "cohen_kappa", values, shared, np.where(shared > 0, 2, 0), [None] * n_groups, NOTE_NO_SHARED_UNIT
            )
    if "fleiss_kappa" in statistic_names:
        # Fleiss' formula wants the same number of ratings on every counted unit of a group.
        seen = np.zeros((n_groups, matrix.shape[0] + 1), dtype=bool)
        seen[used_groups, per_unit[used]] = True
        raters = np.where(seen.any(axis=1), seen.argmax(axis=1), 2).astype(np.float64)
        errors = [
            RatingsError(
                "fleiss_kappa needs the same number of ratings on every unit (units rated fewer than twice are"
                f" left out); found {' or '.join(str(s) for s in np.flatnonzero(row))} ratings."
                " Use krippendorff_alpha for data with missing ratings"
            )
            if row.sum() > 1
            else None
            for row in seen
        ]
        sums = _group_sums(
            np.column_stack([np.ones(kept.shape[0]), (kept * kept).sum(axis=1), kept]),
            used_groups,
            n_groups,
            used_weights,
        )
        units, squares, totals = sums[:, 0], sums[:, 1], sums[:, 2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = (squares / units - raters) / (raters * (raters - 1.0))
            shares = totals / (units[:, None] * raters[:, None])
            chance = (shares * shares).sum(axis=-1)
            kappa = (observed - chance) / (1.0 - chance)
        values = np.where(_only_one_category(totals) | (units == 0), np.nan, kappa)
        found["fleiss_kappa"] = results(
            "fleiss_kappa", values, pairable, pairable_coders, [None] * n_groups, NOTE_NO_PAIRABLE_UNIT, errors
        )
    if "krippendorff_alpha" in statistic_names:
        agreeing = (kept * (kept - 1)).sum(axis=1) / (kept_per_unit - 1)
        sums = _group_sums(np.column_stack([agreeing, kept]), used_groups, n_groups, used_weights)
        found["krippendorff_alpha"] = results(
            "krippendorff_alpha",
            _alpha_finish(sums),
            pairable,
            pairable_coders,
            [None] * n_groups,
            NOTE_NO_PAIRABLE_UNIT,
        )
    return found


# ------------------------------------------------------------------------------------------ compute


def compute(
    statistic_name: str,
    ratings: object,
    n_categories: int | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    *,
    values: object = None,
    weights: object = None,
) -> StatResult:
    """Compute one named statistic with what it rests on and, if ``bootstrap`` > 0, a 95% interval.

    ``weights`` (one whole number per unit column, no bootstrap) counts each column that many times: the
    ratings may then be a matrix's distinct columns (``rating_patterns``) with how often each occurs.

    ``statistic_name`` is one of ``STATISTICS`` or ``SCALE_STATISTICS``; the latter take ``values``, the
    number each category stands for (default: its index). ``units`` counts the units the statistic used and
    ``coders`` the coders with at least one rating on them. ``note`` names the percent-agreement
    definition, Brennan-Prediger's q, why a value is undefined (nan, and then no interval), or how many
    bootstrap resamples were undefined and left out.
    """
    if not isinstance(statistic_name, str):
        raise RatingsError(f"statistic_name must be one of {', '.join(STATISTICS)}, got {statistic_name!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise RatingsError(f"bootstrap must be a whole number of resamples >= 0, got {bootstrap!r}")
    compressed: tuple[_Plan, float, int] | None
    if weights is not None:
        if bootstrap:
            raise RatingsError("a bootstrap resamples units: give every unit, not weighted rating patterns")
        compressed = _weighted(statistic_name, ratings, n_categories, values, np.asarray(weights, dtype=np.int64))
    else:
        compressed = None if bootstrap else _compressed(statistic_name, ratings, n_categories, values)
    if compressed is not None:
        plan, value, units = compressed
    elif statistic_name in SCALE_STATISTICS:
        plan = _scale_plan(statistic_name, ratings, values, n_categories)
        value, units = plan.value(), plan.units
    else:
        function = _statistic_function(statistic_name)
        plan = _planned(function, ratings, n_categories)
        # Alpha's own function goes through the coincidence matrix; the others are their plan's value.
        value = krippendorff_alpha(ratings, n_categories) if function is krippendorff_alpha else plan.value()
        units = plan.units

    note = plan.note
    ci_low = ci_high = None
    if math.isnan(value):
        note = plan.undefined_note if units == 0 else NOTE_ONE_CATEGORY
    elif bootstrap:
        rng = np.random.default_rng(seed)
        values = _resample_values_from_plan(plan, int(bootstrap), rng)
        ci_low, ci_high, undefined = _percentile_interval(values, 0.95)
        if undefined:
            left_out = f"{undefined} of {int(bootstrap)} bootstrap resamples undefined and left out"
            note = f"{note}; {left_out}" if note else left_out
    return StatResult(statistic_name, value, units, plan.coders, ci_low, ci_high, note)


def _compressed(
    statistic_name: str, ratings: object, n_categories: int | None, values: object
) -> tuple[_Plan, float, int] | None:
    """A large matrix's statistic from its distinct rating patterns weighted by their counts (the same
    value up to rounding; see ``rating_patterns``): the plan on the patterns, the value and the units. None
    for a small matrix or one whose units barely repeat, and wherever the statistic refuses the ratings
    (the full matrix then gives the error, naming the unit columns)."""
    matrix = np.asarray(ratings)
    if matrix.ndim != 2 or matrix.shape[1] < _COMPRESS_FROM:
        return None
    if statistic_name in SCALE_STATISTICS and n_categories is None and values is not None:
        n_categories = int(np.asarray(values).size)
    try:
        matrix, k = _checked(matrix, n_categories)
        patterns, index = rating_patterns(matrix, k)
        if 2 * patterns.shape[1] > matrix.shape[1]:
            return None
        return _weighted(statistic_name, patterns, k, values, np.bincount(index, minlength=patterns.shape[1]))
    except RatingsError:
        return None


def _weighted(
    statistic_name: str, ratings: object, n_categories: int | None, values: object, weights: np.ndarray
) -> tuple[_Plan, float, int]:
    """The plan on weighted unit columns, its value and the units it rests on (weights summed)."""
    if weights.shape != (np.asarray(ratings).shape[-1],):
        raise RatingsError("weights must give one count per unit column")
    if statistic_name in SCALE_STATISTICS:
        plan = _scale_plan(statistic_name, ratings, values, n_categories)
    else:
        plan = _planned(_statistic_function(statistic_name), ratings, n_categories)
    value, units = _weighted_value(plan, weights)
    return plan, value, units
