"""Benchmark: frequency exports of 1,000 sessions x 40 codes, and an excerpt report of 5,000 excerpts.

Run from the repository root:  /work/venv/bin/python bench/bench_exports.py
It builds seeded studies in a temporary folder (SQLite), times the whole path a user
waits for (the service reading the study under the blind rule, the table, the file
written), prints the timings and updates its own section ("## Exports") of
bench/RESULTS.md (``--no-write`` to skip that). Floor: pandas writing a DataFrame of
the same shape to the same format, in the same run.
Exits 1 if the frequency export takes over 1 s or the report over 15 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from sqlalchemy import insert, select

from concord.exporters.excerpts import build_report, write_report
from concord.exporters.frequencies import GATHER_FOR, frequency_specs, frequency_table
from concord.exporters.writers import write_tables
from concord.services.results import gather
from concord.services.study import add_coder, init_study
from concord.services.workspace import Workspace
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    QuestionnaireScore,
    TherapySession,
    Transcript,
    Turn,
)

# Run as a script from anywhere: the repository root holds the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, best_of, write_section

SEED = 20240611
REPEATS = 3
DYADS, SESSIONS_PER_DYAD = 100, 10
THEMES, SUBTHEMES, CODES_PER_SUBTHEME = 5, 2, 4  # 40 codes under 10 sub-themes under 5 themes
TURNS, CODINGS_PER_TRANSCRIPT = 120, 30
REPORT_TRANSCRIPTS, REPORT_CODINGS = 200, 25  # 5,000 excerpts
FREQUENCY_LIMIT, REPORT_LIMIT = 1.0, 15.0

HEADING = "## Exports"
COMMAND = "/work/venv/bin/python bench/bench_exports.py"
WORDS = [
    "the",
    "week",
    "was",
    "hard",
    "and",
    "I",
    "kept",
    "thinking",
    "about",
    "what",
    "she",
    "said",
    "it",
    "never",
    "ends",
    "but",
    "I",
    "did",
    "the",
    "homework",
    "some",
    "of",
    "it",
    "we",
    "talked",
    "about",
    "goals",
    "what",
    "would",
    "you",
    "like",
    "to",
    "focus",
    "on",
    "today",
    "tell",
    "me",
    "more",
]


def _utterance(rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 30))]
    marks = []
    if rng.random() < 0.1:
        position = rng.randint(1, len(words) - 1)
        words.insert(position, "(sighs)")
    text = " ".join(words)
    if "(sighs)" in text:
        start = text.index("(sighs)")
        marks.append((start, start + len("(sighs)")))
    return text.capitalize() + ".", marks


def build_study(target: str, *, dyads: int, sessions: int, codings: int, seed: int) -> Workspace:
    """A blind study with a supervisor, a three-level codebook, session transcripts with turns,
    consensus codings, client and therapist WAI scores and a blinded high/low group."""
    rng = random.Random(seed)
    workspace = init_study(target, title="Generated study", blind=True)
    add_coder(workspace, "sue", "supervisor")
    with workspace.store.session() as session:
        sue = session.scalar(select(Coder.id).where(Coder.name == "sue"))
        book = Codebook(key="generated", title="Generated themes", version="1", origin="test")
        session.add(book)
        session.flush()
        leaves = []
        for t in range(THEMES):
            theme = Code(
                codebook_id=book.id,
                guid=str(uuid.uuid4()),
                name=f"theme {t + 1}",
                position=t,
                definition=f"What theme {t + 1} is about.",
            )
            session.add(theme)
            session.flush()
            for s in range(SUBTHEMES):
                sub = Code(
                    codebook_id=book.id,
                    parent_id=theme.id,
                    guid=str(uuid.uuid4()),
                    name=f"pole {t + 1}.{s + 1}",
                    position=s,
                )
                session.add(sub)
                session.flush()
                for c in range(CODES_PER_SUBTHEME):
                    leaf = Code(
                        codebook_id=book.id,
                        parent_id=sub.id,
                        guid=str(uuid.uuid4()),
                        name=f"code {t + 1}.{s + 1}.{c + 1}",
                        position=c,
                        definition="A generated code.",
                    )
                    session.add(leaf)
                    session.flush()
                    leaves.append(leaf.id)
        session.execute(insert(Dyad), [{"key": str(d + 1)} for d in range(dyads)])
        dyad_ids = list(session.scalars(select(Dyad.id).order_by(Dyad.id)))
        session.execute(
            insert(TherapySession), [{"dyad_id": d, "number": n + 1} for d in dyad_ids for n in range(sessions)]
        )
        session_ids = list(session.scalars(select(TherapySession.id).order_by(TherapySession.id)))
        transcripts, turn_rows, plans = [], [], []
        for index, session_id in enumerate(session_ids):
            parts, spans, offset = [], [], 0
            for number in range(TURNS):
                label, role = ("T", "therapist") if number % 2 == 0 else ("P", "client")
                utterance, marks = _utterance(rng)
                start = offset + len(label) + 2
                parts.append(f"{label}: {utterance}")
                spans.append(
                    (number + 1, role, label, start, start + len(utterance), [[start + a, start + b] for a, b in marks])
                )
                offset += len(parts[-1]) + 1
            transcripts.append(
                {
                    "key": f"S{index + 1:04d}",
                    "kind": "session",
                    "session_id": session_id,
                    "language": "en",
                    "text": "\n".join(parts),
                    "phase": "consensus_done",
                }
            )
            plans.append(spans)
        session.execute(insert(Transcript), transcripts)
        transcript_ids = list(session.scalars(select(Transcript.id).order_by(Transcript.id)))
        coding_rows = []
        for transcript_id, spans in zip(transcript_ids, plans):
            for number, role, label, start, end, marks in spans:
                turn_rows.append(
                    {
                        "transcript_id": transcript_id,
                        "number": number,
                        "speaker_role": role,
                        "speaker_label": label,
                        "char_start": start,
                        "char_end": end,
                        "replayed": False,
                        "nonverbal": marks,
                    }
                )
            for _ in range(codings):
                first = rng.randrange(TURNS - 1)
                last = first + (1 if rng.random() < 0.1 else 0)
                start = spans[first][3] + rng.randint(0, 5)
                end = spans[last][4] - rng.randint(0, 5)
                coding_rows.append(
                    {
                        "coder_id": sue,
                        "transcript_id": transcript_id,
                        "code_id": rng.choice(leaves),
                        "start_offset": start,
                        "end_offset": max(end, start + 1),
                        "phase": "consensus",
                        "made_blind": True,
                    }
                )
        session.execute(insert(Turn), turn_rows)
        session.execute(insert(Coding), coding_rows)
        scores, attributes = [], []
        for session_id in session_ids:
            client, therapist = rng.randint(24, 60), rng.randint(24, 84)
            scores.append(
                {
                    "session_id": session_id,
                    "instrument": "WAI-SR",
                    "respondent": "client",
                    "items": {},
                    "subscales": {"Task": client / 3, "Bond": client / 3, "Goal": client / 3},
                    "total": client,
                }
            )
            scores.append(
                {
                    "session_id": session_id,
                    "instrument": "WAI-S-T",
                    "respondent": "therapist",
                    "items": {},
                    "subscales": {"Task": therapist / 3},
                    "total": therapist,
                }
            )
            attributes.append(
                {
                    "target_kind": "session",
                    "target_id": session_id,
                    "name": "group",
                    "value_type": "text",
                    "value": rng.choice(("high", "low")),
                    "blinded": True,
                }
            )
        session.execute(insert(QuestionnaireScore), scores)
        session.execute(insert(Attribute), attributes)
    return workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="concord-bench-"))
    load_before = os.getloadavg()[0]

    started = time.perf_counter()
    big = build_study(
        str(folder / "frequencies.concord"),
        dyads=DYADS,
        sessions=SESSIONS_PER_DYAD,
        codings=CODINGS_PER_TRANSCRIPT,
        seed=SEED,
    )
    built = time.perf_counter() - started
    sue = Workspace(big.store, "sue")

    timings: dict[str, float] = {}
    timings["service (gather)"], data = best_of(REPEATS, lambda: gather(sue))
    timings["table + group summary"], tables = best_of(REPEATS, lambda: frequency_table(data))
    shape = tables.wide.shape
    long_shape = (len(tables.wide) * len(tables.code_columns), len(tables.long_columns()))

    def export(path: Path, measure: str = "segments") -> None:
        result = frequency_table(gather(sue, **GATHER_FOR[measure]), measure=measure)
        write_tables(path, frequency_specs(result, long=path.suffix == ".csv"))

    rows = []
    for suffix in (".csv", ".xlsx"):
        target = folder / f"frequencies{suffix}"
        ours, _ = best_of(REPEATS, lambda t=target: export(t))
        floor_frame = tables.long() if suffix == ".csv" else tables.wide
        floor_path = folder / f"floor{suffix}"
        writer = (
            (lambda f=floor_frame, p=floor_path: f.to_csv(p, index=False))
            if suffix == ".csv"
            else (lambda f=floor_frame, p=floor_path: f.to_excel(p, index=False, engine="openpyxl"))
        )
        floor, _ = best_of(REPEATS, writer)
        rows.append((suffix, ours, floor, floor_frame.shape))
    other_measures = {}
    for measure in ("turns", "words"):
        other_measures[measure], _ = best_of(REPEATS, lambda m=measure: export(folder / f"{m}.csv", m))
    big.close()

    report_study = build_study(
        str(folder / "report.concord"),
        dyads=20,
        sessions=REPORT_TRANSCRIPTS // 20,
        codings=REPORT_CODINGS,
        seed=SEED + 1,
    )
    report_sue = Workspace(report_study.store, "sue")

    def report(context: int) -> int:
        gathered = gather(report_sue, spans=True, turns="text")
        built_report = build_report(gathered, context=context)
        write_report(built_report, folder / f"report-{context}.docx")
        return built_report.excerpt_count

    report_seconds, excerpts = best_of(1, lambda: report(0))
    context_seconds, _ = best_of(1, lambda: report(1))
    report_study.close()
    shutil.rmtree(folder, ignore_errors=True)

    print(
        f"study built in {built:.1f} s: {DYADS * SESSIONS_PER_DYAD:,} sessions, {THEMES * SUBTHEMES * CODES_PER_SUBTHEME}"
        f" codes (+{THEMES + THEMES * SUBTHEMES} themes/sub-themes), {DYADS * SESSIONS_PER_DYAD * CODINGS_PER_TRANSCRIPT:,}"
        f" codings, {DYADS * SESSIONS_PER_DYAD * TURNS:,} turns"
    )
    for name, seconds in timings.items():
        print(f"{name:<22} {seconds * 1000:8.1f} ms")
    for suffix, ours, floor, floor_shape in rows:
        print(
            f"export {suffix:<6} {ours * 1000:8.1f} ms; pandas floor {floor_shape[0]:,} x {floor_shape[1]}: "
            f"{floor * 1000:8.1f} ms; ratio {ours / floor:.2f}"
        )
    for measure, seconds in other_measures.items():
        print(f"export .csv --count {measure}: {seconds * 1000:8.1f} ms")
    print(f"excerpt report .docx, {excerpts:,} excerpts: {report_seconds:.2f} s (context 1: {context_seconds:.2f} s)")

    load_after = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        f"Measured {date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, openpyxl {version('openpyxl')}, python-docx {version('python-docx')}, SQLite; "
        f"load average {load_before:.1f} before and {load_after:.1f} after (other work shared the cores, so "
        "absolute times are pessimistic; ours and the floor were measured side by side).",
        f"Data: seeded generated study (seed {SEED}): {DYADS} dyads x {SESSIONS_PER_DYAD} sessions = "
        f"{DYADS * SESSIONS_PER_DYAD:,} session transcripts of {TURNS} turns ({DYADS * SESSIONS_PER_DYAD * TURNS:,} "
        f"turns, 10% with a non-verbal annotation), {THEMES * SUBTHEMES * CODES_PER_SUBTHEME} codes under "
        f"{THEMES * SUBTHEMES} sub-themes under {THEMES} themes ({shape[1] - len(tables.id_columns) - len(tables.score_columns) - len(tables.attribute_columns)} "
        f"count columns), {CODINGS_PER_TRANSCRIPT} consensus codings per transcript "
        f"({DYADS * SESSIONS_PER_DYAD * CODINGS_PER_TRANSCRIPT:,}), client WAI-SR and therapist WAI-S-T scores, "
        "a blinded high/low group. Exported as the supervisor. Best of 3 runs.",
        "",
        "Frequency export, whole path (service reading the study + table + group summary + file):",
        "",
        "| format | ours | pandas floor (same shape, same format) | ratio ours/floor | limit |",
        "|---|---|---|---|---|",
    ]
    for suffix, ours, floor, floor_shape in rows:
        what = "tidy long" if suffix == ".csv" else "wide sheet"
        lines.append(
            f"| {suffix} ({what}, {floor_shape[0]:,} x {floor_shape[1]}) | {ours * 1000:.0f} ms | "
            f"{floor * 1000:.0f} ms | {ours / floor:.2f} | {'ok' if ours <= FREQUENCY_LIMIT else 'OVER'} "
            f"<= {FREQUENCY_LIMIT:.0f} s |"
        )
    lines += [
        "",
        "Parts (--count segments, the default): "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items())
        + f". The wide table is {shape[0]:,} x {shape[1]}; the long one {long_shape[0]:,} x {long_shape[1]}, "
        + "written by formatting each unit's columns once rather than once per code (hence below the floor). "
        + "Whole path to .csv with the other counts (they read the turns, and words the coded text): "
        + ", ".join(f"--count {m} {seconds * 1000:.0f} ms" for m, seconds in other_measures.items())
        + ".",
        "",
        f"Excerpt report: {excerpts:,} excerpts ({REPORT_TRANSCRIPTS} transcripts x {REPORT_CODINGS} codings) "
        f"to .docx, whole path (service with turn text + report + chart + file): **{report_seconds:.2f} s** "
        f"({'ok' if report_seconds <= REPORT_LIMIT else 'OVER'} <= {REPORT_LIMIT:.0f} s); with one turn of "
        f"context: {context_seconds:.2f} s.",
        "",
        f"Command (from the repository root): `{COMMAND}`",
    ]
    if not args.no_write:
        write_section(HEADING, "\n".join(lines))
        print(f"updated {RESULTS}")
    failed = [suffix for suffix, ours, _, _ in rows if ours > FREQUENCY_LIMIT]
    if failed:
        print(f"FAIL: frequency export over {FREQUENCY_LIMIT} s for {', '.join(failed)}", file=sys.stderr)
    if report_seconds > REPORT_LIMIT:
        print(f"FAIL: excerpt report over {REPORT_LIMIT} s", file=sys.stderr)
    return 1 if failed or report_seconds > REPORT_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
