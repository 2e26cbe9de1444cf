"""`concord cooccurrence`, `concord query`, `concord export scores-link` and `concord export memos`."""

from __future__ import annotations

import click

from concord.app import cli_common
from concord.app.cli_common import as_option, opened, report_written, study_argument
from concord.app.output import emit_rows, format_option, to_json

layer_option = cli_common.layer_option(
    "Whose codings: the consensus layer or one coder's independent codings (a blind coder: their own)."
)
covered_option = cli_common.covered_option(
    "Which transcripts the layer covers: done (marked done; consensus finished) or coded (any coding)."
)
uncoded_option = cli_common.uncoded_option("Search every transcript, not only the ones the layer covers.")
codebook_option = cli_common.codebook_option("Only codes of this codebook (repeatable).")
labels_option = cli_common.labels_option("Show codes by their name or by their publication label.")
level_option = click.option(
    "--level",
    type=click.Choice(["code", "subtheme", "theme"]),
    default="code",
    show_default=True,
    help="Count each coding for its code, its sub-theme or its theme.",
)


def _notes(notes) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


# ------------------------------------------------------------------------------------ co-occurrence


@click.command()
@study_argument
@click.option(
    "--within",
    default="turn",
    show_default=True,
    metavar="turn|overlap|N",
    help="When two codings meet: in a common turn, with overlapping spans, or at most N turns apart.",
)
@click.option("--directed", is_flag=True, help="Count B starting 1 to N turns after A (needs --within N).")
@click.option("--by", "by", metavar="ATTRIBUTE", help="One matrix per value of this attribute (e.g. group).")
@level_option
@click.option("--codes", multiple=True, metavar="NAME", help="Only these codes and the codes below them (repeatable).")
@click.option("--all-codes", is_flag=True, help="Keep codes never applied (rows of zeros).")
@click.option(
    "--statistic",
    type=click.Choice(["count", "c", "jaccard"]),
    default="count",
    show_default=True,
    help="Which number --format table sorts the pairs by.",
)
@layer_option
@codebook_option
@covered_option
@uncoded_option
@labels_option
@format_option()
@cli_common.out_option("Write the matrices: .xlsx, .csv, .json or .docx.", required=False)
@click.option(
    "--plot", type=click.Path(dir_okay=False), metavar="FILE.png", help="Draw a heatmap of the c-coefficient."
)
@as_option
def cooccurrence(
    study,
    within,
    directed,
    by,
    level,
    codes,
    all_codes,
    statistic,
    layer,
    codebooks,
    covered,
    include_uncoded,
    labels,
    output_format,
    out,
    plot,
    actor,
):
    """Which codes occur together: counts, the c-coefficient and Jaccard for every pair of codes.

    Two codings meet when they touch a common turn (--within turn), share characters (--within
    overlap) or lie at most N turns apart (--within N). Per pair: count (pairs of codings that
    meet), c-coefficient (ATLAS.ti's, count / (codings of A + codings of B - count)) and Jaccard
    (what both cover over what either covers: turns, or characters for overlap). --directed
    counts the codings of A followed by B within N turns, and their share of A's codings.
    Only the transcripts the layer covers are read; a blind coder reads only their own layer.
    """
    from concord.services.analyses import cooccurrence_plot, cooccurrence_rows, cooccurrence_tables, export_cooccurrence

    options = {
        "layer": layer,
        "within": within,
        "directed": directed,
        "by": by,
        "level": level,
        "codes": codes,
        "codebooks": codebooks,
        "covered": covered,
        "include_uncoded": include_uncoded,
        "labels": labels,
        "all_codes": all_codes,
    }
    with opened(study, actor) as workspace:
        if out:
            written = export_cooccurrence(workspace, out, **options)
            click.echo(f"{written.summary}: " + ", ".join(str(p) for p in written.paths), err=True)
        tables = cooccurrence_tables(workspace, **options)
        if plot:
            click.echo(f"heatmap: {cooccurrence_plot(tables, plot)}", err=True)
    _notes(tables.notes)
    if out and output_format == "table":
        return
    rows = cooccurrence_rows(tables)
    if output_format == "table":
        key = {"count": "A followed by B" if directed else "count", "c": "c", "jaccard": "jaccard"}[statistic]
        if directed and statistic != "count":
            key = "share of A"
        rows.sort(key=lambda r: -(r.get(key) or 0))
    emit_rows(rows, output_format)


# ------------------------------------------------------------------------------------ queries


QUERY_HELP = """Find the turns where codes meet a condition, in one layer's covered transcripts.

\b
QUERY is a small language:
  exploring AND NOT stagnation
  "focus on other people" OR (stagnation AND withdrawal)
  "expert role" FOLLOWED BY withdrawal WITHIN 2
A code is plain words or a quoted name or path ("Theme > Sub-theme"); a theme
stands for the codes below it. Keywords are upper case: AND, OR, NOT,
FOLLOWED BY ... [WITHIN n] (B in the n turns after A; 1 when not given).
FOLLOWED BY binds tightest, then NOT, then AND, then OR; parentheses group.
A hit must hold a code named outside NOT.

--within turn looks turn by turn; overlap finds the stretches of text where
the condition holds; a number N lets a code count for the turns up to N
before and after it. Hits are listed as keyword-in-context lines, or written as
an excerpt report (--report FILE.docx|md|html). Saving named queries is not
available yet.
"""


