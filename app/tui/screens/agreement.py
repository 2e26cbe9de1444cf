"""The agreement screen: one row per code (or group), worst agreement first, and its disagreements.

Everything shown comes from services.agreement, which applies the blind (supervisors and admins only while
a study is blind). Enter on a code opens the units where the coders differ, with the turn text and each
coder's rating side by side.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from concord.services import agreement as agreement_service
from concord.services.agreement import AgreementOptions, AgreementReport, DisagreementUnit, VariableSummary
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError

KAPPA_LABELS = {
    "cohen_kappa": "Cohen κ",
    "fleiss_kappa": "Fleiss κ",
    "weighted_kappa_quadratic": "weighted κ (quadratic)",
}
SUFFIXES = {"group": " (group)", "scale": " (value)"}


def _number(value: float | None) -> Text:
    return Text("-" if value is None or math.isnan(value) else f"{value:.3f}", justify="right")


def worst_first(summaries: tuple[VariableSummary, ...] | list[VariableSummary]) -> list[VariableSummary]:
    """Lowest alpha first (kappa when alpha is undefined); codes with no defined value go last."""

    def key(summary: VariableSummary):
        value = summary.alpha if summary.alpha is not None else summary.kappa
        return (value is None, value if value is not None else 0.0, -summary.disagreements, summary.name)

    return sorted(summaries, key=key)


class AgreementScreen(Screen[None]):
    """Per-code agreement, worst first; enter drills into a code's disagreements."""

    BINDINGS = [
        Binding("enter", "drill", "Disagreements", id="agreement.drill"),
        Binding("r", "reload", "Recompute", id="agreement.reload"),
        Binding("escape", "back", "Back", id="agreement.back"),
    ]

    def __init__(self, workspace: Workspace, options: AgreementOptions | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.options = options or AgreementOptions()
        self.report: AgreementReport | None = None
        self.rows: list[VariableSummary] = []

    def compose(self) -> ComposeResult:
        yield Static("Agreement", id="title-bar")
        yield Static("", id="agreement-headline")
        yield DataTable(id="agreement-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="agreement-notes", classes="status-line")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#agreement-table", DataTable)
        table.add_columns("Code / group", "κ", "Which κ", "α", "% agree", "Units", "Disagreements")
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        table = self.query_one("#agreement-table", DataTable)
        headline = self.query_one("#agreement-headline", Static)
        notes = self.query_one("#agreement-notes", Static)
        table.clear()
        try:
            self.report = agreement_service.compute_agreement(self.workspace, self.options)
        except ConcordError as exc:
            self.report, self.rows = None, []
            headline.update(Text(str(exc)))
            notes.update("")
            return
        self.rows = worst_first(self.report.summaries)
        headline.update(Text(self.report.headline))
        for summary in self.rows:
            name = summary.name + SUFFIXES.get(summary.reading, "")
            if summary.speakers:
                name += f" · {' and '.join(summary.speakers)} turns"
            table.add_row(
                Text(name),
                _number(summary.kappa),
                Text(KAPPA_LABELS[summary.kappa_statistic]),
                _number(summary.alpha),
                _number(summary.percent),
                Text(str(summary.units), justify="right"),
                Text(str(summary.disagreements), justify="right"),
                key=f"{summary.reading}:{summary.name}",
            )
        skipped = sorted({s.note for s in self.rows if s.note})
        said = [f"warning: {w}" for w in self.report.warnings] + skipped
        notes.update(
            Text("; ".join(said) if said else "enter: the units where the coders differ · r: recompute · escape: back")
        )

    def selected(self) -> VariableSummary | None:
        table = self.query_one("#agreement-table", DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_drill()

    def action_drill(self) -> None:
        summary = self.selected()
        if summary is None:
            return
        self.app.push_screen(DisagreementsScreen(self.workspace, self.options, summary))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()


class DisagreementsScreen(Screen[None]):
    """The units of one code or group where the coders differ: text and every coder's rating."""

    BINDINGS = [Binding("escape", "back", "Back", id="disagreements.back")]

    def __init__(self, workspace: Workspace, options: AgreementOptions, summary: VariableSummary) -> None:
        super().__init__()
        self.workspace = workspace
        self.options = options
        self.summary = summary
        self.units: list[DisagreementUnit] = []

    def compose(self) -> ComposeResult:
        what = "group" if self.summary.reading == "group" else "code"
        yield Static(Text(f"Disagreements on {what} {self.summary.name}"), id="title-bar")
        yield DataTable(id="disagreement-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="disagreement-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#disagreement-table", DataTable)
        try:
            self.units = agreement_service.disagreement_units(
                self.workspace, self.options, self.summary.reading, self.summary.name
            )
        except ConcordError as exc:
            self.notify(str(exc), severity="error", markup=False)
            self.units = []
        coders = [r.coder for r in self.units[0].ratings] if self.units else []
        table.add_columns("Transcript", "Where", "Speaker", *coders, "Text")
        for index, unit in enumerate(self.units):
            where = f"turn {unit.turn}" if unit.turn is not None else f"{unit.start}-{unit.end}"
            ratings = [Text(r.category if r.category is not None else "not rated") for r in unit.ratings]
            excerpt = unit.text.replace("\n", " ")
            table.add_row(
                Text(unit.transcript),
                Text(where),
                Text(unit.speaker or ""),
                *ratings,
                Text(excerpt[:60] + ("…" if len(excerpt) > 60 else "")),
                key=str(index),
            )
        self.show_unit(0)
        table.focus()

    def show_unit(self, index: int) -> None:
        panel = self.query_one("#disagreement-text", Static)
        if not self.units:
            panel.update("The coders agree on every unit of this code.")
            return
        unit = self.units[index]
        text = Text()
        text.append(f"{unit.transcript}  {unit.speaker or ''}\n", style="bold")
        text.append(unit.text + "\n\n")
        for rating in unit.ratings:
            text.append(f"{rating.coder}: ", style="bold")
            text.append(rating.category if rating.category is not None else "did not rate this transcript")
            if rating.codes and rating.category not in rating.codes:
                text.append(f"  ({', '.join(rating.codes)})", style="dim")
            text.append("\n")
        panel.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row is not None and 0 <= event.cursor_row < len(self.units):
            self.show_unit(event.cursor_row)

    def action_back(self) -> None:
        self.app.pop_screen()
