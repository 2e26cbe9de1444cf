"""Growth bench: every command a user waits for, on studies of 10 to 2,000 transcripts, with its fitted exponent.

Run from the repository root:

    /work/main/.venv/bin/python bench/bench_growth.py                    # sizes 10,100,1000, SQLite
    /work/main/.venv/bin/python bench/bench_growth.py --sizes 10,100,1000,2000
    /work/main/.venv/bin/python bench/bench_growth.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Each study: 200 turns per transcript, dyads of 10 sessions, a 4 x 5 codebook, two coders (ann, bob) with 30
independent codings each per transcript (bob agrees with ann on about 70%), both marked done, a blinded
high/low group per session and client WAI-SR totals; sue is the supervisor who runs the commands. Studies are
built with bulk inserts through the storage models and cached in a temporary folder (``--cache``), keyed by
size and the bench's data version, so later runs start at once.

Every command runs as a user runs it: a subprocess of the installed ``concord`` (start-up included), except
the overview, which is ``bench/growth_overview.py`` (the workbench opened headless as sue, until the overview
lists the transcripts). Runs interleave: each round runs the floor (``python -c "import click"``) and then
every command once, for ``--repeats`` rounds (default 5); the median counts. Peak memory is the child's
maximum resident set (wait4). The exponent is the least-squares slope of log(median - floor) against
log(size), over all sizes and over the two largest (where fixed costs weigh least).

`import codings` imports 50 rows per transcript (100,000 at 2,000) for a new coder into a fresh copy of the
study each time (the copy is not timed).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, write_section  # noqa: E402

DATA_VERSION = 1
SEED = 20261201
TURNS = 200
CODINGS = 30
IMPORT_ROWS_PER_TRANSCRIPT = 50
SESSIONS_PER_DYAD = 10
THEMES, CODES_PER_THEME = 4, 5
HEADING = "## Growth: whole commands from 10 to 2,000 transcripts"
PG_HEADING = "## Growth on PostgreSQL"
COMMANDS = ("agreement", "status", "overview", "frequencies", "excerpts", "qdpx", "import codings")
# The targets of issue 20 at 2,000 transcripts (seconds); the overview's is for the rows on screen.
TARGETS = {
    "agreement": 3.0,
    "overview": 1.5,
    "import codings": 10.0,
    "qdpx": 10.0,
    "excerpts": 8.0,
}
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
    "mm-hm",
    "yeah",
    "right",
    "so",
    "okay",
]


# -- building the studies ---------------------------------------------------------------------------


def _pg_url(base: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def _pg_exists(base: str, name: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(_pg_url(base, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar())
    finally:
        engine.dispose()


def _pg_admin(base: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(_pg_url(base, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def build_study(target: str, size: int, seed: int = SEED) -> None:
    """A blind study of ``size`` session transcripts, written with bulk inserts (see the module text)."""
    from sqlalchemy import insert, select

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
        TranscriptProgress,
        Turn,
    )

    rng = random.Random(seed)
    workspace = init_study(target, title=f"Growth study ({size} transcripts)", blind=True)
    add_coder(workspace, "sue", "supervisor")
    workspace = Workspace(workspace.store, "sue")
    add_coder(workspace, "ann")
    add_coder(workspace, "bob")
    now = datetime.now(UTC)
    with workspace.store.session() as session:
        coders = dict(session.execute(select(Coder.name, Coder.id)).all())
        book = Codebook(key="growth", title="Growth themes", version="1", origin="bench")
        session.add(book)
        session.flush()
        leaves = []
        for t in range(THEMES):
            theme = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name=f"theme {t + 1}", position=t)
            session.add(theme)
            session.flush()
            for c in range(CODES_PER_THEME):
                leaf = Code(
                    codebook_id=book.id,
                    parent_id=theme.id,
                    guid=str(uuid.uuid4()),
                    name=f"code {t + 1}.{c + 1}",
                    position=c,
                    definition="A generated code.",
                )
                session.add(leaf)
                session.flush()
                leaves.append(leaf.id)
        dyads = max(1, math.ceil(size / SESSIONS_PER_DYAD))
        session.execute(insert(Dyad), [{"key": f"D{d + 1:03d}"} for d in range(dyads)])
        dyad_ids = list(session.scalars(select(Dyad.id).order_by(Dyad.id)))
        session.execute(
            insert(TherapySession),
            [{"dyad_id": dyad_ids[i // SESSIONS_PER_DYAD], "number": i % SESSIONS_PER_DYAD + 1} for i in range(size)],
        )
        session_ids = list(session.scalars(select(TherapySession.id).order_by(TherapySession.id)))
        plans, transcripts = [], []
        for index, session_id in enumerate(session_ids):
            parts, spans, offset = [], [], 0
            for number in range(TURNS):
                label, role = ("T", "therapist") if number % 2 == 0 else ("P", "client")
                utterance = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30))).capitalize() + "."
                start = offset + len(label) + 2
                parts.append(f"{label}: {utterance}")
                spans.append((number + 1, role, label, start, start + len(utterance)))
                offset += len(parts[-1]) + 1
            transcripts.append(
                {
                    "key": f"S{index + 1:05d}",
                    "kind": "session",
                    "session_id": session_id,
                    "language": "en",
                    "text": "\n".join(parts),
                    "phase": "independent",
                }
            )
            plans.append(spans)
        session.execute(insert(Transcript), transcripts)
        transcript_ids = list(session.scalars(select(Transcript.id).order_by(Transcript.id)))
        turn_rows, coding_rows, progress_rows = [], [], []
        for transcript_id, spans in zip(transcript_ids, plans):
            for number, role, label, start, end in spans:
                turn_rows.append(
                    {
                        "transcript_id": transcript_id,
                        "number": number,
                        "speaker_role": role,
                        "speaker_label": label,
                        "char_start": start,
                        "char_end": end,
                        "replayed": False,
                        "nonverbal": [],
                    }
                )
            ann = []
            for _ in range(CODINGS):
                turn = rng.randrange(TURNS)
                ann.append((turn, rng.choice(leaves)))
            bob = [(t, c) if rng.random() < 0.7 else (rng.randrange(TURNS), rng.choice(leaves)) for t, c in ann]
            for coder, picks in (("ann", ann), ("bob", bob)):
                for turn, code in picks:
                    _, _, _, start, end = spans[turn]
                    coding_rows.append(
                        {
                            "coder_id": coders[coder],
                            "transcript_id": transcript_id,
                            "code_id": code,
                            "start_offset": start,
                            "end_offset": end,
                            "phase": "independent",
                            "made_blind": True,
                        }
                    )
                progress_rows.append(
                    {
                        "coder_id": coders[coder],
                        "transcript_id": transcript_id,
                        "turns_reviewed": TURNS,
                        "last_offset": spans[-1][4],
                        "done_at": now,
                    }
                )
        for chunk in range(0, len(turn_rows), 50_000):
            session.execute(insert(Turn), turn_rows[chunk : chunk + 50_000])
        session.execute(insert(Coding), coding_rows)
        session.execute(insert(TranscriptProgress), progress_rows)
        session.execute(
            insert(Attribute),
            [
                {
                    "target_kind": "session",
                    "target_id": session_id,
                    "name": "group",
                    "value_type": "text",
                    "value": rng.choice(("high", "low")),
                    "blinded": True,
                }
                for session_id in session_ids
            ],
        )
        session.execute(
            insert(QuestionnaireScore),
            [
                {
                    "session_id": session_id,
                    "instrument": "WAI-SR",
                    "respondent": "client",
                    "items": {},
                    "subscales": {},
                    "total": rng.randint(12, 60),
                }
                for session_id in session_ids
            ],
        )
    workspace.close()


def write_import_file(path: Path, size: int, seed: int = SEED) -> int:
    """The codings table `import codings` reads: 50 rows per transcript, for a coder new to the study."""
    rng = random.Random(seed + 1)
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["transcript", "turn", "coder", "code"])
        for index in range(size):
            for _ in range(IMPORT_ROWS_PER_TRANSCRIPT):
                theme, code = rng.randrange(THEMES) + 1, rng.randrange(CODES_PER_THEME) + 1
                writer.writerow(
                    [f"S{index + 1:05d}", rng.randrange(TURNS) + 1, "cal", f"theme {theme} > code {theme}.{code}"]
                )
                rows += 1
    return rows


class Study:
    """A built study (file or database) of one size, with its import table."""

    def __init__(self, size: int, cache: Path, pg: str | None):
        self.size, self.pg = size, pg
        tag = f"v{DATA_VERSION}-{size}"
        self.import_file = cache / f"codings-{tag}.csv"
        if pg:
            self.name = f"concord_growth_{DATA_VERSION}_{size}"
            self.target = _pg_url(pg, self.name)
            exists = _pg_exists(pg, self.name)
        else:
            self.target = str(cache / f"study-{tag}.concord")
            exists = Path(self.target).exists()
        if not exists:
            started = time.perf_counter()
            partial = Path(self.target + ".partial") if not pg else None
            # Built in a child process: on Linux a child's peak memory starts at its parent's at the fork, so
            # a parent grown by a build would inflate every command's peak measured after it.
            target = str(partial) if partial is not None else self.target
            if partial is not None:
                partial.unlink(missing_ok=True)
            try:
                subprocess.run([sys.executable, __file__, "--build", target, str(size)], check=True)
            except BaseException:
                if pg:
                    _pg_admin(pg, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                raise
            if partial is not None:
                partial.rename(self.target)
            print(f"built {size} transcripts in {time.perf_counter() - started:.1f} s: {self.target}", flush=True)
        if not self.import_file.exists():
            write_import_file(self.import_file, size)
        # A study cached by an older Concord is migrated (with a backup) on first open: not in the timings.
        subprocess.run([concord_exe(), "status", self.target, "--as", "sue"], check=True, capture_output=True)

    def scratch_copy(self, folder: Path) -> str:
        """A fresh copy for a command that writes (import codings); not timed."""
        if self.pg:
            name = f"{self.name}_scratch"
            _pg_admin(self.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg_admin(self.pg, f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
            return _pg_url(self.pg, name)
        target = folder / f"scratch-{self.size}.concord"
        for suffix in ("", "-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.target, target)
        return str(target)

    def drop_scratch(self) -> None:
        if self.pg:
            _pg_admin(self.pg, f'DROP DATABASE IF EXISTS "{self.name}_scratch" WITH (FORCE)')


# -- timing -------------------------------------------------------------------------------------------


def concord_exe() -> str:
    found = Path(sys.executable).with_name("concord")
    return str(found) if found.exists() else shutil.which("concord") or "concord"


def run_timed(argv: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system) and peak resident memory (MiB) of one child process, and its
    stdout."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.communicate()
    elapsed = time.perf_counter() - started
    # Peak memory per child: RUSAGE_CHILDREN only keeps the maximum over all children, so the child is reaped
    # with wait4 (see _popen_with_rusage), which reports its own.
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({child.returncode}): {err.strip()[-2000:]}")
    return elapsed, child_cpu.pop(child.pid, float("nan")), child_peak_mib.pop(child.pid, float("nan")), out


child_peak_mib: dict[int, float] = {}
child_cpu: dict[int, float] = {}


def _popen_with_rusage():
    """Make Popen reap children with wait4, recording each one's peak resident memory."""
    original = subprocess.Popen._try_wait

    def _try_wait(self, wait_flags):
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return original(self, wait_flags)
        if pid == self.pid:
            child_peak_mib[pid] = usage.ru_maxrss / 1024  # kilobytes on Linux
            child_cpu[pid] = usage.ru_utime + usage.ru_stime
        return pid, status

    subprocess.Popen._try_wait = _try_wait


