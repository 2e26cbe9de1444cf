"""More like this: the turns across the study most like a coding, a selection or a turn, in context.

The list comes from services.assistant.similar (cosine over word and character n-grams, run in a thread
worker so the screen never waits). Enter jumps to a passage; ``a`` codes it, with one key, with the code
of the coding the list was made from (marked as coded from "more like this").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from concord.app.tui.widgets.vim import VimOptionList
from concord.services import assistant
from concord.services.assistant import SimilarPassage
from concord.services.workbench import role_name
from concord.storage.errors import ConcordError

if TYPE_CHECKING:
    from concord.app.tui.app import ConcordApp


@dataclass(frozen=True)
class SimilarSource:
    """What the list is made from: its text, where it is (left out of the list), and the code to apply."""

    text: str
    label: str
    transcript_id: int
    start: int
    end: int
    code_id: int | None = None
    code_name: str | None = None


@dataclass(frozen=True)
class SimilarOutcome:
    # The passage to jump to (None: just closed); the transcripts coded from the list, to reload.
    passage: SimilarPassage | None
    coded: tuple[int, ...] = ()


def passage_line(passage: SimilarPassage, coded: bool = False) -> Text:
    line = Text(f"{passage.transcript[:12]:<12} ", style="bold")
    line.append(f"t{passage.turn:<4} {role_name(passage.speaker_role)[:9]:<9} ", style="italic")
    line.append(f"{passage.score:.2f}  ", style="dim")
    line.append(passage.left)
    line.append(passage.keyword, style="bold reverse" if passage.keyword else "")
    line.append(passage.right)
    if coded:
        line.append("  ✓ coded", style="bold")
    return line


class SimilarScreen(ModalScreen[SimilarOutcome]):
    """The most similar passages; enter jumps, a codes, escape goes back."""

    app: ConcordApp
    DEFAULT_CSS = """
    SimilarScreen { align: center middle; }
    SimilarScreen > Vertical {
        width: 90%; height: 80%; border: round $primary; background: $surface; padding: 0 1;
    }
    SimilarScreen #similar-list { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "open", "Jump to the passage", id="similar.open", show=False),
        Binding("a", "code", "Code the passage (one key)", id="similar.code"),
        Binding("escape,q", "back", "Back", id="similar.back"),
    ]

    def __init__(self, source: SimilarSource) -> None:
        super().__init__()
        self.source = source
        self.passages: list[SimilarPassage] = []
        self.coded: set[int] = set()
        self.coded_transcripts: set[int] = set()
        self._worker: Worker | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            title = Text("More like ", style="bold")
            title.append(self.source.label, style="bold italic")
            yield Static(title, id="similar-title")
            yield VimOptionList(id="similar-list", markup=False)
            yield Static(Text("Looking…", style="dim"), id="similar-status", classes="status-line")

    @property
    def options(self) -> OptionList:
        return self.query_one("#similar-list", OptionList)

    def key_nodes(self):
        return [(self, "More like this"), (self.app, "Everywhere")]

    def on_mount(self) -> None:
        self.options.focus()
        source = self.source
        self._worker = self.run_worker(
            partial(
                assistant.similar,
                self.app.workspace,
                source.text,
                exclude=[(source.transcript_id, source.start, source.end)],
            ),
            thread=True,
            exclusive=True,
            group="similar",
            exit_on_error=False,
            name="similar",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker:
            return
        if event.state == WorkerState.SUCCESS:
            self.passages = list(event.worker.result or [])
            self.options.set_options([Option(passage_line(p)) for p in self.passages])
            if self.passages:
                self.options.highlighted = 0
            self._status()
        elif event.state == WorkerState.ERROR:
            self._say(f"Could not compare: {event.worker.error}", "bold red")

    def _status(self) -> None:
        if not self.passages:
            self._say("Nothing alike found · esc back")
            return
        code = f"a codes “{self.source.code_name}”" if self.source.code_name else "a: start from a coding to code"
        self._say(f"{len(self.passages)} passages · enter jumps · {code} · esc back")

    def _say(self, message: str, style: str = "dim") -> None:
        self.query_one("#similar-status", Static).update(Text(message, style=style))

    def _highlighted(self) -> SimilarPassage | None:
        index = self.options.highlighted
        if index is None or not self.passages:
            return None
        return self.passages[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        passage = self._highlighted()
        if passage is None:
            self.app.bell()
            return
        self.dismiss(SimilarOutcome(passage, tuple(self.coded_transcripts)))

    def action_code(self) -> None:
        passage = self._highlighted()
        if passage is None:
            self.app.bell()
            return
        if self.source.code_id is None:
            self._say("Start from one of your codings (cursor on it, then s) to code with one key", "bold red")
            return
        if passage.turn_id in self.coded:
            self._say(f"{passage.transcript} turn {passage.turn} is coded already")
            return
        try:
            assistant.code_similar(self.app.workspace, passage, self.source.code_id)
        except ConcordError as exc:
            self._say(f"Not coded: {exc}", "bold red")
            return
        self.coded.add(passage.turn_id)
        self.coded_transcripts.add(passage.transcript_id)
        index = self.passages.index(passage)
        self.options.replace_option_prompt_at_index(index, passage_line(passage, coded=True))
        self._say(f"Coded “{self.source.code_name}” on {passage.transcript} turn {passage.turn} ✓", "bold")

    def action_back(self) -> None:
        self.dismiss(SimilarOutcome(None, tuple(self.coded_transcripts)))
