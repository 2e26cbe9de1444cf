"""The codebook beside the transcript: the code tree with the coder's counts, the
highlighted code's definition, and the codings under the cursor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color, ColorParseError
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from concord.app.tui.messages import CodeChosen, CodeHighlighted
from concord.services.dto import CodeInfo, CodingInfo


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


def code_label(code: CodeInfo, count: int) -> Text:
    label = Text.assemble(_swatch(code.colour), (f"{code.hotkey} " if code.hotkey else "", "bold"), code.name)
    if count:
        label.append(f"  {count}", style="dim")
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
        self._at_cursor = Text()

    def compose(self) -> ComposeResult:
        tree: Tree[CodeInfo | None] = Tree(Text("Codes"), id="code-tree")
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

    def set_codes(self, codes: Sequence[CodeInfo], counts: Mapping[int, int]) -> None:
        """Rebuild the tree: one branch per codebook, codes under their parents."""
        tree = self.tree
        tree.clear()
        self._code_infos = {code.id: code for code in codes}
        self._code_nodes = {}
        self._code_counts = subtree_counts(codes, counts)
        children: dict[int | None, list[CodeInfo]] = {}
        for code in codes:
            parent = code.parent_id if code.parent_id in self._code_infos else None
            children.setdefault(parent, []).append(code)
        books: dict[str, TreeNode[CodeInfo | None]] = {}
        for code in children.get(None, []):
            if code.codebook not in books:
                books[code.codebook] = tree.root.add(Text(code.codebook, style="bold"), data=None, expand=True)
            self._add(books[code.codebook], code, children)
        first = next(iter(self._code_nodes.values()), None)
        if first is not None:
            # Nodes get their line numbers when the tree next lays out its lines.
            self.call_after_refresh(tree.move_cursor, first)

    def _add(
        self, parent: TreeNode[CodeInfo | None], code: CodeInfo, children: dict[int | None, list[CodeInfo]]
    ) -> None:
        kids = children.get(code.id, [])
        label = code_label(code, self._code_counts.get(code.id, 0))
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
                node.set_label(code_label(self._code_infos[code_id], totals.get(code_id, 0)))
        self._code_counts = totals

    def count_of(self, code_id: int) -> int:
        return self._code_counts.get(code_id, 0)

    def select_code(self, code_id: int) -> None:
        node = self._code_nodes.get(code_id)
        if node is not None:
            self.call_after_refresh(self.tree.move_cursor, node)

    def show_at_cursor(self, own: Sequence[CodingInfo], overlay: Sequence[CodingInfo]) -> None:
        """The coder's codings at the cursor (span, memo), then the overlay's (whose, which code)."""
        text = Text()
        text.append("At cursor", style="bold")
        if not own and not overlay:
            text.append("\nnothing coded here", style="dim")
        for coding in own:
            text.append("\n")
            text.append(self._code_name(coding.code_id))
            text.append(f"  {coding.start}–{coding.end}", style="dim")
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
        self.post_message(CodeHighlighted(code.id if code else None))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        code = event.node.data
        if code is None or event.node.children:
            event.node.toggle()
            return
        self.post_message(CodeChosen(code.id))
