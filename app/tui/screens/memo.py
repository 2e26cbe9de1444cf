"""A memo editor for the coding at the cursor, the turn, or the whole transcript
(familiarisation notes). The screen that opens it saves what comes back.

What is typed always reaches the text: with the target list focused (after tab), typed characters
go to the text box rather than being dropped. Leaving with unsaved text asks first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import events
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
    # Where a saved memo went, for the message after saving ("turn 12", "the transcript").
    place: str = ""


@dataclass(frozen=True)
class MemoEdit:
    target: MemoTarget
    text: str


class MemoScreen(ModalScreen[list[MemoEdit] | None]):
    """Pick the target (up/down in the list), write, ctrl+s saves every changed memo."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="memo.save"),
        Binding("escape", "cancel", "Cancel (asks if text is unsaved)", id="memo.cancel"),
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
                Text("ctrl+s saves · esc cancels · tab: target list (typing still writes here)", style="dim"),
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

    def on_key(self, event: events.Key) -> None:
        """A character typed while the target list has focus goes into the text, not nowhere."""
        editor = self.editor
        if self.focused is editor or not event.is_printable or event.character is None:
            return
        event.stop()
        event.prevent_default()
        editor.focus()
        editor.insert(event.character)

    def edits(self) -> list[MemoEdit]:
        """The memos whose text differs from what is stored."""
        self.drafts[self.selected] = self.editor.text
        return [
            MemoEdit(target, self.drafts[index].strip())
            for index, target in enumerate(self.targets)
            if self.drafts[index].strip() != target.text.strip()
        ]

    def action_save(self) -> None:
        self.dismiss(self.edits())

    def action_cancel(self) -> None:
        unsaved = self.edits()
        if not unsaved:
            self.dismiss(None)
            return
        from concord.app.tui.screens.themes import Confirm

        places = ", ".join(edit.target.place or edit.target.label for edit in unsaved)
        question = Text(f"Discard the unsaved memo text on {places}?", style="bold")
        question.append("\n(n or esc goes back to the text; ctrl+s there saves it)", style="dim")

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)
            else:
                self.editor.focus()

        self.app.push_screen(Confirm(question), answered)
