"""The `concord` command: small composable commands over a study."""

from __future__ import annotations

import sys

import click

from concord.app.commands import study as study_commands
from concord.app.commands.agreement import agreement
from concord.app.commands.code import code
from concord.app.commands.codebook import codebook
from concord.app.commands.consensus import consensus, unblind
from concord.app.commands.demo import demo
from concord.app.commands.export import export
from concord.app.commands.importing import import_
from concord.app.commands.qdpx import qdpx_export, qdpx_import
from concord.app.commands.select import select_sessions
from concord.storage.errors import ConcordError


class ConcordGroup(click.Group):
    """Turns Concord's own errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConcordError as exc:
            click.echo(f"concord: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=ConcordGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="concord")
def main():
    """Concord: qualitative coding of psychotherapy transcripts, blind or open.

    STUDY is always the first argument: a .concord file or a postgresql+psycopg:// URL.
    Commands that act for a person take --as NAME (default: $CONCORD_CODER).
    """


for command in (
    study_commands.init,
    study_commands.coder,
    study_commands.status,
    study_commands.backup,
    study_commands.audit,
    codebook,
    import_,
    export,
    code,
    agreement,
    consensus,
    unblind,
    select_sessions,
    demo,
):
    main.add_command(command)

export.add_command(qdpx_export)
import_.add_command(qdpx_import)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
