"""Every action of the screen underneath with its keys and the id to remap it by, grouped by task
with the most used first (coding before moving, moving before the rarer keys)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from concord.app.tui.keymap import KeyRow, help_groups
from concord.app.tui.widgets.vim import VimDataTable


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close help", id="help.close"),
    ]

    def __init__(self, rows: Sequence[KeyRow], keymap_file: Path) -> None:
        super().__init__()
        self.rows = list(rows)
        self.keymap_file = keymap_file

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield VimDataTable(id="help-table", cursor_type="row")
            hint = Text('Remap: "id" = "key" in ', style="dim")
            hint.append(str(self.keymap_file), style="dim italic")
            hint.append(" · esc closes", style="dim")
            yield Static(hint, classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(VimDataTable)
        table.add_columns("Key", "Action", "Id (to remap)")
        for task, rows in help_groups(self.rows):
            table.add_row(Text(task, style="bold reverse"), Text(""), Text(""))
            for row in rows:
                table.add_row(
                    Text(row.keys_text, style="bold"),
                    Text(row.description),
                    Text(row.binding_id or "", style="dim"),
                )
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
