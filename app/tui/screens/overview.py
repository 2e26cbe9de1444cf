"""The study overview: the transcripts with the coder's progress, filterable and sortable.

What a row shows comes from services.transcripts.list_transcripts, which already
applies the blind: a coder in a blind study gets neutral keys and their own
progress only, so the columns for dyads, phases and other coders stay empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from concord.app.tui.messages import OpenTranscript
from concord.app.tui.widgets.vim import VimDataTable
from concord.services import rights
from concord.services import transcripts as transcript_service
from concord.services.dto import ProgressInfo, StudySettings, TranscriptSummary

if TYPE_CHECKING:
    from concord.app.tui.app import ConcordApp


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    cell: Callable[[TranscriptSummary], str]
    sort_key: Callable[[TranscriptSummary], Any]
    open_only: bool = False


def _own(summary: TranscriptSummary) -> ProgressInfo:
    return summary.progress or ProgressInfo(coder="", turns_reviewed=0, codings=0, done=False)


def _progress_text(progress: ProgressInfo, turns: int) -> str:
    return f"{progress.coder} {progress.turns_reviewed}/{turns}{' ✓' if progress.done else ''}"


def _kind(summary: TranscriptSummary) -> str:
    return f"{summary.kind} ({summary.perspective})" if summary.perspective else summary.kind


# A transcript's way from independent coding to a finished consensus (services.consensus moves it).
PHASES = ("independent", "in_consensus", "consensus_done")


def _phase(phase: str) -> str:
    return phase.replace("_", " ")


COLUMNS = (
    Column("key", "Transcript", lambda s: s.key, lambda s: s.key.casefold()),
    Column("kind", "Kind", _kind, _kind),
    # Early, so a supervisor sees where each transcript stands even on a narrow terminal.
    Column(
        "phase",
        "Phase",
        lambda s: _phase(s.phase),
        lambda s: PHASES.index(s.phase) if s.phase in PHASES else -1,
        open_only=True,
    ),
    Column("dyad", "Dyad", lambda s: s.dyad or "", lambda s: s.dyad or "", open_only=True),
    Column(
        "session",
        "Session",
        lambda s: "" if s.session_number is None else str(s.session_number),
        lambda s: s.session_number if s.session_number is not None else -1,
        open_only=True,
    ),
    Column("turns", "Turns", lambda s: str(s.turns), lambda s: s.turns),
    Column(
        "reviewed",
        "Reviewed",
        lambda s: f"{_own(s).turns_reviewed}/{s.turns}",
        lambda s: _own(s).turns_reviewed / s.turns if s.turns else 0,
    ),
    Column("codings", "Codings", lambda s: str(_own(s).codings), lambda s: _own(s).codings),
    Column("done", "Done", lambda s: "✓" if _own(s).done else "", lambda s: _own(s).done),
    Column(
        "coders",
        "Coders",
        lambda s: ", ".join(_progress_text(p, s.turns) for p in s.others),
        lambda s: sum(p.done for p in s.others),
        open_only=True,
    ),
    Column(
        "attributes",
        "Attributes",
        lambda s: ", ".join(f"{a.name}={a.value or ''}" for a in s.attributes),
        lambda s: tuple((a.name, a.value or "") for a in s.attributes),
        open_only=True,
    ),
)


# Rows put in the table at a time: a study of thousands of transcripts paints as fast as one of a few
# hundred, and the next rows come as the cursor nears the end (G, end and filtering reach every row).
PAGE = 200


class OverviewTable(VimDataTable):
    """The transcript list: going to the last row first puts every remaining row in the table."""

    def action_scroll_bottom(self) -> None:
        screen = self.screen
        if isinstance(screen, OverviewScreen):
            screen.show_rows(len(screen.rows))
        super().action_scroll_bottom()


@dataclass(frozen=True)
class OverviewData:
    transcripts: list[TranscriptSummary]
    settings: StudySettings
    blind: bool


def load_overview(app: ConcordApp) -> OverviewData:
    settings = app.workspace.settings()
    return OverviewData(
        transcript_service.list_transcripts(app.workspace), settings, app.workspace.blind_for_actor(settings)
    )


class OverviewScreen(Screen[None]):
    """Enter opens the highlighted transcript; j/k move and g/G go to the ends (as in every list); / filters;
    s and r sort; F searches every transcript; c, A, R and T lead to consensus, agreement, results and theme
    development for those who may see them."""

    app: ConcordApp
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="overview.filter"),
        Binding("s", "sort_next", "Sort", id="overview.sort"),
        Binding("r", "reverse", "Reverse", id="overview.reverse"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="overview.clear-filter"),
        Binding("c", "consensus", "Consensus", id="overview.consensus"),
        Binding("A", "agreement", "Agreement", id="overview.agreement"),
        Binding("R", "results", "Results", id="overview.results"),
        Binding("T", "themes", "Themes", id="overview.themes"),
        Binding("F", "search", "Search all", id="overview.search"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: OverviewData | None = None
        self.columns: tuple[Column, ...] = ()
        self.sort_column = "key"
        self.sort_reverse = False
        self._loader: Worker | None = None
        # The transcripts in filter and sort order, and how many of them are in the table so far.
        self.rows: list[TranscriptSummary] = []
        self.shown = 0

    def compose(self) -> ComposeResult:
        yield Static(id="title-bar")
        yield Input(placeholder="Filter transcripts (press / to filter, esc to clear)", id="filter")
        yield OverviewTable(id="transcripts", cursor_type="row", zebra_stripes=True)
        yield Static(id="overview-status", classes="status-line")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Consensus and theme development are the supervisors'; agreement and results compare coders and
        groups, so they stay hidden while the blind applies to this person. (The services refuse them anyway.)"""
        if action == "consensus":
            return rights.allows(rights.require_consensus_rights, self.app.workspace)
        if action == "themes":
            return rights.allows(rights.require_theme_rights, self.app.workspace)
        if action in ("agreement", "results"):
            return not self.app.blind
        return True

    def action_consensus(self) -> None:
        self.app.open_consensus()

    def action_agreement(self) -> None:
        self.app.open_agreement()

    def action_results(self) -> None:
        self.app.open_results()

    def action_themes(self) -> None:
        self.app.open_themes()

    def action_search(self) -> None:
        self.app.open_search()

    def key_nodes(self):
        return [(self, "Overview"), (self.app, "Everywhere")]

    @property
    def table(self) -> DataTable:
        return self.query_one("#transcripts", DataTable)

    def on_mount(self) -> None:
        self.table.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Fetch the transcripts again (progress changes while coding)."""
        self._loader = self.run_worker(
            partial(load_overview, self.app),
            thread=True,
            exclusive=True,
            group="overview",
            exit_on_error=False,
            name="overview-load",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._loader:
            return
        if event.state == WorkerState.SUCCESS:
            self._show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), title="Could not list the transcripts", severity="error", markup=False)

    def _show(self, data: OverviewData) -> None:
        self.data = data
        if self.app.blind != data.blind:  # unblinded (or blinded again) since the app started
            self.app.blind = data.blind
            self.refresh_bindings()
        self.columns = tuple(column for column in COLUMNS if not (column.open_only and data.blind))
        actor = self.app.actor
        title = Text(data.settings.title, style="bold")
        title.append(f"  ·  {actor.name} ({actor.role})  ·  ")
        if data.blind:
            title.append("blind", style="bold")
        elif data.settings.blind:
            title.append("open (you see through the blind)" if data.settings.blind_now else "unblinded")
        else:
            title.append("open study")
        self.query_one("#title-bar", Static).update(title)
        table = self.table
        if [key.value for key in table.columns] != [column.key for column in self.columns]:
            table.clear(columns=True)
            for column in self.columns:
                table.add_column(column.label, key=column.key)
        self._fill()

    def visible_rows(self) -> list[TranscriptSummary]:
        if self.data is None:
            return []
        needle = self.query_one("#filter", Input).value.strip().casefold()
        rows = [
            summary
            for summary in self.data.transcripts
            if not needle or any(needle in column.cell(summary).casefold() for column in self.columns)
        ]
        column = next((c for c in self.columns if c.key == self.sort_column), self.columns[0])
        return sorted(rows, key=column.sort_key, reverse=self.sort_reverse)

    def _fill(self) -> None:
        """Refill the rows in filter and sort order, keeping the highlighted transcript."""
        table = self.table
        highlighted = None
        if table.row_count and table.cursor_row is not None:
            highlighted = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear()
        self.rows = rows = self.visible_rows()
        self.shown = 0
        place = next((i for i, s in enumerate(rows) if str(s.id) == highlighted), None)
        self.show_rows(max(PAGE, place + 1 if place is not None else 0))
        if place is not None:
            table.move_cursor(row=place)
        self._update_status()

    def show_rows(self, upto: int) -> None:
        """Put the rows up to ``upto`` (in filter and sort order) in the table, after those already there."""
        upto = min(upto, len(self.rows))
        if upto <= self.shown:
            return
        table = self.table
        for summary in self.rows[self.shown : upto]:
            table.add_row(*(Text(column.cell(summary)) for column in self.columns), key=str(summary.id))
        self.shown = upto
        self._update_status()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.shown - PAGE // 4:
            self.show_rows(self.shown + PAGE)

    def _update_status(self) -> None:
        rows = self.rows
        label = next(c.label for c in self.columns if c.key == self.sort_column)
        total = len(self.data.transcripts) if self.data else 0
        status = Text(f"{len(rows)} of {total} transcripts · sorted by {label} {'↓' if self.sort_reverse else '↑'}")
        if self.shown < len(rows):
            status.append(f" · first {self.shown} listed, more as you go down (G or ctrl+end: all)", style="dim")
        if not total:
            status.append(" · no transcripts yet (import some with the concord CLI)", style="dim")
        elif not self.data.blind:
            phases = [s.phase for s in self.data.transcripts]
            counts = [f"{phases.count(p)} {_phase(p)}" for p in PHASES if p in phases]
            status.append(" · " + " · ".join(counts))
        self.query_one("#overview-status", Static).update(status)

    def summary(self, transcript_id: int) -> TranscriptSummary:
        return next(s for s in self.data.transcripts if s.id == transcript_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(OpenTranscript(self.summary(int(event.row_key.value))))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if key == self.sort_column else False
        self.sort_column = key
        self._fill()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.table.focus()

    def action_sort_next(self) -> None:
        keys = [column.key for column in self.columns]
        if keys:
            self.sort_column = (
                keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column in keys else keys[0]
            )
            self.sort_reverse = False
            self._fill()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._fill()
