"""Theme development (supervisors): the study's codebooks as a tree, to rename, redefine, move, gather
under new categories, merge, split, and to go through the merge suggestions one by one.

Every change is a call to services.codebooks, which checks the supervisor's rights and keeps the history
and a codebook version; the tree is then read again from the services, so it always shows what is stored.
The calls take milliseconds and run on the UI thread, in the order the keys were pressed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, OptionList, Static, TextArea, Tree
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode

from concord.app.tui.screens.code_picker import code_prompt, rank_codes
from concord.app.tui.widgets.vim import VimOptionList
from concord.services import codebooks as codebook_service
from concord.services.codebooks import CodeChangeInfo, MergeSuggestion
from concord.services.dto import CodeInfo
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError

if TYPE_CHECKING:
    from concord.app.tui.app import ConcordApp

TOP_LEVEL = "top"


@dataclass(frozen=True)
class BookNode:
    """A codebook's row in the tree (a code's row holds its CodeInfo)."""

    key: str
    title: str


# -- reading what the tree shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class ThemeTree:
    books: list[BookNode]
    codes: dict[str, list[CodeInfo]]  # codebook key -> its live codes, in position order


def load_theme_tree(workspace: Workspace) -> ThemeTree:
    books = [BookNode(info.key, info.title) for info in codebook_service.list_codebooks(workspace) if info.in_study]
    return ThemeTree(books, {book.key: codebook_service.codebook_tree(workspace, book.key) for book in books})


def children_by_parent(codes: Sequence[CodeInfo]) -> dict[int | None, list[CodeInfo]]:
    """The codes under each parent id; a code whose parent is not in the codebook sits at the top (None)."""
    ids = {code.id for code in codes}
    children: dict[int | None, list[CodeInfo]] = {}
    for code in codes:
        children.setdefault(code.parent_id if code.parent_id in ids else None, []).append(code)
    return children


def code_detail(code: CodeInfo, history: Sequence[CodeChangeInfo]) -> Text:
    """A code's definition and rules, then every recorded change, oldest first."""
    text = Text(code.name, style="bold")
    if len(code.path) > 1:
        text.append(f"\n{' › '.join(code.path[:-1])}", style="dim")
    about = f"\n{code.origin} code in {code.codebook}"
    if code.creator:
        about += f", made by {code.creator}"
    if code.hotkey:
        about += f", hotkey {code.hotkey}"
    text.append(about, style="italic")
    for label, value in (
        ("Definition", code.definition),
        ("Include", code.inclusion),
        ("Exclude", code.exclusion),
        ("Example", code.example),
    ):
        if value:
            text.append(f"\n\n{label}: ", style="bold")
            text.append(value)
    if not code.definition:
        text.append("\n\nno definition yet (e edits it)", style="dim")
    text.append("\n\nHistory", style="bold")
    if not history:
        text.append("\nno changes since it was added", style="dim")
    for change in history:
        text.append(f"\n{change.changed_at:%Y-%m-%d %H:%M} {change.changed_by or '?'} ", style="dim")
        text.append(change.field.replace("_", " "), style="italic")
        if change.old_value is not None:
            text.append(f": {change.old_value} → {change.new_value}")
        elif change.new_value is not None:
            text.append(f": {change.new_value}")
    return text


def suggestion_text(suggestion: MergeSuggestion) -> Text:
    """One suggested group: each name with its creator, the first (the one kept) in bold, and the score."""
    text = Text()
    for index, (name, creator) in enumerate(zip(suggestion.names, suggestion.creators)):
        if index:
            text.append("  +  ", style="dim")
        text.append(name, style="bold" if index == 0 else "")
        if creator:
            text.append(f" ({creator})", style="dim")
    text.append(f"  · score {suggestion.score:.2f}", style="dim")
    return text


# -- dialogs -------------------------------------------------------------------------------------------


