"""`concord export qdpx` and `concord import qdpx`: a whole study as a REFI-QDA project.

Both commands are named "qdpx"; the lead attaches `qdpx_export` to the `export` group and
`qdpx_import` to the `import` group. The data-loss report goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_mapping, format_option


@click.command("qdpx")
@study_argument
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.qdpx",
    help="Where to write the project.",
)
@as_option
@format_option(choices=("table", "json"))
def qdpx_export(study, out, actor, output_format):
    """Write the whole study as a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA, QualCoder...

    Holds everyone's codings and blinded attributes: while the study is blind it takes a
    supervisor or admin (--as).
    """
    with opened(study, actor) as workspace:
        from concord.services.qdpx_export import export_qdpx

        result = export_qdpx(workspace, out)
    click.echo(result.report.render(f"Exported to {result.path}; what the file does not hold:"), err=True)
    emit_mapping(
        {
            "file": str(result.path),
            "transcripts": result.transcripts,
            "codes": result.codes,
            "codings": result.codings,
            "memos": result.memos,
            "users": result.users,
            "not_kept": list(result.report.lost),
        },
        output_format,
    )


@click.command("qdpx")
@study_argument
@click.argument("file", type=click.Path(dir_okay=False, exists=True), metavar="FILE.qdpx")
@click.option("--dry-run", is_flag=True, help="Read and check everything, report, store nothing.")
@click.option(
    "--pseudonymize/--no-pseudonymize",
    default=True,
    show_default=True,
    help="Pseudonymise the texts, names, labels, values and notes as a transcript import does.",
)
@click.option(
    "--register",
    type=click.Path(dir_okay=False),
    help="The name register (default: the study's, else the one in your user data folder).",
)
@click.option("--nlp", metavar="PIPELINE", help="The spaCy pipeline that finds names ('none': rules only).")
@click.option(
    "--speaker-map",
    metavar="LABEL=ROLE,...",
    help="Roles for the texts' speaker labels, e.g. Interviewer=interviewer,Anna=client (the names as in the file).",
)
@as_option
@format_option(choices=("table", "json"))
def qdpx_import(study, file, dry_run, pseudonymize, register, nlp, speaker_map, actor, output_format):
    """Bring a REFI-QDA project (.qdpx) into the study, all or nothing.

    Text sources become session transcripts (turns from speaker prefixes such as T: and P:),
    users become coders, codings go to the independent phase, notes become memos. Sets of
    codes become categories above them, sets of sources transcript attributes. What Concord
    cannot keep (PDF, picture and media sources, links...) is listed on stderr. Speaker labels
    without a role become 'other': give roles with --speaker-map, or later with concord speakers.
    Names, places and numbers are pseudonymised as in `import transcripts`, codings moving
    with their words; say --no-pseudonymize for a project that already is.
    """
    with opened(study, actor) as workspace:
        from concord.services.qdpx_import import import_qdpx

        result = import_qdpx(
            workspace,
            file,
            dry_run=dry_run,
            pseudonymize=pseudonymize,
            register_path=register,
            nlp_name=nlp,
            speaker_map=speaker_map,
        )
    title = f"{'Checked (dry run, nothing stored)' if dry_run else 'Imported'} {file} from {result.origin or 'an unknown tool'}:"
    click.echo(result.report.render(title), err=True)
    emit_mapping(
        {
            "file": file,
            "dry_run": dry_run,
            "concord_file": result.concord_file,
            "offset_model": result.offset_model,
            "transcripts": len(result.transcripts),
            "turns": result.turns,
            "codebooks": list(result.codebooks),
            "codes_created": result.codes_created,
            "codes_matched": result.codes_matched,
            "codings": result.codings,
            "memos": result.memos,
            "attributes": result.attributes,
            "coders_created": list(result.coders_created),
            "not_kept": len(result.report.lost),
        },
        output_format,
    )
