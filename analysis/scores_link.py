"""Themes against a continuous score, with sessions nested in patients (exploratory).

Input: one row per session with the patient it belongs to, the score (an instrument's total or
subscale) and, per theme, its rate (codings per covered 100 turns or 1,000 words) and presence
(0/1). Everything here is pure: frames in, frames out.

Per theme:

* the pooled Pearson correlation of rate and score over sessions, with a 95% confidence interval from
  Fisher's z (tanh(atanh(r) +- 1.96 / sqrt(n - 3))), and for presence the point-biserial one;
* the within/between decomposition: each session's score is split into the patient's mean score
  (between) and the session's deviation from it (within); the within correlation is over the
  deviations of both rate and score (n - 1 - (patients - 1) degrees of freedom are not adjusted:
  it is descriptive), the between correlation over the patients' means (n = patients);
* a linear mixed model, rate ~ 1 + score_within + score_between with a random intercept per patient
  (statsmodels MixedLM, REML), whose within coefficient is the association inside patients that a
  pooled correlation mixes with the differences between patients;
* for presence, a GEE logistic model with the same two predictors, patients as clusters and an
  exchangeable working correlation (statsmodels GEE, Binomial).

The p-values of the within coefficients are corrected across themes (Holm, or Benjamini-Hochberg),
and every result is labelled exploratory: the themes were not chosen to test these links.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

CORRECTIONS = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}
# Below these a model of three fixed effects and a cluster structure says nothing: it is not fitted.
MIN_PATIENTS, MIN_SESSIONS = 3, 6
WITHIN, BETWEEN = "score_within", "score_between"
Z95 = 1.959963984540054


def fisher_ci(r: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The confidence interval of a correlation by Fisher's z; NaNs when n <= 3 or r is not defined."""
    if n <= 3 or r is None or not np.isfinite(r):
        return math.nan, math.nan
    if abs(r) >= 1:
        return float(r), float(r)
    centre, spread = math.atanh(r), z / math.sqrt(n - 3)
    return math.tanh(centre - spread), math.tanh(centre + spread)


@dataclass(frozen=True)
class Correlation:
    r: float
    n: int
    low: float
    high: float
    p: float


def correlation(x: ArrayLike, y: ArrayLike) -> Correlation:
    """Pearson's r over the pairs where both are known, with its Fisher-z interval and p-value."""
    from scipy import stats

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[both], ys[both]
    n = len(xs)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(math.nan, n, math.nan, math.nan, math.nan)
    result = stats.pearsonr(xs, ys)
    r = float(result.statistic)
    low, high = fisher_ci(r, n)
    return Correlation(r, n, low, high, float(result.pvalue))


def decompose(frame: pd.DataFrame, column: str, patient: str = "patient") -> pd.DataFrame:
    """``frame`` with ``<column>_between`` (the patient's mean) and ``<column>_within`` (the session's
    deviation from it), over the rows where ``column`` is known."""
    out = frame.copy()
    mean = out.groupby(patient)[column].transform("mean")
    out[f"{column}_between"] = mean
    out[f"{column}_within"] = out[column] - mean
    return out


@dataclass(frozen=True)
class Coefficient:
    estimate: float
    se: float
    low: float
    high: float
    p: float


@dataclass(frozen=True)
class ModelFit:
    within: Coefficient
    between: Coefficient
    converged: bool
    note: str = ""


# statsmodels ships no types: ``result`` is one of its fitted-model results (params, bse, pvalues, conf_int).
def _coefficient(result: Any, index: int) -> Coefficient:
    params, bse, pvalues = np.asarray(result.params), np.asarray(result.bse), np.asarray(result.pvalues)
    interval = np.asarray(result.conf_int())
    return Coefficient(
        float(params[index]),
        float(bse[index]),
        float(interval[index, 0]),
        float(interval[index, 1]),
        float(pvalues[index]),
    )


def design(frame: pd.DataFrame) -> np.ndarray:
    """The fixed-effects design both models use: intercept, score_within, score_between (in that order)."""
    return np.column_stack([np.ones(len(frame)), frame[WITHIN].to_numpy(float), frame[BETWEEN].to_numpy(float)])


