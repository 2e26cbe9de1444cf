"""`concord handout` and `concord collect`: a coder's own work file, out and back."""

from __future__ import annotations

import dataclasses

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_mapping, format_option
from concord.services import workfiles
from concord.storage.errors import ConcordError


@click.command("handout")
@study_argument
@click.option("--coder", metavar="NAME", help="The coder the work file is for.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE", help="The new work file to write.")
@click.option(
    "--refresh",
    "refresh_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Bring new transcripts and codebook changes into this existing work file instead.",
)
@click.option(
    "--login",
    metavar="LOGIN",
    help="The operating-system login the coder uses the work file under"
    " (default: the login they are bound to in STUDY, else their name).",
)
@click.option(
    "--identity",
    "identity_mode",
    type=click.Choice(workfiles.WORKFILE_IDENTITIES),
    default=workfiles.WORKFILE_IDENTITIES[0],
    show_default=True,
    help="How the work file knows its coder: bound to --login, or --as taken on trust.",
)
@as_option
@format_option()
def handout(study, coder, out, refresh_file, login, identity_mode, actor, output_format):
    """Write a work file for one coder: a new study file holding only what they may see.

    The file holds the transcripts, the codebooks (without other coders'
    inductive codes) and the coder's own codings, memos, inductive codes,
    progress and undo steps; no blinded attribute, no questionnaire score, no
    other coder's work, and an audit log of its own. It is readable by you
    only (mode 600): give it to the coder, who opens it with
    `concord code FILE`. Bring the work back with `concord collect`.
    With --refresh FILE, new transcripts and codebook changes go into an
    existing work file; the coder's codings stay as they are.
    Supervisors and admins only.

    \b
    Examples:
      concord handout pilot.concord --coder ann --out ann.concord
      concord handout pilot.concord --refresh ann.concord
    """
    if refresh_file:
        if out or login or identity_mode != workfiles.WORKFILE_IDENTITIES[0]:
            raise ConcordError("--refresh FILE updates an existing work file: it takes no --out, --login or --identity")
        with opened(study, actor) as workspace:
            refreshed = workfiles.refresh(workspace, refresh_file, coder=coder)
        if output_format != "table":
            emit_mapping(dataclasses.asdict(refreshed), output_format)
            return
        click.echo(
            f"Refreshed {refreshed.path} for {refreshed.coder}: {refreshed.transcripts_added} new transcripts"
            f" ({refreshed.transcripts_updated} changed), {refreshed.codes_added} new codes"
            f" ({refreshed.codes_updated} changed); {refreshed.coder}'s codings untouched."
        )
        return
    if not coder or not out:
        raise ConcordError("say whose work file to write and where: --coder NAME --out FILE (or --refresh FILE)")
    with opened(study, actor) as workspace:
        report = workfiles.handout(workspace, coder, out, login=login, identity_mode=identity_mode)
    if output_format != "table":
        emit_mapping(dataclasses.asdict(report), output_format)
        return
    click.echo(
        f"Wrote {report.path} for {report.coder}: {report.transcripts} transcripts, {report.codebooks} codebooks,"
        f" {report.codes} codes, {report.codings} codings and {report.memos} memos of {report.coder}'s."
    )
    if report.held_back_codings:
        click.echo(
            f"Held back {report.held_back_codings} codings whose code {report.coder} may no longer see"
            " (merged into another coder's code); collect leaves them as they are."
        )
    if report.login:
        click.echo(f"The file acts as {report.coder} for the login {report.login} only; mode 600, readable by you.")
    else:
        click.echo("The file takes --as on trust (--identity trusted); mode 600, readable by you.")
    click.echo(f"Give it to {report.coder}; bring the work back with: concord collect {study} {report.path}")


@click.command("collect")
@study_argument
@click.argument("work_file", metavar="WORK_FILE", type=click.Path(dir_okay=False))
@click.option(
    "--coder", metavar="NAME", help="Whose work file you expect it to be: refused if it was handed out for another."
)
@as_option
@format_option()
def collect(study, work_file, coder, actor, output_format):
    """Bring a coder's work back from WORK_FILE (from concord handout) into STUDY.

    Adds and updates the coder's codings, memos, inductive codes and reading
    progress, and removes the codings and memos they removed in the work file
    (it is their own copy of their own work). Nobody else's work is touched,
    and collecting the same file again changes nothing. A file handed out from
    another study, or for another coder than --coder, is refused.
    Supervisors and admins only.

    \b
    Example:
      concord collect pilot.concord ann.concord --coder ann
    """
    with opened(study, actor) as workspace:
        report = workfiles.collect(workspace, work_file, coder=coder)
    if output_format != "table":
        emit_mapping(
            {
                "coder": report.coder,
                "file": report.path,
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "skipped": report.skipped,
            },
            output_format,
        )
        return
    click.echo(f"Collected {report.path} from {report.coder}:")
    for kind in workfiles.KINDS:
        click.echo(
            f"  {kind:<9} {report.added[kind]} added, {report.updated[kind]} updated, {report.removed[kind]} removed"
        )
    for line in report.skipped:
        click.echo(f"  skipped: {line}")
    if not report.changes:
        click.echo("  Nothing new: the study already holds this work.")
