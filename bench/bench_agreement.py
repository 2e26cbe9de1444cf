"""Benchmark: our nominal Krippendorff's alpha against the ``krippendorff`` package, same process, same data.

Run from the repository root:  /work/venv/bin/python bench/bench_agreement.py
It prints the timings and updates its own section of bench/RESULTS.md (``--no-write`` to skip that).
Exits 1 if the values differ by more than 1e-9 or if ours is slower than the package.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

import krippendorff
import numpy as np

from concord.analysis.agreement_stats import MISSING, STATISTICS, bootstrap_ci, krippendorff_alpha

# Run as a script from anywhere: the repository root holds the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, best_of, write_section

CODERS, UNITS, CATEGORIES = 10, 100_000, 5
MISSING_SHARE, FOLLOWS_TRUTH = 0.10, 0.7
SEED = 20240601
REPEATS = 3

HEADING = "## Agreement: Krippendorff's alpha, 10 coders x 100,000 units"
COMMAND = "/work/venv/bin/python bench/bench_agreement.py"


def make_ratings(rng: np.random.Generator) -> np.ndarray:
    """Each coder copies a unit's true code 70% of the time, otherwise guesses; 10% of ratings missing."""
    truth = rng.integers(0, CATEGORIES, UNITS)
    guesses = rng.integers(0, CATEGORIES, (CODERS, UNITS))
    ratings = np.where(rng.random((CODERS, UNITS)) < FOLLOWS_TRUTH, truth, guesses)
    ratings[rng.random((CODERS, UNITS)) < MISSING_SHARE] = MISSING
    return ratings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = parser.parse_args()

    ratings = make_ratings(np.random.default_rng(SEED))
    with_nan = np.where(ratings == MISSING, np.nan, ratings.astype(np.float64))

    ours_seconds, ours = best_of(REPEATS, lambda: krippendorff_alpha(ratings))
    theirs_seconds, theirs = best_of(
        REPEATS, lambda: krippendorff.alpha(reliability_data=with_nan, level_of_measurement="nominal")
    )
    difference = abs(ours - float(theirs))
    ratio = theirs_seconds / ours_seconds

    small = make_ratings(np.random.default_rng(SEED + 1))[:, :1000]
    bootstrap_seconds = {}
    for statistic in STATISTICS:
        coders = small[:2] if statistic == "cohen_kappa" else small
        complete = coders[:, (coders != MISSING).all(axis=0)] if statistic == "fleiss_kappa" else coders
        bootstrap_seconds[statistic], _ = best_of(
            REPEATS, lambda s=statistic, c=complete: bootstrap_ci(s, c, 1000, n_categories=CATEGORIES)
        )

    print(f"alpha ours     {ours:.12f}  best of {REPEATS}: {ours_seconds * 1000:8.2f} ms")
    print(f"alpha package  {float(theirs):.12f}  best of {REPEATS}: {theirs_seconds * 1000:8.2f} ms")
    print(f"|difference| = {difference:.2e}; package time / our time = {ratio:.2f}x")
    for statistic, seconds in bootstrap_seconds.items():
        print(f"bootstrap_ci {statistic:<18} 1,000 resamples x 1,000 units: {seconds * 1000:7.1f} ms")

    section = "\n".join(
        [
            HEADING,
            "",
            f"Measured {date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()},"
            f" numpy {np.__version__}, krippendorff {version('krippendorff')}.",
            f"Data: seeded random (seed {SEED}), {CODERS} coders x {UNITS:,} units, {CATEGORIES} categories,"
            f" each coder follows the unit's true code {FOLLOWS_TRUTH:.0%} of the time,"
            f" {MISSING_SHARE:.0%} of ratings missing. Best of {REPEATS} runs each, same process.",
            "",
            "| implementation | alpha (nominal) | best time |",
            "|---|---|---|",
            f"| analysis.agreement_stats.krippendorff_alpha | {ours:.12f} | {ours_seconds * 1000:.2f} ms |",
            f"| krippendorff.alpha(level_of_measurement='nominal') | {float(theirs):.12f} |"
            f" {theirs_seconds * 1000:.2f} ms |",
            "",
            f"Ratio (package time / our time): **{ratio:.2f}x**; |difference| = {difference:.1e} (required <= 1e-9).",
            "",
            "bootstrap_ci, 1,000 resamples on 1,000 units (Fleiss: the complete units only), best of 3: "
            + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in bootstrap_seconds.items())
            + ".",
            "",
            f"Command (from the repository root): `{COMMAND}`",
        ]
    )
    if not args.no_write:
        write_section(HEADING, section)
        print(f"updated {RESULTS}")

    if difference > 1e-9:
        print("FAIL: values differ by more than 1e-9", file=sys.stderr)
        return 1
    if ratio < 1.0:
        print("FAIL: ours is slower than the krippendorff package", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
