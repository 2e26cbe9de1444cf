"""`concord agreement`: inter-coder agreement per code, per group, per transcript, per coder pair, pooled."""

from __future__ import annotations

import click

from concord.analysis.agreement_units import UNCODED_CHOICES, UNIT_KINDS
from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_rows, format_option
from concord.services.agreement import (
    ALL_SPEAKERS,
    PHASES,
    STATISTIC_CHOICES,
    STATISTIC_NAMES,
    AgreementOptions,
    AgreementReport,
    compute_agreement,
)
from concord.storage.models import SPEAKER_ROLES

SHORT_NAMES = {
    **{full: short for short, full in STATISTIC_NAMES.items()},
    "krippendorff_alpha_ordinal": "alpha-ord",
    "krippendorff_alpha_interval": "alpha-int",
    "krippendorff_alpha_ratio": "alpha-ratio",
    "weighted_kappa_linear": "wkappa-lin",
    "weighted_kappa_quadratic": "wkappa-quad",
}
JSON_FIELDS = (
    "scope",
    "statistic",
    "value",
    "units",
    "coders",
    "ci_low",
    "ci_high",
    "unit",
    "units_total",
    "disagreements",
    "reading",
    "code",
    "group",
    "transcript",
    "coder_pair",
    "coder_names",
    "speakers",
    "note",
)


def split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _subject(row) -> str:
    if row.scope in ("code", "group", "scale"):
        return row.group if row.scope == "group" else row.code
    if row.scope == "coder_pair" and row.reading == "scale":
        return f"{row.code}: {' / '.join(row.coder_pair)}"
    if row.scope == "transcript":
        return row.transcript
    if row.scope == "coder_pair":
        return " / ".join(row.coder_pair)
    return "all codes" if row.reading == "code" else "all groups"


def _table_rows(report: AgreementReport, with_ci: bool) -> tuple[list[dict], list[str], list[str]]:
    """One line per scope with a column per statistic; the notes to print under it."""
    lines: dict[tuple, dict] = {}
    statistics: list[str] = []
    notes: list[str] = []
    for row in report.rows:
        key = (row.reading, row.scope, _subject(row))
        line = lines.setdefault(
            key,
            {
                "scope": row.scope if row.reading == "code" or row.scope != "pooled" else "pooled groups",
                "of": _subject(row),
                "turns of": " and ".join(row.speakers) if row.speakers else "all",
                "units": row.units_total,
                "disagree": row.disagreements,
            },
        )
        name = SHORT_NAMES.get(row.statistic, row.statistic)
        if name not in statistics:
            statistics.append(name)
        cell = _number(row.value)
        if with_ci and row.value is not None and row.ci_low is not None:
            cell += f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"
        line[name] = cell
        for part in row.note.split("; ") if row.note and not row.note.startswith("skipped") else [row.note]:
            if not part:
                continue
            if "bootstrap resamples undefined" in part:
                note = (
                    "some bootstrap resamples had only one category and were left out of the intervals"
                    " (counts per row: --format json)"
                )
            else:
                note = part if part.startswith("skipped") else f"{name}: {part}"
            if note not in notes:
                notes.append(note)
    speakers_differ = report.unit == "turn" and any(row.speakers for row in report.rows)
    columns = ["scope", "of", *(["turns of"] if speakers_differ else []), "units", "disagree", *statistics]
    return list(lines.values()), columns, notes


