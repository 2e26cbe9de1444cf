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
