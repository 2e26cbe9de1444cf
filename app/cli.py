"""The `concord` command: small composable commands over a study."""

from __future__ import annotations

import sys

import click

from app.commands import study as study_commands
from app.commands.codebook import codebook
from app.commands.importing import import_
from storage.errors import ConcordError


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


main.add_command(study_commands.init)
main.add_command(study_commands.coder)
main.add_command(study_commands.status)
main.add_command(study_commands.backup)
main.add_command(study_commands.audit)
main.add_command(codebook)
main.add_command(import_)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
