"""A memo editor for the coding at the cursor, the turn, or the whole transcript
(familiarisation notes). The screen that opens it saves what comes back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import RadioButton, RadioSet, Static, TextArea


@dataclass(frozen=True)
class MemoTarget:
    """Something a memo can be about, with the coder's memo on it so far."""

    kind: str  # "coding", "turn" or "transcript"
    target_id: int
    label: str
    text: str = ""
    memo_id: int | None = None


@dataclass(frozen=True)
class MemoEdit:
    target: MemoTarget
    text: str


class MemoScreen(ModalScreen[list[MemoEdit] | None]):
    """Pick the target (up/down in the list), write, ctrl+s saves every changed memo."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="memo.save"),
        Binding("escape", "cancel", "Cancel", id="memo.cancel"),
    ]

    def __init__(self, targets: Sequence[MemoTarget]) -> None:
        super().__init__()
        if not targets:
            raise ValueError("a memo needs something to be about")
        self.targets = list(targets)
        self.selected = 0
        self.drafts = {index: target.text for index, target in enumerate(self.targets)}

    def compose(self) -> ComposeResult:
        with Vertical(id="memo-dialog", classes="dialog"):
            yield Static(Text("Memo", style="bold"), classes="dialog-title")
            with RadioSet(id="memo-targets"):
                for index, target in enumerate(self.targets):
                    label = Text(target.label)
                    if target.text:
                        label.append("  ✎", style="dim")
                    yield RadioButton(label, value=index == self.selected)
            yield TextArea(self.drafts[self.selected], id="memo-text", soft_wrap=True)
            yield Static(
                Text("ctrl+s save · esc cancel · tab switches between target and text", style="dim"),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.focus()
        editor.move_cursor(editor.document.end)

    @property
    def editor(self) -> TextArea:
        return self.query_one("#memo-text", TextArea)

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self.drafts[self.selected] = self.editor.text
        self.selected = event.index
        self.editor.load_text(self.drafts[self.selected])

    def action_save(self) -> None:
        self.drafts[self.selected] = self.editor.text
        edits = [
            MemoEdit(target, self.drafts[index].strip())
            for index, target in enumerate(self.targets)
            if self.drafts[index].strip() != target.text.strip()
        ]
        self.dismiss(edits)

    def action_cancel(self) -> None:
        self.dismiss(None)
