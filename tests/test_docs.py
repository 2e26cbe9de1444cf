"""The documentation runs: every shell command in README.md and docs/*.md, the generated command
reference, the keys the guides list and the screenshot. (The admin guide's PostgreSQL team mode is
checked by tests/test_team_postgres.py, which the guide cites claim by claim.)

How a page is run
-----------------
Each page runs in a folder of its own, in order, top to bottom:

* A fenced block whose info string names a file (```` ```csv files.csv ````) is written into the
  folder when it is reached: the example inputs the page shows are the ones its commands read.
* Every line of a ```` ```sh ```` block is a shell command, and so is every line of a
  ```` ```console ```` block that starts with ``$ `` (the rest is output). ``concord ...`` lines
  run in-process through click; ``export NAME=VALUE`` sets a variable for the lines after it; a
  few file tools (chmod, mkdir, cp, ls, cat) run in the folder. Any other command is an error,
  except the README's two fresh-machine lines (tests/test_readme.py and .ci/run run those).
* The admin guide's PostgreSQL study is named by ``export STUDY=postgresql...``: with
  ``CONCORD_TEST_PG`` set, a fresh test database takes the place of the example server and the
  commands run; without it, they are only parsed, like the workbench lines below.
* A line ending in ``# opens the workbench`` would start the terminal UI, which cannot run here:
  its options are parsed (so each one must exist) and ``--help`` of the command must exit 0. A key
  file it names with ``--keys`` must load.
* A line ending in ``# fails: ...`` shows an error on purpose: it must exit with code 2.
* Every other ``concord`` line must exit 0. ``> FILE`` writes the output to FILE.

The guides (docs/*.md) start from the demo study, copied to ``study.concord`` (coders alex and kim,
supervisor sam); the README starts from an empty folder and builds the demo itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import click
import pytest
from click.testing import CliRunner

from concord.app.cli import main as concord_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
GUIDES = ["coder-guide.md", "supervisor-guide.md", "researcher-guide.md", "admin-guide.md"]

SHELL_LANGUAGES = {"sh", "console"}
FILE_TOOLS = {"chmod", "mkdir", "cp", "ls", "cat"}
WORKBENCH = "opens the workbench"
FRESH_MACHINE = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && concord demo",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest -n auto",
)
# The admin guide's team study lives in PostgreSQL; the variable that names it.
PG_VARIABLE = "STUDY"
PG_URL = os.environ.get("CONCORD_TEST_PG")

_FENCE = re.compile(r"^(`{3,})\s*([^`]*)$")
_FILE_NAME = re.compile(r"^[\w.-]+\.\w+$")
_COMMENT = re.compile(r"\s#\s?(.*)$")
_EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


# -- reading a page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # where its first content line is
    language: str
    name: str | None  # the file it shows, if its info string names one
    lines: tuple[str, ...]


def fenced_blocks(path: Path) -> list[Block]:
    blocks, opened, info, body, start = [], None, "", [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        found = _FENCE.match(line)
        if opened is None and found:
            opened, info, body, start = found.group(1), found.group(2).strip(), [], number + 1
        elif opened is not None and line.strip() == opened:
            words = info.split()
            language = words[0].lower() if words else ""
            name = next((w for w in words[1:] if _FILE_NAME.match(w)), None)
            blocks.append(Block(start, language, name, tuple(body)))
            opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"{path.name}: a fenced block opened at line {start - 1} is never closed"
    return blocks


@dataclass(frozen=True)
class Step:
    """One thing a page does: write a file, set a variable, or run a command."""

    where: str  # "page.md:line"
    kind: str  # file | export | concord | tool | fresh-machine | unknown
    text: str
    content: str = ""
    expect: str = "ok"  # ok | workbench | fails


def page_steps(path: Path) -> list[Step]:
    steps = []
    for block in fenced_blocks(path):
        where = f"{path.name}:{block.line}"
        if block.name and block.language not in SHELL_LANGUAGES:
            steps.append(Step(where, "file", block.name, "\n".join(block.lines) + "\n"))
            continue
        if block.language not in SHELL_LANGUAGES:
            continue
        joined: list[tuple[int, str]] = []
        for offset, raw in enumerate(block.lines):
            line = raw.strip()
            continued = bool(joined) and joined[-1][1].endswith("\\")
            if line.startswith("$ "):
                line = line[2:]
            elif block.language == "console" and not continued:
                continue  # what a command printed, not a command
            if continued:
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line)
            else:
                joined.append((block.line + offset, line))
        for number, line in joined:
            if not line or line.startswith("#"):
                continue
            where = f"{path.name}:{number}"
            comment = _COMMENT.search(line)
            note = comment.group(1).strip() if comment else ""
            command = line[: comment.start()].strip() if comment else line
            expect = "workbench" if note == WORKBENCH else "fails" if note.startswith("fails:") else "ok"
            if path == README and command in FRESH_MACHINE:
                steps.append(Step(where, "fresh-machine", command))
            elif command.startswith("concord "):
                steps.append(Step(where, "concord", command, expect=expect))
            elif _EXPORT.match(command):
                steps.append(Step(where, "export", command))
            elif command.split()[0] in FILE_TOOLS:
                steps.append(Step(where, "tool", command))
            else:
                steps.append(Step(where, "unknown", command))
    return steps


# -- running a page ------------------------------------------------------------------------------


def resolve(args: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """The command names, the click command they lead to, and the rest of the arguments."""
    names, command, rest = [], concord_cli, list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no such command: concord {' '.join([*names, rest[0]])}"
        names.append(rest.pop(0))
        command = sub
    return names, command, rest


def parse_only(args: list[str]) -> click.Context:
    """Parse a command line as click would, without running it (unknown options fail)."""
    names, command, rest = resolve(args)
    parent = click.Context(concord_cli, info_name="concord", **concord_cli.context_settings)
    return command.make_context(" ".join(names), rest, parent=parent)


@dataclass
class PageRun:
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    pg_databases: list[str] = field(default_factory=list)

    def expand(self, text: str) -> str:
        return re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
            lambda m: self.env.get(m.group(1), os.environ.get(m.group(1), m.group(0))),
            text,
        )

    def words(self, step: Step) -> list[str]:
        return [self.expand(word) for word in shlex.split(step.text)]

    def export(self, step: Step) -> None:
        name, value = _EXPORT.match(step.text).groups()
        value = shlex.split(value)[0] if value else ""
        if name == PG_VARIABLE and value.startswith("postgresql"):
            value = self.pg_study() if PG_URL else value
        self.env[name] = value

    def pg_study(self) -> str:
        from tests.conftest import fresh_pg_url

        url = fresh_pg_url()
        self.pg_databases.append(url)
        return url

    def uses_unreachable_pg(self, step: Step) -> bool:
        """A command on the admin guide's PostgreSQL study while no test server is configured."""
        return not PG_URL and f"${PG_VARIABLE}" in step.text.replace("{", "").replace("}", "")

    def tool(self, step: Step) -> None:
        result = subprocess.run(
            step.text, shell=True, cwd=self.folder, capture_output=True, text=True, env={**os.environ, **self.env}
        )
        assert result.returncode == 0, f"{step.where}: `{step.text}` failed: {result.stderr}"

    def concord(self, step: Step) -> None:
        words = self.words(step)[1:]
        out = None
        if ">" in words:
            at = words.index(">")
            words, out = words[:at], words[at + 1]
        if step.expect == "workbench" or self.uses_unreachable_pg(step):
            self.check_without_running(step, words)
            return
        result = CliRunner().invoke(concord_cli, words, env=self.env, catch_exceptions=True)
        shown = f"{step.where}: `{step.text}` exited {result.exit_code}\n{result.output}"
        if result.exception and not isinstance(result.exception, SystemExit):
            raise AssertionError(shown) from result.exception
        if step.expect == "fails":
            assert result.exit_code == 2, shown
            assert "error" in result.stderr.lower(), shown
        else:
            assert result.exit_code == 0, shown
        if out:
            (self.folder / out).write_text(result.stdout, encoding="utf-8")
        self.ran.append(step.text)

    def check_without_running(self, step: Step, words: list[str]) -> None:
        names, _, _ = resolve(words)
        context = parse_only(words)
        assert names, f"{step.where}: `{step.text}` names no command"
        result = CliRunner().invoke(concord_cli, [*names, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, f"{step.where}: --help failed: {result.output}"
        keys = context.params.get("config_path")
        if keys:
            from concord.app.tui.app import remappable_ids
            from concord.app.tui.keymap import load_keymap

            load_keymap(self.folder / keys, known_ids=remappable_ids())
        self.checked.append(step.text)

    def run(self, steps: list[Step]) -> None:
        previous = Path.cwd()
        os.chdir(self.folder)
        try:
            for step in steps:
                if step.kind == "file":
                    target = self.folder / step.text
                    target.write_text(step.content, encoding="utf-8")
                elif step.kind == "export":
                    self.export(step)
                elif step.kind == "tool":
                    self.tool(step)
                elif step.kind == "concord":
                    self.concord(step)
                elif step.kind == "unknown":
                    raise AssertionError(
                        f"{step.where}: `{step.text}` is a shell command the docs test cannot run;"
                        " show only concord commands (or chmod, mkdir, cp, ls, cat, export)"
                    )
        finally:
            os.chdir(previous)

    def close(self) -> None:
        from tests.conftest import drop_pg_database

        for url in self.pg_databases:
            drop_pg_database(url)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory) -> Path:
    from concord.app.demo.build import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo")).path


@pytest.fixture
def page_folder(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def run_page(path: Path, folder: Path, demo: Path | None) -> PageRun:
    if demo is not None:
        shutil.copy(demo, folder / "study.concord")
    run = PageRun(folder)
    try:
        run.run(page_steps(path))
    finally:
        run.close()
    return run


# -- the pages -----------------------------------------------------------------------------------


def test_the_pages_the_issue_asks_for_exist():
    for name in GUIDES:
        assert (DOCS / name).exists(), name
    text = README.read_text(encoding="utf-8")
    for name in [*GUIDES, "commands.md"]:
        assert f"docs/{name}" in text, f"README.md does not link docs/{name}"


def test_readme_runs(page_folder):
    steps = page_steps(README)
    assert [s.text for s in steps if s.kind == "fresh-machine"] == list(FRESH_MACHINE)
    run = run_page(README, page_folder, demo=None)
    tour = " ".join(run.ran + run.checked)
    for stage in (
        "concord demo",
        "concord code",
        "concord agreement",
        "concord consensus",
        "concord unblind",
        "concord export",
    ):
        assert stage in tour, f"the README's tour leaves out {stage}"
    assert (page_folder / "demo.concord").exists()


def _as(folder: Path, study: str, person: str):
    from concord.services.workspace import Workspace

    return Workspace.open(str(folder / study), person)


def after_coder_guide(folder: Path) -> None:
    """The coder's guide only looks: alex's work is as the demo left it."""
    from concord.services.study import study_status

    with _as(folder, "study.concord", "sam") as sam:
        assert study_status(sam)["codings"] == {"alex": 98, "kim": 98, "sam": 0}


def after_supervisor_guide(folder: Path) -> None:
    """S01 reconciled from the decisions file, the themes reshaped, the study unblinded."""
    from concord.services.codebooks import codebook_spec
    from concord.services.consensus import consensus_overview

    with _as(folder, "study.concord", "sam") as sam:
        phases = {row.transcript: row.phase for row in consensus_overview(sam)}
        assert phases["S01"] == "consensus_done" and phases["S02"] == "in_consensus"
        assert sam.settings().unblinded_at is not None
        inductive = {code.name: code for code in codebook_spec(sam, "inductive").codes}
        assert [child.name for child in inductive["client disengages"].children] == [
            "one-word answers",
            "homework not done",
        ]
        assert "it never ends" not in inductive and {"laughing together", "teasing"} <= set(inductive)
    assert (folder / "inductive-themes.yaml").exists() and (folder / "agreement-spans.csv").exists()


def after_researcher_guide(folder: Path) -> None:
    """Names replaced from the register, the blinded group kept, scores and codings in, exports written."""
    from concord.services.transcripts import get_transcript

    with _as(folder, "pilot.concord", "sue") as sue:
        text = get_transcript(sue, "session-12-05").text
        assert "Maria" in text and "Sofia" in text and "Västerås" in text
        assert not {"Anna", "Karin", "Uppsala"} & set(re.findall(r"\w+", text))
        s07 = get_transcript(sue, "S07")
        assert {(a.name, a.value) for a in s07.attributes} >= {("group", "low"), ("modality", "online")}
        wai_sr = {score.respondent: score.total for score in s07.scores if score.instrument == "WAI-SR"}
        # The client's form, and the therapist's version of it imported with --respondent therapist.
        assert wai_sr == {"client": 28, "therapist": 33}
    # pilot.concord binds people to OS logins: look through ann's eyes as her login would.
    with mock.patch("concord.services.identity.current_login", return_value="ann"):
        with _as(folder, "pilot.concord", "ann") as ann:
            assert "group" not in {a.name for a in get_transcript(ann, "S07").attributes}
    assert "Erik,Person-1,person" in (folder / "names.csv").read_text(encoding="utf-8")
    for name in (
        "frequencies.csv",
        "frequencies.group-summary.csv",
        "by-group.csv",
        "frequencies-wide.xlsx",
        "representativeness.xlsx",
        "excerpts.html",
        "study.qdpx",
        "cbt-alliance-themes.qdc",
    ):
        assert (folder / name).stat().st_size > 0, name


def after_admin_guide(folder: Path) -> None:
    from concord.services.study import list_coders, study_status

    with _as(folder, "backups/study-2025-06-01.concord", "sam") as sam:
        assert study_status(sam)["codings"]["alex"] == 98
    with _as(folder, "lab.concord", "lee") as lee:
        assert {c.name: c.role for c in list_coders(lee)} == {
            "lee": "admin",
            "sam": "supervisor",
            "alex": "coder",
            "kim": "coder",
        }
    assert "study.backup" in (folder / "audit.csv").read_text(encoding="utf-8")


AFTER = {
    "coder-guide.md": after_coder_guide,
    "supervisor-guide.md": after_supervisor_guide,
    "researcher-guide.md": after_researcher_guide,
    "admin-guide.md": after_admin_guide,
}


@pytest.mark.parametrize("name", GUIDES)
def test_guide_runs(name, page_folder, demo_study):
    run = run_page(DOCS / name, page_folder, demo=demo_study)
    shown = [step.text for step in page_steps(DOCS / name) if step.kind == "concord"]
    assert len(run.ran) + len(run.checked) == len(shown) and len(run.ran) >= 3, f"{name} ran {run.ran}"
    AFTER[name](page_folder)


def test_every_page_with_commands_is_run():
    """A new page with shell commands must be one the tests above run."""
    covered = {README, *(DOCS / name for name in GUIDES)}
    for path in PAGES:
        if any(step.kind != "file" for step in page_steps(path)):
            assert path in covered, f"{path.name} shows shell commands but no test runs them"


def test_the_harness_catches_a_wrong_command(page_folder, demo_study):
    """The checks above can fail: a made-up option, an unexpected error, an unknown tool, a missing error."""
    shutil.copy(demo_study, page_folder / "study.concord")
    cases = [
        (Step("x:1", "concord", "concord status study.concord --no-such-option"), "exited 2"),
        (Step("x:2", "concord", "concord agreement study.concord --as alex"), "for supervisors"),
        (
            Step("x:3", "concord", "concord code study.concord --as alex --colour red", expect="workbench"),
            "No such option",
        ),
        (Step("x:4", "unknown", "pip install something"), "cannot run"),
        (Step("x:5", "concord", "concord status study.concord --as sam", expect="fails"), "exited 0"),
    ]
    for step, message in cases:
        with pytest.raises((AssertionError, click.UsageError), match=message):
            PageRun(page_folder).run([step])


_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)")


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings (outside code blocks)."""
    anchors, inside = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add("".join(ch for ch in title if ch.isalnum() or ch in " -_").replace(" ", "-"))
    return anchors


def test_links_between_the_pages_lead_somewhere():
    for page in PAGES:
        for target, anchor in _LINK.findall(page.read_text(encoding="utf-8")):
            linked = (page.parent / target).resolve() if target else page
            assert linked.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor and linked.suffix == ".md":
                assert anchor in heading_anchors(linked), f"{page.name} links to {target}#{anchor}: no such heading"


# -- the command reference -----------------------------------------------------------------------


def _generator():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_command_reference
    finally:
        sys.path.pop(0)
    return gen_command_reference


def test_command_reference_is_up_to_date():
    generator = _generator()
    expected = generator.render()
    assert (DOCS / "commands.md").read_text(encoding="utf-8") == expected, (
        "docs/commands.md is out of date: run python scripts/gen_command_reference.py"
    )


def test_command_reference_covers_every_command_and_option():
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    generator = _generator()
    for chain, path in generator.walk(concord_cli, ("concord",)):
        assert f"\n## {' '.join(path)}\n" in text
        for param in chain[-1].params:
            for option in getattr(param, "opts", []):
                if option.startswith("--"):
                    assert option in text, f"{' '.join(path)} {option} is missing from docs/commands.md"


# -- keys the guides list ------------------------------------------------------------------------

_KEY_ROW = re.compile(r"^\|\s*(?P<keys>[^|]+?)\s*\|\s*(?P<what>[^|]+?)\s*\|\s*`(?P<id>[a-z-]+\.[a-z0-9-]+)`\s*\|\s*$")


def documented_keys(path: Path) -> list[tuple[str, list[str], str]]:
    """(binding id, keys as written, where) from key tables: | `k` | what | `binding.id` |."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        found = _KEY_ROW.match(line)
        if found:
            keys = re.findall(r"`([^`]+)`", found.group("keys"))
            rows.append((found.group("id"), keys, f"{path.name}:{number}"))
    return rows


def _textual_key(written: str) -> str:
    """`ctrl+r` -> ctrl+r, `?` -> question_mark, `[` -> left_square_bracket, as Textual names keys."""
    from textual.keys import _character_to_key

    if "+" in written and len(written) > 1:
        *mods, last = written.split("+")
        return "+".join([*mods, _textual_key(last)])
    names = {"esc": "escape", "page up": "pageup", "page down": "pagedown", "del": "delete"}
    written = names.get(written, written)
    return _character_to_key(written) if len(written) == 1 else written


def all_bindings() -> dict[str, list[str]]:
    from textual.binding import Binding

    from concord.app.tui.app import KEYED_CLASSES
    from concord.app.tui.keymap import declared_bindings

    keys: dict[str, list[str]] = {}
    for cls in KEYED_CLASSES:
        for binding in declared_bindings(cls):
            if binding.id:
                for made in Binding.make_bindings([binding]):
                    keys.setdefault(binding.id, [])
                    if made.key not in keys[binding.id]:
                        keys[binding.id].append(made.key)
    return keys


@pytest.mark.parametrize("name", ["coder-guide.md", "supervisor-guide.md"])
def test_every_key_the_guides_list_does_what_they_say(name):
    rows = documented_keys(DOCS / name)
    assert len(rows) >= 10, f"{name} lists only {len(rows)} keys"
    bindings = all_bindings()
    for binding_id, keys, where in rows:
        assert binding_id in bindings, f"{where}: no key has the id {binding_id}"
        for key in keys:
            assert _textual_key(key) in bindings[binding_id], (
                f"{where}: {key!r} is not a key of {binding_id} (it has {bindings[binding_id]})"
            )


def test_the_coder_guide_lists_every_coding_key():
    """Every described key of the coding screen and its text is in the coder's guide."""
    from concord.app.tui.keymap import declared_bindings
    from concord.app.tui.screens.transcript import TranscriptScreen
    from concord.app.tui.widgets.transcript_view import TranscriptView

    listed = {binding_id for binding_id, _, _ in documented_keys(DOCS / "coder-guide.md")}
    apply_keys = {f"transcript.apply-{n}" for n in range(10)}
    for cls in (TranscriptScreen, TranscriptView):
        for binding in declared_bindings(cls):
            if binding.id and binding.id not in apply_keys:
                assert binding.id in listed, f"the coder's guide does not list {binding.id} ({binding.key})"


# -- the screenshot --------------------------------------------------------------------------------


def test_screenshot_is_an_svg_of_the_coding_screen_at_100_by_30():
    svg = (DOCS / "screenshot.svg").read_text(encoding="utf-8").replace("&#160;", " ")
    assert svg.lstrip().startswith("<svg")
    assert "concord code demo.concord --as alex" in svg
    # 100 columns x 30 rows: Textual draws each row in its own clip path.
    assert len(set(re.findall(r"terminal-\d+-line-(\d+)", svg))) == 30
    # Textual writes one <text> row per terminal line; the coding screen's title bar and hint line are there.
    for words in ("S02", "blind", "therapist style", "turn 4/40", "selected 17 chars", "undo"):
        assert words in svg, words
    assert "](docs/screenshot.svg)" in README.read_text(encoding="utf-8")


def test_screenshot_script_draws_the_screen_it_promises(demo_study):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import take_screenshot
    finally:
        sys.path.pop(0)
    assert take_screenshot.SIZE == (100, 30)
    svg = asyncio.run(take_screenshot.screenshot_svg(demo_study))
    # The coding screen on S02, blind, with words selected in turn 4.
    for words in ("S02", "blind", "turn&#160;4/40", "selected&#160;"):
        assert words in svg, words
