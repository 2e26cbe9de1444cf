"""`concord demo`: build (or reuse) the demo study and open it as one of its coders."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from concord.app.cli_common import note_identity
from concord.app.demo.build import FIRST_TRANSCRIPT, SUPERVISOR, TUI_CODER, DemoResult, demo_path, ensure_demo


def _quoted(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items()) or "none"


def summary_lines(result: DemoResult) -> list[str]:
    summary = result.summary
    if result.action == "reused":
        head = f"The demo study is already built: {result.path}"
    elif result.action == "rebuilt":
        head = f"Rebuilt the demo study ({result.reason}) in {result.seconds:.1f} s: {result.path}"
    else:
        head = f"Built the demo study in {result.seconds:.1f} s: {result.path}"
    coders = [name for name, role in summary.people.items() if role == "coder"]
    supervisors = [name for name, role in summary.people.items() if role in ("supervisor", "admin")]
    forms = sum(summary.forms.values())
    return [
        head,
        f"  transcripts   {summary.transcripts} ({summary.session_transcripts} CBT sessions,"
        f" {summary.ipr_interviews} IPR interviews with {summary.replayed_turns} replayed turns)",
        f"  turns         {summary.turns}",
        f"  codes         {summary.codes} (the bundled codebooks and the coders' inductive codes)",
        f"  codings       {_counts(summary.codings)} (blind, independent)",
        f"  memos         {_counts(summary.memos)}",
        f"  done          {_counts(summary.done)} transcript(s) marked done",
        f"  scores        {forms} questionnaire forms (WAI-SR, WAI-S with a demo key, BDI-II) for"
        f" {summary.sessions} sessions of {summary.dyads} dyads",
        f"  people        {', '.join(coders)} (coders), {', '.join(supervisors)} (supervisor)",
        "  The study is blind: coders see neither the high/low group nor the scores nor each other's codes.",
        "  The material was written for the demo and is already pseudonymised, so the import did not pseudonymise it.",
    ]


def next_steps(path: Path) -> list[str]:
    study = _quoted(path)
    other_coder = "kim" if TUI_CODER != "kim" else "alex"
    steps = [
        (
            f"code blind as {TUI_CODER}: no groups, no scores, no other coder's codes",
            f"concord code {study} --as {TUI_CODER}",
        ),
        ("the same study through the other coder's eyes", f"concord code {study} --as {other_coder}"),
        ("how far the two coders agree", f"concord agreement {study} --as {SUPERVISOR}"),
        ("the supervisor reconciles their codes", f"concord consensus {study} --as {SUPERVISOR}"),
        (
            "which sessions the selection rules pick as high and low alliance (supervisors see the scores)",
            f"concord select-sessions {study} --as {SUPERVISOR} --alliance WAI-SR,WAI-S-DEMO --outcome BDI-II",
        ),
        (
            "reveal the high/low groups (forced: consensus is not finished)",
            f'concord unblind {study} --as {SUPERVISOR} --force --reason "trying the demo"',
        ),
        (
            "theme counts per group, linked to the alliance scores",
            f"concord export frequencies {study} --as {SUPERVISOR} --layer {TUI_CODER} --by group"
            " --out demo-frequencies.csv",
        ),
    ]
    lines = ["Next, try:"]
    for about, command in steps:
        lines += [f"  # {about}", f"  {command}"]
    where = "" if path == demo_path() else f" --dir {_quoted(path.parent)}"
    lines.append(f"Start the demo again from scratch with: concord demo{where} --rebuild")
    return lines


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the demo study in DIR (default: Concord's folder in your user data directory).",
)
@click.option("--no-tui", is_flag=True, help="Only build the demo and print what it holds; do not open the workbench.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Throw the demo study away and build it again from scratch (close the workbench on it first).",
)
def demo(directory, no_tui, rebuild):
    """Build a demo study and open it in the coding workbench as the coder alex.

    The demo holds six short CBT session transcripts (half from high-, half from
    low-alliance sessions, the group hidden from the coders), two IPR interviews
    about one session, WAI-SR, WAI-S and BDI-II scores, the bundled codebooks, two
    coders (alex, kim) with part of their blind coding done and a supervisor (sam).
    Running it again reuses the demo; a half-built one is never left behind.

    \b
    Examples:
      concord demo
      concord demo --dir /tmp/try --no-tui
    """
    click.echo("Preparing the demo study ...", err=True)
    result = ensure_demo(directory, rebuild=rebuild, progress=lambda step: click.echo(f"  {step}", err=True))
    for line in summary_lines(result):
        click.echo(line)
    if no_tui:
        click.echo("")
        for line in next_steps(result.path):
            click.echo(line)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        click.echo("")
        click.echo("Not a terminal, so the workbench was not opened.")
        for line in next_steps(result.path):
            click.echo(line)
        return
    try:
        # Textual is imported only here, so building the demo works without it.
        from concord.app.tui.app import make_app
    except ImportError as exc:
        click.echo("")
        click.echo(f"The coding workbench cannot be loaded in this installation ({exc}).")
        for line in next_steps(result.path):
            click.echo(line)
        return
    app = make_app(str(result.path), TUI_CODER, transcript=FIRST_TRANSCRIPT)
    note_identity(app.workspace)
    app.run()
    for line in next_steps(result.path):
        click.echo(line)
    if app.return_code:
        raise SystemExit(app.return_code)
