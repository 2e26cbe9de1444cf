"""`concord select-sessions`: the high- and low-alliance sessions of each therapy, and why."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_rows, to_json

FIT_COLUMNS = ["therapy", "sessions", "pairs", "slope", "p_value", "sign", "kept", "reason"]
CANDIDATE_COLUMNS = [
    "therapy",
    "pole",
    "rank",
    "session",
    "alliance",
    "alliance_z",
    "outcome",
    "next_session",
    "next_outcome",
    "decision",
    "reason",
]


def _instruments(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one instrument, e.g. WAI-SR,WAI-S-T", param_hint="--alliance")
    return names


@click.command("select-sessions")
@study_argument
@click.option(
    "--alliance",
    "alliance",
    required=True,
    metavar="INSTRUMENTS",
    help="Alliance instruments whose totals are averaged per session, e.g. WAI-SR,WAI-S-T.",
)
@click.option("--outcome", required=True, metavar="INSTRUMENT", help="The symptom measure, e.g. BDI-II.")
@click.option("--detrend", is_flag=True, help="Remove each patient's linear time trend before selecting.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level for the per-therapy regression.",
)
@click.option(
    "--alliance-scale",
    type=click.Choice(["items", "z"]),
    default="items",
    show_default=True,
    help="The common scale of client and therapist forms before they are averaged: each form's mean "
    "item score, or its z-score within the patient.",
)
@click.option(
    "--fallback",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    metavar="N",
    help="Candidates tried per pole before a therapy is reported as having no usable high (low) session.",
)
@click.option(
    "--include-wrong-direction",
    is_flag=True,
    help="Keep therapies whose alliance significantly predicts MORE symptoms next session (left out by default).",
)
@click.option(
    "--apply",
    "apply_attribute",
    metavar="ATTRIBUTE",
    help="Store high/low as this blinded session attribute (supervisors and admins).",
)
@as_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="How to print the result.",
)
def select_sessions(
    study,
    alliance,
    outcome,
    detrend,
    alpha,
    alliance_scale,
    fallback,
    include_wrong_direction,
    apply_attribute,
    actor,
    output_format,
):
    """Pick the highest- and lowest-alliance session of every therapy where alliance predicts the
    next session's outcome (Ekeblad et al. 2022), and say why each session was chosen or passed over.

    Per session, alliance is the mean of the client's and the therapist's scores on a common scale
    (--alliance-scale); both measures are standardised within the patient; next-session outcome is
    regressed on alliance per therapy, and only therapies where better alliance predicts fewer
    symptoms are kept. A final session is passed over; a high session must be followed by an
    outcome fall, a low one by a rise; at most --fallback candidates are tried per pole. The table
    lists every candidate tried and why it was taken or passed over.
    """
    with opened(study, actor) as workspace:
        from concord.services.selection import alliance_scale_text
        from concord.services.selection import select_sessions as run_selection

        selection = run_selection(
            workspace,
            alliance=_instruments(alliance),
            outcome=outcome,
            alpha=alpha,
            detrend=detrend,
            apply=apply_attribute,
            alliance_scale=alliance_scale,
            fallback=fallback,
            include_wrong_direction=include_wrong_direction,
        )
    result = selection.result
    fits = [
        {
            "therapy": f.therapy,
            "sessions": f.sessions,
            "pairs": f.pairs,
            "slope": f.slope,
            "p_value": f.p_value,
            "sign": f.sign,
            "kept": f.kept,
            "reason": f.reason,
        }
        for f in result.fits
    ]
    candidates = [
        {
            "therapy": c.therapy,
            "pole": c.pole,
            "rank": c.rank,
            "session": c.session,
            "alliance": c.alliance,
            "alliance_z": c.alliance_score,
            "outcome": c.outcome,
            "next_session": c.next_session,
            "next_outcome": c.next_outcome,
            "decision": "chosen" if c.chosen else "passed over",
            "reason": c.reason,
        }
        for c in result.candidates
    ]
    if output_format == "json":
        click.echo(
            to_json(
                {
                    "alliance": list(selection.alliance_instruments),
                    "outcome": selection.outcome_instrument,
                    "alpha": result.alpha,
                    "detrended": result.detrended,
                    "alliance_scale": selection.alliance_scale,
                    "alliance_scale_text": alliance_scale_text(selection.alliance_scale),
                    "fallback": result.fallback,
                    "include_wrong_direction": result.include_wrong_direction,
                    "therapies": fits,
                    "candidates": candidates,
                    "chosen": [{"therapy": c.therapy, "session": c.session, "pole": c.pole} for c in result.chosen],
                    "unfilled": [{"therapy": t, "pole": p, "reason": r} for t, p, r in result.unfilled],
                    "single_respondent": [
                        {"therapy": t, "session": s, "respondent": r} for t, s, r in selection.single_respondent
                    ],
                    "applied": [{"therapy": t, "session": s, "value": v} for t, s, v in selection.applied],
                    "cleared": [{"therapy": t, "session": s, "value": v} for t, s, v in selection.cleared],
                }
            )
        )
        return
    if output_format == "csv":
        emit_rows(candidates, "csv", CANDIDATE_COLUMNS)
        return
    click.echo(
        f"Alliance: {', '.join(selection.alliance_instruments)}; outcome: {selection.outcome_instrument}; "
        f"alpha {result.alpha}{'; detrended' if result.detrended else ''}; "
        f"at most {result.fallback} candidates per pole"
    )
    click.echo(alliance_scale_text(selection.alliance_scale))
    click.echo("")
    click.echo("Therapies")
    shown = [{**fit, "p_value": None if fit["p_value"] is None else f"{fit['p_value']:.3g}"} for fit in fits]
    emit_rows(shown, "table", FIT_COLUMNS)
    click.echo("")
    click.echo("Sessions tried, in order")
    emit_rows(candidates, "table", CANDIDATE_COLUMNS)
    click.echo("")
    chosen = result.chosen
    kept = sum(1 for f in result.fits if f.kept)
    click.echo(
        f"Chosen: {sum(c.pole == 'high' for c in chosen)} high and {sum(c.pole == 'low' for c in chosen)} low "
        f"session(s) from {kept} of {len(result.fits)} therapies."
    )
    for therapy, pole, reason in result.unfilled:
        click.echo(f"No {pole} session for therapy {therapy}: {reason}.")
    if selection.single_respondent:
        shown = ", ".join(f"{t}:{s} ({r})" for t, s, r in selection.single_respondent[:12])
        more = f" and {len(selection.single_respondent) - 12} more" if len(selection.single_respondent) > 12 else ""
        click.echo(f"Alliance from one respondent only: {shown}{more}.")
    if selection.applied_attribute:
        click.echo(
            f"Stored as the blinded session attribute {selection.applied_attribute!r} on "
            f"{len(selection.applied)} session(s); cleared from {len(selection.cleared)}."
        )