def commands_for(study: Study, out: Path) -> dict[str, callable]:
    exe, py = concord_exe(), sys.executable
    target = study.target

    def fixed(argv):
        return lambda: run_timed(argv, out)

    def import_codings():
        scratch = study.scratch_copy(out)
        try:
            return run_timed([exe, "import", "codings", scratch, str(study.import_file), "--as", "sue"], out)
        finally:
            study.drop_scratch()

    return {
        "agreement": fixed([exe, "agreement", target, "--as", "sue", "--format", "json"]),
        "status": fixed([exe, "status", target, "--as", "sue"]),
        "overview": fixed([py, str(ROOT / "bench" / "growth_overview.py"), target, "sue"]),
        "frequencies": fixed(
            [exe, "export", "frequencies", target, "--out", str(out / "f.csv"), "--layer", "ann", "--as", "sue"]
        ),
        "excerpts": fixed(
            [exe, "export", "excerpts", target, "--out", str(out / "e.docx"), "--layer", "ann", "--as", "sue"]
        ),
        "qdpx": fixed([exe, "export", "qdpx", target, "--out", str(out / "s.qdpx"), "--as", "sue"]),
        "import codings": import_codings,
    }


def slope(points: list[tuple[float, float]]) -> float | None:
    points = [(x, y) for x, y in points if y > 0]
    if len(points) < 2:
        return None
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def measure(studies: list[Study], names: list[str], repeats: int, out: Path):
    floor_argv = [sys.executable, "-c", "import click"]
    runs = {(s.size, n): [] for s in studies for n in names}
    cpus = {(s.size, n): [] for s in studies for n in names}
    peaks = {(s.size, n): 0.0 for s in studies for n in names}
    overview_inner = {s.size: [] for s in studies}
    floors, floor_cpus = [], []
    for round_number in range(repeats):
        for study in studies:
            commands = commands_for(study, out)
            for name in names:
                floor_wall, floor_cpu, _, _ = run_timed(floor_argv, out)
                floors.append(floor_wall)
                floor_cpus.append(floor_cpu)
                seconds, cpu, peak, stdout = commands[name]()
                runs[(study.size, name)].append(seconds)
                cpus[(study.size, name)].append(cpu)
                peaks[(study.size, name)] = max(peaks[(study.size, name)], peak)
                if name == "overview":
                    overview_inner[study.size].append(tuple(float(v) for v in stdout.split()))
                print(
                    f"round {round_number + 1}/{repeats}  {study.size:>5}  {name:<15} {seconds:7.2f} s  "
                    f"cpu {cpu:6.2f} s  {peak:7.0f} MiB",
                    flush=True,
                )
    return runs, cpus, peaks, overview_inner, statistics.median(floors), statistics.median(floor_cpus)


