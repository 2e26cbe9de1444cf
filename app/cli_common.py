"""Arguments and options every command shares: STUDY first, --as for the person acting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from concord.services import identity
from concord.services.workspace import Workspace

STUDY_HELP = "STUDY is a study file (*.concord) or a postgresql+psycopg:// URL."


def study_argument(func):
    return click.argument("study", metavar="STUDY")(func)


def as_option(func):
    return click.option(
        "--as",
        "actor",
        envvar="CONCORD_CODER",
        metavar="NAME",
        help="The person acting (default: $CONCORD_CODER).",
    )(func)


# The options of the commands that read one layer's codings. The definition (name, choices,
# default) is shared so the commands cannot drift apart; each command family words its own help.
def layer_option(help: str):
    return click.option("--layer", default="consensus", show_default=True, metavar="consensus|CODER", help=help)


def covered_option(help: str):
    return click.option("--covered", type=click.Choice(["done", "coded"]), default="done", show_default=True, help=help)


def uncoded_option(help: str):
    return click.option("--include-uncoded", is_flag=True, help=help)


def codebook_option(help: str):
    return click.option("--codebook", "codebooks", multiple=True, metavar="KEY", help=help)


def labels_option(help: str):
    return click.option(
        "--labels", type=click.Choice(["name", "publication"]), default="name", show_default=True, help=help
    )


def out_option(help: str, *, required: bool = True):
    """--out FILE: the file a command writes (its extension picks the format)."""
    return click.option("--out", required=required, type=click.Path(dir_okay=False), metavar="FILE", help=help)


def report_written(written, *, notes: bool = True) -> None:
    """Print a written export's notes on stderr and what it wrote on stdout."""
    if notes:
        for note in written.notes:
            click.echo(f"note: {note}", err=True)
    click.echo(f"{written.summary}: " + ", ".join(str(p) for p in written.paths))


@contextmanager
def opened(study: str, actor: str | None = None) -> Iterator[Workspace]:
    workspace = Workspace.open(study, actor)
    try:
        note_identity(workspace)
        yield workspace
    finally:
        workspace.close()


def note_identity(workspace: Workspace) -> None:
    """In a study that takes --as on trust, say so: one line on stderr, once per command."""
    if workspace.identity_mode != identity.TRUSTED:
        return
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        root = ctx.find_root()
        if root.meta.get("concord.identity_noted"):
            return
        root.meta["concord.identity_noted"] = True
    click.echo(identity.TRUSTED_NOTICE, err=True)


def progress_bar(total: int, label: str):
    """A progress bar on stderr, so it never mixes with data printed on stdout."""
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
