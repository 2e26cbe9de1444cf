"""The codebook beside the transcript: the code tree with the coder's counts, the
highlighted code's definition, and the codings under the cursor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.color import Color, ColorParseError
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from concord.app.tui.messages import CodeChosen, CodeHighlighted
from concord.app.tui.widgets.vim import VimTree
from concord.services.dto import CodeInfo, CodingInfo
from concord.services.workbench import truncate_middle


def _swatch(colour: str | None) -> Text:
    if not colour:
        return Text()
    try:
        parsed = Color.parse(colour)
    except ColorParseError:
        return Text()
    return Text("■ ", style=Style(color=parsed.rich_color))


def subtree_counts(codes: Sequence[CodeInfo], direct: Mapping[int, int]) -> dict[int, int]:
    """Each code's count plus the counts of every code below it."""
    parent_of = {code.id: code.parent_id for code in codes}
    totals: Counter[int] = Counter()
    for code_id, count in direct.items():
        seen: set[int] = set()
        current: int | None = code_id
        while current is not None and current in parent_of and current not in seen:
            seen.add(current)
            totals[current] += count
            current = parent_of[current]
    return dict(totals)


def code_label(code: CodeInfo, count: int, *, hotkey_live: bool = True, width: int | None = None) -> Text:
    """A code's line in the tree: colour, its hotkey only when that key applies it now, the name
    (shortened in the middle to fit ``width`` cells), and the coder's count."""
    swatch = _swatch(code.colour)
    key = f"{code.hotkey} " if code.hotkey and hotkey_live else ""
    count_text = f"  {count}" if count else ""
    name = code.name
    if width is not None:
        name = truncate_middle(name, max(4, width - swatch.cell_len - len(key) - len(count_text)))
    label = Text.assemble(swatch, (key, "bold"), name)
    if count_text:
        label.append(count_text, style="dim")
    return label


def book_label(book: str, letter: str, active: bool) -> Text:
    """A codebook's line: the letter its codings carry in the margin, and whether its hotkeys are live."""
    label = Text.assemble((f"{letter} ", "bold reverse" if active else "bold"), (book, "bold"))
    if active:
        label.append(" · keys", style="dim")
    return label


def code_description(code: CodeInfo) -> Text:
    """The texts a coder checks before applying a code; never read as markup."""
    text = Text()
    text.append(" › ".join(code.path) or code.name, style="bold")
    origin = "inductive" + (f", by {code.creator}" if code.creator else "") if code.origin == "inductive" else None
    if code.pole or origin:
        text.append("\n" + " · ".join(part for part in (code.pole, origin) if part), style="italic")
    for heading, body in (
        ("Definition", code.definition),
        ("Include", code.inclusion),
        ("Exclude", code.exclusion),
        ("Example", code.example),
    ):
        if body:
            text.append(f"\n{heading}: ", style="bold")
            text.append(body)
    return text