class TextPrompt(ModalScreen[str | None]):
    """One line of text: enter answers it, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog short-dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static(Text("enter save · esc cancel", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.app.bell()
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class DefinitionEditor(ModalScreen[str | None]):
    """A code's definition in a text area: ctrl+s saves, escape cancels."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="definition.save"),
        Binding("escape", "cancel", "Cancel", id="definition.cancel"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield TextArea(self.text, id="definition-text", soft_wrap=True)
            yield Static(Text("ctrl+s save · esc cancel", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.focus()
        editor.move_cursor(editor.document.end)

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes-or-no question: y (or enter) says yes, n (or escape) no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: Text) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog short-dialog"):
            yield Static(self.question, classes="confirm-question")
            yield Static(Text("y yes · n no", style="dim"), classes="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TargetPicker(ModalScreen[int | str | None]):
    """Choose a code by typing part of its name (ranked as in the code picker); with ``top_level``, the
    first choice is the top of the codebook. Answers a code id, TOP_LEVEL, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="target.cancel"),
        Binding("down", "move(1)", "Next code", show=False, id="target.next"),
        Binding("up", "move(-1)", "Previous code", show=False, id="target.previous"),
    ]

    def __init__(self, title: str, codes: Sequence[CodeInfo], *, top_level: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.codes = list(codes)
        self.top_level = top_level

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Input(placeholder="Type part of a code's name", id="target-input")
            yield VimOptionList(id="target-options", markup=False)
            yield Static(Text("enter choose · ↑↓ move · esc cancel", style="dim"), classes="dialog-hint")

    @property
    def options(self) -> OptionList:
        return self.query_one("#target-options", OptionList)

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._refill("")

    def _refill(self, query: str) -> None:
        options = [Option(code_prompt(code), id=str(code.id)) for code in rank_codes(query, self.codes)]
        if self.top_level and not query.strip():
            options.insert(0, Option(Text("⤒ the top of the codebook", style="italic"), id=TOP_LEVEL))
        self.options.set_options(options)
        if options:
            self.options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._refill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._choose()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose()

    def _choose(self) -> None:
        options = self.options
        if options.highlighted is None or not options.option_count:
            self.app.bell()
            return
        chosen = options.get_option_at_index(options.highlighted).id
        self.dismiss(TOP_LEVEL if chosen == TOP_LEVEL else int(chosen))

    def action_move(self, step: int) -> None:
        options = self.options
        if options.option_count:
            options.highlighted = max(0, min(options.option_count - 1, (options.highlighted or 0) + step))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SuggestionsScreen(ModalScreen[int]):
    """The merge suggestions, one group a row: y merges the group into its first code, n skips it.
    Answers how many groups were merged."""

    BINDINGS = [
        Binding("y", "accept", "Accept: merge into the first", id="suggestions.accept"),
        Binding("n", "reject", "Reject: keep them apart", id="suggestions.reject"),
        Binding("escape,q", "close", "Close", id="suggestions.close"),
    ]

    def __init__(self, workspace: Workspace, suggestions: Sequence[MergeSuggestion]) -> None:
        super().__init__()
        self.workspace = workspace
        self.suggestions = list(suggestions)
        self.merged = 0
        self.rejected = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(id="suggestions-title", classes="dialog-title")
            yield VimOptionList(id="suggestions-list", markup=False)
            yield Static(id="suggestions-status", classes="status-line")
            yield Static(
                Text("y merge into the first (bold) · n keep apart · ↑↓ choose · esc close", style="dim"),
                classes="dialog-hint",
            )

    @property
    def options(self) -> OptionList:
        return self.query_one("#suggestions-list", OptionList)

    def on_mount(self) -> None:
        self._fill()
        self.options.focus()

    def _fill(self, highlighted: int = 0) -> None:
        self.options.set_options([Option(suggestion_text(s)) for s in self.suggestions])
        if self.suggestions:
            self.options.highlighted = min(highlighted, len(self.suggestions) - 1)
        title = Text("Merge suggestions", style="bold")
        title.append(f"  {len(self.suggestions)} left · {self.merged} merged · {self.rejected} kept apart", style="dim")
        self.query_one("#suggestions-title", Static).update(title)

    def _say(self, message: str, style: str = "") -> None:
        self.query_one("#suggestions-status", Static).update(Text(message, style=style))

    def _current(self) -> int | None:
        index = self.options.highlighted
        if index is None or not self.suggestions:
            self.app.bell()
            return None
        return index

    def action_accept(self) -> None:
        index = self._current()
        if index is None:
            return
        suggestion = self.suggestions[index]
        kept, *others = suggestion.code_ids
        try:
            for other in others:
                codebook_service.merge_codes(self.workspace, other, kept)
        except ConcordError as exc:
            self._say(f"Not merged: {exc}", "bold red")
            self.notify(str(exc), title="Not merged", severity="error", markup=False)
            return
        self.merged += 1
        del self.suggestions[index]
        self._fill(index)
        self._say(f"Merged {', '.join(suggestion.names[1:])} into {suggestion.names[0]} ✓")

    def action_reject(self) -> None:
        index = self._current()
        if index is None:
            return
        suggestion = self.suggestions.pop(index)
        self.rejected += 1
        self._fill(index)
        self._say(f"Kept apart: {', '.join(suggestion.names)}")

    def action_close(self) -> None:
        self.dismiss(self.merged)


# -- the screen --------------------------------------------------------------------------------------


class ThemesScreen(Screen[None]):
    """The codebooks as a tree on the left, the highlighted code's definition and history on the right."""

    app: ConcordApp
    BINDINGS = [
        Binding("r", "rename", "Rename", id="themes.rename"),
        Binding("e", "edit_definition", "Definition", id="themes.definition"),
        Binding("m", "move", "Move", id="themes.move"),
        Binding("k", "new_category", "New category", id="themes.category"),
        Binding("M", "merge", "Merge into…", id="themes.merge"),
        Binding("s", "split", "Split", id="themes.split"),
        Binding("S", "suggestions", "Merge suggestions", id="themes.suggestions"),
        Binding("escape,q", "back", "Back", id="themes.back"),
    ]

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace
        self.data = ThemeTree([], {})
        self.collapsed: set[tuple[str, object]] = set()

    def compose(self) -> ComposeResult:
        yield Static(Text("Theme development · codebooks, categories and codes"), id="title-bar")
        with Horizontal(id="themes-body"):
            tree: Tree[BookNode | CodeInfo] = Tree(Text("Codebooks"), id="themes-tree")
            tree.show_root = False
            yield tree
            with VerticalScroll(id="themes-detail-scroll"):
                yield Static(id="themes-detail")
        yield Static(id="themes-status", classes="status-line")
        yield Footer()

    def key_nodes(self):
        return [(self, "Theme development"), (self.app, "Everywhere")]

    @property
    def tree(self) -> Tree:
        return self.query_one("#themes-tree", Tree)

    def on_mount(self) -> None:
        self.tree.focus()
        self.reload()

    # -- the tree ------------------------------------------------------------------------------------

    @staticmethod
    def _node_key(data: BookNode | CodeInfo | None) -> tuple[str, object] | None:
        if isinstance(data, CodeInfo):
            return ("code", data.id)
        if isinstance(data, BookNode):
            return ("book", data.key)
        return None

    def reload(self, focus: tuple[str, object] | None = None) -> None:
        """Read the codebooks again and rebuild the tree, keeping collapsed nodes and the highlight."""
        try:
            self.data = load_theme_tree(self.workspace)
        except ConcordError as exc:
            self._fail(exc, "Could not read the codebooks")
            return
        tree = self.tree
        if focus is None and tree.cursor_node is not None:
            focus = self._node_key(tree.cursor_node.data)
        for node in self.walk(tree.root):
            if not node.is_expanded and node.children:
                self.collapsed.add(self._node_key(node.data))
            else:
                self.collapsed.discard(self._node_key(node.data))
        tree.clear()
        for book in self.data.books:
            label = Text(book.title, style="bold")
            label.append(f"  {book.key}", style="dim")
            book_node = tree.root.add(label, data=book)
            self._add_codes(book_node, children_by_parent(self.data.codes[book.key]), None)
        for node in self.walk(tree.root):
            if node.children and self._node_key(node.data) not in self.collapsed:
                node.expand()
        target = next((node for node in self.walk(tree.root) if self._node_key(node.data) == focus), None)
        if target is not None:
            for ancestor in self._ancestors(target):
                ancestor.expand()
        line = self.visible_line(target) if target is not None else 0
        tree.cursor_line = max(line, 0)
        self._show_detail()

    def _add_codes(self, parent: TreeNode, children: dict[int | None, list[CodeInfo]], parent_id: int | None) -> None:
        for code in children.get(parent_id, []):
            label = Text(code.name)
            if code.origin == "inductive" and code.creator:
                label.append(f"  {code.creator}", style="dim")
            if children.get(code.id):
                self._add_codes(parent.add(label, data=code), children, code.id)
            else:
                parent.add_leaf(label, data=code)

    @staticmethod
    def walk(node: TreeNode):
        for child in node.children:
            yield child
            yield from ThemesScreen.walk(child)

    @staticmethod
    def _ancestors(node: TreeNode) -> list[TreeNode]:
        found = []
        while node.parent is not None and not node.parent.is_root:
            node = node.parent
            found.append(node)
        return found

    def visible_line(self, target: TreeNode) -> int:
        """The tree line of a node: its place among the shown nodes (the root is hidden)."""
        line = 0

        def count(node: TreeNode) -> bool:
            nonlocal line
            for child in node.children:
                if child is target:
                    return True
                line += 1
                if child.is_expanded and count(child):
                    return True
            return False

        return line if count(self.tree.root) else -1

    @property
    def highlighted(self) -> BookNode | CodeInfo | None:
        node = self.tree.cursor_node
        return node.data if node is not None else None

    def _highlighted_book(self) -> str | None:
        data = self.highlighted
        if isinstance(data, BookNode):
            return data.key
        if isinstance(data, CodeInfo):
            return data.codebook
        return None

    def all_codes(self) -> list[CodeInfo]:
        return [code for book in self.data.books for code in self.data.codes[book.key]]

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        self._show_detail()

    def _show_detail(self) -> None:
        data = self.highlighted
        detail = self.query_one("#themes-detail", Static)
        if isinstance(data, CodeInfo):
            try:
                history = codebook_service.code_history(self.workspace, data.id)
            except ConcordError as exc:
                detail.update(Text(str(exc), style="bold red"))
                return
            detail.update(code_detail(data, history))
        elif isinstance(data, BookNode):
            text = Text(data.title, style="bold")
            text.append(f"\ncodebook {data.key} · {len(self.data.codes.get(data.key, []))} codes", style="dim")
            text.append("\n\nk adds a category at its top; S lists merge suggestions.", style="dim")
            detail.update(text)
        else:
            detail.update(Text("The study has no codebook yet (concord codebook add)", style="dim"))

    # -- saying what happened ------------------------------------------------------------------------------

    def _say(self, message: str, style: str = "") -> None:
        self.query_one("#themes-status", Static).update(Text(message, style=style))

    def _fail(self, error: BaseException, title: str = "Not changed") -> None:
        self._say(f"{title}: {error}", "bold red")
        self.notify(str(error), title=title, severity="error", markup=False)

    def _run(self, change: Callable[[], object], done: str, focus: tuple[str, object] | None = None) -> bool:
        """Call a service, then read the tree again; a refusal is shown and changes nothing."""
        try:
            change()
        except ConcordError as exc:
            self._fail(exc)
            return False
        self.reload(focus)
        self._say(done)
        return True

    def _highlighted_code(self) -> CodeInfo | None:
        data = self.highlighted
        if not isinstance(data, CodeInfo):
            self._say("Highlight a code first", "bold red")
            return None
        return data

    # -- the actions -------------------------------------------------------------------------------------

    def action_rename(self) -> None:
        code = self._highlighted_code()
        if code is not None:
            self.app.push_screen(TextPrompt(f"Rename “{code.name}”", code.name), partial(self._renamed, code))

    def _renamed(self, code: CodeInfo, name: str | None) -> None:
        if name and name != code.name:
            self._run(
                partial(codebook_service.edit_code, self.workspace, code.id, name=name),
                f"Renamed “{code.name}” to “{name}” ✓",
            )

    def action_edit_definition(self) -> None:
        code = self._highlighted_code()
        if code is not None:
            self.app.push_screen(
                DefinitionEditor(f"Definition of “{code.name}”", code.definition or ""), partial(self._redefined, code)
            )

    def _redefined(self, code: CodeInfo, definition: str | None) -> None:
        if definition is not None and definition != (code.definition or ""):
            self._run(
                partial(codebook_service.edit_code, self.workspace, code.id, definition=definition or None),
                f"New definition of “{code.name}” ✓",
            )

    def action_move(self) -> None:
        code = self._highlighted_code()
        if code is None:
            return
        # Not under itself nor anything beneath it: the service refuses that too.
        beneath = self._subtree_ids(code.id)
        targets = [c for c in self.all_codes() if c.id not in beneath]
        self.app.push_screen(
            TargetPicker(f"Move “{code.name}” under", targets, top_level=True), partial(self._moved, code)
        )

    def _subtree_ids(self, code_id: int) -> set[int]:
        codes = self.all_codes()
        found, frontier = {code_id}, [code_id]
        while frontier:
            parent = frontier.pop()
            for code in codes:
                if code.parent_id == parent and code.id not in found:
                    found.add(code.id)
                    frontier.append(code.id)
        return found

    def _code_name(self, code_id: int) -> str:
        return next((c.name for c in self.all_codes() if c.id == code_id), f"code {code_id}")

    def _moved(self, code: CodeInfo, target: int | str | None) -> None:
        if target is None:
            return
        parent = None if target == TOP_LEVEL else target
        where = "the top of the codebook" if parent is None else f"“{self._code_name(parent)}”"
        self._run(
            partial(codebook_service.move_code, self.workspace, code.id, parent), f"Moved “{code.name}” under {where} ✓"
        )

    def action_new_category(self) -> None:
        book = self._highlighted_book()
        if book is None:
            self._say("The study has no codebook to add a category to", "bold red")
            return
        data = self.highlighted
        under = f"under “{data.name}”" if isinstance(data, CodeInfo) else f"at the top of {book}"
        self.app.push_screen(
            TextPrompt(f"New category {under}", placeholder="Name of the category or theme"),
            partial(self._category_named, book, data.id if isinstance(data, CodeInfo) else None),
        )

    def _category_named(self, book: str, parent: int | None, name: str | None) -> None:
        if not name:
            return
        try:
            made = codebook_service.create_category(self.workspace, book, name, parent)
        except ConcordError as exc:
            self._fail(exc)
            return
        self.reload(("code", made.id))
        self._say(f"New category “{name}” ✓ (m on a code moves it under)")

    def action_merge(self) -> None:
        code = self._highlighted_code()
        if code is None:
            return
        targets = [c for c in self.all_codes() if c.id not in self._subtree_ids(code.id)]
        self.app.push_screen(TargetPicker(f"Merge “{code.name}” into", targets), partial(self._merge_into, code))

    def _merge_into(self, code: CodeInfo, target: int | str | None) -> None:
        if not isinstance(target, int):
            return
        question = Text.assemble(
            "Merge ",
            (code.name, "bold"),
            " into ",
            (self._code_name(target), "bold"),
            "?\nIts codings and sub-codes move over; it stays in the history, marked merged.",
        )
        self.app.push_screen(Confirm(question), partial(self._merge_confirmed, code, target))

    def _merge_confirmed(self, code: CodeInfo, target: int, yes: bool | None) -> None:
        if yes:
            self._run(
                partial(codebook_service.merge_codes, self.workspace, code.id, target),
                f"Merged “{code.name}” into “{self._code_name(target)}” ✓",
                focus=("code", target),
            )

    def action_split(self) -> None:
        code = self._highlighted_code()
        if code is not None:
            self.app.push_screen(
                TextPrompt(f"Split “{code.name}” into", placeholder="new names, comma-separated"),
                partial(self._split, code),
            )

    def _split(self, code: CodeInfo, names: str | None) -> None:
        if names:
            parts = [name.strip() for name in names.split(",") if name.strip()]
            self._run(
                partial(codebook_service.split_code, self.workspace, code.id, parts),
                f"Split “{code.name}” into {', '.join(parts)} ✓ (its codings stay with it until recoded)",
            )

    def action_suggestions(self) -> None:
        try:
            suggestions = codebook_service.merge_suggestions(self.workspace)
        except ConcordError as exc:
            self._fail(exc, "No suggestions")
            return
        if not suggestions:
            self._say("No merge suggestions: no two inductive codes have near-identical names")
            return
        self.app.push_screen(SuggestionsScreen(self.workspace, suggestions), self._suggestions_done)

    def _suggestions_done(self, merged: int | None) -> None:
        self.reload()
        self._say(f"Merge suggestions: {merged or 0} accepted")

    def action_back(self) -> None:
        self.dismiss()