def fit_rate_model(frame: pd.DataFrame, outcome: str, patient: str = "patient") -> ModelFit | None:
    """MixedLM: ``outcome`` ~ 1 + score_within + score_between, random intercept per patient (REML).

    None when it cannot be fitted: fewer than MIN_PATIENTS patients or MIN_SESSIONS sessions, or no spread in
    the outcome or a predictor."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    usable = frame.dropna(subset=[outcome, WITHIN, BETWEEN])
    if usable[patient].nunique() < MIN_PATIENTS or len(usable) < MIN_SESSIONS:
        return None
    if usable[outcome].nunique() < 2 or usable[WITHIN].nunique() < 2:
        return None
    if usable[BETWEEN].nunique() < 2:
        return None
    model = sm.MixedLM(usable[outcome].to_numpy(float), design(usable), groups=usable[patient].to_numpy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = model.fit(reml=True)
            within, between = _coefficient(result, 1), _coefficient(result, 2)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return ModelFit(_nan(), _nan(), False, f"mixed model not fitted: {exc}")
    trouble = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    converged = bool(getattr(result, "converged", True)) and not trouble
    note = ""
    if not converged:
        note = "mixed model did not converge cleanly" + (
            f" ({str(trouble[0].message).splitlines()[0]})" if trouble else ""
        )
    return ModelFit(within, between, converged, note)


def fit_presence_model(frame: pd.DataFrame, outcome: str, patient: str = "patient") -> ModelFit | None:
    """GEE, Binomial (logit): ``outcome`` (0/1) ~ 1 + score_within + score_between, patients as clusters,
    exchangeable working correlation. Coefficients are log odds ratios. None when every session has the
    theme, or none has, or there are fewer than MIN_PATIENTS patients or MIN_SESSIONS sessions."""
    import statsmodels.api as sm

    usable = frame.dropna(subset=[outcome, WITHIN, BETWEEN])
    if usable[patient].nunique() < MIN_PATIENTS or len(usable) < MIN_SESSIONS:
        return None
    if usable[outcome].nunique() < 2 or usable[WITHIN].nunique() < 2:
        return None
    if usable[BETWEEN].nunique() < 2:
        return None
    model = sm.GEE(
        usable[outcome].to_numpy(float),
        design(usable),
        groups=usable[patient].to_numpy(),
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = model.fit()
            within, between = _coefficient(result, 1), _coefficient(result, 2)
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
            return ModelFit(_nan(), _nan(), False, f"presence model not fitted: {exc}")
    estimates = [within.estimate, within.se, between.estimate, between.se]
    if not all(np.isfinite(estimates)):
        # No usable standard errors (perfect separation, one session per patient): nothing to report.
        return ModelFit(_nan(), _nan(), False, "presence model not fitted: no usable standard errors")
    converged = not any("converge" in str(w.message).lower() for w in caught)
    note = "" if converged else "presence model did not converge cleanly (separation, or too few sessions)"
    return ModelFit(within, between, converged, note)


def _nan() -> Coefficient:
    return Coefficient(math.nan, math.nan, math.nan, math.nan, math.nan)


def adjust(pvalues: ArrayLike, method: str) -> list[float]:
    """``method`` ("holm" or "fdr_bh") across the p-values that are known; unknown ones stay NaN."""
    from statsmodels.stats.multitest import multipletests

    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    values = np.asarray(pvalues, dtype=float)
    known = np.isfinite(values)
    out = np.full(len(values), np.nan)
    if known.any():
        out[known] = multipletests(values[known], method=method)[1]
    return out.tolist()


def link_themes(
    sessions: pd.DataFrame,
    themes: Sequence[str],
    *,
    score: str = "score",
    patient: str = "patient",
    correction: str = "holm",
) -> pd.DataFrame:
    """One row per theme: the correlations and both models (see the module notes).

    ``sessions`` has ``patient``, ``score`` and per theme "<theme>: rate" and "<theme>: present"."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    frame = model_frame(sessions, score, patient)
    rows = []
    for theme in themes:
        rate, present = f"{theme}: rate", f"{theme}: present"
        pooled = correlation(frame[rate], frame[score])
        point = correlation(frame[present], frame[score])
        rate_within = frame[rate] - frame.groupby(patient)[rate].transform("mean")
        within = correlation(rate_within, frame[WITHIN])
        means = frame.groupby(patient)[[rate, score]].mean()
        between = correlation(means[rate], means[score])
        lmm = fit_rate_model(frame, rate, patient)
        gee = fit_presence_model(frame, present, patient)
        notes = [text for text in (lmm.note if lmm else "", gee.note if gee else "") if text]
        if lmm is None:
            notes.append(
                f"mixed model not fitted (fewer than {MIN_PATIENTS} patients or {MIN_SESSIONS} sessions, or no spread)"
            )
        if gee is None:
            notes.append(
                f"presence model not fitted (every session or none has the theme, or fewer than {MIN_PATIENTS} patients"
                f" or {MIN_SESSIONS} sessions)"
            )
        rows.append(
            {
                "theme": theme,
                "sessions": int(frame[rate].notna().sum()),
                "patients": int(frame.loc[frame[rate].notna(), patient].nunique()),
                "sessions with theme": int(frame[present].fillna(0).sum()),
                "mean rate": float(frame[rate].mean()) if len(frame) else math.nan,
                "r": pooled.r,
                "r CI low": pooled.low,
                "r CI high": pooled.high,
                "r p": pooled.p,
                "r within": within.r,
                "r within CI low": within.low,
                "r within CI high": within.high,
                "r between": between.r,
                "r between CI low": between.low,
                "r between CI high": between.high,
                "r between patients": between.n,
                "r presence": point.r,
                "r presence CI low": point.low,
                "r presence CI high": point.high,
                **_model_columns("LMM", lmm),
                **_model_columns("GEE", gee),
                "notes": "; ".join(notes),
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table["LMM within p adjusted"] = adjust(table["LMM within p"], correction)
        table["GEE within p adjusted"] = adjust(table["GEE within p"], correction)
    return table


def _model_columns(name: str, fit: ModelFit | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in ("within", "between"):
        coefficient = getattr(fit, part) if fit is not None else _nan()
        out[f"{name} {part} b"] = coefficient.estimate
        out[f"{name} {part} SE"] = coefficient.se
        out[f"{name} {part} CI low"] = coefficient.low
        out[f"{name} {part} CI high"] = coefficient.high
        out[f"{name} {part} p"] = coefficient.p
    return out


def model_frame(sessions: pd.DataFrame, score: str = "score", patient: str = "patient") -> pd.DataFrame:
    """The rows and columns the models are fitted on: the scored sessions with score_within and
    score_between (what a reader needs to refit them)."""
    scored = sessions.dropna(subset=[score])
    return decompose(scored, score, patient).rename(columns={f"{score}_within": WITHIN, f"{score}_between": BETWEEN})
