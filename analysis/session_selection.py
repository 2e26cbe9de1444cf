"""Choosing high- and low-alliance sessions to transcribe (Ekeblad et al. 2022; domain.md, design A).

The procedure, per therapy (one patient with one therapist):

1. Per session, alliance = the mean of the client's and the therapist's alliance scores (each the
   mean of that respondent's named instruments); a session with one respondent uses that one. The
   scores are first put on a common scale (the caller's choice: each form's mean item score, or
   ``standardise_within`` the patient), so instruments of different lengths and ranges weigh alike.
2. Optionally (``detrend``), each patient's linear time trend over session number is removed from
   alliance and from the outcome: what is left is the residual of an OLS line.
3. Alliance and outcome are standardised within the patient (z over that patient's sessions,
   sample standard deviation).
4. The outcome of the next session is regressed on this session's alliance (OLS). A therapy is
   kept when the slope is significant at ``alpha`` and in the expected direction (negative: better
   alliance, fewer symptoms next time); a significant slope the other way is left out with its
   reason, unless ``include_wrong_direction``.
5. From each kept therapy, the highest- and the lowest-alliance session. Candidates are tried in
   order of (standardised) alliance: a final session (no next session) is passed over; a high
   session must be followed by a fall in the raw outcome (BDI-II lower at the next session), a low
   one by a rise, otherwise the next candidate is taken, up to ``fallback`` candidates (default 3):
   a session far down the ranking is no longer a high (or low) alliance session, so after that
   the therapy is reported as having no usable high (low) session.

"Next session" is the following recorded session of the same therapy (by number). Everything here
is pure: data frames in, frozen dataclasses out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

POLES = ("high", "low")
MIN_PAIRS = 3
FALLBACK = 3


@dataclass(frozen=True)
class SessionAlliance:
    therapy: str
    session: int
    alliance: float
    respondents: tuple[str, ...]

    @property
    def note(self) -> str:
        if len(self.respondents) == 1:
            return f"{self.respondents[0]} only"
        return " and ".join(self.respondents)


@dataclass(frozen=True)
class TherapyFit:
    therapy: str
    sessions: int
    pairs: int
    slope: float | None
    intercept: float | None
    p_value: float | None
    r_squared: float | None
    kept: bool
    reason: str
    # Significant, but alliance predicts more symptoms next time: left out unless asked for.
    wrong_direction: bool = False

    @property
    def sign(self) -> str | None:
        if self.slope is None or self.slope == 0:
            return None
        return "negative" if self.slope < 0 else "positive"


@dataclass(frozen=True)
class Candidate:
    """One session tried for a pole, in the order tried, and what was decided about it."""

    therapy: str
    pole: str
    rank: int
    session: int
    alliance: float
    alliance_score: float  # the standardised (and, if asked, detrended) value the ranking used
    outcome: float | None
    next_session: int | None
    next_outcome: float | None
    chosen: bool
    reason: str


@dataclass(frozen=True)
class SelectionResult:
    fits: tuple[TherapyFit, ...]
    candidates: tuple[Candidate, ...]
    # (therapy, pole, why) for kept therapies where no session met the rules.
    unfilled: tuple[tuple[str, str, str], ...]
    alpha: float
    detrended: bool
    fallback: int | None = FALLBACK
    include_wrong_direction: bool = False

    @property
    def chosen(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.chosen)

    def chosen_session(self, therapy: str, pole: str) -> int | None:
        return next((c.session for c in self.chosen if c.therapy == therapy and c.pole == pole), None)


# --------------------------------------------------------------------------------------------------
# Step 1: alliance per session


def session_alliance(scores: pd.DataFrame) -> list[SessionAlliance]:
    """Alliance per session from rows (therapy, session, respondent, total) of the alliance instruments.

    Each respondent's instruments are averaged first, then the respondents, so a session with
    a client and a therapist score weighs them equally.
    """
    required = {"therapy", "session", "respondent", "total"}
    missing = required - set(scores.columns)
    if missing:
        raise ValueError(f"alliance scores need the columns {sorted(required)}; missing {sorted(missing)}")
    usable = scores.dropna(subset=["total"])
    found = []
    per_respondent = usable.groupby(["therapy", "session", "respondent"], sort=True)["total"].mean()
    for (therapy, session), group in per_respondent.groupby(level=[0, 1], sort=True):
        respondents = tuple(sorted(group.index.get_level_values(2), key=_respondent_order))
        found.append(
            SessionAlliance(
                therapy=str(therapy), session=int(session), alliance=float(group.mean()), respondents=respondents
            )
        )
    return found


def _respondent_order(respondent: str) -> tuple[int, str]:
    return ({"client": 0, "therapist": 1}.get(respondent, 2), respondent)


def standardise_within(scores: pd.DataFrame, by: Sequence[str] = ("therapy", "instrument", "respondent")) -> pd.Series:
    """Each total as a z-score within its patient's own forms of that instrument and respondent
    (sample standard deviation): the common scale that needs no knowledge of the instrument.
    A group with fewer than two scores or no spread gives no z (NaN)."""
    grouped = scores.groupby(list(by), sort=False)["total"]
    spread = grouped.transform("std")
    usable = (grouped.transform("count") >= 2) & (spread > 0)
    return ((scores["total"] - grouped.transform("mean")) / spread).where(usable)


# --------------------------------------------------------------------------------------------------
# Steps 2-5


def select_sessions(
    data: pd.DataFrame,
    *,
    alpha: float = 0.05,
    detrend: bool = False,
    fallback: int | None = FALLBACK,
    include_wrong_direction: bool = False,
) -> SelectionResult:
    """Run the procedure on rows (therapy, session, alliance, outcome); alliance or outcome may be missing.

    ``fallback``: how many candidates per pole are tried at most (None: all of them)."""
    if fallback is not None and fallback < 1:
        raise ValueError(f"fallback must be at least 1, not {fallback}")
    required = {"therapy", "session", "alliance", "outcome"}
    missing = required - set(data.columns)
    if missing:
        raise ValueError(f"session data need the columns {sorted(required)}; missing {sorted(missing)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, not {alpha}")
    fits: list[TherapyFit] = []
    candidates: list[Candidate] = []
    unfilled: list[tuple[str, str, str]] = []
    frame = data.copy()
    frame["therapy"] = frame["therapy"].astype(str)
    frame["session"] = frame["session"].astype(int)
    if frame.duplicated(["therapy", "session"]).any():
        twice = frame[frame.duplicated(["therapy", "session"], keep=False)][["therapy", "session"]].drop_duplicates()
        raise ValueError("a session appears twice: " + ", ".join(f"{t}:{s}" for t, s in twice.itertuples(index=False)))
    for therapy, rows in frame.groupby("therapy", sort=True):
        rows = rows.sort_values("session").reset_index(drop=True)
        fit, prepared = _fit_therapy(str(therapy), rows, alpha, detrend, include_wrong_direction)
        fits.append(fit)
        if not fit.kept:
            continue
        for pole in POLES:
            tried, why_none = _choose(str(therapy), prepared, pole, fallback)
            candidates.extend(tried)
            if why_none:
                unfilled.append((str(therapy), pole, why_none))
    return SelectionResult(
        fits=tuple(fits),
        candidates=tuple(candidates),
        unfilled=tuple(unfilled),
        alpha=alpha,
        detrended=detrend,
        fallback=fallback,
        include_wrong_direction=include_wrong_direction,
    )


def _residuals(numbers: np.ndarray, values: np.ndarray) -> np.ndarray:
    """What is left of values after removing their straight-line trend over session number."""
    design = sm.add_constant(numbers.astype(float), has_constant="add")
    return np.asarray(sm.OLS(values.astype(float), design).fit().resid)


def _standardised(values: pd.Series) -> pd.Series | None:
    present = values.dropna()
    if len(present) < 2:
        return None
    spread = present.std(ddof=1)
    if not spread or math.isnan(spread) or spread < 1e-12 * max(1.0, present.abs().max()):
        return None
    return (values - present.mean()) / spread


def _fit_therapy(
    therapy: str, rows: pd.DataFrame, alpha: float, detrend: bool, include_wrong_direction: bool = False
) -> tuple[TherapyFit, pd.DataFrame]:
    prepared = rows[["session", "alliance", "outcome"]].copy()
    prepared["next_session"] = prepared["session"].shift(-1)
    prepared["next_outcome"] = prepared["outcome"].shift(-1)

    def excluded(reason: str, pairs: int = 0) -> tuple[TherapyFit, pd.DataFrame]:
        return TherapyFit(
            therapy=therapy,
            sessions=len(rows),
            pairs=pairs,
            slope=None,
            intercept=None,
            p_value=None,
            r_squared=None,
            kept=False,
            reason=reason,
        ), prepared

    alliance = prepared["alliance"].astype(float)
    outcome = prepared["outcome"].astype(float)
    if detrend:
        for name, series in (("alliance", alliance), ("outcome", outcome)):
            present = series.notna()
            if present.sum() < 3:
                return excluded(f"too few sessions with {name} to remove a time trend ({int(present.sum())})")
            detrended = series.copy()
            detrended[present] = _residuals(prepared.loc[present, "session"].to_numpy(), series[present].to_numpy())
            if name == "alliance":
                alliance = detrended
            else:
                outcome = detrended
    alliance_z = _standardised(alliance)
    outcome_z = _standardised(outcome)
    if alliance_z is None:
        return excluded("alliance does not vary over this patient's sessions")
    if outcome_z is None:
        return excluded("the outcome does not vary over this patient's sessions")
    prepared["alliance_z"] = alliance_z
    prepared["next_outcome_z"] = outcome_z.shift(-1)
    pairs = prepared.dropna(subset=["alliance_z", "next_outcome_z"])
    if len(pairs) < MIN_PAIRS:
        return excluded(f"too few sessions followed by an outcome ({len(pairs)} pairs; needs {MIN_PAIRS})", len(pairs))
    x = pairs["alliance_z"].to_numpy(dtype=float)
    if np.ptp(x) == 0:
        return excluded("alliance does not vary over the sessions that have a next session", len(pairs))
    model = sm.OLS(pairs["next_outcome_z"].to_numpy(dtype=float), sm.add_constant(x, has_constant="add")).fit()
    slope, intercept = float(model.params[1]), float(model.params[0])
    p_value = float(model.pvalues[1])
    r_squared = float(model.rsquared)
    if math.isnan(p_value):
        # A perfect straight line leaves no residual variance: as significant as it gets.
        p_value = 0.0 if r_squared > 1 - 1e-12 else 1.0
    significant = p_value < alpha
    sign = "negative" if slope < 0 else "positive"
    wrong_direction = significant and slope > 0
    kept = significant and (not wrong_direction or include_wrong_direction)
    reason = (
        f"next-session outcome on alliance: slope {slope:+.3f} ({sign}), p = {p_value:.3g} "
        f"{'<' if significant else '>='} {alpha} over {len(pairs)} pairs"
    )
    if wrong_direction and kept:
        reason += "; a positive slope means more symptoms after better alliance: kept as asked, check the data"
    elif wrong_direction:
        reason += (
            "; the wrong direction (more symptoms after better alliance): left out (--include-wrong-direction keeps it)"
        )
    return TherapyFit(
        therapy=therapy,
        sessions=len(rows),
        pairs=len(pairs),
        slope=slope,
        intercept=intercept,
        p_value=p_value,
        r_squared=r_squared,
        kept=kept,
        reason=reason,
        wrong_direction=wrong_direction,
    ), prepared


def _choose(
    therapy: str, prepared: pd.DataFrame, pole: str, fallback: int | None = FALLBACK
) -> tuple[list[Candidate], str | None]:
    ranked = prepared.dropna(subset=["alliance_z"]).copy()
    ranked["order"] = -ranked["alliance_z"] if pole == "high" else ranked["alliance_z"]
    ranked = ranked.sort_values(["order", "session"], kind="mergesort")
    wanted = "fall" if pole == "high" else "rise"
    tried: list[Candidate] = []
    passed: list[int] = []
    for rank, row in enumerate(ranked.itertuples(index=False), 1):
        if fallback is not None and rank > fallback:
            return tried, (
                f"none of the {fallback} {'highest' if pole == 'high' else 'lowest'}-alliance sessions is usable "
                f"(sessions {', '.join(map(str, passed))}): no usable {pole} session"
            )
        session = int(row.session)
        next_session = None if pd.isna(row.next_session) else int(row.next_session)
        outcome = None if pd.isna(row.outcome) else float(row.outcome)
        next_outcome = None if pd.isna(row.next_outcome) else float(row.next_outcome)
        place = f"{'highest' if pole == 'high' else 'lowest'} alliance" + (f" no. {rank}" if rank > 1 else "")
        replaces = f"; replaces session{'s' if len(passed) > 1 else ''} {', '.join(map(str, passed))}" if passed else ""
        chosen = False
        if next_session is None:
            reason = f"{place}, but the final session (no next session)"
        elif outcome is None or next_outcome is None:
            missing = "this session" if outcome is None else f"session {next_session}"
            reason = f"{place}, but {missing} has no outcome score to compare"
        else:
            change = f"outcome {_number(outcome)} -> {_number(next_outcome)} at session {next_session}"
            went = next_outcome < outcome if pole == "high" else next_outcome > outcome
            if went:
                chosen = True
                reason = f"{place}; {change} ({wanted}s as required){replaces}"
            else:
                reason = f"{place}, but the outcome does not {wanted}: {change}"
        tried.append(
            Candidate(
                therapy=therapy,
                pole=pole,
                rank=rank,
                session=session,
                alliance=float(row.alliance),
                alliance_score=float(row.alliance_z),
                outcome=outcome,
                next_session=next_session,
                next_outcome=next_outcome,
                chosen=chosen,
                reason=reason,
            )
        )
        if chosen:
            return tried, None
        passed.append(session)
    return tried, f"no session is followed by an outcome {wanted}"


def _number(value: float) -> str:
    return f"{value:g}"


def session_table(
    alliance: Iterable[SessionAlliance], outcome: pd.DataFrame, sessions: Sequence[tuple[str, int]] = ()
) -> pd.DataFrame:
    """Rows (therapy, session, alliance, outcome) from alliance per session and outcome rows
    (therapy, session, total); sessions without either still appear when listed in ``sessions``."""
    frame = pd.DataFrame(
        [(a.therapy, a.session, a.alliance) for a in alliance], columns=["therapy", "session", "alliance"]
    )
    outcome_means = (
        outcome.dropna(subset=["total"])
        .groupby(["therapy", "session"], as_index=False)["total"]
        .mean()
        .rename(columns={"total": "outcome"})
    )
    outcome_means["therapy"] = outcome_means["therapy"].astype(str)
    merged = frame.merge(outcome_means, on=["therapy", "session"], how="outer")
    if sessions:
        listed = pd.DataFrame(list(sessions), columns=["therapy", "session"])
        merged = listed.merge(merged, on=["therapy", "session"], how="left")
    return merged.sort_values(["therapy", "session"]).reset_index(drop=True)
