"""Write docs/screenshot.svg: the coder alex coding a demo transcript, blind, in a 100x30 terminal.

    python scripts/take_screenshot.py [OUT.svg]

The demo study is built into a temporary folder (app/demo/build.py), the workbench runs
headless in Textual's test harness, and the screen is exported as an SVG. Run it again
after changing the workbench, so the README shows what users will see.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = (100, 30)
CODER = "alex"
TRANSCRIPT = "S02"  # alex has coded part of it and left a memo on turn 22
DEFAULT_OUT = ROOT / "docs" / "screenshot.svg"


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def screenshot_svg(study: Path) -> str:
    """The SVG of the coding screen on TRANSCRIPT, with a few words selected in a coded turn."""
    from concord.app.tui.app import make_app
    from concord.app.tui.screens.transcript import TranscriptScreen

    app = make_app(str(study), CODER)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        # "/" filters the overview down to the one transcript; enter goes back to the list, enter opens.
        await pilot.press("slash", *TRANSCRIPT, "enter", "enter")
        await _settle(pilot)
        screen = app.screen
        if not isinstance(screen, TranscriptScreen) or screen.summary.key != TRANSCRIPT or not screen.loaded:
            raise RuntimeError(f"the workbench did not open {TRANSCRIPT} (it shows {type(screen).__name__})")
        # Move to turn 4 (coded "withdrawal" by alex) and select its first words, as a coder would.
        await pilot.press("g", "j", "j", "j", "v", "w", "w", "w")
        await _settle(pilot)
        return app.export_screenshot(title=f"concord code demo.concord --as {CODER}")


def main(argv: list[str]) -> int:
    from concord.app.demo.build import ensure_demo

    out = Path(argv[0]) if argv else DEFAULT_OUT
    with tempfile.TemporaryDirectory() as folder:
        result = ensure_demo(folder)
        svg = asyncio.run(screenshot_svg(result.path))
    out.write_text(svg, encoding="utf-8")
    print(f"Wrote {out} ({len(svg):,} characters, {SIZE[0]}x{SIZE[1]}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
