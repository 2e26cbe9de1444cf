"""The `concord` command: small composable commands over a study.

Each command's module is imported only when that command runs (or shows its own --help): the
commands pull in SQLAlchemy, pandas, spaCy, statsmodels or Textual, and `concord --version`,
`concord --help` or `concord status` should not wait for what they do not use.
bench/bench_startup.py measures it; tests/test_cli_startup.py guards it.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import NamedTuple

import click

from concord.storage.errors import ConcordError


class LazyCommand(NamedTuple):
    """Where a command is defined, and the first paragraph of its help, which `concord --help` lists."""

    module: str
    attribute: str
    summary: str
    # Subcommands defined in other modules, attached when the group loads: (module, attribute).
    subcommands: tuple[tuple[str, str], ...] = ()

    def load(self) -> click.Command:
        command = getattr(import_module(self.module), self.attribute)
        for module, attribute in self.subcommands:
            command.add_command(getattr(import_module(module), attribute))
        return command


_COMMANDS = "concord.app.commands"

# tests/test_cli_startup.py checks each summary against the command's own help text.
COMMANDS: dict[str, LazyCommand] = {
    "agreement": LazyCommand(
        f"{_COMMANDS}.agreement",
        "agreement",
        "Inter-coder agreement: percent, Cohen's and Fleiss' kappa, Krippendorff's alpha, Brennan-Prediger.",
    ),
    "assistant": LazyCommand(
        f"{_COMMANDS}.assistant",
        "assistant",
        "Switch the local coding assistant on or off (supervisors), or show how it is set.",
    ),
    "attribute": LazyCommand(
        f"{_COMMANDS}.attributes",
        "attribute",
        "Transcript attributes: list, set, unset (supervisors; every change audited).",
    ),
    "audit": LazyCommand(f"{_COMMANDS}.study", "audit", "The append-only log of every change: who, when, what."),
    "backup": LazyCommand(
        f"{_COMMANDS}.study", "backup", "Write a consistent copy of STUDY to DEST (a new .concord file)."
    ),
    "code": LazyCommand(f"{_COMMANDS}.code", "code", "Open the coding workbench on STUDY for the person --as NAME."),
    "codebook": LazyCommand(
        f"{_COMMANDS}.codebook",
        "codebook",
        "Codebooks: list, show, add, export, import; theme development for supervisors.",
    ),
    "coder": LazyCommand(
        f"{_COMMANDS}.study", "coder", "The people in a study and their roles (coder, supervisor, admin)."
    ),
    "collect": LazyCommand(
        f"{_COMMANDS}.workfiles",
        "collect",
        "Bring a coder's work back from WORK_FILE (from concord handout) into STUDY.",
    ),
    "consensus": LazyCommand(
        f"{_COMMANDS}.consensus", "consensus", "Reconcile the coders' codings into the consensus layer (supervisors)."
    ),
    "cooccurrence": LazyCommand(
        f"{_COMMANDS}.analyses",
        "cooccurrence",
        "Which codes occur together: counts, the c-coefficient and Jaccard for every pair of codes.",
    ),
    "demo": LazyCommand(
        f"{_COMMANDS}.demo", "demo", "Build a demo study and open it in the coding workbench as the coder alex."
    ),
    "export": LazyCommand(
        f"{_COMMANDS}.export",
        "export",
        "Tables and reports for the paper: frequencies, representativeness, excerpts.",
        subcommands=(
            (f"{_COMMANDS}.qdpx", "qdpx_export"),
            (f"{_COMMANDS}.analyses", "scores_link"),
            (f"{_COMMANDS}.analyses", "memos"),
        ),
    ),
    "handout": LazyCommand(
        f"{_COMMANDS}.workfiles",
        "handout",
        "Write a work file for one coder: a new study file holding only what they may see.",
    ),
    "import": LazyCommand(
        f"{_COMMANDS}.importing",
        "import_",
        "Bring data into a study: transcripts, questionnaire scores, earlier codings, REFI-QDA projects.",
        subcommands=((f"{_COMMANDS}.qdpx", "qdpx_import"),),
    ),
    "init": LazyCommand(
        f"{_COMMANDS}.study", "init", "Create a new study at STUDY (a new .concord file or a PostgreSQL URL)."
    ),
    "pseudonyms": LazyCommand(
        f"{_COMMANDS}.pseudonyms",
        "pseudonyms",
        "The name register: review the suspects imports left, pseudonymise stored transcripts again.",
    ),
    "query": LazyCommand(
        f"{_COMMANDS}.analyses",
        "query",
        "Find the turns where codes meet a condition, in one layer's covered transcripts.",
    ),
    "restore": LazyCommand(
        f"{_COMMANDS}.restore",
        "restore",
        "Load BACKUP (a file from concord backup) into TARGET: a new .concord file or an empty PostgreSQL database.",
    ),
    "scores": LazyCommand(
        f"{_COMMANDS}.attributes",
        "scores",
        "The imported questionnaire forms per session: totals, subscales, missing and prorated items.",
    ),
    "select-sessions": LazyCommand(
        f"{_COMMANDS}.select",
        "select_sessions",
        "Pick the highest- and lowest-alliance session of every therapy where alliance predicts the next"
        " session's outcome (Ekeblad et al. 2022), and say why each session was chosen or passed over.",
    ),
    "speakers": LazyCommand(
        f"{_COMMANDS}.attributes",
        "speakers",
        "List the speakers of TRANSCRIPT with their roles, or fix the roles with --map.",
    ),
    "status": LazyCommand(
        f"{_COMMANDS}.study",
        "status",
        "Counts of transcripts, turns, codes and codings per coder; the phase; blind or not.",
    ),
    "suggest": LazyCommand(
        f"{_COMMANDS}.assistant",
        "suggest",
        "Codes the assistant suggests for the turns of a transcript you have not coded yet.",
    ),
    "team": LazyCommand(
        f"{_COMMANDS}.team",
        "team",
        "PostgreSQL team mode: one database login per person, the blind enforced by the database.",
    ),
    "unblind": LazyCommand(
        f"{_COMMANDS}.consensus", "unblind", "Reveal groups and scores to everyone (supervisors; after consensus)."
    ),
}


class ConcordGroup(click.Group):
    """The top-level group: loads each command when it is first asked for, and turns Concord's own
    errors into one line on stderr and exit code 2."""

    def __init__(self, *args, lazy: dict[str, LazyCommand] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click draws its "Did you mean" from the commands loaded so far; offer all of them.
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the registered summary standing in for a command not loaded yet."""
        commands = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].summary)
            if not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConcordError as exc:
            click.echo(f"concord: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(
    cls=ConcordGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="concord")
def main():
    """Concord: qualitative coding of psychotherapy transcripts, blind or open.

    STUDY is always the first argument: a .concord file or a postgresql+psycopg:// URL.
    Commands that act for a person take --as NAME (default: $CONCORD_CODER).
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
