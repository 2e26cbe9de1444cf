"""What every benchmark shares: timing the best of several runs, and writing its own section of RESULTS.md."""

from __future__ import annotations

import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def best_of(repeats: int, function, clock=time.perf_counter) -> tuple[float, object]:
    """The fastest of `repeats` runs (seconds by `clock`), and the last run's result."""
    times, value = [], None
    for _ in range(repeats):
        started = clock()
        value = function()
        times.append(clock() - started)
    return min(times), value


def write_section(heading: str, text: str, results: Path = RESULTS) -> None:
    """Replace the section under `heading` in RESULTS.md (or append it), leaving other sections alone."""
    existing = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    lines = existing.splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = text.rstrip("\n").splitlines() + ([""] if end < len(lines) else [])
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += text.rstrip("\n").splitlines()
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
