"""`concord code STUDY --as NAME`: open the coding workbench for one person."""

from __future__ import annotations

import click

from app.cli_common import as_option, study_argument


@click.command("code")
@study_argument
@as_option
@click.option("--keys", "config_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Key remapping file (default: $CONCORD_KEYMAP, else keys.toml in the user config folder).")
@click.option("--theme", envvar="CONCORD_THEME", metavar="NAME",
              help="A Textual theme, e.g. textual-light, nord, gruvbox (default: $CONCORD_THEME or textual-dark).")
def code(study, actor, config_path, theme):
    """Open the coding workbench on STUDY for the person --as NAME.

    Coders see their own work; in a blind study no groups, scores or other
    coders' codes. Supervisors use the same command and see more. Press ? in
    the workbench for every key, ctrl+p for the command palette, ctrl+q to quit.

    \b
    Example:
      concord code pilot.concord --as ann
    """
    # Textual is imported only here, so the other commands start without it.
    from app.tui.app import make_app

    app = make_app(study, actor, config_path=config_path, theme=theme)
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)


if __name__ == "__main__":  # pragma: no cover - `python -m app.commands.code STUDY --as NAME`
    code()