@click.command()
@study_argument
@click.option("--transcripts", metavar="KEYS", help="Only these transcripts (comma-separated keys).")
@click.option("--coders", metavar="A,B,...", help="Only these coders (default: everyone who coded).")
@click.option(
    "--phase",
    type=click.Choice(PHASES),
    default="independent",
    show_default=True,
    help="consensus: add the consensus layer as one more rater, to compare each coder with it.",
)
@click.option(
    "--unit",
    type=click.Choice(UNIT_KINDS),
    default="turn",
    show_default=True,
    help="What is rated: each turn, each aligned span, or each whole transcript.",
)
@click.option(
    "--code",
    "codes",
    multiple=True,
    metavar="CODE",
    help="A code, present or absent per unit (repeatable; default: every code used).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="A theme or parent code whose children are the values of one variable (repeatable).",
)
@click.option(
    "--speaker",
    "speakers",
    multiple=True,
    type=click.Choice((*SPEAKER_ROLES, ALL_SPEAKERS)),
    help=(
        "Only turns of this speaker role (repeatable), for every code and group; 'all' keeps every turn."
        " Default: each code or group on the speakers its codebook declares (applies_to), else those it was"
        " applied to."
    ),
)
@click.option(
    "--uncoded",
    type=click.Choice(UNCODED_CHOICES),
    default="category",
    show_default=True,
    help="Units no coder coded: left out, or kept as their own category (absent / (none)).",
)
@click.option(
    "--overlap",
    type=float,
    default=0.5,
    show_default=True,
    help="With --unit span: the share of the shorter span two spans must share to match.",
)
@click.option(
    "--statistic",
    "statistics",
    multiple=True,
    type=click.Choice(STATISTIC_CHOICES),
    default=("all",),
    show_default=True,
    help="Which statistic (repeatable).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Add 95% bootstrap confidence intervals from N resamples of the units.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--without-suggested",
    is_flag=True,
    help='Leave out codings made with the coding assistant (accepted suggestions and "more like this").',
)
@as_option
@format_option()
def agreement(
    study,
    transcripts,
    coders,
    phase,
    unit,
    codes,
    groups,
    speakers,
    uncoded,
    overlap,
    statistics,
    bootstrap,
    seed,
    without_suggested,
    actor,
    output_format,
):
    """Inter-coder agreement: percent, Cohen's and Fleiss' kappa, Krippendorff's alpha, Brennan-Prediger.

    While the study is blind this is for supervisors and admins (--as). Percent agreement is the mean share
    of agreeing coder pairs over the units with two or more ratings; Brennan-Prediger's q is the number of
    the group's codes ("(none)" counts only where a coder gave it). Codes that carry a value on a scale get
    Krippendorff's alpha at the scale's level and weighted kappa (linear and quadratic, per coder pair).

    \b
    Examples:
      concord agreement pilot.concord --as sue
      concord agreement pilot.concord --as sue --group "Therapeutic direction" --speaker client
      concord agreement pilot.concord --as sue --unit span --overlap 0.5 --statistic alpha --format json
    """
    options = AgreementOptions(
        transcripts=split_list(transcripts),
        coders=split_list(coders),
        phase=phase,
        unit=unit,
        codes=tuple(codes),
        groups=tuple(groups),
        speaker=tuple(speakers) or None,
        uncoded=uncoded,
        overlap=overlap,
        statistics=tuple(statistics),
        bootstrap=bootstrap,
        seed=seed,
        without_assisted=without_suggested,
    )
    with opened(study, actor) as workspace:
        report = compute_agreement(workspace, options)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output_format in ("json", "csv"):
        # Every row says how many codings the statistics rest on and how many the assistant had a hand in.
        counts = {
            "codings": report.codings,
            "codings_assisted": report.assisted,
            "without_suggested": report.without_assisted,
        }
        rows = [{**{name: getattr(row, name) for name in JSON_FIELDS}, **counts} for row in report.rows]
        emit_rows(rows, output_format, (*JSON_FIELDS, *counts))
        return
    click.echo(report.headline + ".")
    click.echo(report.assisted_text[:1].upper() + report.assisted_text[1:] + ".")
    lines, columns, notes = _table_rows(report, with_ci=bootstrap > 0)
    click.echo("")
    emit_rows(lines, "table", columns)
    if notes:
        click.echo("")
        for note in notes:
            click.echo(f"note: {note}")
