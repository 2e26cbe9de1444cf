"""Open the workbench headless as a person and quit once the overview lists the transcripts.

Run by bench/bench_growth.py as a whole command (start-up included), the way `concord code STUDY --as NAME`
opens: ``python bench/growth_overview.py STUDY NAME``. Prints two times in seconds from the start of the
process's Python code: the first paint of the overview screen (before the study's rows arrive) and the rows
on screen, then the process's CPU time at those two moments. Exits 1 if the rows never arrive within the time limit.
"""

from __future__ import annotations

import asyncio
import sys
import time

STARTED = time.perf_counter()
LIMIT = 300.0


async def main(study: str, actor: str) -> int:
    from textual.widgets import DataTable

    from concord.app.tui.app import make_app

    app = make_app(study, actor)
    painted = listed = None
    async with app.run_test(size=(120, 40)) as pilot:
        while time.perf_counter() - STARTED < LIMIT:
            screen = app.screen
            if painted is None and screen.is_mounted:
                painted = time.perf_counter() - STARTED
                painted_cpu = time.process_time()
            tables = list(screen.query(DataTable))
            if tables and tables[0].row_count:
                await pilot.pause()
                listed = time.perf_counter() - STARTED
                listed_cpu = time.process_time()
                break
            await asyncio.sleep(0.005)
    if listed is None:
        print("the overview listed no transcripts", file=sys.stderr)
        return 1
    print(f"{painted:.4f} {listed:.4f} {painted_cpu:.4f} {listed_cpu:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
