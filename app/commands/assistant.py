"""`concord assistant` (switch the coding assistant on or off) and `concord suggest` (its suggestions)."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_rows, format_option, to_json


@click.command("assistant")
@study_argument
@click.option("--on/--off", "on", default=None, help="Switch the coding assistant on or off for every coder.")
@click.option(
    "--min-codings",
    type=click.IntRange(min=2),
    metavar="N",
    help="A code is suggested once the coder has given it to N turns (default 10).",
)
@click.option(
    "--learn-from",
    type=click.Choice(("own", "consensus")),
    help="own: each coder's own codings only; consensus: also the consensus layer, once the study is"
    " unblinded or open (while it is blind, own codings only, whatever is set).",
)
@as_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="How to print the setting and the methods paragraph.",
)
def assistant(study, on, min_codings, learn_from, actor, output_format):
    """Switch the local coding assistant on or off (supervisors), or show how it is set.

    The assistant suggests codes for the turns a coder has not coded yet, learned on this machine from
    that coder's own codings (never another coder's while the study is blind), and lists passages like a
    given one ("more like this"). It is off until a supervisor switches it on; every change goes into the
    audit log. Without --on/--off/--min-codings/--learn-from this prints the setting and a methods
    paragraph for the report (how many codings were accepted from suggestions).

    \b
    Examples:
      concord assistant pilot.concord --on --as sue
      concord assistant pilot.concord --min-codings 15 --as sue
      concord assistant pilot.concord --as ann
    """
    from concord.services import assistant as service

    with opened(study, actor) as workspace:
        if on is not None or min_codings is not None or learn_from is not None:
            settings = service.set_assistant(workspace, on=on, min_codings=min_codings, learn_from=learn_from)
        else:
            settings = service.assistant_settings(workspace)
        methods = service.methods_text(workspace)
        counts = service.assisted_counts(workspace)
    if output_format == "json":
        click.echo(
            to_json(
                {
                    **settings.document(),
                    "codings": counts.codings,
                    "accepted_from_suggestions": counts.suggestion,
                    "coded_from_similar": counts.similar,
                    "methods": methods,
                }
            )
        )
        return
    click.echo(
        f"The coding assistant is {'on' if settings.on else 'off'}"
        f" (a code is suggested after {settings.min_codings} codings; learns from"
        f" {'own codings' if settings.learn_from == 'own' else 'own codings and, when not blind, the consensus layer'})."
    )
    click.echo("")
    click.echo(methods)


@click.command("suggest")
@study_argument
@as_option
@click.option(
    "--transcript", "transcript_key", required=True, metavar="KEY", help="The transcript to suggest codes for."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Only suggestions at least this confident.",
)
@click.option(
    "--per-turn",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="At most this many codes per turn.",
)
@format_option()
def suggest(study, actor, transcript_key, threshold, per_turn, output_format):
    """Codes the assistant suggests for the turns of a transcript you have not coded yet.

    The same suggestions the workbench shows: learned only from your own codings while the study is blind,
    for codes you have given to enough turns (concord assistant says how many). Each row is a turn, a code
    path and a confidence (0-1). The assistant must be switched on by a supervisor first.

    \b
    Examples:
      concord suggest pilot.concord --as ann --transcript S-A
      concord suggest pilot.concord --as ann --transcript S-A --format json --threshold 0.7
    """
    from concord.services import assistant as service

    with opened(study, actor) as workspace:
        found = service.suggest(workspace, transcript_key, threshold=threshold, per_turn=per_turn)
    if found.note:
        click.echo(f"note: {found.note}", err=True)
    rows = [
        {
            "turn": s.turn,
            "code": " > ".join(s.code_path),
            "code_path": list(s.code_path),
            "confidence": s.confidence,
        }
        for s in found.suggestions
    ]
    if output_format == "table":
        if not rows:
            click.echo("No suggestions.")
            return
        emit_rows(
            [{"turn": r["turn"], "code": r["code"], "confidence": f"{r['confidence']:.2f}"} for r in rows],
            "table",
            ["turn", "code", "confidence"],
        )
        return
    emit_rows(
        [{**r, "code_path": r["code_path"] if output_format == "json" else " > ".join(r["code_path"])} for r in rows],
        output_format,
        ["turn", "code", "code_path", "confidence"],
    )
