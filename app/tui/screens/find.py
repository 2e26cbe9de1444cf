"""Find in the transcript, plain or fuzzy, with the hits listed in context (KWIC).

The search itself is plain functions over the text; the modal runs them in a
thread worker so a long transcript never freezes the screen.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from rapidfuzz import fuzz
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from concord.app.tui.widgets.vim import VimOptionList
from concord.services.dto import TurnInfo

HIT_LIMIT = 500
FUZZY_CUTOFF = 75.0
FUZZY_MIN_QUERY = 3
CONTEXT = 32


@dataclass(frozen=True)
class FindHit:
    start: int
    end: int
    turn_number: int | None
    score: float = 100.0


@dataclass(frozen=True)
class FindOutcome:
    query: str
    fuzzy: bool
    hit: FindHit | None


def turn_number_at(turns: Sequence[TurnInfo], offset: int) -> int | None:
    starts = [turn.char_start for turn in turns]
    index = bisect_right(starts, offset) - 1
    return turns[index].number if index >= 0 else None


def find_plain(text: str, turns: Sequence[TurnInfo], query: str, limit: int = HIT_LIMIT) -> list[FindHit]:
    """Every occurrence of the query, ignoring case, in text order."""
    if not query:
        return []
    hits = []
    for match in re.finditer(re.escape(query), text, flags=re.IGNORECASE):
        hits.append(FindHit(match.start(), match.end(), turn_number_at(turns, match.start())))
        if len(hits) >= limit:
            break
    return hits


def _folded(value: str) -> str:
    # Lower-casing may change a string's length (e.g. "İ"); offsets must stay valid.
    lowered = value.lower()
    return lowered if len(lowered) == len(value) else value


def find_fuzzy(
    text: str, turns: Sequence[TurnInfo], query: str, cutoff: float = FUZZY_CUTOFF, limit: int = HIT_LIMIT
) -> list[FindHit]:
    """The best approximate match of the query in each turn that scores at least ``cutoff``,
    best first (text order among equal scores)."""
    query = query.strip()
    if len(query) < FUZZY_MIN_QUERY:
        return []
    segments = [(turn.char_start, turn.char_end, turn.number) for turn in turns] or [(0, len(text), None)]
    needle = _folded(query)
    hits = []
    for start, end, number in segments:
        if end <= start:
            continue
        found = fuzz.partial_ratio_alignment(needle, _folded(text[start:end]), score_cutoff=cutoff)
        if found is not None and found.dest_end > found.dest_start:
            hits.append(FindHit(start + found.dest_start, start + found.dest_end, number, found.score))
    hits.sort(key=lambda hit: (-hit.score, hit.start))
    return hits[:limit]


def kwic(text: str, hit: FindHit, width: int = CONTEXT) -> Text:
    """The hit in the middle of its left and right context, on one line."""

    def flat(value: str) -> str:
        return " ".join(value.split("\n"))

    left = flat(text[max(0, hit.start - width) : hit.start])
    right = flat(text[hit.end : hit.end + width])
    line = Text()
    line.append(f"T{hit.turn_number:<4} " if hit.turn_number is not None else "      ", style="dim")
    # Pad the left context so the hits line up in one column.
    line.append((("…" if hit.start > width else "") + left).rjust(width + 1))
    line.append(flat(text[hit.start : hit.end]), style="reverse bold")
    line.append(right + ("…" if hit.end + width < len(text) else ""))
    return line


class FindScreen(ModalScreen[FindOutcome | None]):
    """Type a word or phrase; the hits appear in context; enter jumps to the highlighted one."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="find.cancel"),
        Binding("ctrl+f", "toggle_fuzzy", "Plain/fuzzy", id="find.fuzzy"),
        Binding("down", "move(1)", "Next hit", show=False, id="find.next"),
        Binding("up", "move(-1)", "Previous hit", show=False, id="find.previous"),
    ]

    def __init__(
        self, text: str, turns: Sequence[TurnInfo], *, query: str = "", fuzzy: bool = False, cursor: int = 0
    ) -> None:
        super().__init__()
        self.text = text
        self.turns = tuple(turns)
        self.initial_query = query
        self.fuzzy = fuzzy
        self.cursor = cursor
        self.hits: list[FindHit] = []
        self._search: Worker | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="find-dialog", classes="dialog"):
            yield Static(id="find-title", classes="dialog-title")
            yield Input(self.initial_query, placeholder="Find in this transcript", id="find-input")
            yield VimOptionList(id="find-hits", markup=False)
            yield Static(
                Text("enter jump · ↑↓ choose · ctrl+f plain/fuzzy · esc close", style="dim"), classes="dialog-hint"
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._start_search()

    def _show_title(self, searching: bool = False) -> None:
        title = Text("Find", style="bold")
        title.append(f"  ({'fuzzy' if self.fuzzy else 'plain'})", style="italic")
        query = self.query_one(Input).value
        if searching:
            title.append("  searching…", style="dim")
        elif query:
            more = "+" if len(self.hits) >= HIT_LIMIT else ""
            title.append(f"  {len(self.hits)}{more} hit{'s' if len(self.hits) != 1 else ''}", style="dim")
        self.query_one("#find-title", Static).update(title)

    def _start_search(self) -> None:
        query = self.query_one(Input).value
        search = find_fuzzy if self.fuzzy else find_plain
        self._show_title(searching=bool(query))
        self._search = self.run_worker(
            partial(search, self.text, self.turns, query),
            thread=True,
            exclusive=True,
            group="find",
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._search:
            return
        if event.state == WorkerState.SUCCESS:
            self._show_hits(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), severity="error", markup=False)

    def _show_hits(self, hits: list[FindHit]) -> None:
        self.hits = hits
        option_list = self.query_one("#find-hits", OptionList)
        option_list.set_options([Option(kwic(self.text, hit)) for hit in hits])
        if hits:
            # Start at the first hit after the cursor, so "find again" moves on through the text.
            after = [index for index, hit in enumerate(hits) if hit.start > self.cursor]
            option_list.highlighted = after[0] if after and not self.fuzzy else 0
        self._show_title()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._start_search()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._jump()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._jump()

    def _jump(self) -> None:
        option_list = self.query_one("#find-hits", OptionList)
        if option_list.highlighted is None or not self.hits:
            self.app.bell()
            return
        self.dismiss(FindOutcome(self.query_one(Input).value, self.fuzzy, self.hits[option_list.highlighted]))

    def action_toggle_fuzzy(self) -> None:
        self.fuzzy = not self.fuzzy
        self._start_search()

    def action_move(self, step: int) -> None:
        option_list = self.query_one("#find-hits", OptionList)
        if option_list.option_count:
            current = option_list.highlighted or 0
            option_list.highlighted = max(0, min(option_list.option_count - 1, current + step))

    def action_cancel(self) -> None:
        self.dismiss(None)
