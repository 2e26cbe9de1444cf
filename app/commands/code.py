"""`concord code STUDY --as NAME`: open the coding workbench for one person."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, note_identity, study_argument


def keys_option(func):
    return click.option(
        "--keys",
        "config_path",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Key remapping file (default: $CONCORD_KEYMAP, else keys.toml in the user config folder).",
    )(func)


def theme_option(func):
    return click.option(
        "--theme",
        envvar="CONCORD_THEME",
        metavar="NAME",
        help="A Textual theme, e.g. textual-light, nord, gruvbox (default: $CONCORD_THEME or textual-dark).",
    )(func)


def run_workbench(study, actor, **options) -> None:
    """Build the workbench app and run it in this terminal."""
    # Textual is imported only here, so the other commands start without it.
    from concord.app.tui.app import make_app

    app = make_app(study, actor, **options)
    note_identity(app.workspace)
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)


@click.command("code")
@study_argument
@as_option
@keys_option
@theme_option
@click.option(
    "--start",
    type=click.Choice(["overview", "consensus", "agreement", "results"]),
    default="overview",
    show_default=True,
    help="Open straight in a section (consensus is for supervisors; agreement and"
    " results too while the study is blind).",
)
@click.option("--transcript", "transcript_key", metavar="KEY", help="Open this transcript for coding straight away.")
def code(study, actor, config_path, theme, start, transcript_key):
    """Open the coding workbench on STUDY for the person --as NAME.

    Coders see their own work; in a blind study no groups, scores or other
    coders' codes. Supervisors use the same command and see more: from the
    overview, c opens consensus, g agreement and R results (theme prevalence by
    group). Press ? in the workbench for every key, ctrl+p for the command
    palette, ctrl+q to quit.

    \b
    Examples:
      concord code pilot.concord --as ann
      concord code pilot.concord --as ann --transcript S-A
      concord code pilot.concord --as sue --start results
    """
    run_workbench(study, actor, config_path=config_path, theme=theme, start=start, transcript=transcript_key)


if __name__ == "__main__":  # pragma: no cover - `python -m app.commands.code STUDY --as NAME`
    code()