def _table(sizes, names, values, peaks, floor, *, unit_note: bool, targets: bool) -> list[str]:
    head = "| command | " + " | ".join(f"{size:,}" for size in sizes) + " | exponent (all) | exponent (top two) |"
    if targets:
        head += " target at 2,000 (wall) |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for name in names:
        cells = []
        for size in sizes:
            cell = f"{values[(size, name)]:.2f} s"
            if unit_note and name in ("qdpx", "import codings", "excerpts", "agreement"):
                cell += f" ({peaks[(size, name)]:.0f} MiB)"
            cells.append(cell)
        net = [(size, values[(size, name)] - floor) for size in sizes]
        every, top = slope(net), slope(net[-2:])
        exponents = " | ".join("—" if value is None else f"{value:.2f}" for value in (every, top))
        row = f"| {name} | " + " | ".join(cells) + f" | {exponents} |"
        if targets:
            target = TARGETS.get(name)
            at = values[(max(sizes), name)]
            row += f" {'≤ ' + format(target, '.1f') + ' s: ' + ('met' if at <= target else 'NOT met') if target else '—'} |"
        lines.append(row)
    return lines


def report(studies, names, runs, cpus, peaks, overview_inner, floor, floor_cpu, *, pg, repeats, command) -> str:
    sizes = [s.size for s in studies]
    walls = {key: statistics.median(values) for key, values in runs.items()}
    cpu = {key: statistics.median(values) for key, values in cpus.items()}
    inner = []
    for size in sizes:
        values = overview_inner.get(size) or []
        if values:
            inner.append(
                f"{size:,}: first paint {statistics.median(v[0] for v in values):.2f} s, rows on screen "
                f"{statistics.median(v[1] for v in values):.2f} s (CPU {statistics.median(v[2] for v in values):.2f}"
                f" s and {statistics.median(v[3] for v in values):.2f} s)"
            )
    text = [
        "",
        f"Measured {date.today().isoformat()} on {os.cpu_count()} cores shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end, so wall times run long; the CPU table is the steadier one), "
        f"Python {platform.python_version()}, {'PostgreSQL' if pg else 'SQLite'}. Each cell: the median of "
        f"{repeats} runs of the whole command (subprocess, start-up included), interleaved with the floor and the "
        f'other commands. Floor (`python -c "import click"`): {floor:.2f} s wall, {floor_cpu:.2f} s CPU. '
        "Exponent: least-squares slope of log(median - floor) against log(transcripts), over all sizes and over "
        "the two largest (where start-up weighs least).",
        "",
        "Study: 200 turns per transcript, 2 coders x 30 independent codings per transcript (both marked done), "
        "a 4 x 5 codebook, a blinded group and a WAI-SR total per session; commands run as the supervisor. "
        "agreement: `concord agreement S --as sue --format json`; status: `concord status`; overview: the "
        "workbench opened headless as sue until the overview lists the transcripts (`bench/growth_overview.py`); "
        "frequencies: `export frequencies --layer ann --out f.csv`; excerpts: `export excerpts --layer ann --out "
        "e.docx`; qdpx: `export qdpx --out s.qdpx`; import codings: 50 rows per transcript (100,000 at 2,000) "
        "for a new coder into a fresh copy of the study.",
        "",
        "Wall clock (in brackets: the peak resident memory of the process):",
        "",
        *_table(sizes, names, walls, peaks, floor, unit_note=True, targets=not pg and max(sizes) >= 2000),
        "",
        "CPU time of the process (user + system):",
        "",
        *_table(sizes, names, cpu, peaks, floor_cpu, unit_note=False, targets=False),
        "",
    ]
    if inner:
        text += ["Overview, inside the process (from its first line of Python): " + "; ".join(inner) + ".", ""]
    text.append(f"Command (from the repository root): `{command}`")
    return "\n".join(text)


