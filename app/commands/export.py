"""`concord export ...`: theme frequency tables, the IPR representativeness table and the excerpt report."""

from __future__ import annotations

from contextlib import contextmanager

import click

from concord.app import cli_common
from concord.app.cli_common import as_option, opened, progress_bar, report_written, study_argument
from concord.exporters.formats import FORMATS

# Tables this long show a progress bar on stderr while they are written.
PROGRESS_FROM_ROWS = 200
PROGRESS_FROM_EXCERPTS = 200


@click.group()
def export():
    """Tables and reports for the paper: frequencies, representativeness, excerpts."""


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@contextmanager
def _progress_over(count: int, threshold: int, steps: int, label: str):
    """A progress bar on stderr while a long table or report is written (``count`` at least ``threshold``)."""
    if count < threshold:
        yield None
        return
    with progress_bar(steps, label) as bar:
        yield bar.update


# The thresholds are read at call time, so tests can lower them.
def _table_progress(rows: int, steps: int, label: str):
    return _progress_over(rows, PROGRESS_FROM_ROWS, steps, label)


def _excerpt_progress(excerpts: int, steps: int, label: str):
    return _progress_over(excerpts, PROGRESS_FROM_EXCERPTS, steps, label)


layer_option = cli_common.layer_option("Whose codings: the consensus layer or one coder's independent codings.")
group_option = click.option(
    "--group-attribute",
    default="group",
    show_default=True,
    metavar="NAME",
    help="The attribute (on sessions, dyads or transcripts) that splits units into groups.",
)
out_option = cli_common.out_option(f"The file to write; its extension picks the format ({', '.join(FORMATS)}).")
covered_option = cli_common.covered_option(
    "Which transcripts a layer covers: done (a coder's: marked done; the consensus layer: "
    "consensus finished) or coded (at least one coding in the layer). Only covered ones are counted."
)
uncoded_option = cli_common.uncoded_option(
    "Count every transcript, the ones the layer does not cover as having no codings (the output says so)."
)
labels_option = cli_common.labels_option(
    "Show codes by their name (as the workbench does) or by their publication label."
)
codebook_option = cli_common.codebook_option("Only this codebook's codes (repeatable; default: all).")


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
@covered_option
@uncoded_option
@labels_option
@as_option
def frequencies(
    study, out, layer, by, measure, measures, group_attribute, codebooks, wide, covered, include_uncoded, labels, actor
):
    """Theme, sub-theme and code counts per unit, with linked scores and a group summary.

    A theme's count includes the codings of the codes below it. Only the transcripts the
    layer covers are counted (see --covered); the summary gives each group's units as
    "covered / in the group" and each code's share of the covered units. Each row carries
    the session's questionnaire totals and subscales, the alliance mean (mean item score of
    the client's and the therapist's WAI forms) and its z-score within the dyad, and the
    group attributes -- scores, dyads and blinded groups only for a supervisor or after
    unblinding.
    """
    from concord.services.reports import export_frequencies

    with opened(study, actor) as workspace:
        written = export_frequencies(
            workspace,
            out,
            layer=layer,
            by=by,
            measure=measure,
            measures=_split(measures),
            group_attribute=group_attribute,
            codebooks=codebooks,
            wide=wide,
            progress=_table_progress,
            covered=covered,
            include_uncoded=include_uncoded,
            labels=labels,
        )
    report_written(written)


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
@covered_option
@uncoded_option
@labels_option
@as_option
def representativeness(
    study, out, layer, level, group_attribute, codebooks, wide, covered, include_uncoded, labels, actor
):
    """Which dyads, and which side of each (C client, T therapist, C+T both), contribute to each theme.

    Built from IPR interviews (transcripts of kind ipr with a client or therapist
    perspective, linked to a session of the dyad); totals per theme and per group.
    """
    from concord.services.reports import export_representativeness

    with opened(study, actor) as workspace:
        written = export_representativeness(
            workspace,
            out,
            layer=layer,
            level=level,
            group_attribute=group_attribute,
            codebooks=codebooks,
            wide=wide,
            progress=_table_progress,
            covered=covered,
            include_uncoded=include_uncoded,
            labels=labels,
        )
    report_written(written)


@export.command(short_help="Coded excerpts per theme with context, definitions and counts.")
@study_argument
@cli_common.out_option("report.docx, report.md or report.html (md/html get the chart as FILE-STEM.prevalence.png).")
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
@covered_option
@uncoded_option
@labels_option
@click.option("--all-codes", is_flag=True, help="Also list the codes never applied in the covered transcripts.")
@as_option
def excerpts(
    study,
    out,
    layer,
    codes,
    memos,
    context,
    group_attribute,
    group_label,
    codebooks,
    covered,
    include_uncoded,
    labels,
    all_codes,
    actor,
):
    """A report per theme -> sub-theme -> code: definition, count, and excerpts with their context.

    Its first page says how many transcripts the layer covers; counts are of the covered
    ones, and codes never applied there are left out unless --all-codes.

    Attributions follow the field's style: "(client, dyad 12, session 5)" for IPR
    interviews and "(Session E, high alliance)" for sessions; groups appear only for a
    supervisor or after unblinding. Includes a chart of theme prevalence by group.
    """
    from concord.services.reports import export_excerpts

    if "{value}" not in group_label:
        raise click.BadParameter("must contain {value}", param_hint="--group-label")
    with opened(study, actor) as workspace:
        written = export_excerpts(
            workspace,
            out,
            layer=layer,
            codes=_split(codes),
            memos=memos,
            context=context,
            group_attribute=group_attribute,
            group_label=group_label,
            codebooks=codebooks,
            progress=_excerpt_progress,
            covered=covered,
            include_uncoded=include_uncoded,
            labels=labels,
            all_codes=all_codes,
        )
    # The report's own notes are printed in it.
    report_written(written, notes=False)
