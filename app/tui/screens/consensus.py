"""Consensus mode: the queue of disagreements, each unit's readings side by side, one key per decision.

Keys: 1..9 take Coder A, B, ... · a all of them · 0 or x none · c another code (picker) · s adjust the span
(start/end, prefilled with the whole turn) · v show or hide the units already settled (to review or revise)
· g the agreement of these transcripts · escape back to the overview.
A decision that matches no coder's reading asks for a rationale first. Every rule (who may decide, what
matches, the consensus layer, the transcript phases) lives in services.consensus; this screen only asks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from concord.app.tui.widgets.vim import VimDataTable, VimOptionList
from concord.services import codes as code_service
from concord.services import consensus as consensus_service
from concord.services.consensus import DecisionRequest, QueueItem
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError


@dataclass(frozen=True)
class ConsensusSetup:
    """How consensus mode opens: the unit to decide, the meeting, and which transcripts."""

    unit: str = "turn"
    overlap: float = 0.5
    present: tuple[str, ...] = ()
    transcripts: tuple[str, ...] = ()


STATUS_LABELS = {"open": "open", "decided": "decided", "agreed": "agreed", "agreed-pending": "agreed (pending)"}


# ------------------------------------------------------------------------------------------ dialogs


class RationaleDialog(ModalScreen[str | None]):
    """Asks why, for a decision that matches no coder; enter to confirm, escape to cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="rationale.cancel")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="consensus-dialog"):
            yield Static(Text(f"{self.what}: this matches no coder's reading. Why?"), classes="dialog-title")
            yield Input(placeholder="rationale (required)", id="rationale-input")
            yield Static("enter: decide · escape: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#rationale-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self.notify("A rationale is required for this decision.", severity="warning", markup=False)
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CodeChoiceDialog(ModalScreen[int | None]):
    """Pick the code to apply: type to filter, up/down, enter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="code-choice.cancel")]

    def __init__(self, codes: list[tuple[int, str]]) -> None:
        super().__init__()
        self.codes = codes

    def compose(self) -> ComposeResult:
        with Vertical(classes="consensus-dialog"):
            yield Static("Apply which code?", classes="dialog-title")
            yield Input(placeholder="filter", id="code-filter")
            yield VimOptionList(id="code-options")
            yield Static("enter: choose · escape: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.fill("")
        self.query_one("#code-filter", Input).focus()

    def fill(self, query: str) -> None:
        options = self.query_one("#code-options", OptionList)
        options.clear_options()
        wanted = query.casefold().strip()
        options.add_options(
            [Option(Text(label), id=str(code_id)) for code_id, label in self.codes if wanted in label.casefold()]
        )
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one("#code-options", OptionList)
        if options.highlighted is not None:
            self.dismiss(int(options.get_option_at_index(options.highlighted).id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id))

    def on_key(self, event) -> None:
        if event.key in ("up", "down"):
            options = self.query_one("#code-options", OptionList)
            if options.option_count:
                step = 1 if event.key == "down" else -1
                current = options.highlighted if options.highlighted is not None else 0
                options.highlighted = max(0, min(options.option_count - 1, current + step))
            event.stop()

    def action_cancel(self) -> None:
        self.dismiss(None)


class SpanDialog(ModalScreen[tuple[str, int, int] | None]):
    """Whose codes, over which span: prefilled with the whole unit (extend to the turn)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="span.cancel")]

    def __init__(self, item: QueueItem, coder: str) -> None:
        super().__init__()
        self.item = item
        self.coder = coder

    def compose(self) -> ComposeResult:
        with Vertical(classes="consensus-dialog"):
            yield Static(
                Text(
                    f"Adjust the span ({self.item.transcript}, {self.item.where}); the whole unit is"
                    f" {self.item.start}-{self.item.end}"
                ),
                classes="dialog-title",
            )
            yield Input(value=self.coder, placeholder="coder (letter, number or name)", id="span-coder")
            yield Input(value=str(self.item.start), placeholder="start", id="span-start")
            yield Input(value=str(self.item.end), placeholder="end", id="span-end")
            yield Static("tab: next field · enter: decide · escape: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#span-end", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        coder = self.query_one("#span-coder", Input).value.strip()
        try:
            start = int(self.query_one("#span-start", Input).value)
            end = int(self.query_one("#span-end", Input).value)
        except ValueError:
            self.notify("Start and end must be whole numbers (character offsets).", severity="error", markup=False)
            return
        self.dismiss((coder, start, end))

    def action_cancel(self) -> None:
        self.dismiss(None)


# ------------------------------------------------------------------------------------------- screen


def readings_table(item: QueueItem) -> Table:
    """Every coder's codes, spans and memos in columns of their own."""
    table = Table(expand=True, show_lines=True)
    for reading in item.readings:
        table.add_column(
            Text(f"{reading.letter} · {reading.label}" if reading.coder else reading.label, style="bold"), ratio=1
        )
    if not item.readings:
        table.add_column("")
        return table
    cells = []
    for reading in item.readings:
        cell = Text()
        if not reading.codings:
            cell.append("(nothing coded here)", style="dim")
        for coding in reading.codings:
            cell.append(coding.code, style="bold")
            cell.append(f"  {coding.start}-{coding.end}\n", style="dim")
            excerpt = coding.text.replace("\n", " ")
            cell.append(f"“{excerpt[:160]}{'…' if len(excerpt) > 160 else ''}”\n")
            if coding.memo:
                cell.append(f"memo: {coding.memo}\n", style="italic")
        for memo in reading.memos:
            cell.append(f"memo: {memo}\n", style="italic")
        cells.append(cell)
    table.add_row(*cells)
    return table


def context_text(item: QueueItem) -> Text:
    text = Text()
    text.append(f"{item.transcript} · {item.where} · {STATUS_LABELS.get(item.status, item.status)}\n", style="bold")
    for turn in item.context:
        style = "reverse" if turn.in_unit else "dim"
        text.append(f"{turn.number:>4} {turn.speaker}: ", style="bold" if turn.in_unit else "dim")
        text.append(turn.text.replace("\n", " ") + "\n", style=style if turn.in_unit else "dim")
    if item.decision is not None:
        decision = item.decision
        result = ", ".join(f"{code} {start}-{end}" for code, start, end in decision.result) or "no code"
        text.append(f"\nDecided: {decision.decision}", style="bold")
        if decision.coder:
            text.append(f" ({decision.coder})")
        text.append(f" → {result}; by {decision.decided_by}")
        if decision.present:
            text.append(f" with {', '.join(decision.present)}")
        if decision.rationale:
            text.append(f"\nRationale: {decision.rationale}")
        if len(item.history) > 1:
            text.append(f"\n{len(item.history) - 1} earlier decision(s) kept in the history", style="dim")
    return text


class ConsensusScreen(Screen[None]):
    """The disagreement queue of a study (or some transcripts), decided one key at a time."""

    BINDINGS = [
        Binding("1", "take(1)", "Take coder 1..9", id="consensus.take-1"),
        *[Binding(str(n), f"take({n})", f"Take coder {n}", show=False, id=f"consensus.take-{n}") for n in range(2, 10)],
        Binding("a", "decide_all", "All", id="consensus.all"),
        Binding("0", "decide_none", "None", id="consensus.none"),
        Binding("x", "decide_none", "None", show=False, id="consensus.none-x"),
        Binding("c", "pick_code", "Other code", id="consensus.code"),
        Binding("s", "adjust_span", "Span", id="consensus.span"),
        Binding("v", "toggle_settled", "Show settled", id="consensus.settled"),
        Binding("A", "agreement", "Agreement", id="consensus.agreement"),
        Binding("escape", "back", "Back", id="consensus.back"),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        unit: str = "turn",
        overlap: float = 0.5,
        present: tuple[str, ...] = (),
        transcripts: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.unit = unit
        self.overlap = overlap
        self.present = tuple(present)
        self.transcripts = tuple(transcripts)
        self.show_settled = False
        self.items: list[QueueItem] = []
        self.keys: list[str] = []

    @classmethod
    def from_setup(cls, workspace: Workspace, setup: ConsensusSetup) -> ConsensusScreen:
        return cls(
            workspace, unit=setup.unit, overlap=setup.overlap, present=setup.present, transcripts=setup.transcripts
        )

    def compose(self) -> ComposeResult:
        actor = self.workspace.actor_label
        present = f" · meeting: {', '.join(self.present)}" if self.present else ""
        yield Static(Text(f"Consensus · deciding: {actor}{present} · {self.unit} units"), id="title-bar")
        with Horizontal(id="consensus-body"):
            yield VimDataTable(id="queue", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="consensus-detail"):
                yield Static("", id="unit-context")
                yield Static("", id="unit-readings")
        yield Static("", id="consensus-status", classes="status-line")
        yield Footer()

    def on_mount(self) -> None:
        try:
            self.keys = consensus_service.coder_keys(self.workspace)
        except ConcordError as exc:
            self.notify(str(exc), severity="error", markup=False)
            self.keys = []
        queue = self.query_one("#queue", DataTable)
        queue.add_columns("Transcript", "Where", "Speaker", "Status", "Readings")
        self.reload()
        queue.focus()

    # -- the queue --------------------------------------------------------------------------------

    def reload(self, keep_index: int | None = None) -> None:
        queue = self.query_one("#queue", DataTable)
        try:
            self.items = consensus_service.consensus_queue(
                self.workspace,
                transcripts=self.transcripts,
                unit=self.unit,
                overlap=self.overlap,
                include_settled=self.show_settled,
            )
        except ConcordError as exc:
            self.items = []
            self.notify(str(exc), severity="error", markup=False)
        queue.clear()
        for index, item in enumerate(self.items):
            readings = "; ".join(f"{r.letter}: {', '.join(r.codes) or '-'}" for r in item.readings)
            queue.add_row(
                Text(item.transcript),
                Text(item.where),
                Text(item.speaker or ""),
                Text(STATUS_LABELS.get(item.status, item.status)),
                Text(readings),
                key=str(index),
            )
        if self.items:
            row = min(keep_index or 0, len(self.items) - 1)
            queue.move_cursor(row=row)
            self.show(row)
        else:
            self.show(None)
        self.update_status()

    def update_status(self) -> None:
        open_count = sum(1 for item in self.items if item.status == "open")
        legend = "  ".join(f"{n} {label}" for n, label in enumerate(self.keys[:9], 1))
        scope = "all units" if self.show_settled else "open disagreements"
        self.query_one("#consensus-status", Static).update(
            Text(f"{open_count} open · showing {scope} · keys: {legend}  a all  0/x none  c code  s span  v settled")
        )

    def current(self) -> QueueItem | None:
        queue = self.query_one("#queue", DataTable)
        row = queue.cursor_row
        if not self.items or row is None or not 0 <= row < len(self.items):
            return None
        return self.items[row]

    def show(self, row: int | None) -> None:
        context = self.query_one("#unit-context", Static)
        readings = self.query_one("#unit-readings", Static)
        if row is None:
            done = (
                "Nothing to decide: every disagreement has a decision." if not self.show_settled else "No coded units."
            )
            context.update(Text(done))
            readings.update("")
            return
        item = self.items[row]
        context.update(context_text(item))
        readings.update(readings_table(item))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row is not None and 0 <= event.cursor_row < len(self.items):
            self.show(event.cursor_row)

    # -- deciding ---------------------------------------------------------------------------------

    def _request(self, item: QueueItem, decision: str, **fields) -> DecisionRequest:
        return DecisionRequest(
            transcript=item.transcript_id,
            decision=decision,
            unit_start=item.start,
            unit_end=item.end,
            where=f"{item.transcript} {item.where}",
            **fields,
        )

    def submit(self, request: DecisionRequest, what: str) -> None:
        """Decide, asking for a rationale first when the decision matches no coder."""
        try:
            if not request.rationale and consensus_service.needs_rationale(
                self.workspace, request, unit=self.unit, overlap=self.overlap
            ):

                def with_rationale(rationale: str | None) -> None:
                    if rationale:
                        self._commit(replace(request, rationale=rationale), what)

                self.app.push_screen(RationaleDialog(what), with_rationale)
                return
        except ConcordError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._commit(request, what)

    def _commit(self, request: DecisionRequest, what: str) -> None:
        index = self.query_one("#queue", DataTable).cursor_row
        try:
            consensus_service.decide(
                self.workspace, request, unit=self.unit, overlap=self.overlap, present=self.present
            )
        except ConcordError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(f"{request.where}: {what}", markup=False)
        # In the open queue the decided unit leaves, so the same row now holds the next one.
        self.reload(keep_index=index)

    def action_take(self, number: int) -> None:
        item = self.current()
        if item is None:
            return
        label = self.keys[number - 1] if number - 1 < len(self.keys) else f"coder {number}"
        self.submit(self._request(item, "take", coder=str(number)), f"took {label}")

    def action_decide_all(self) -> None:
        item = self.current()
        if item is not None:
            self.submit(self._request(item, "all"), "took all codes")

    def action_decide_none(self) -> None:
        item = self.current()
        if item is not None:
            self.submit(self._request(item, "none"), "no code")

    def action_pick_code(self) -> None:
        item = self.current()
        if item is None:
            return
        codes = [(c.id, " › ".join(c.path) if c.path else c.name) for c in code_service.visible_codes(self.workspace)]

        def chosen(code_id: int | None) -> None:
            if code_id is not None:
                name = next(label for cid, label in codes if cid == code_id)
                self.submit(self._request(item, "code", code=code_id), f"applied {name}")

        self.app.push_screen(CodeChoiceDialog(codes), chosen)

    def action_adjust_span(self) -> None:
        item = self.current()
        if item is None:
            return
        coder = next((r.letter for r in item.readings if r.codings), "A")

        def adjusted(answer: tuple[str, int, int] | None) -> None:
            if answer is not None:
                coder_key, start, end = answer
                self.submit(
                    self._request(item, "span", coder=coder_key, start=start, end=end),
                    f"took {coder_key} over {start}-{end}",
                )

        self.app.push_screen(SpanDialog(item, coder), adjusted)

    def action_toggle_settled(self) -> None:
        self.show_settled = not self.show_settled
        self.reload()

    def action_agreement(self) -> None:
        """Agreement over the transcripts this queue covers."""
        self.app.open_agreement(transcripts=self.transcripts)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()