class CodebookPanel(Vertical):
    """Codes as a tree (enter applies a leaf code), its definition, and what is coded at the cursor."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._code_infos: dict[int, CodeInfo] = {}
        self._code_nodes: dict[int, TreeNode[CodeInfo | None]] = {}
        self._code_counts: dict[int, int] = {}
        self._book_nodes: dict[str, TreeNode[CodeInfo | None]] = {}
        self._at_cursor = Text()
        self.active_book: str | None = None
        self.letters: dict[str, str] = {}
        self._label_width: int | None = None
        # The node the panel itself last moved the highlight to: that highlight is not the coder's.
        self._quiet_node: TreeNode[CodeInfo | None] | None = None

    def compose(self) -> ComposeResult:
        tree: Tree[CodeInfo | None] = VimTree(Text("Codes"), id="code-tree")
        tree.show_root = False
        tree.auto_expand = False
        tree.guide_depth = 2
        yield tree
        with VerticalScroll(id="code-detail-scroll"):
            yield Static(Text("No code highlighted", style="dim"), id="code-detail")
        yield Static(Text(""), id="at-cursor")

    @property
    def tree(self) -> Tree[CodeInfo | None]:
        return self.query_one("#code-tree", Tree)

    @property
    def highlighted_code_id(self) -> int | None:
        node = self.tree.cursor_node
        return node.data.id if node is not None and node.data is not None else None

    def set_codes(
        self,
        codes: Sequence[CodeInfo],
        counts: Mapping[int, int],
        *,
        active_book: str | None = None,
        letters: Mapping[str, str] | None = None,
    ) -> None:
        """Rebuild the tree: one branch per codebook, codes under their parents; only the active
        codebook shows hotkeys, since only its keys fire."""
        tree = self.tree
        tree.clear()
        self.active_book = active_book
        if letters is not None:
            self.letters = dict(letters)
        self._label_width = self._available_width()
        self._code_infos = {code.id: code for code in codes}
        self._code_nodes = {}
        self._book_nodes = {}
        self._code_counts = subtree_counts(codes, counts)
        children: dict[int | None, list[CodeInfo]] = {}
        for code in codes:
            parent = code.parent_id if code.parent_id in self._code_infos else None
            children.setdefault(parent, []).append(code)
        books: dict[str, TreeNode[CodeInfo | None]] = {}
        for code in children.get(None, []):
            if code.codebook not in books:
                books[code.codebook] = self._book_nodes[code.codebook] = tree.root.add(
                    self._book_label(code.codebook), data=None, expand=True
                )
            self._add(books[code.codebook], code, children)
        first = next(iter(self._code_nodes.values()), None)
        if first is not None:
            # Nodes get their line numbers when the tree next lays out its lines.
            self.call_after_refresh(self._move_quietly, first)

    def _add(
        self, parent: TreeNode[CodeInfo | None], code: CodeInfo, children: dict[int | None, list[CodeInfo]]
    ) -> None:
        kids = children.get(code.id, [])
        label = self._label(code, self._code_counts.get(code.id, 0), depth=self._depth(parent) + 1)
        if kids:
            node = self._code_nodes[code.id] = parent.add(label, data=code, expand=True)
            for kid in kids:
                self._add(node, kid, children)
        else:
            self._code_nodes[code.id] = parent.add_leaf(label, data=code)

    def set_counts(self, counts: Mapping[int, int]) -> None:
        """Update the coder's counts in place (the tree keeps its cursor and folds)."""
        totals = subtree_counts(list(self._code_infos.values()), counts)
        for code_id, node in self._code_nodes.items():
            if totals.get(code_id, 0) != self._code_counts.get(code_id, 0):
                node.set_label(self._label(self._code_infos[code_id], totals.get(code_id, 0), depth=self._depth(node)))
        self._code_counts = totals

    def set_active_book(self, book: str | None) -> None:
        """Show the hotkeys of another codebook (the keys that now fire)."""
        self.active_book = book
        self._relabel()

    def _relabel(self) -> None:
        self._label_width = self._available_width()
        for book, node in self._book_nodes.items():
            node.set_label(self._book_label(book))
        for code_id, node in self._code_nodes.items():
            node.set_label(
                self._label(self._code_infos[code_id], self._code_counts.get(code_id, 0), depth=self._depth(node))
            )

    def _book_label(self, book: str) -> Text:
        return book_label(book, self.letters.get(book, book[:1].upper()), book == self.active_book)

    def _label(self, code: CodeInfo, count: int, *, depth: int) -> Text:
        width = None
        if self._label_width:
            # Each level indents by the guide depth; a branch also has its fold arrow.
            indent = self.tree.guide_depth * (depth - 1) + (2 if code.id in self._parents else 0)
            width = self._label_width - indent
        return code_label(code, count, hotkey_live=code.codebook == self.active_book, width=width)

    @property
    def _parents(self) -> set[int]:
        return {code.parent_id for code in self._code_infos.values() if code.parent_id is not None}

    @staticmethod
    def _depth(node: TreeNode) -> int:
        depth = 0
        while node.parent is not None:
            depth += 1
            node = node.parent
        return depth

    def _available_width(self) -> int | None:
        width = self.tree.scrollable_content_region.width
        return width - 1 if width > 0 else None

    def on_resize(self, event: events.Resize) -> None:
        if self._code_infos and self._available_width() != self._label_width:
            self._relabel()

    def full_name(self, code_id: int) -> str:
        code = self._code_infos.get(code_id)
        return " › ".join(code.path) if code and code.path else self._code_name(code_id)

    def count_of(self, code_id: int) -> int:
        return self._code_counts.get(code_id, 0)

    def select_code(self, code_id: int) -> None:
        node = self._code_nodes.get(code_id)
        if node is not None:
            self.call_after_refresh(self._move_quietly, node)

    def _move_quietly(self, node: TreeNode[CodeInfo | None]) -> None:
        if self.tree.cursor_node is not node:
            self._quiet_node = node
        self.tree.move_cursor(node)

    def show_at_cursor(
        self,
        own: Sequence[CodingInfo],
        overlay: Sequence[CodingInfo],
        *,
        place: str = "",
        where: Callable[[CodingInfo], str] | None = None,
    ) -> None:
        """Where the cursor is (turn, word, the speaker as the transcript names them), the coder's
        codings there (where each runs, memo), then the overlay's (whose, which code)."""
        text = Text()
        text.append(place or "At cursor", style="bold")
        if not own and not overlay:
            text.append("\nnothing coded here", style="dim")
        for coding in own:
            text.append("\n")
            text.append(self._code_name(coding.code_id))
            if where is not None:
                text.append(f"  {where(coding)}", style="dim")
            if coding.memo:
                text.append("  ✎ ")
                text.append(coding.memo.splitlines()[0][:60], style="italic")
        for coding in overlay:
            text.append("\n")
            layer = "consensus" if coding.phase == "consensus" else coding.coder
            text.append(f"{layer}: ", style="italic")
            text.append(self._code_name(coding.code_id))
        if text != self._at_cursor:
            # Cursor moves mostly leave this list as it was; skip the layout pass then.
            self._at_cursor = text
            self.query_one("#at-cursor", Static).update(text)

    def _code_name(self, code_id: int) -> str:
        code = self._code_infos.get(code_id)
        return code.name if code else f"code {code_id}"

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        code = event.node.data
        detail = self.query_one("#code-detail", Static)
        if code is None:
            detail.update(Text(f"Codebook {event.node.label.plain}", style="dim"))
        else:
            detail.update(code_description(code))
        # The tree may report other highlights (its first line, as it lays out) before the one the
        # panel asked for: only that one is not the coder's.
        by_user = event.node is not self._quiet_node
        if not by_user:
            self._quiet_node = None
        self.post_message(CodeHighlighted(code.id if code else None, by_user=by_user))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        code = event.node.data
        if code is None or event.node.children:
            event.node.toggle()
            return
        self.post_message(CodeChosen(code.id))
