"""Study setup and housekeeping: init, coders, status, backup, audit."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, note_identity, opened, study_argument
from concord.app.commands.team import add_with_login, password_file_option
from concord.app.output import emit_mapping, emit_rows, format_option
from concord.services import audit as audit_service
from concord.services import backup as backup_service
from concord.services import identity
from concord.services import study as study_service
from concord.storage.db import is_url


@click.command()
@study_argument
@click.option("--title", help="The study's title (default: the file name).")
@click.option(
    "--blind/--open",
    default=True,
    show_default=True,
    help="Blind: coders see neither groups, scores nor each other's codes until unblinding.",
)
@click.option(
    "--language", default="en", show_default=True, help="The transcripts' main language (en, sv, nb, da, de, ...)."
)
@click.option(
    "--codebook",
    "codebooks",
    multiple=True,
    metavar="ID",
    help="Add a bundled codebook (repeatable; see: concord codebook list).",
)
@click.option(
    "--identity",
    "identity_mode",
    type=click.Choice(identity.IDENTITY_MODES),
    help="How people are identified: os-login (a study file's default: each coder is bound to an"
    " operating-system login and --as must agree), database (PostgreSQL logins, after concord team"
    " setup) or trusted (--as is believed; for the demo and one-person studies).",
)
@click.option(
    "--admin",
    metavar="NAME",
    help="With os-login: the name of the first admin, bound to your login (default: your login name).",
)
@as_option
def init(study, title, blind, language, codebooks, identity_mode, admin, actor):
    """Create a new study at STUDY (a new .concord file or a PostgreSQL URL).

    With --identity os-login (the default for a file) you become its first admin.

    \b
    Examples:
      concord init pilot.concord --title "Pilot" --blind --codebook cbt-alliance-themes
      concord init postgresql+psycopg://postgres@127.0.0.1/pilot --open
    """
    identity_mode = identity_mode or identity.default_mode(study)
    workspace = study_service.init_study(
        study,
        title=title,
        blind=blind,
        language=language,
        actor=actor,
        codebooks=codebooks,
        identity_mode=identity_mode,
        admin=admin,
    )
    try:
        settings = workspace.settings()
        admin_name = workspace.actor_label
    finally:
        workspace.close()
    mode = "blind" if settings.blind else "open"
    extra = f" with codebook(s) {', '.join(codebooks)}" if codebooks else ""
    click.echo(f"Created {mode} study {settings.title!r} at {workspace.store.display_name}{extra}.")
    if identity_mode == identity.OS_LOGIN:
        click.echo(f"You are its admin {admin_name}, bound to the login {identity.current_login()}.")
    else:
        note_identity(workspace)
    click.echo(f"Next: concord coder add {study} NAME --role coder")


@click.group()
def coder():
    """The people in a study and their roles (coder, supervisor, admin)."""


@coder.command("add")
@study_argument
@click.argument("name")
@click.option("--role", type=click.Choice(["coder", "supervisor", "admin"]), default="coder", show_default=True)
@click.option(
    "--login",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[LOGIN]",
    help="Study file: the operating-system login this person works under (os-login studies bind"
    " every person; default: the same as NAME). PostgreSQL team study: create (or reuse) this"
    " person's database login (default: NAME) and bind it to them.",
)
@password_file_option
@as_option
def coder_add(study, name, role, login, password_file, actor):
    """Add a person to the study.

    Until the study has a supervisor or admin anyone may add people; after
    that it takes one of them (--as). On a PostgreSQL team study, --login is
    for a database administrator: the password comes from --password-file,
    $CONCORD_PASSWORD or a prompt, never from the command line.
    """
    if login is not None and is_url(study):
        click.echo(add_with_login(study, name, role, login, password_file, actor))
        return
    if password_file is not None:
        raise click.UsageError("--password-file goes with --login on a PostgreSQL team study")
    with opened(study, actor) as workspace:
        info = study_service.add_coder(workspace, name, role, login=login)
    bound = f", bound to the login {info.os_login}" if info.os_login else ""
    click.echo(f"Added {info.role} {info.name}{bound}.")


@coder.command("list")
@study_argument
@format_option()
def coder_list(study, output_format):
    """List the people in the study."""
    with opened(study) as workspace:
        coders = study_service.list_coders(workspace)
    emit_rows(coders, output_format, ["name", "role", "active"])


@coder.command("role")
@study_argument
@click.argument("name")
@click.argument("role", type=click.Choice(["coder", "supervisor", "admin"]))
@as_option
def coder_role(study, name, role, actor):
    """Change a person's role."""
    with opened(study, actor) as workspace:
        info = study_service.set_coder_role(workspace, name, role)
    click.echo(f"{info.name} is now a {info.role}.")


