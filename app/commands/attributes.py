"""`concord attribute`, `concord scores` and `concord speakers`: see and fix what an import brought in."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_rows, format_option


@click.group()
def attribute():
    """Transcript attributes: list, set, unset (supervisors; every change audited)."""


@attribute.command("list")
@study_argument
@click.argument("transcript", required=False)
@format_option()
@as_option
def list_(study, transcript, output_format, actor):
    """List the attributes of every transcript, or of TRANSCRIPT.

    Blinded attributes are marked; their values are shown only to whom the blind does not apply.
    """
    from concord.services.attributes import list_attributes

    with opened(study, actor) as workspace:
        rows = list_attributes(workspace, transcript)
    emit_rows(
        [
            {
                "transcript": r.transcript,
                "kind": r.kind,
                "name": r.name,
                "value": r.value if r.value is not None else "(blinded)",
                "blinded": "yes" if r.blinded else "",
            }
            for r in rows
        ]
        if output_format == "table"
        else [r.__dict__ for r in rows],
        output_format,
        ["transcript", "kind", "name", "value", "blinded"],
    )


@attribute.command("set")
@study_argument
@click.argument("transcript")
@click.argument("name")
@click.argument("value")
@click.option(
    "--blinded",
    is_flag=True,
    default=None,
    help="Hide the attribute from coders until unblinding (an attribute already blinded stays blinded).",
)
@as_option
def set_(study, transcript, name, value, blinded, actor):
    """Set attribute NAME of TRANSCRIPT to VALUE (added if it is not there).

    The IPR interviews about a session transcript inherit the new value where they had the old one.

    \b
    Examples:
      concord attribute set s.concord S01 modality online
      concord attribute set s.concord S01 group high --blinded
    """
    from concord.services.attributes import set_attribute

    with opened(study, actor) as workspace:
        change = set_attribute(workspace, transcript, name, value, blinded=blinded or None)
    shown = "(blinded)" if change.blinded else repr(change.new)
    verb = "Set" if change.old is None else "Changed"
    click.echo(f"{verb} {change.name} of {change.transcript} to {shown}.")
    if change.interviews:
        click.echo(f"Inherited by the IPR interview(s): {', '.join(change.interviews)}.")


@attribute.command("unset")
@study_argument
@click.argument("transcript")
@click.argument("name")
@as_option
def unset(study, transcript, name, actor):
    """Remove attribute NAME from TRANSCRIPT (and the copies its IPR interviews inherited)."""
    from concord.services.attributes import unset_attribute

    with opened(study, actor) as workspace:
        change = unset_attribute(workspace, transcript, name)
    click.echo(f"Removed {change.name} from {change.transcript}.")
    if change.interviews:
        click.echo(f"Also from the IPR interview(s): {', '.join(change.interviews)}.")


def _number(value) -> str:
    if value is None:
        return ""
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


@click.command()
@study_argument
@click.option("--instrument", help="Only this instrument (e.g. CARE, WAI-SR).")
@format_option()
@as_option
def scores(study, instrument, output_format, actor):
    """The imported questionnaire forms per session: totals, subscales, missing and prorated items.

    Hidden from coders while the study is blind.
    """
    from concord.services.attributes import list_scores

    with opened(study, actor) as workspace:
        rows = list_scores(workspace, instrument)
    if output_format != "table":
        emit_rows(
            [{**r.__dict__, "missing": list(r.missing), "transcripts": list(r.transcripts)} for r in rows],
            output_format,
            [
                "dyad",
                "session",
                "instrument",
                "respondent",
                "total",
                "subscales",
                "band",
                "answered",
                "missing",
                "prorated",
                "transcripts",
                "source",
            ],
        )
        return
    emit_rows(
        [
            {
                "session": f"{r.dyad}:{r.session}",
                "instrument": r.instrument,
                "respondent": r.respondent,
                "total": _number(r.total) if r.total is not None else "(not scored)",
                "subscales": ", ".join(f"{k} {_number(v)}" for k, v in r.subscales.items()),
                "band": r.band or "",
                "missing items": ", ".join(r.missing),
                "prorated": "yes" if r.prorated else "",
            }
            for r in rows
        ],
        output_format,
    )
    if rows:
        prorated = sum(1 for r in rows if r.prorated)
        unscored = sum(1 for r in rows if r.total is None)
        click.echo(f"{len(rows)} form(s); {prorated} prorated; {unscored} not scored (too many missing items).")


@click.command()
@study_argument
@click.argument("transcript")
@click.option(
    "--map",
    "speaker_map",
    metavar="LABEL=ROLE,...",
    help="Give labels their roles: therapist, client, interviewer or other (e.g. T=therapist,P=client).",
)
@format_option()
@as_option
def speakers(study, transcript, speaker_map, output_format, actor):
    """List the speakers of TRANSCRIPT with their roles, or fix the roles with --map.

    Every turn of a mapped label gets the role; the change is audited.

    \b
    Examples:
      concord speakers s.concord S01
      concord speakers s.concord S01 --map T=therapist,P=client
    """
    from concord.services.attributes import list_speakers, map_speakers

    with opened(study, actor) as workspace:
        if speaker_map is None:
            rows = list_speakers(workspace, transcript)
            changed = None
        else:
            change = map_speakers(workspace, transcript, speaker_map)
            rows, changed = change.speakers, change
    if changed is not None and output_format == "table":
        if changed.changed:
            roles = ", ".join(f"{label} {old} -> {new}" for label, (old, new) in changed.changed.items())
            click.echo(f"{changed.transcript}: {roles} ({changed.turns} turn(s)).")
        else:
            click.echo(f"{changed.transcript}: the roles were already so; nothing changed.")
    emit_rows([{"label": r.label, "role": r.role, "turns": r.turns} for r in rows], output_format)
