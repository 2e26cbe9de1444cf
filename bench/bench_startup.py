"""Start-up: `concord --version`, `concord --help` and `concord status` against `python -c "import click"`.

Run from the repository root:  .venv/bin/python bench/bench_startup.py
It builds the demo study in a temporary folder (`concord demo --no-tui`), then runs the floor and
the three commands as subprocesses, interleaved round by round so that the load of a shared
machine falls on all of them alike, and takes the median of each. Targets (issue 11): --version and
--help within 2x of the floor, status within 3x. It also records the ten biggest cumulative imports
(`python -X importtime`) of `import concord.app.cli`, `concord --help` and `concord status`.
Updates its own section of bench/RESULTS.md (``--no-write`` to skip that). Exits 1 if a target is
missed.

Every subprocess gets a fresh bytecode cache (PYTHONPYCACHEPREFIX in a temporary folder, filled by
one uncounted warm-up run of each): an installed Concord has its .pyc files, and without them the
figures would measure the compiler, not the imports (this checkout's environment may set
PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import RESULTS, write_section  # noqa: E402

HEADING = "## Start-up: concord --version, --help and status"
COMMAND = ".venv/bin/python bench/bench_startup.py"
REPEATS = 9
TOP = 10
TARGETS = {"concord --version": 2.0, "concord --help": 2.0, "concord status DEMO": 3.0}


def concord_command() -> list[str]:
    """The installed `concord` script beside this Python (what a user runs), else `python -m concord`."""
    script = Path(sys.executable).with_name("concord")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "concord"]


def child_environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of one run, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {result.returncode}:\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def import_times(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[list[tuple[int, str]], int]:
    """The TOP biggest cumulative import times (microseconds, module) of one run, and how many modules it imported."""
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd, capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:TOP], len(rows)


def command_line(args: argparse.Namespace) -> str:
    """How this run was started, for RESULTS.md (the note is in the section already)."""
    words = COMMAND.split()
    if os.environ.get("PYTHONPATH"):
        words.insert(0, f"PYTHONPATH={os.environ['PYTHONPATH']}")
    if args.repeats != REPEATS:
        words += ["--repeats", str(args.repeats)]
    if args.heading != HEADING:
        words += ["--heading", args.heading]
    return shlex.join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each, interleaved (median counts)")
    parser.add_argument("--heading", default=HEADING, help="the RESULTS.md section to write (e.g. for a before run)")
    parser.add_argument("--note", help="a paragraph for the section: what was measured, if not this checkout")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="concord-startup-"))
    try:
        env = child_environment(folder / "pycache")
        concord = concord_command()
        demo = folder / "demo"
        subprocess.run(
            [*concord, "demo", "--dir", str(demo), "--no-tui"], env=env, cwd=folder, check=True, capture_output=True
        )
        study = str(demo / "demo.concord")
        cases = {
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "concord --version": [*concord, "--version"],
            "concord --help": [*concord, "--help"],
            "concord status DEMO": [*concord, "status", study],
            # Not a target: the least any command that reads a study through the ORM must load.
            'python -c "import click, sqlalchemy.orm"': [sys.executable, "-c", "import click, sqlalchemy.orm"],
        }
        load_before = os.getloadavg()[0]
        for argv in cases.values():  # warm-up: fills the bytecode cache
            run_once(argv, env, folder)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, argv in cases.items():
                runs[name].append(run_once(argv, env, folder))
        load_after = os.getloadavg()[0]
        profiles = {
            "import concord.app.cli": import_times([sys.executable, "-c", "import concord.app.cli"], env, folder),
            "concord --help": import_times(cases["concord --help"], env, folder),
            "concord status DEMO": import_times(cases["concord status DEMO"], env, folder),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    wall = {name: statistics.median(w for w, _ in r) for name, r in runs.items()}
    cpu = {name: statistics.median(c for _, c in r) for name, r in runs.items()}
    floor = 'python -c "import click"'
    lines = [
        args.heading,
        "",
        f"Measured {date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()},"
        f" load average {load_before:.1f} before and {load_after:.1f} after (other work shared the cores: the"
        " CPU column, user + system time of the child, is the steadier one). Each is a subprocess; the floor"
        f" and the commands run interleaved, {args.repeats} rounds after one warm-up round, median of each."
        " Bytecode cached (a fresh PYTHONPYCACHEPREFIX, filled by the warm-up). DEMO = the study"
        " `concord demo --no-tui` builds.",
        "",
        "| command | wall (median) | CPU (median) | ratio wall | ratio CPU | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    failed = []
    for name in cases:
        ratio_wall, ratio_cpu = wall[name] / wall[floor], cpu[name] / cpu[floor]
        target = TARGETS.get(name)
        if target and ratio_wall > target:
            failed.append(f"{name}: {ratio_wall:.2f}x the floor (target <= {target}x)")
        lines.append(
            f"| `{name}` | {wall[name] * 1000:.0f} ms | {cpu[name] * 1000:.0f} ms | {ratio_wall:.2f}x |"
            f" {ratio_cpu:.2f}x | {f'<= {target:g}x' if target else 'floor' if name == floor else '-'} |"
        )
    orm = 'python -c "import click, sqlalchemy.orm"'
    status = "concord status DEMO"
    lines += [
        "",
        f"`{status}` against the second floor, `{orm}` (what reading a study through the ORM cannot"
        f" do without): {wall[status] / wall[orm]:.2f}x wall, {cpu[status] / cpu[orm]:.2f}x CPU.",
    ]
    if wall[orm] / wall[floor] > TARGETS[status]:
        lines[-1] += (
            f" Importing SQLAlchemy's ORM alone takes {wall[orm] / wall[floor]:.1f}x the click floor, above"
            f" the {TARGETS[status]:g}x target: `status` cannot meet it while it reads the study through SQLAlchemy."
        )
    lines += ["", "The ten biggest cumulative imports (`python -X importtime`, one run, ms):", ""]
    for what, (rows, count) in profiles.items():
        listed = ", ".join(f"{module} {micro / 1000:.0f}" for micro, module in rows)
        lines.append(f"- `{what}` ({count} modules imported): {listed}")
    if args.note:
        lines += ["", args.note]
    lines += ["", f"Command (from the repository root): `{command_line(args)}`"]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(args.heading, text)
        print(f"updated {RESULTS}")
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
