"""`concord` starts at once: --help and --version load no heavy library, `status` only what it needs.

The import checks run in a fresh interpreter (a subprocess), since this test process has long
imported everything. They count modules, never time: bench/bench_startup.py measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from concord.app.cli import COMMANDS, ConcordGroup
from concord.app.cli import main as concord_cli

HEAVY = (
    "sqlalchemy",
    "alembic",
    "pandas",
    "numpy",
    "textual",
    "spacy",
    "scipy",
    "statsmodels",
    "matplotlib",
    "lxml",
    "openpyxl",
    "docx",
)
# What `status` needs is SQLAlchemy and the models; none of the rest.
NOT_FOR_STATUS = tuple(name for name in HEAVY if name != "sqlalchemy")

# Runs the CLI as the console script does, then prints the modules it imported as the last line.
RUN_AND_LIST_MODULES = """
import json, sys
from concord.app.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main.main(args, prog_name="concord")
    except SystemExit as stop:
        if stop.code:
            sys.exit(f"concord {' '.join(args)} exited {stop.code}")
print()
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(runs: list[list[str]], folder: Path) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after running `concord ARGS` for each ARGS, and its output.

    It runs in `folder`, away from the checkout's own `concord/` folder, as an installed Concord would.
    """
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, json.dumps(runs)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output, _, modules = result.stdout.rstrip("\n").rpartition("\n")
    return set(json.loads(modules)), output


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if p in modules or any(m.startswith(p + ".") for m in modules))


def test_help_and_version_import_no_heavy_library(tmp_path):
    modules, output = imported_by([["--help"], ["--version"]], tmp_path)
    assert loaded(modules, HEAVY) == []
    assert not any(m.startswith("concord.app.commands.") for m in modules)
    # ... and still list every command with its one-line help.
    for name in COMMANDS:
        assert f"\n  {name} " in output, name
    assert "concord, version " in output


def test_the_guard_sees_a_heavy_import(tmp_path):
    """The check above would fail if --help pulled in SQLAlchemy: `concord status --help` does."""
    modules, _ = imported_by([["status", "--help"]], tmp_path)
    assert loaded(modules, HEAVY) == ["sqlalchemy"]


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory) -> Path:
    from concord.app.demo.build import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo")).path


def test_status_loads_no_analysis_nlp_or_ui_library(demo_study, tmp_path):
    modules, output = imported_by([["status", str(demo_study), "--format", "json"]], tmp_path)
    assert json.loads(output)["transcripts"] == 8
    assert "sqlalchemy" in modules
    assert loaded(modules, NOT_FOR_STATUS) == []


# -- the lazy group lists and runs what the commands themselves say --------------------------------


def listing(group: click.Group, width: int) -> str:
    context = click.Context(group, info_name="concord", terminal_width=width, max_content_width=width)
    formatter = context.make_formatter()
    group.format_commands(context, formatter)
    return formatter.getvalue()


def test_help_lists_each_command_as_the_command_itself_would():
    lazy = ConcordGroup("concord", lazy=COMMANDS)
    eager = click.Group("concord")
    for name, entry in COMMANDS.items():
        command = entry.load()
        assert command.name == name, f"COMMANDS[{name!r}] loads the command {command.name!r}"
        eager.add_command(command)
    for width in (50, 80, 100, 200):
        assert listing(lazy, width) == listing(eager, width), f"at width {width}"
    assert lazy.commands == {}, "listing the commands loaded one"


def test_every_command_and_subcommand_has_help():
    runner = CliRunner()
    for name in COMMANDS:
        command = concord_cli.get_command(click.Context(concord_cli), name)
        paths = [[name]]
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.list_commands(click.Context(command))]
        for path in paths:
            result = runner.invoke(concord_cli, [*path, "--help"], prog_name="concord")
            assert result.exit_code == 0, (path, result.output)
            assert f"Usage: concord {' '.join(path)} " in result.output, path


def test_a_mistyped_command_is_matched_against_every_command():
    result = CliRunner().invoke(ConcordGroup("concord", lazy=COMMANDS), ["stauts"])
    assert result.exit_code == 2
    assert "Did you mean 'status'?" in result.output


def test_concord_errors_stay_one_line_and_exit_2(tmp_path):
    group = ConcordGroup("concord", lazy=COMMANDS)
    result = CliRunner().invoke(group, ["status", str(tmp_path / "missing.concord")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("concord: error: "), result.stderr


# -- schema revisions without Alembic ----------------------------------------------------------------


def test_revisions_read_from_the_files_agree_with_alembic():
    from alembic.script import ScriptDirectory

    from concord.storage.db import _alembic_config
    from concord.storage.revisions import head_revision, revision_chain

    script = ScriptDirectory.from_config(_alembic_config(None))
    assert head_revision() == script.get_current_head()
    assert revision_chain() == {rev.revision: rev.down_revision for rev in script.walk_revisions()}


def test_a_branching_migration_is_refused_by_name():
    from concord.storage.revisions import _value

    with pytest.raises(RuntimeError, match=r"0004_x\.py: down_revision must be one quoted revision id"):
        _value(Path("0004_x.py"), "down_revision", "('0002', '0003')")
    assert _value(Path("0001_x.py"), "down_revision", "None") is None
    assert _value(Path("0002_x.py"), "revision", "'0002'") == "0002"
