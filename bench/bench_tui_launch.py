"""Benchmark: launch to an interactive 20,000-turn transcript, against a bare Textual Log floor.

Run from the repository root:  /work/venv/bin/python bench/bench_tui_launch.py
It prints the timings and updates its own section of bench/RESULTS.md (``--no-write`` to skip that).
Exits 1 if the view's launch takes more than 1.5x the floor's.

Both apps run headless through ``App.run_test`` in the same process, on the same generated text:

- floor: a bare App whose only widget is Textual's ``Log`` (the simplest Line API widget), fed the
  transcript's raw lines (``text.splitlines()``) on mount;
- view: a bare App whose only widget is ``TranscriptView``, loaded on mount with the transcript,
  its codes and 2,000 codings (wrapping, header column, span index and all).

Launch is the time from creating the app to the first ``render_line`` that returns text (the
first paint with content). Scrolling is 100 presses of pagedown, each followed by a pause so the
frame is drawn; its cost is the process CPU time over those presses (wall time there is mostly the
pilot waiting for frames) and the time spent inside ``render_line``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Log

from concord.app.tui.layout import LayoutSource, TranscriptLayout
from concord.app.tui.widgets.transcript_view import GUTTER_WIDTH, TranscriptView
from concord.services.dto import CodeInfo, CodingInfo, TranscriptDetail, TurnInfo

# Run as a script from anywhere: the repository root holds the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, write_section

TURNS = 20_000
CODINGS = 2_000
SEED = 20240611
REPEATS = 9
PAGES = 100
RELAYOUT_WIDTHS = (80, 118, 200)
SIZE = (120, 40)
TARGET_RATIO = 1.5

HEADING = "## TUI: launch to an interactive 20,000-turn transcript"
COMMAND = "/work/venv/bin/python bench/bench_tui_launch.py"

WORDS = [
    "jag",
    "tycker",
    "att",
    "det",
    "är",
    "svårt",
    "när",
    "hon",
    "säger",
    "så",
    "och",
    "sedan",
    "går",
    "jag",
    "hem",
    "och",
    "tänker",
    "på",
    "det",
    "hela",
    "kvällen",
    "um-hm",
    "(sighs)",
    "[laughs]",
    "well",
    "I",
    "do",
    "not",
    "know",
    "what",
    "to",
    "do",
    "about",
    "it",
    "really",
    "maybe",
    "next",
    "week",
    "we",
    "could",
    "try",
    "the",
    "homework",
    "again",
    "/.../",
    "it",
    "never",
    "ends",
]
SPEAKERS = (("T", "therapist"), ("P", "client"))


def make_transcript(rng: random.Random) -> TranscriptDetail:
    """20,000 alternating turns of 3-60 words, a timestamp every turn, every 50th turn replayed video."""
    lines, turns, offset = [], [], 0
    for index in range(TURNS):
        label, role = SPEAKERS[index % 2]
        utterance = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 60)))
        prefix = f"{label}: "
        start = offset + len(prefix)
        nonverbal = tuple(
            (start + at, start + at + len(mark))
            for mark in ("(sighs)", "[laughs]")
            if (at := utterance.find(mark)) >= 0
        )
        turns.append(
            TurnInfo(
                id=index + 1,
                number=index + 1,
                speaker_role=role,
                speaker_label=label,
                start_time=index * 6.5,
                end_time=None,
                char_start=start,
                char_end=start + len(utterance),
                replayed=index % 50 == 0,
                nonverbal=tuple(sorted(nonverbal)),
            )
        )
        lines.append(prefix + utterance)
        offset += len(prefix) + len(utterance) + 1
    return TranscriptDetail(
        id=1,
        key="BENCH",
        kind="session",
        perspective=None,
        language="sv",
        text="\n".join(lines),
        turns=tuple(turns),
        phase="independent",
    )


def make_codes() -> dict[int, CodeInfo]:
    colours = ("green", "red", "blue", "gold", "purple")
    return {
        code_id: CodeInfo(
            id=code_id,
            codebook="bench",
            parent_id=None,
            name=f"Code {code_id}",
            label=None,
            definition=None,
            inclusion=None,
            exclusion=None,
            example=None,
            pole=None,
            high_pole=None,
            hotkey=str(code_id),
            colour=colours[code_id - 1],
            origin="deductive",
            creator=None,
            position=code_id,
            guid=f"g{code_id}",
        )
        for code_id in range(1, 6)
    }


def make_codings(detail: TranscriptDetail, rng: random.Random) -> list[CodingInfo]:
    now = datetime(2024, 6, 11)
    codings = []
    for coding_id in range(1, CODINGS + 1):
        turn = detail.turns[rng.randrange(TURNS)]
        start = rng.randint(turn.char_start, turn.char_end - 1)
        end = rng.randint(start + 1, turn.char_end)
        codings.append(
            CodingInfo(
                id=coding_id,
                transcript_id=1,
                coder="ann",
                code_id=rng.randint(1, 5),
                start=start,
                end=end,
                memo=None,
                phase="independent",
                made_blind=True,
                created_at=now,
                changed_at=now,
            )
        )
    return codings


class PaintClock:
    """When a widget first drew a line with text, and how long its render_line calls took in all."""

    def __init__(self) -> None:
        self.first_paint: float | None = None
        self.first_paint_cpu: float | None = None
        self.render_seconds = 0.0
        self.render_calls = 0

    def timed(self, render: Callable[[int], Strip], y: int) -> Strip:
        started = time.perf_counter()
        strip = render(y)
        finished = time.perf_counter()
        self.render_seconds += finished - started
        self.render_calls += 1
        if self.first_paint is None and strip.text.strip():
            self.first_paint = finished
            self.first_paint_cpu = time.process_time()
        return strip


class FloorLog(Log):
    clock: PaintClock

    def render_line(self, y: int) -> Strip:
        return self.clock.timed(super().render_line, y)


class TimedTranscriptView(TranscriptView):
    clock: PaintClock

    def render_line(self, y: int) -> Strip:
        return self.clock.timed(super().render_line, y)


class FloorApp(App):
    def __init__(self, detail: TranscriptDetail, clock: PaintClock) -> None:
        super().__init__()
        self.detail, self.clock = detail, clock

    def compose(self) -> ComposeResult:
        log = FloorLog(id="floor", auto_scroll=False)
        log.clock = self.clock
        yield log

    def on_mount(self) -> None:
        log = self.query_one(FloorLog)
        log.write_lines(self.detail.text.splitlines())
        log.focus()


class ViewApp(App):
    def __init__(
        self, detail: TranscriptDetail, codes: dict[int, CodeInfo], codings: list[CodingInfo], clock: PaintClock
    ) -> None:
        super().__init__()
        self.detail, self.codes, self.codings, self.clock = detail, codes, codings, clock

    def compose(self) -> ComposeResult:
        view = TimedTranscriptView(id="view")
        view.clock = self.clock
        yield view

    def on_mount(self) -> None:
        view = self.query_one(TimedTranscriptView)
        view.load(self.detail, self.codes, self.codings)
        view.focus()


async def measure(make_app: Callable[[PaintClock], App]) -> tuple[float, float, float, float]:
    """Seconds: launch (wall), launch (process CPU), CPU for PAGES pagedowns, in render_line while scrolling."""
    clock = PaintClock()
    started_cpu = time.process_time()
    started = time.perf_counter()
    app = make_app(clock)
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        while clock.first_paint is None:
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{type(app).__name__} drew nothing within 60 s")
            await pilot.pause()
        launch = clock.first_paint - started
        launch_cpu = clock.first_paint_cpu - started_cpu
        await pilot.pause()
        render_before = clock.render_seconds
        scroll_started = time.process_time()
        for _ in range(PAGES):
            await pilot.press("pagedown")
            await pilot.pause()
        scrolling = time.process_time() - scroll_started
        if app.screen.focused is None or app.screen.focused.scroll_y < PAGES:
            raise RuntimeError(f"{type(app).__name__} did not scroll")
        return launch, launch_cpu, scrolling, clock.render_seconds - render_before


def cpu_timed(function: Callable[[], object]) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rng = random.Random(SEED)
    detail = make_transcript(rng)
    codes = make_codes()
    codings = make_codings(detail, rng)

    # One uncounted run of each first: the first App in a process pays one-off costs (CSS parsing
    # caches, lazily imported modules) that would otherwise land on whichever app ran first.
    asyncio.run(measure(lambda clock: FloorApp(detail, clock)))
    asyncio.run(measure(lambda clock: ViewApp(detail, codes, codings, clock)))
    floor_runs, view_runs = [], []
    for _ in range(args.repeats):  # alternate, so drift in the machine hits both alike
        floor_runs.append(asyncio.run(measure(lambda clock: FloorApp(detail, clock))))
        view_runs.append(asyncio.run(measure(lambda clock: ViewApp(detail, codes, codings, clock))))
    floor_launch = min(run[0] for run in floor_runs)
    view_launch = min(run[0] for run in view_runs)
    floor_cpu = min(run[1] for run in floor_runs)
    view_cpu = min(run[1] for run in view_runs)
    floor_scroll = min(run[2] for run in floor_runs)
    view_scroll = min(run[2] for run in view_runs)
    floor_render = min(run[3] for run in floor_runs)
    view_render = min(run[3] for run in view_runs)
    source = LayoutSource(detail.text, detail.turns)
    relayout = {}
    for width in RELAYOUT_WIDTHS:
        relayout[width] = min(
            cpu_timed(lambda w=width: TranscriptLayout(source, w, GUTTER_WIDTH)) for _ in range(args.repeats)
        )
    lines_at = {width: TranscriptLayout(source, width, GUTTER_WIDTH).line_count for width in RELAYOUT_WIDTHS}
    ratio = view_launch / floor_launch
    cpu_ratio = view_cpu / floor_cpu
    scroll_ratio = view_scroll / floor_scroll

    print(f"launch  floor (Log)        best of {args.repeats}: {floor_launch * 1000:8.1f} ms")
    print(f"launch  TranscriptView     best of {args.repeats}: {view_launch * 1000:8.1f} ms  ratio {ratio:.2f}x")
    print(f"launch CPU floor {floor_cpu * 1000:.1f} ms, view {view_cpu * 1000:.1f} ms, ratio {cpu_ratio:.2f}x")
    print(
        f"scroll  {PAGES} x pagedown floor: {floor_scroll * 1000:8.1f} ms CPU"
        f" (render_line {floor_render * 1000:.1f} ms)"
    )
    print(
        f"scroll  {PAGES} x pagedown view:  {view_scroll * 1000:8.1f} ms CPU"
        f" (render_line {view_render * 1000:.1f} ms)  ratio {scroll_ratio:.2f}x"
    )
    for width, seconds in relayout.items():
        print(f"re-wrap at width {width}: {seconds * 1000:6.1f} ms CPU ({lines_at[width]:,} lines)")

    words = len(detail.text.split())
    section = "\n".join(
        [
            HEADING,
            "",
            f"Measured {date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()},"
            f" Textual {version('textual')}, headless `App.run_test(size={SIZE})`, both apps in one process;"
            f" load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} during the run (other work shared the"
            " machine: wall times swing with it, CPU times are the steadier figures).",
            f"Data: seeded random (seed {SEED}), {TURNS:,} turns, {len(detail.text):,} characters (~{words:,} words),"
            f" a timestamp on every turn, every 50th turn replayed video; the view also gets 5 codes and"
            f" {CODINGS:,} codings. Best of {args.repeats} runs each, alternating, after one uncounted warm-up run"
            " of each.",
            "",
            "Launch = from creating the App to the first `render_line` that returns text. Floor = a bare App"
            " with Textual's `Log` fed `text.splitlines()` on mount (no wrapping, headers or codes).",
            "",
            "| app | launch, wall (best) | launch, CPU (best) | 100 x pagedown, CPU (best) | of which in render_line |",
            "|---|---|---|---|---|",
            f"| floor: `Log` with the raw lines | {floor_launch * 1000:.1f} ms | {floor_cpu * 1000:.1f} ms |"
            f" {floor_scroll * 1000:.1f} ms | {floor_render * 1000:.1f} ms |",
            f"| `TranscriptView.load` (wrap, header column, span index) | {view_launch * 1000:.1f} ms |"
            f" {view_cpu * 1000:.1f} ms | {view_scroll * 1000:.1f} ms | {view_render * 1000:.1f} ms |",
            "",
            f"Launch ratio (view / floor): **{ratio:.2f}x** wall, {cpu_ratio:.2f}x CPU (target <= {TARGET_RATIO}x)."
            f" Scroll ratio: {scroll_ratio:.2f}x (the view also moves its cursor and posts `CursorMoved`).",
            "",
            "Re-wrapping all 20,000 turns at a new width (`TranscriptLayout`, CPU, best of"
            f" {args.repeats}): "
            + ", ".join(f"width {w}: {s * 1000:.1f} ms ({lines_at[w]:,} lines)" for w, s in relayout.items())
            + ".",
            "",
            f"Command (from the repository root): `{COMMAND}`",
        ]
    )
    if not args.no_write:
        write_section(HEADING, section)
        print(f"updated {RESULTS}")
    if ratio > TARGET_RATIO:
        print(f"FAIL: launch takes {ratio:.2f}x the floor (target <= {TARGET_RATIO}x)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