def main() -> int:
    if sys.argv[1:2] == ["--build"]:  # the child process that builds one study (see Study)
        build_study(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of transcripts")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median counts")
    parser.add_argument("--commands", default=",".join(COMMANDS), help=f"a subset of: {', '.join(COMMANDS)}")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "concord-growth"), help="built studies")
    parser.add_argument("--pg", metavar="URL", help="run the 1,000 size on this PostgreSQL server instead")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = parser.parse_args()
    names = [name.strip() for name in args.commands.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMMANDS]
    if unknown:
        parser.error(f"unknown command(s): {', '.join(unknown)}")
    sizes = [1000] if args.pg else [int(size) for size in args.sizes.split(",")]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    _popen_with_rusage()
    studies = [Study(size, cache, args.pg) for size in sizes]
    with tempfile.TemporaryDirectory(prefix="concord-growth-out-") as folder:
        runs, cpus, peaks, inner, floor, floor_cpu = measure(studies, names, args.repeats, Path(folder))
    given = " ".join(arg for arg in sys.argv[1:] if arg != "--no-write")
    if args.pg:
        given = given.replace(args.pg, "URL")
    command = f"/work/main/.venv/bin/python bench/bench_growth.py {given}".rstrip()
    text = report(
        studies,
        names,
        runs,
        cpus,
        peaks,
        inner,
        floor,
        floor_cpu,
        pg=bool(args.pg),
        repeats=args.repeats,
        command=command,
    )
    print(text)
    if not args.no_write:
        write_section(PG_HEADING if args.pg else HEADING, (PG_HEADING if args.pg else HEADING) + "\n" + text)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
