"""Search every transcript the person may open, plain or fuzzy, with the hits in context.

The transcripts come from services.transcripts (which applies the blind) and are read once, in the
first search's thread worker; each search after that runs the find functions of the transcript
screen's finder over them, in a thread worker too. Enter opens the transcript at the hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from concord.app.tui.screens.find import HIT_LIMIT, FindHit, find_fuzzy, find_plain, kwic
from concord.app.tui.widgets.vim import VimOptionList
from concord.services import transcripts as transcript_service
from concord.services.dto import TranscriptDetail, TranscriptSummary
from concord.services.workspace import Workspace

if TYPE_CHECKING:
    from concord.app.tui.app import ConcordApp

KEY_WIDTH = 12
SPEAKER_WIDTH = 4


@dataclass(frozen=True)
class Searchable:
    summary: TranscriptSummary
    detail: TranscriptDetail


@dataclass(frozen=True)
class SearchHit:
    source: Searchable
    hit: FindHit

    @property
    def speaker(self) -> str:
        turn = next((t for t in self.source.detail.turns if t.number == self.hit.turn_number), None)
        return turn.speaker_label if turn else ""

    def line(self) -> Text:
        """transcript key, speaker, then the turn number and the hit in its context."""
        line = Text(self.source.summary.key[:KEY_WIDTH].ljust(KEY_WIDTH), style="bold")
        line.append(" " + self.speaker[:SPEAKER_WIDTH].ljust(SPEAKER_WIDTH) + " ", style="italic")
        line.append_text(kwic(self.source.detail.text, self.hit))
        return line


@dataclass(frozen=True)
class SearchOutcome:
    corpus: list[Searchable]
    hits: list[SearchHit]
    limited: bool


def load_corpus(workspace: Workspace) -> list[Searchable]:
    """Every transcript this person may open, as the services show it to them."""
    return [
        Searchable(summary, transcript_service.get_transcript(workspace, summary.id))
        for summary in sorted(transcript_service.list_transcripts(workspace), key=lambda s: s.key.casefold())
    ]


def search_corpus(corpus: Sequence[Searchable], query: str, fuzzy: bool, limit: int = HIT_LIMIT) -> SearchOutcome:
    """Plain hits in transcript and text order; fuzzy hits (the best one per turn) best first."""
    find = find_fuzzy if fuzzy else find_plain
    hits: list[SearchHit] = []
    for source in corpus:
        hits.extend(SearchHit(source, hit) for hit in find(source.detail.text, source.detail.turns, query))
    if fuzzy:
        order = {id(source): index for index, source in enumerate(corpus)}
        hits.sort(key=lambda h: (-h.hit.score, order[id(h.source)], h.hit.start))
    return SearchOutcome(list(corpus), hits[:limit], len(hits) > limit)


def run_search(workspace: Workspace, corpus: list[Searchable] | None, query: str, fuzzy: bool) -> SearchOutcome:
    """Read the transcripts if not read yet, then search them (called in a thread worker)."""
    return search_corpus(load_corpus(workspace) if corpus is None else corpus, query, fuzzy)


class SearchScreen(Screen[None]):
    """Type a word or phrase; the hits of every transcript appear in context; enter opens one there."""

    app: ConcordApp
    BINDINGS = [
        Binding("ctrl+f", "toggle_fuzzy", "Plain/fuzzy", id="search.fuzzy"),
        Binding("down", "move(1)", "Next hit", show=False, id="search.next"),
        Binding("up", "move(-1)", "Previous hit", show=False, id="search.previous"),
        Binding("escape", "back", "Back", id="search.back"),
    ]

    def __init__(self, workspace: Workspace, *, query: str = "", fuzzy: bool = False) -> None:
        super().__init__()
        self.workspace = workspace
        self.initial_query = query
        self.fuzzy = fuzzy
        self.corpus: list[Searchable] | None = None
        self.hits: list[SearchHit] = []
        self.limited = False
        self._search: Worker | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title-bar")
        yield Input(
            self.initial_query,
            placeholder="Search every transcript (enter opens the highlighted hit)",
            id="search-input",
        )
        yield VimOptionList(id="search-hits", markup=False)
        yield Static(id="search-status", classes="status-line")
        yield Footer()

    def key_nodes(self):
        return [(self, "Search"), (self.app, "Everywhere")]

    @property
    def options(self) -> OptionList:
        return self.query_one("#search-hits", OptionList)

    @property
    def query_text(self) -> str:
        return self.query_one("#search-input", Input).value

    def on_mount(self) -> None:
        self.query_one("#search-input", Input).focus()
        self._show_title()
        if self.initial_query:
            self._start_search()

    def _show_title(self, searching: bool = False) -> None:
        title = Text("Search all transcripts", style="bold")
        title.append(f"  ({'fuzzy' if self.fuzzy else 'plain'})", style="italic")
        if searching:
            title.append("  searching…", style="dim")
        elif self.query_text:
            sources = len({id(hit.source) for hit in self.hits})
            more = "+" if self.limited else ""
            title.append(
                f"  {len(self.hits)}{more} hit{'s' if len(self.hits) != 1 else ''}"
                f" in {sources} transcript{'s' if sources != 1 else ''}",
                style="dim",
            )
        self.query_one("#title-bar", Static).update(title)

    def _start_search(self) -> None:
        query = self.query_text
        if not query.strip():
            # Nothing to look for: no worker, and any running one is cancelled with its group.
            self.workers.cancel_group(self, "search")
            self._search = None
            self._show(SearchOutcome(self.corpus or [], [], False))
            return
        self._show_title(searching=True)
        self._search = self.run_worker(
            partial(run_search, self.workspace, self.corpus, query, self.fuzzy),
            thread=True,
            exclusive=True,
            group="search",
            exit_on_error=False,
            name="search",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._search:
            return
        if event.state == WorkerState.SUCCESS:
            self._show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.query_one("#search-status", Static).update(
                Text(f"Search failed: {event.worker.error}", style="bold red")
            )
            self.notify(str(event.worker.error), title="Search failed", severity="error", markup=False)

    def _show(self, outcome: SearchOutcome) -> None:
        if outcome.corpus:
            self.corpus = outcome.corpus
        self.hits, self.limited = outcome.hits, outcome.limited
        self.options.set_options([Option(hit.line()) for hit in self.hits])
        if self.hits:
            self.options.highlighted = 0
        self._show_title()
        status = Text("enter open at the hit · ↑↓ choose · ctrl+f plain/fuzzy · esc back", style="dim")
        if self.limited:
            status.append(f" · only the first {HIT_LIMIT} hits are listed", style="yellow")
        self.query_one("#search-status", Static).update(status)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._start_search()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._open()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._open()

    def _open(self) -> None:
        index = self.options.highlighted
        if index is None or not self.hits:
            self.app.bell()
            return
        chosen = self.hits[index]
        self.app.open_transcript(chosen.source.summary, at=(chosen.hit.start, chosen.hit.end))

    def action_toggle_fuzzy(self) -> None:
        self.fuzzy = not self.fuzzy
        self._start_search()

    def action_move(self, step: int) -> None:
        options = self.options
        if options.option_count:
            options.highlighted = max(0, min(options.option_count - 1, (options.highlighted or 0) + step))

    def action_back(self) -> None:
        self.dismiss()
