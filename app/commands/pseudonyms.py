"""`concord pseudonyms ...`: review what pseudonymising left, and pseudonymise stored transcripts again."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import to_json

_REGISTER = click.option(
    "--register",
    type=click.Path(dir_okay=False),
    help="The name register (default: the study's, else the one in your user data folder).",
)
# One key decides each suspect; the kind a replaced word gets goes with the key.
_KEYS = {"r": ("replace", "person"), "l": ("replace", "place"), "o": ("replace", "organisation"), "k": ("keep", "")}


@click.group("pseudonyms")
def pseudonyms():
    """The name register: review the suspects imports left, pseudonymise stored transcripts again."""


@pseudonyms.command("list")
@study_argument
@_REGISTER
@as_option
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_(study, register, actor, output_format):
    """List the suspects still waiting for a decision, each in its line of the stored text.

    The list holds real words: it is kept beside the register, outside the study.
    """
    from concord.services.pseudonyms import pending

    with opened(study, actor) as workspace:
        path, items = pending(workspace, register)
    if output_format == "json":
        click.echo(to_json({"register": str(path), "suspects": [item.__dict__ for item in items]}))
        return
    if not items:
        click.echo("No suspects to review.")
        return
    for item in items:
        click.echo(f"{item.transcript}, line {item.line}: {item.token}  ({item.reason})")
        click.echo(f"    {item.context}")
    click.echo(f"{len(items)} suspect(s); decide them with: concord pseudonyms review {study}")


@pseudonyms.command()
@study_argument
@_REGISTER
@click.option("--nlp", metavar="PIPELINE", help="The spaCy pipeline for re-pseudonymising ('none': rules only).")
@as_option
def review(study, register, nlp, actor):
    """Decide each suspect by one key: replace it, or keep it and remember.

    \b
      r  replace it: a person's name (it gets a pseudonym in the register)
      l  replace it: a place        o  replace it: an organisation
      k  keep it, and remember: it goes on the register's allow-list
      s  skip it for now            q  stop here (what was decided is applied)

    Replaced words leave every transcript that held them at once; codings stay on their words.
    """
    from concord.services.pseudonyms import Decision, apply_decisions, pending

    with opened(study, actor) as workspace:
        _path, items = pending(workspace, register)
        if not items:
            click.echo("No suspects to review.")
            return
        decisions = []
        for number, item in enumerate(items, 1):
            click.echo(f"[{number}/{len(items)}] {item.transcript}, line {item.line}: {item.token}  ({item.reason})")
            click.echo(f"    {item.context}")
            key = _ask()
            if key == "q":
                break
            if key == "s":
                continue
            action, kind = _KEYS[key]
            decisions.append(Decision(item, action, kind or "person"))
        outcome = apply_decisions(workspace, decisions, register, nlp_name=nlp)
    left = len(items) - len(decisions)
    click.echo(
        f"{outcome.replaced} replaced, {outcome.kept} kept and remembered, {left} left for later"
        + (f"; transcripts pseudonymised again: {', '.join(outcome.transcripts)}" if outcome.transcripts else "")
        + "."
    )


def _ask() -> str:
    while True:
        click.echo("    r/l/o replace, k keep and remember, s skip, q quit: ", nl=False)
        key = click.getchar().lower()
        click.echo(key)
        if key in _KEYS or key in ("s", "q"):
            return key
        if not key:  # end of input: stop, keeping what was decided
            return "q"


@pseudonyms.command()
@study_argument
@click.option("--transcript", "keys", multiple=True, metavar="KEY", help="Only this transcript (repeatable).")
@_REGISTER
@click.option("--nlp", metavar="PIPELINE", help="The spaCy pipeline to use ('none': rules and name lists only).")
@as_option
def apply(study, keys, register, nlp, actor):
    """Pseudonymise the transcripts already in the study again, with the register as it is now.

    Use it after adding names to the register by hand. Turns, codings, consensus decisions and
    reading positions move with the text, so every coding stays on its words.
    """
    from concord.services.pseudonyms import repseudonymize_study

    with opened(study, actor) as workspace:
        outcome = repseudonymize_study(workspace, keys=list(keys) or None, register_path=register, nlp_name=nlp)
    changed = {key: result for key, result in outcome["results"].items() if result is not None}
    for key, result in sorted(changed.items()):
        click.echo(f"  {key}: {len(result.replacements)} replacement(s)")
    click.echo(
        f"{len(changed)} of {len(outcome['results'])} transcript(s) changed; "
        f"{outcome['new_register_entries']} new name(s) in {outcome['register']}."
    )