@click.command()
@study_argument
@as_option
@format_option()
def status(study, actor, output_format):
    """Counts of transcripts, turns, codes and codings per coder; the phase; blind or not.

    While the study is blind, a coder (--as) sees only their own coding count.
    """
    with opened(study, actor) as workspace:
        data = study_service.study_status(workspace)
    emit_mapping(data, output_format)


@click.command()
@study_argument
@click.argument("dest", type=click.Path(dir_okay=False))
@as_option
def backup(study, dest, actor):
    """Write a consistent copy of STUDY to DEST (a new .concord file).

    One consistent snapshot, so coders may keep working: SQLite studies use
    the online backup API, PostgreSQL studies are copied in one read-only
    transaction into the same portable file format. Every table is read back
    and compared (rows and a checksum); the file is readable by its owner only
    (mode 600). The head of the audit chain is recorded as a checkpoint in the
    study and in the copy. Load a backup with: concord restore.
    A copy holds everything, blinded attributes included: once the study has a
    supervisor or admin, a backup takes one of them (--as).
    """
    with opened(study, actor) as workspace:
        result = backup_service.backup(workspace, dest)
    rows = sum(check.rows for check in result.tables.values())
    click.echo(f"Backed up {study} to {result.path}: {len(result.tables)} tables, {rows} rows, read back and checked.")
    if result.head is not None:
        click.echo(f"Audit chain head in the copy: event {result.head.event_id}, {result.head.hash}.")


@click.command()
@study_argument
@click.option("--limit", type=int, help="Only the last N events.")
@click.option("--action", help="Only events of this action (e.g. coding.apply).")
@click.option(
    "--verify",
    "check",
    flag_value="verify",
    help="Walk the hash chain and check the checkpoints; exit 2 naming the first broken link.",
)
@click.option(
    "--head", "check", flag_value="head", help="Print the chain head (event, hash, count) for the lab record."
)
@click.option("--checkpoint", "check", flag_value="checkpoint", help="Record the chain head in the study.")
@click.option("--reason", metavar="TEXT", help="Why the checkpoint is taken (kept with it).")
@click.option(
    "--expect",
    metavar="EVENT:HASH[:COUNT]",
    help="With --verify: a head kept outside the study (from --head); the log must still hold it.",
)
@as_option
@format_option()
def audit(study, limit, action, check, reason, expect, actor, output_format):
    """The append-only log of every change: who, when, what.

    While the study is blind, coders see setup events and their own work only.

    Every event carries the hash of the one before it. --verify finds an
    event that was changed, removed, inserted or moved, and, against the
    checkpoints (each backup records one), a log cut short or emptied.
    --verify, --head and --checkpoint are for supervisors and admins.

    \b
    Examples:
      concord audit study.concord --as sam --verify
      concord audit study.concord --as sam --head
    """
    if expect and check != "verify":
        raise click.UsageError("--expect goes with --verify")
    with opened(study, actor) as workspace:
        if check == "verify":
            report = audit_service.verify(workspace, audit_service.parse_head(expect) if expect else None)
            emit_mapping(
                {
                    "audit_log": "intact",
                    "events": report.events,
                    "before_the_chain": report.unchained,
                    "head_event": report.head.event_id if report.head else None,
                    "head_hash": report.head.hash if report.head else None,
                    "checkpoints_checked": report.checkpoints,
                    **({"note": "; ".join(report.notes)} if report.notes else {}),
                },
                output_format,
            )
            return
        if check == "head":
            head = audit_service.head(workspace)
            emit_mapping(
                {
                    "event": head.event_id,
                    "hash": head.hash,
                    "events": head.count,
                    "for_the_record": f"{head.event_id}:{head.hash}:{head.count}",
                },
                output_format,
            )
            return
        if check == "checkpoint":
            head = audit_service.checkpoint(workspace, reason)
            emit_mapping({"event": head.event_id, "hash": head.hash, "events": head.count}, output_format)
            return
        events = audit_service.list_events(workspace, limit=limit, action=action)
    emit_rows(events, output_format, ["id", "at", "actor", "action", "entity", "entity_id", "details"])
