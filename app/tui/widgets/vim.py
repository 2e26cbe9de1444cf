"""Lists that answer vim keys: j/k move, g/G go to the first and last entry.

Coders move through the transcript with j/k; every other list in the workbench takes the same
keys so the hands need not leave them. The arrow keys, home and end keep working.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable, OptionList, Tree


class VimDataTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="list.down"),
        Binding("k", "cursor_up", "Up", show=False, id="list.up"),
        Binding("g", "scroll_top", "First row", show=False, id="list.first"),
        Binding("G", "scroll_bottom", "Last row", show=False, id="list.last"),
    ]


class VimOptionList(OptionList):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="list.down"),
        Binding("k", "cursor_up", "Up", show=False, id="list.up"),
        Binding("g", "first", "First entry", show=False, id="list.first"),
        Binding("G", "last", "Last entry", show=False, id="list.last"),
    ]


class VimTree(Tree):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="list.down"),
        Binding("k", "cursor_up", "Up", show=False, id="list.up"),
        Binding("g", "first", "First entry", show=False, id="list.first"),
        Binding("G", "last", "Last entry", show=False, id="list.last"),
    ]

    def action_first(self) -> None:
        self.move_cursor_to_line(0)

    def action_last(self) -> None:
        self.move_cursor_to_line(max(0, self.last_line))
