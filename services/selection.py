"""Selecting high- and low-alliance sessions from the study's questionnaire scores, and marking them.

The scores are behind the blind, so the selection is for supervisors and admins, or for anyone
once the study is unblinded or was never blind. Storing the choice (``apply``) writes a blinded
session attribute ("high"/"low") and takes a supervisor or admin; it is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select

from concord.analysis.scoring import mean_item_score
from concord.analysis.session_selection import (
    FALLBACK,
    SelectionResult,
    SessionAlliance,
    session_alliance,
    session_table,
    standardise_within,
)
from concord.analysis.session_selection import select_sessions as run_selection
from concord.services.audit import record
from concord.services.rights import require_lead, require_selection_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import Attribute, Dyad, QuestionnaireScore, TherapySession


@dataclass(frozen=True)
class SessionSelection:
    result: SelectionResult
    alliance_instruments: tuple[str, ...]
    outcome_instrument: str
    # Sessions whose alliance came from one respondent only: (therapy, session, respondent).
    single_respondent: tuple[tuple[str, int, str], ...]
    alliance_scale: str = "items"
    applied_attribute: str | None = None
    applied: tuple[tuple[str, int, str], ...] = ()
    cleared: tuple[tuple[str, int, str], ...] = ()


ALLIANCE_SCALES = {
    "items": "each form's mean item score (its total over its items; a mean-scored form as it is), "
    "averaged over the respondent's forms, then client and therapist averaged",
    "z": "each form's total as a z-score within the patient (per instrument and respondent), "
    "averaged over the respondent's forms, then client and therapist averaged",
}


def _instrument_key(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def alliance_scale_text(scale: str) -> str:
    return f"Alliance on a common scale: {ALLIANCE_SCALES[scale]}."


def select_sessions(
    workspace: Workspace,
    *,
    alliance: Sequence[str],
    outcome: str,
    alpha: float = 0.05,
    detrend: bool = False,
    apply: str | None = None,
    alliance_scale: str = "items",
    fallback: int | None = FALLBACK,
    include_wrong_direction: bool = False,
) -> SessionSelection:
    """Run the selection procedure on the study's scores; with ``apply``, store high/low on the chosen sessions.

    ``alliance_scale``: how client and therapist forms are put on one scale before they are averaged
    ("items": mean item score; "z": z within the patient). ``fallback``: candidates tried per pole at
    most. ``include_wrong_direction`` keeps therapies whose alliance predicts more symptoms."""
    require_selection_rights(workspace, apply=apply is not None)
    if alliance_scale not in ALLIANCE_SCALES:
        raise ConcordError(f"unknown alliance scale {alliance_scale!r}; choose one of {', '.join(ALLIANCE_SCALES)}")
    if fallback is not None and fallback < 1:
        raise ConcordError(f"--fallback must be at least 1, not {fallback}")
    if apply is not None:
        apply = apply.strip()
        if not apply or len(apply) > 120:
            raise ConcordError("--apply needs an attribute name of 1 to 120 characters")
    alliance = tuple(name.strip() for name in alliance if name.strip())
    if not alliance:
        raise ConcordError("name at least one alliance instrument, e.g. --alliance WAI-SR,WAI-S-T")
    wanted_alliance = {_instrument_key(name) for name in alliance}
    wanted_outcome = _instrument_key(outcome)
    if wanted_outcome in wanted_alliance:
        raise ConcordError(f"{outcome} cannot be both the outcome and an alliance instrument")

    with workspace.store.reader() as session:
        rows = session.execute(
            select(
                Dyad.key,
                TherapySession.number,
                QuestionnaireScore.instrument,
                QuestionnaireScore.respondent,
                QuestionnaireScore.total,
                QuestionnaireScore.items,
            )
            .join(TherapySession, TherapySession.id == QuestionnaireScore.session_id)
            .join(Dyad, Dyad.id == TherapySession.dyad_id)
        ).all()
        all_sessions = session.execute(
            select(Dyad.key, TherapySession.number).join(TherapySession, TherapySession.dyad_id == Dyad.id)
        ).all()
    present = sorted({row[2] for row in rows})
    found = {_instrument_key(instrument) for instrument in present}
    for name in (*alliance, outcome):
        if _instrument_key(name) not in found:
            raise NotFound(
                f"no scores for instrument {name!r} in this study"
                + (f" (it has: {', '.join(present)})" if present else " (it has no scores yet)")
            )
    columns = ["therapy", "session", "respondent", "total"]
    alliance_rows = pd.DataFrame(
        [(d, n, r, t, i, items) for d, n, i, r, t, items in rows if _instrument_key(i) in wanted_alliance],
        columns=columns + ["instrument", "items"],
    )
    outcome_rows = pd.DataFrame(
        [(d, n, r, t) for d, n, i, r, t, _items in rows if _instrument_key(i) == wanted_outcome], columns=columns
    )
    # Instruments of different lengths and ranges must weigh alike in the client-therapist mean.
    if alliance_scale == "items":
        alliance_rows["total"] = [
            mean_item_score(i, t, items)
            for i, t, items in zip(alliance_rows["instrument"], alliance_rows["total"], alliance_rows["items"])
        ]
    else:
        alliance_rows["total"] = standardise_within(alliance_rows.assign(total=alliance_rows["total"].astype(float)))
    alliance_rows["total"] = alliance_rows["total"].astype(float)
    alliance_rows = alliance_rows[columns]
    per_session: list[SessionAlliance] = session_alliance(alliance_rows)
    therapies = set(alliance_rows["therapy"]) | set(outcome_rows["therapy"])
    listed = sorted((d, n) for d, n in all_sessions if d in therapies)
    data = session_table(per_session, outcome_rows, listed)
    result = run_selection(
        data, alpha=alpha, detrend=detrend, fallback=fallback, include_wrong_direction=include_wrong_direction
    )
    single = tuple((a.therapy, a.session, a.respondents[0]) for a in per_session if len(a.respondents) == 1)
    selection = SessionSelection(
        result=result,
        alliance_instruments=alliance,
        outcome_instrument=outcome,
        single_respondent=single,
        alliance_scale=alliance_scale,
    )
    if apply is None:
        return selection
    return _apply(workspace, selection, apply)


def _apply(workspace: Workspace, selection: SessionSelection, name: str) -> SessionSelection:
    """Store high/low as a blinded attribute of the chosen sessions; the name's earlier marks on other sessions go."""
    actor = require_lead(workspace)
    chosen = {(c.therapy, c.session): c.pole for c in selection.result.chosen}
    applied, cleared = [], []
    with workspace.store.session() as session:
        places = {
            (key, number): session_id
            for session_id, key, number in session.execute(
                select(TherapySession.id, Dyad.key, TherapySession.number).join(Dyad, Dyad.id == TherapySession.dyad_id)
            )
        }
        ids_to_place = {session_id: place for place, session_id in places.items()}
        existing = {
            row.target_id: row
            for row in session.scalars(
                select(Attribute).where(Attribute.target_kind == "session", Attribute.name == name)
            )
        }
        for target_id, row in existing.items():
            place = ids_to_place.get(target_id)
            if place not in chosen:
                cleared.append((*place, row.value or "") if place else ("?", target_id, row.value or ""))
                session.delete(row)
        for place, pole in sorted(chosen.items()):
            target_id = places[place]
            row = existing.get(target_id)
            if row is None:
                session.add(
                    Attribute(
                        target_kind="session",
                        target_id=target_id,
                        name=name,
                        value_type="text",
                        value=pole,
                        blinded=True,
                    )
                )
            else:
                row.value, row.value_type, row.blinded = pole, "text", True
            applied.append((*place, pole))
        result = selection.result
        record(
            session,
            actor.name,
            "selection.apply",
            "attribute",
            None,
            attribute=name,
            alliance=list(selection.alliance_instruments),
            outcome=selection.outcome_instrument,
            alpha=result.alpha,
            detrend=result.detrended,
            alliance_scale=selection.alliance_scale,
            fallback=result.fallback,
            include_wrong_direction=result.include_wrong_direction,
            chosen=[f"{t}:{s}={p}" for t, s, p in applied],
            cleared=[f"{t}:{s}" for t, s, _ in cleared],
        )
    return SessionSelection(
        result=selection.result,
        alliance_instruments=selection.alliance_instruments,
        outcome_instrument=selection.outcome_instrument,
        single_respondent=selection.single_respondent,
        alliance_scale=selection.alliance_scale,
        applied_attribute=name,
        applied=tuple(applied),
        cleared=tuple(cleared),
    )
