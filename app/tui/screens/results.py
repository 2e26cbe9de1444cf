"""The results screen: theme prevalence by group as horizontal bars, for one layer at a time.

Keys: l the next layer (consensus, then each coder's) · u sessions or transcripts · g the next group
attribute · r recompute · escape back. The counting runs in a thread worker (services.prevalence, which
counts as the frequency export does); while the study is blind only supervisors get here,
and the computation refuses anyone else.
"""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from concord.app.tui.widgets.prevalence_chart import PrevalenceChart, group_labels
from concord.services.prevalence import Prevalence, theme_prevalence
from concord.services.results import CONSENSUS
from concord.services.workspace import Workspace

UNITS = ("session", "transcript")


def _next(choices, current):
    choices = list(choices)
    if not choices:
        return current
    return choices[(choices.index(current) + 1) % len(choices)] if current in choices else choices[0]


def headline(prevalence: Prevalence) -> Text:
    layer = "consensus codings" if prevalence.layer == CONSENSUS else f"{prevalence.layer}'s codings"
    text = Text()
    text.append(layer, style="bold")
    text.append(" · per ", style="dim")
    text.append(prevalence.unit)
    if prevalence.group_attribute is None:
        text.append(" · not grouped", style="dim")
    else:
        text.append(" · ", style="dim")
        text.append(prevalence.group_attribute, style="bold")
        text.append(": " + ", ".join(group_labels(prevalence)))
    # What was counted: the covered units only, or every unit when the uncovered ones were asked for.
    text.append(" · ", style="dim")
    text.append("all units, uncovered as uncoded" if prevalence.include_uncoded else "covered units only")
    return text


class ResultsScreen(Screen[None]):
    """Theme prevalence by group; the layer, unit and grouping change with one key each."""

    BINDINGS = [
        Binding("l", "next_layer", "Layer", id="results.layer"),
        Binding("u", "next_unit", "Sessions / transcripts", id="results.unit"),
        Binding("g", "next_group", "Group by", id="results.group"),
        Binding("r", "reload", "Recompute", id="results.reload"),
        Binding("escape,q", "back", "Back", id="results.back"),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        layer: str = CONSENSUS,
        unit: str | None = None,
        group_attribute: str | None = "group",
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.coding_layer = layer
        self.unit = unit
        self.group_attribute = group_attribute
        self.prevalence: Prevalence | None = None
        self.error: str | None = None
        self._loader: Worker | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Results · theme prevalence by group"), id="title-bar")
        yield Static("", id="results-headline")
        with VerticalScroll(id="results-scroll"):
            yield PrevalenceChart(id="results-chart")
        yield Static("", id="results-status", classes="status-line")
        yield Footer()

    @property
    def chart(self) -> PrevalenceChart:
        return self.query_one("#results-chart", PrevalenceChart)

    def on_mount(self) -> None:
        self.query_one("#results-scroll", VerticalScroll).focus()
        self.action_reload()

    # -- computing ------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.query_one("#results-headline", Static).update(
            Text(f"Counting the {self.coding_layer} layer…", style="dim")
        )
        work = partial(
            theme_prevalence,
            self.workspace,
            layer=self.coding_layer,
            unit=self.unit,
            group_attribute=self.group_attribute,
        )
        self._loader = self.run_worker(
            work,
            thread=True,
            exclusive=True,
            group="results",
            exit_on_error=False,
            name="results-compute",
            description="theme prevalence by group",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._loader:
            return
        if event.state == WorkerState.SUCCESS:
            self._show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.error = str(event.worker.error)
            self.prevalence = None
            self.chart.show(None)
            self.query_one("#results-headline", Static).update(Text(self.error))
            self.query_one("#results-status", Static).update(Text("escape: back"))
            self.notify(self.error, title="No results", severity="error", markup=False)

    def _show(self, prevalence: Prevalence) -> None:
        self.prevalence, self.error = prevalence, None
        self.coding_layer, self.unit = prevalence.layer, prevalence.unit
        self.group_attribute = prevalence.group_attribute
        if prevalence.rows:
            self.query_one("#results-headline", Static).update(headline(prevalence))
            self.chart.show(prevalence)
        else:
            self.query_one("#results-headline", Static).update(Text("No themes: add a codebook to the study."))
            self.chart.show(None)
        notes = " ".join(prevalence.notes)
        hint = "l layer · u sessions/transcripts · g group by · r recompute · esc back"
        self.query_one("#results-status", Static).update(Text(notes or hint))

    # -- choosing -------------------------------------------------------------------------------

    def action_next_layer(self) -> None:
        layers = self.prevalence.layers if self.prevalence else (CONSENSUS,)
        self.coding_layer = _next(layers, self.coding_layer)
        self.action_reload()

    def action_next_unit(self) -> None:
        self.unit = _next(UNITS, self.unit)
        self.action_reload()

    def action_next_group(self) -> None:
        choices = self.prevalence.group_choices if self.prevalence else ()
        if not choices:
            self.notify("No attribute to group by.", markup=False)
            return
        # Each attribute in turn, then no grouping (every unit in one bar).
        self.group_attribute = _next((*choices, None), self.group_attribute)
        self.action_reload()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()
