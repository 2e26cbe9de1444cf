"""`concord consensus` (the disagreement queue and decisions) and `concord unblind`."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.commands.agreement import split_list
from concord.app.commands.code import keys_option, run_workbench, theme_option
from concord.app.output import emit_rows, format_option
from concord.services import consensus as consensus_service
from concord.services.unblinding import unblind as unblind_study
from concord.storage.errors import ConcordError


def _queue_rows(items) -> list[dict]:
    rows = []
    for item in items:
        readings = " | ".join(f"{r.label}: {', '.join(r.codes) or '-'}" for r in item.readings)
        decision = item.decision
        rows.append(
            {
                "transcript": item.transcript,
                "unit": item.unit,
                "turn": item.turn,
                "unit_start": item.start,
                "unit_end": item.end,
                "speaker": item.speaker,
                "status": item.status,
                "readings": readings,
                "decision": decision.decision if decision else None,
                "result": ", ".join(f"{code} {start}-{end}" for code, start, end in decision.result)
                if decision
                else None,
                "rationale": decision.rationale if decision else None,
                "decided_by": decision.decided_by if decision else None,
                "text": item.text if len(item.text) <= 80 else item.text[:77] + "...",
            }
        )
    return rows


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _state_line(row) -> str:
    waiting = f", {row.agreed_pending} agreed not yet accepted" if row.agreed_pending else ""
    return f"{row.transcript}: {row.phase} ({row.open} open, {row.decided} decided, {row.agreed} agreed{waiting})"


def _accepted_text(accepted: dict[str, int], verbose: bool) -> str:
    """One line for what --accept-agreed did; with verbose, a line per transcript that gained units."""
    total = sum(accepted.values())
    gained = {key: count for key, count in accepted.items() if count}
    text = (
        f"Accepted {_plural(total, 'agreed unit')} into the consensus layer"
        f" ({_plural(len(gained), 'transcript')} of {len(accepted)})."
    )
    if verbose:
        text += "".join(f"\n  {key}: {count}" for key, count in gained.items())
    return text


def _phases(rows) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.phase] = counts.get(row.phase, 0) + 1
    return ", ".join(f"{count} {phase.replace('_', ' ')}" for phase, count in sorted(counts.items())) or "none"


def _waiting(rows) -> str:
    waiting = sum(row.agreed_pending for row in rows)
    return f"; {waiting} agreed not yet accepted (--accept-agreed)" if waiting else ""


def _phase_totals(rows) -> str:
    """'126 transcripts (3 consensus done, 120 in consensus, 3 independent): 340 open units'."""
    open_units = sum(row.open for row in rows)
    return (
        f"{_plural(len(rows), 'transcript')} ({_phases(rows)}): {_plural(open_units, 'open unit')}"
        f"{_waiting(rows)} · --verbose: each transcript"
    )


def _queue_summary(items, overview, keys) -> str:
    """Counts per transcript with something left to decide, and a total; every unit is --verbose."""
    by_transcript: dict[str, dict[str, int]] = {}
    for item in items:
        counts = by_transcript.setdefault(item.transcript, {})
        counts[item.status] = counts.get(item.status, 0) + 1
    rows = [row for row in overview if (not keys or row.transcript in keys)]
    if not items:
        return f"(none) {_plural(len(rows), 'transcript')} ({_phases(rows)}){_waiting(rows)}"
    width = max(len(key) for key in by_transcript)
    lines = []
    for key, counts in by_transcript.items():
        shown = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        lines.append(f"{key.ljust(width)}  {shown}")
    lines.append(
        f"Total: {_plural(len(items), 'unit')} in {len(by_transcript)} of {_plural(len(rows), 'transcript')}"
        f" ({_phases(rows)}){_waiting(rows)} · --verbose: every unit"
    )
    return "\n".join(lines)


def _queue_json(items) -> list[dict]:
    from dataclasses import asdict

    return [asdict(item) for item in items]


@click.command()
@study_argument
@as_option
@click.option("--present", metavar="A,B,...", help="Everyone at a consensus meeting (recorded with each decision).")
@click.option(
    "--unit",
    type=click.Choice(consensus_service.CONSENSUS_UNITS),
    default="turn",
    show_default=True,
    help="Decide turn by turn, or by aligned spans.",
)
@click.option(
    "--overlap",
    type=float,
    default=0.5,
    show_default=True,
    help="With --unit span: the share of the shorter span two codings must share to be one unit.",
)
@click.option("--transcripts", metavar="KEYS", help="Only these transcripts (comma-separated keys).")
@click.option("--accept-agreed", is_flag=True, help="Put every unit the coders agree on into the consensus layer.")
@click.option(
    "--decisions",
    "decisions_file",
    type=click.Path(dir_okay=False),
    metavar="FILE.csv",
    help="Apply decisions from a CSV file (columns: transcript, unit_start, unit_end or turn, code,"
    " decision take|all|none|code|span, coder, start, end, rationale).",
)
@click.option(
    "--list",
    "list_queue",
    is_flag=True,
    help="Summarise the open disagreements: counts per transcript (every unit with --verbose, or"
    " with --format csv/json).",
)
@click.option("--all", "include_settled", is_flag=True, help="With --list: also decided and agreed units.")
@click.option("--verbose", "-v", is_flag=True, help="Details: every unit with --list, every transcript after a change.")
@format_option()
@keys_option
@theme_option
def consensus(
    study,
    actor,
    present,
    unit,
    overlap,
    transcripts,
    accept_agreed,
    decisions_file,
    list_queue,
    include_settled,
    verbose,
    output_format,
    config_path,
    theme,
):
    """Reconcile the coders' codings into the consensus layer (supervisors).

    Without --accept-agreed, --decisions or --list this opens the consensus screen: a queue of the units
    where coders differ, decided with one key each (1..9 take Coder A, B, ...; a all; 0/x none; c another
    code; s adjust the span). A decision that matches no coder needs a rationale. It is the workbench
    (concord code) opened in consensus mode: escape leads to the overview, and from there to agreement
    (A), results (R) and the transcripts.

    In a terminal, --list and --accept-agreed summarise: counts per transcript and a total; --verbose
    lists every unit (and every transcript's state). --format csv or json always gives every unit.

    \b
    Examples:
      concord consensus pilot.concord --as sue --present sue,ann,bob
      concord consensus pilot.concord --as sue --accept-agreed --decisions decisions.csv
      concord consensus pilot.concord --as sue --list --format json
    """
    present_names = split_list(present)
    keys = split_list(transcripts)
    from concord.services.rights import require_consensus_rights

    with opened(study, actor) as workspace:
        require_consensus_rights(workspace)
        acted = False
        if accept_agreed:
            accepted = consensus_service.accept_agreed(
                workspace, transcripts=keys, unit=unit, overlap=overlap, present=present_names
            )
            click.echo(_accepted_text(accepted, verbose), err=output_format != "table")
            acted = True
        if decisions_file:
            requests = consensus_service.read_decisions(decisions_file)
            made = consensus_service.apply_decisions(
                workspace, requests, unit=unit, overlap=overlap, present=present_names
            )
            click.echo(f"Applied {len(made)} decision(s) from {decisions_file}.", err=output_format != "table")
            acted = True
        if list_queue:
            items = consensus_service.consensus_queue(
                workspace, transcripts=keys, unit=unit, overlap=overlap, include_settled=include_settled
            )
            if output_format == "json":
                emit_rows(_queue_json(items), "json")
            elif output_format == "table" and not verbose:
                overview = consensus_service.consensus_overview(workspace, unit=unit, overlap=overlap)
                click.echo(_queue_summary(items, overview, keys))
            else:
                emit_rows(
                    _queue_rows(items),
                    output_format,
                    [
                        "transcript",
                        "turn",
                        "unit_start",
                        "unit_end",
                        "status",
                        "readings",
                        "decision",
                        "result",
                        "rationale",
                        "decided_by",
                        "text",
                    ],
                )
            acted = True
        if acted:
            if output_format == "table" and (accept_agreed or decisions_file):
                overview = consensus_service.consensus_overview(workspace, unit=unit, overlap=overlap)
                rows = [row for row in overview if not keys or row.transcript in keys]
                if verbose:
                    for row in rows:
                        click.echo(_state_line(row))
                else:
                    click.echo(_phase_totals(rows))
            return
    _run_screen(
        study,
        actor,
        config_path=config_path,
        theme=theme,
        unit=unit,
        overlap=overlap,
        present=tuple(present_names),
        transcripts=tuple(keys),
    )


def _run_screen(study, actor, *, config_path, theme, **setup) -> None:
    """The workbench, opened in consensus mode (the study is opened again by the app, for as long as it runs)."""
    import sys

    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise ConcordError(
            "the consensus screen needs a terminal; use --list, --accept-agreed or --decisions in scripts"
        )
    from concord.app.tui.screens.consensus import ConsensusSetup

    run_workbench(
        study, actor, config_path=config_path, theme=theme, start="consensus", consensus=ConsensusSetup(**setup)
    )


@click.command()
@study_argument
@as_option
@click.option("--reason", metavar="TEXT", help="Why (required with --force; kept in the audit log).")
@click.option("--force", is_flag=True, help="Unblind although some transcripts lack a finished consensus.")
def unblind(study, actor, reason, force):
    """Reveal groups and scores to everyone (supervisors; after consensus).

    Refused while any transcript lacks a finished consensus, unless --force with a --reason.
    """
    with opened(study, actor) as workspace:
        result = unblind_study(workspace, reason=reason, force=force)
    click.echo(
        f"Unblinded by {result.unblinded_by} at {result.unblinded_at:%Y-%m-%d %H:%M} UTC:"
        " group attributes and scores are now visible to coders, and new codings are recorded as"
        " made unblinded."
    )
    if result.forced:
        click.echo(
            f"Forced with {len(result.unfinished)} transcript(s) still without a finished consensus"
            f" ({', '.join(result.unfinished)})."
        )