@click.command(help=QUERY_HELP)
@study_argument
@click.argument("query")
@click.option(
    "--within", default="turn", show_default=True, metavar="turn|overlap|N", help="The unit a condition holds on."
)
@click.option(
    "--speaker",
    type=click.Choice(["client", "therapist", "interviewer", "other"]),
    help="Only hits in this speaker's turns.",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="NAME=VALUE",
    help="Only transcripts whose attribute matches (repeatable; != too).",
)
@layer_option
@codebook_option
@covered_option
@uncoded_option
@labels_option
@format_option()
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the hits as an excerpt report (.docx, .md, .html).",
)
@click.option(
    "--context",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Turns of context around each hit in the report.",
)
@click.option(
    "--group-attribute",
    default="group",
    show_default=True,
    metavar="NAME",
    help="The group named in attributions (when you may see it).",
)
@click.option("--group-label", default="{value} alliance", show_default=True, help="How a group reads in attributions.")
@as_option
def query(
    study,
    query,
    within,
    speaker,
    where,
    layer,
    codebooks,
    covered,
    include_uncoded,
    labels,
    output_format,
    report,
    context,
    group_attribute,
    group_label,
    actor,
):
    from concord.services.analyses import export_query_report, run_query

    options = {
        "layer": layer,
        "within": within,
        "speaker": speaker,
        "where": where,
        "codebooks": codebooks,
        "covered": covered,
        "include_uncoded": include_uncoded,
        "labels": labels,
    }
    with opened(study, actor) as workspace:
        if report:
            written = export_query_report(
                workspace,
                query,
                report,
                context=context,
                group_attribute=group_attribute,
                group_label=group_label,
                **options,
            )
            report_written(written)
            return
        result = run_query(workspace, query, **options)
    _notes(result.notes)
    columns = ["transcript", "turn", "speaker", "left", "hit", "right"]
    rows = result.hits[columns].to_dict(orient="records")
    if output_format == "json":
        click.echo(
            to_json({"query": result.query, "within": str(result.within), "searched": result.searched, "hits": rows})
        )
        return
    if output_format == "table":
        rows = [_kwic_line(row) for row in rows]
        click.echo(f"{len(rows)} hits of {result.query} in {result.searched} transcripts searched", err=True)
    emit_rows(rows, output_format, columns)


def _kwic_line(row: dict, side: int = 30, middle: int = 70) -> dict:
    def clean(text: str) -> str:
        return " ".join(text.split())

    left, hit, right = clean(row["left"]), clean(row["hit"]), clean(row["right"])
    return {
        **row,
        "left": ("…" + left[-side:]) if len(left) > side else left,
        "hit": (hit[: middle - 1] + "…") if len(hit) > middle else hit,
        "right": (right[:side] + "…") if len(right) > side else right,
    }


# ------------------------------------------------------------------------------------ export subcommands


@click.command("scores-link")
@study_argument
@click.option(
    "--instrument",
    required=True,
    metavar="NAME",
    help="The questionnaire whose score the themes are linked to (e.g. WAI-SR).",
)
@click.option(
    "--respondent", type=click.Choice(["client", "therapist"]), help="Whose scores (needed when both filled it in)."
)
@click.option("--subscale", metavar="NAME", help="A subscale instead of the total (e.g. bond).")
@cli_common.out_option("A report (.docx, .md, .html) or tables (.csv, .xlsx, .json).")
@click.option(
    "--per",
    type=click.Choice(["turns", "words"]),
    default="turns",
    show_default=True,
    help="Rate per covered 100 turns or 1,000 words.",
)
@click.option(
    "--level",
    type=click.Choice(["theme", "subtheme", "code"]),
    default="theme",
    show_default=True,
    help="What is linked: themes, sub-themes or codes.",
)
@click.option("--codes", multiple=True, metavar="NAME", help="Only these codes and the codes below them (repeatable).")
@click.option(
    "--kind",
    type=click.Choice(["session", "ipr", "all"]),
    default="session",
    show_default=True,
    help="Which transcripts of a session are counted.",
)
@click.option(
    "--correction",
    type=click.Choice(["holm", "fdr_bh"]),
    default="holm",
    show_default=True,
    help="Across themes: Holm, or Benjamini-Hochberg.",
)
@layer_option
@codebook_option
@covered_option
@uncoded_option
@labels_option
@as_option
def scores_link(
    study,
    instrument,
    respondent,
    subscale,
    out,
    per,
    level,
    codes,
    kind,
    correction,
    layer,
    codebooks,
    covered,
    include_uncoded,
    labels,
    actor,
):
    """Themes against a questionnaire score, per session, with sessions nested in patients (exploratory).

    Per session: each theme's rate (codings per covered 100 turns or 1,000 words) and presence
    beside the score. Per theme: correlations with 95% confidence intervals (Fisher's z), the
    within-patient and between-patient correlations, a linear mixed model for the rate and a GEE
    logistic model for presence with the score split into the patient's mean and the session's
    deviation from it, corrected across themes (Holm or Benjamini-Hochberg). For supervisors, or
    anyone after unblinding.
    """
    from concord.services.analyses import export_scores_link

    with opened(study, actor) as workspace:
        written = export_scores_link(
            workspace,
            out,
            instrument=instrument,
            respondent=respondent,
            subscale=subscale,
            per=per,
            level=level,
            codes=codes,
            kind=kind,
            correction=correction,
            layer=layer,
            codebooks=codebooks,
            covered=covered,
            include_uncoded=include_uncoded,
            labels=labels,
        )
    report_written(written)


@click.command("memos")
@study_argument
@cli_common.out_option("The report: .docx, .md or .html.")
@click.option(
    "--by",
    type=click.Choice(["code", "transcript", "coder"]),
    default="code",
    show_default=True,
    help="What the memos are grouped by.",
)
@as_option
def memos(study, out, by, actor):
    """Every memo, grouped by code, transcript or coder, with what each is about (a coder gets only their own while the study is blind)."""
    from concord.services.analyses import export_memos

    with opened(study, actor) as workspace:
        written = export_memos(workspace, out, by=by)
    report_written(written)
