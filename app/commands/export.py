"""`concord export ...`: theme frequency tables, the IPR representativeness table and the excerpt report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from concord.app.cli_common import as_option, opened, progress_bar, study_argument
from concord.exporters.formats import FORMATS, format_of

# Tables this long show a progress bar on stderr while they are written.
PROGRESS_FROM_ROWS = 200
PROGRESS_FROM_EXCERPTS = 200


@click.group()
def export():
    """Tables and reports for the paper: frequencies, representativeness, excerpts."""


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _meta(data, **more) -> dict:
    return {
        "title": data.title,
        "layer": data.layer,
        "exported by": data.actor,
        "blind for the exporter": data.blind,
        "exported at": datetime.now(UTC).isoformat(timespec="seconds"),
        **more,
    }


def _write(out: str, specs, *, wide: bool, meta: dict, rows: int) -> list[Path]:
    from concord.exporters.writers import write_tables

    if rows < PROGRESS_FROM_ROWS:
        return write_tables(out, specs, wide=wide, meta=meta)
    with progress_bar(len(specs), f"writing {Path(out).name}") as bar:
        return write_tables(out, specs, wide=wide, meta=meta, progress=bar.update)


def _report(paths: list[Path], what: str) -> None:
    click.echo(f"{what}: " + ", ".join(str(p) for p in paths))


layer_option = click.option(
    "--layer",
    default="consensus",
    show_default=True,
    metavar="consensus|CODER",
    help="Whose codings: the consensus layer or one coder's independent codings.",
)
group_option = click.option(
    "--group-attribute",
    default="group",
    show_default=True,
    metavar="NAME",
    help="The attribute (on sessions, dyads or transcripts) that splits units into groups.",
)
out_option = click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help=f"The file to write; its extension picks the format ({', '.join(FORMATS)}).",
)
codebook_option = click.option(
    "--codebook",
    "codebooks",
    multiple=True,
    metavar="KEY",
    help="Only this codebook's codes (repeatable; default: all).",
)


@export.command(short_help="Theme and code counts per unit, with scores and groups.")
@study_argument
@out_option
@layer_option
@click.option(
    "--by",
    type=click.Choice(["transcript", "session", "dyad", "group"]),
    default="transcript",
    show_default=True,
    help="What one row is.",
)
@click.option(
    "--count",
    "measure",
    type=click.Choice(["segments", "turns", "words", "presence"]),
    default="segments",
    show_default=True,
    help="segments: codings; turns: distinct turns overlapped; words: words in the coded spans "
    "(once per code, non-verbal annotations left out); presence: 0/1.",
)
@click.option(
    "--measures",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Only these questionnaires (e.g. WAI-SR,BDI-II; default: all).",
)
@group_option
@codebook_option
@click.option("--wide", is_flag=True, help="CSV/JSON: one row per unit instead of the tidy long form.")
@as_option
def frequencies(study, out, layer, by, measure, measures, group_attribute, codebooks, wide, actor):
    """Theme, sub-theme and code counts per unit, with linked scores and a group summary.

    A theme's count includes the codings of the codes below it. Each row carries the
    session's questionnaire totals and subscales, the alliance mean (mean of the client's
    and the therapist's WAI totals) and its z-score within the dyad, and the group
    attributes -- scores, dyads and blinded groups only for a supervisor or after unblinding.
    """
    from concord.exporters.frequencies import GATHER_FOR, frequency_specs, frequency_table
    from concord.services.results import gather

    format_of(out)
    with opened(study, actor) as workspace:
        data = gather(workspace, layer=layer, codebooks=codebooks or None, purpose="frequencies", **GATHER_FOR[measure])
    tables = frequency_table(
        data, by=by, measure=measure, measures=_split(measures) or None, group_attribute=group_attribute
    )
    specs = frequency_specs(tables, long=not wide)
    meta = _meta(
        data,
        by=by,
        count=measure,
        units=len(tables.wide),
        codes=len(tables.code_columns),
        subtitle=f"{len(tables.wide)} {by}s, {len(tables.code_columns)} codes, layer {data.layer}",
    )
    paths = _write(out, specs, wide=wide, meta=meta, rows=len(tables.wide))
    for note in tables.notes:
        click.echo(f"note: {note}", err=True)
    _report(paths, f"{len(tables.wide)} rows x {len(tables.code_columns)} codes")


@export.command(short_help="Which dyads, and which side (C/T), contribute to each theme.")
@study_argument
@out_option
@layer_option
@click.option(
    "--level",
    type=click.Choice(["theme", "subtheme"]),
    default="theme",
    show_default=True,
    help="Columns: themes or sub-themes.",
)
@group_option
@codebook_option
@click.option("--wide", is_flag=True, help="CSV/JSON: the table as printed instead of the tidy long form.")
@as_option
def representativeness(study, out, layer, level, group_attribute, codebooks, wide, actor):
    """Which dyads, and which side of each (C client, T therapist, C+T both), contribute to each theme.

    Built from IPR interviews (transcripts of kind ipr with a client or therapist
    perspective, linked to a session of the dyad); totals per theme and per group.
    """
    from concord.exporters.frequencies import representativeness_specs, representativeness_table
    from concord.services.results import gather

    format_of(out)
    with opened(study, actor) as workspace:
        data = gather(workspace, layer=layer, codebooks=codebooks or None, purpose="representativeness")
    table = representativeness_table(data, level=level, group_attribute=group_attribute)
    specs = representativeness_specs(table)
    paths = _write(out, specs, wide=wide, meta=_meta(data, level=level), rows=len(table.wide))
    for note in table.notes[:-1]:
        click.echo(f"note: {note}", err=True)
    dyads = table.long["dyad"].nunique() if len(table.long) else 0
    _report(paths, f"{dyads} dyads x {len(table.code_columns)} {level}s")


@export.command(short_help="Coded excerpts per theme with context, definitions and counts.")
@study_argument
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="report.docx, report.md or report.html (md/html get the chart as FILE-STEM.prevalence.png).",
)
@layer_option
@click.option(
    "--codes",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Only these codes and the codes below them (name, label, 'Theme > Sub' or id).",
)
@click.option("--memos", is_flag=True, help="Add the memos on the codes and on the coded segments.")
@click.option(
    "--context",
    default=0,
    show_default=True,
    type=click.IntRange(0, 20),
    help="Turns of context before and after each coded turn.",
)
@group_option
@click.option(
    "--group-label",
    default="{value} alliance",
    show_default=True,
    help="How a session's group reads in attributions, {value} being the group value.",
)
@codebook_option
@as_option
def excerpts(study, out, layer, codes, memos, context, group_attribute, group_label, codebooks, actor):
    """A report per theme -> sub-theme -> code: definition, count, and excerpts with their context.

    Attributions follow the field's style: "(client, dyad 12, session 5)" for IPR
    interviews and "(Session E, high alliance)" for sessions; groups appear only for a
    supervisor or after unblinding. Includes a chart of theme prevalence by group.
    """
    from concord.exporters.excerpts import REPORT_FORMATS, build_report, write_report
    from concord.services.results import gather

    format_of(out, REPORT_FORMATS)
    if "{value}" not in group_label:
        raise click.BadParameter("must contain {value}", param_hint="--group-label")
    with opened(study, actor) as workspace:
        data = gather(
            workspace,
            layer=layer,
            codebooks=codebooks or None,
            codes=_split(codes) or None,
            spans=True,
            turns="text",
            with_memos=memos,
            purpose="excerpts",
        )
    report = build_report(data, context=context, group_attribute=group_attribute, group_label=group_label, memos=memos)
    if report.excerpt_count < PROGRESS_FROM_EXCERPTS:
        paths = write_report(report, out)
    else:
        with progress_bar(report.excerpt_count, f"writing {Path(out).name}") as bar:
            paths = write_report(report, out, progress=bar.update)
    _report(paths, f"{report.excerpt_count} excerpts")
