"""The coding screen: the transcript, the codebook panel and a status line.

Every change goes through services.coding and is committed before the screen
shows it (the calls take milliseconds, so they run on the UI thread and keep
their order). Loading the transcript and recording progress run in thread
workers. The blind is the services' business; in blind mode this screen also
leaves out the overlay and the session panel, whose data the services refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from concord.app.tui.commands import PaletteCommand
from concord.app.tui.keymap import declared_bindings, effective_keys, hint_line
from concord.app.tui.messages import CodeChosen, CodeHighlighted
from concord.app.tui.screens.code_picker import CodePicker, Picked
from concord.app.tui.screens.find import FindOutcome, FindScreen
from concord.app.tui.screens.memo import MemoEdit, MemoScreen, MemoTarget
from concord.app.tui.widgets.codebook_panel import CodebookPanel
from concord.app.tui.widgets.transcript_view import TranscriptView
from concord.services import codes as code_service
from concord.services import coding as coding_service
from concord.services import transcripts as transcript_service
from concord.services.dto import CodeInfo, CodingInfo, MemoInfo, TranscriptDetail, TranscriptSummary
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError

if TYPE_CHECKING:
    from concord.app.tui.app import ConcordApp

PROGRESS_DELAY = 0.5
IN_VIVO_MAX = 120
OVERLAYS = ((), ("others",), ("consensus",), ("others", "consensus"))
NEEDS_TRANSCRIPT = frozenset(
    {
        "apply_hotkey",
        "pick_code",
        "new_code",
        "in_vivo",
        "change_coding",
        "remove_coding",
        "memo",
        "undo",
        "redo",
        "find",
        "jump_coding",
        "cycle_overlay",
        "toggle_done",
    }
)
# The hint line under the status line: binding id -> a short name.
HINTED = {
    "transcript.pick-code": "code",
    "transcript.memo": "memo",
    "transcript.undo": "undo",
    "transcript.find": "find",
    "transcript.done": "done",
    "transcript.overlay": "overlay",
    "transcript.close": "back",
    "app.help": "keys",
    "app.palette": "commands",
}


@dataclass(frozen=True)
class LoadedTranscript:
    detail: TranscriptDetail
    codes: list[CodeInfo]
    own: list[CodingInfo]
    memos: list[MemoInfo]
    cursor: int


def load_transcript(workspace: Workspace, transcript_id: int) -> LoadedTranscript:
    """Everything the screen needs, read in one go (called in a thread worker)."""
    detail = transcript_service.get_transcript(workspace, transcript_id)
    return LoadedTranscript(
        detail=detail,
        codes=code_service.visible_codes(workspace),
        own=coding_service.list_codings(workspace, transcript_id),
        memos=own_memos(workspace, transcript_id),
        cursor=transcript_service.last_position(workspace, transcript_id),
    )


def own_memos(workspace: Workspace, transcript_id: int) -> list[MemoInfo]:
    actor = workspace.require_actor()
    return [
        memo for memo in coding_service.list_memos(workspace, transcript_id=transcript_id) if memo.coder == actor.name
    ]


def session_text(detail: TranscriptDetail) -> Text:
    """The session's place, attributes and questionnaire scores (open mode only)."""
    text = Text("Session", style="bold")
    if detail.dyad is not None:
        text.append(f"\ndyad {detail.dyad}")
        if detail.session_number is not None:
            text.append(f" · session {detail.session_number}")
    for attribute in detail.attributes:
        text.append(f"\n{attribute.name}: ", style="italic")
        text.append(attribute.value or "–")
    for score in detail.scores:
        text.append(f"\n{score.instrument} ({score.respondent}): ", style="bold")
        text.append("–" if score.total is None else f"{score.total:g}")
        if score.band:
            text.append(f" {score.band}")
        if score.subscales:
            text.append("\n  " + ", ".join(f"{name} {value:g}" for name, value in score.subscales.items()), style="dim")
    if not (detail.dyad or detail.attributes or detail.scores):
        text.append("\nno attributes or scores", style="dim")
    return text


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _hotkey_bindings() -> list[Binding]:
    # Digits are bound so they can be remapped and listed; a code's other hotkey
    # characters work through on_key whenever no binding has the key.
    return [
        Binding(str(n), f"apply_hotkey('{n}')", f"Apply the code with hotkey {n}", id=f"transcript.apply-{n}")
        for n in (*range(1, 10), 0)
    ]


class TranscriptScreen(Screen[None]):
    """Code one transcript. Motion keys belong to the transcript view; the rest are here."""

    app: ConcordApp
    BINDINGS = [
        *_hotkey_bindings(),
        Binding("c", "pick_code", "Apply a code (picker)", id="transcript.pick-code"),
        Binding("n", "new_code", "New inductive code", id="transcript.new-code"),
        Binding("i", "in_vivo", "In vivo code from the selection", id="transcript.in-vivo"),
        Binding("e", "change_coding", "Change the coding at the cursor", id="transcript.change"),
        Binding("x,delete", "remove_coding", "Remove the coding at the cursor", id="transcript.remove"),
        Binding("m", "memo", "Memo on the coding, turn or transcript", id="transcript.memo"),
        Binding("u", "undo", "Undo", id="transcript.undo"),
        Binding("ctrl+r", "redo", "Redo", id="transcript.redo"),
        Binding("f,slash", "find", "Find in the transcript", id="transcript.find"),
        Binding("left_square_bracket", "jump_coding(-1)", "Previous coding of this code", id="transcript.prev-coding"),
        Binding("right_square_bracket", "jump_coding(1)", "Next coding of this code", id="transcript.next-coding"),
        Binding("o", "cycle_overlay", "Overlay others / consensus", id="transcript.overlay"),
        Binding("d", "toggle_done", "Mark done / not done", id="transcript.done"),
        Binding("q", "close", "Back to the overview", id="transcript.close"),
        Binding("ctrl+b", "cycle_hotkey_book", "Hotkeys: next codebook", id="transcript.hotkey-codebook"),
    ]

    def __init__(self, summary: TranscriptSummary, *, open_mode: bool, at: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.summary = summary
        # A span to open on, selected (a search hit), instead of the place the coder left off.
        self.open_at = at
        self.transcript_id = summary.id
        self.open_mode = open_mode
        self.done = bool(summary.progress and summary.progress.done)
        self.detail: TranscriptDetail | None = None
        self.codes: dict[int, CodeInfo] = {}
        self.own: list[CodingInfo] = []
        self.overlay: list[CodingInfo] = []
        self.overlay_layers: tuple[str, ...] = ()
        self.memos: list[MemoInfo] = []
        self.focus_code_id: int | None = None
        self.message = Text("Loading…", style="dim")
        self.find_query = ""
        self.find_fuzzy = False
        self._loader: Worker | None = None
        self._progress_pending: tuple[int, int] | None = None
        self._progress_timer = None
        self._max_turn = summary.progress.turns_reviewed if summary.progress else 0
        self.hotkey_book: str | None = None

    # -- building -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title-bar")
        with Horizontal(id="coding-body"):
            view = TranscriptView(id="transcript")
            view.loading = True
            yield view
            with Vertical(id="side"):
                yield CodebookPanel(id="codebook")
                if self.open_mode:
                    with VerticalScroll(id="session-info"):
                        yield Static(Text("Session", style="bold"), id="session-text")
        yield Static(id="status", classes="status-line")
        # A fixed hint line instead of a Footer: the Footer rebuilds all its keys on every
        # binding change, which more than doubled the time to open a transcript.
        yield Static(id="key-hints", classes="key-hints")

    def _title(self) -> Text:
        title = Text(self.summary.key, style="bold")
        title.append(f"  ·  {self.summary.kind}")
        if self.summary.perspective:
            title.append(f" ({self.summary.perspective})")
        title.append(f"  ·  {self.app.actor.name}  ·  ")
        title.append("open" if self.open_mode else "blind", style="bold")
        if self.hotkey_book:
            title.append(f"  ·  keys: {self.hotkey_book}", style="dim")
        return title

    def on_mount(self) -> None:
        self.query_one("#key-hints", Static).update(hint_line(self.app.key_rows_for(self), HINTED))
        self._update_status()
        self._loader = self.run_worker(
            partial(load_transcript, self.app.workspace, self.transcript_id),
            thread=True,
            exclusive=True,
            group="load",
            exit_on_error=False,
            name="transcript-load",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._loader:
            if event.state == WorkerState.SUCCESS:
                self._show_loaded(event.worker.result)
            elif event.state == WorkerState.ERROR:
                self.view.loading = False
                self._fail(event.worker.error, "Could not open the transcript")
        elif event.state == WorkerState.ERROR and event.worker.group == "progress":
            self._fail(event.worker.error, "Could not save your place")

    def _show_loaded(self, loaded: LoadedTranscript) -> None:
        self.detail = loaded.detail
        self.codes = {code.id: code for code in loaded.codes}
        self.hotkey_book = self._default_hotkey_book()
        self.query_one("#title-bar", Static).update(self._title())
        self.own = list(loaded.own)
        self.memos = loaded.memos
        view = self.view
        view.load(loaded.detail, self.codes, self._shown(self.own), overlay=(), cursor=loaded.cursor)
        if self.open_at is not None:
            view.jump_to(*self.open_at)
        view.loading = False
        view.focus()
        self.panel.set_codes(loaded.codes, self._own_counts())
        if self.open_mode:
            self.query_one("#session-text", Static).update(session_text(loaded.detail))
        if loaded.detail.turns:
            self.message = Text(f"{counted(len(self.own), 'coding')} of yours · {counted(len(self.codes), 'code')}")
            shadowed = self._shadowed_hotkeys()
            if shadowed:
                self.message.append(f" · hotkeys {', '.join(shadowed)} are taken by other keys: use c", style="yellow")
        else:
            self.message = Text("This transcript has no turns to code", style="bold red")
        self._cursor_changed()

    # -- parts ----------------------------------------------------------------------------

    @property
    def view(self) -> TranscriptView:
        return self.query_one("#transcript", TranscriptView)

    @property
    def panel(self) -> CodebookPanel:
        return self.query_one("#codebook", CodebookPanel)

    @property
    def workspace(self) -> Workspace:
        return self.app.workspace

    @property
    def loaded(self) -> bool:
        """Loaded, with turns to put a cursor in (an import always makes some)."""
        return self.detail is not None and bool(self.detail.turns)

    def key_nodes(self) -> list:
        return [(self, "Transcript"), (self.view, "Transcript text"), (self.app, "Everywhere")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The overlay does not exist in blind mode; the rest waits for the transcript to load."""
        if action == "cycle_overlay" and not self.open_mode:
            return False
        if action in NEEDS_TRANSCRIPT and not self.loaded:
            return None
        return True

    def palette_commands(self) -> Iterator[PaletteCommand]:
        if not self.loaded:
            return
        for code in self.codes.values():
            about = (code.definition or "").splitlines()[0][:80] if code.definition else " › ".join(code.path)
            yield PaletteCommand(
                f"Apply code: {code.name}", code.hotkey or "", about, partial(self.apply_code, code.id)
            )

    # -- what the screen shows --------------------------------------------------------------

    def _shown(self, codings: Sequence[CodingInfo]) -> list[CodingInfo]:
        # A coding whose code was merged away or retired has no code to draw with.
        return [coding for coding in codings if coding.code_id in self.codes]

    def _own_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for coding in self.own:
            counts[coding.code_id] = counts.get(coding.code_id, 0) + 1
        return counts

    def _refresh_codings(self) -> None:
        self.view.set_codings(self._shown(self.own), overlay=self._shown(self.overlay))
        self.panel.set_counts(self._own_counts())
        self._cursor_changed()

    def _cursor_changed(self) -> None:
        if self.loaded:
            offset = self.view.cursor
            others_here = [c for c in self._shown(self.overlay) if c.start <= offset < c.end]
            self.panel.show_at_cursor(self.view.codings_at(offset), others_here)
        self._update_status()

    def _say(self, message: str, style: str = "") -> None:
        self.message = Text(message, style=style)
        self._update_status()

    def _fail(self, error: BaseException, title: str = "Not saved") -> None:
        text = str(error) if isinstance(error, ConcordError) else f"{type(error).__name__}: {error}"
        self.message = Text(f"{title}: {text}", style="bold red")
        self._update_status()
        self.notify(text, title=title, severity="error", markup=False)

    def _update_status(self) -> None:
        status = Text()
        if self.loaded:
            view = self.view
            turn = view.current_turn()
            status.append(f"turn {turn.number}/{len(self.detail.turns)} {turn.speaker_label}", style="bold")
            selection = view.selection()
            if selection and selection[1] > selection[0]:
                status.append(f" · selected {counted(selection[1] - selection[0], 'char')}")
            if self.overlay_layers:
                status.append(f" · showing {' + '.join(self.overlay_layers)}", style="italic")
            if self.done:
                status.append(" · done ✓", style="bold")
            status.append(" · ")
        status.append_text(self.message)
        # One line, always: no layout pass needed (this runs on every cursor move).
        self.query_one("#status", Static).update(status, layout=False)

    # -- events from the parts --------------------------------------------------------------

    def on_transcript_view_cursor_moved(self, event: TranscriptView.CursorMoved) -> None:
        self._cursor_changed()
        self._note_progress(event.offset, event.turn_number)

    def on_transcript_view_selection_changed(self, event: TranscriptView.SelectionChanged) -> None:
        self._update_status()

    def on_code_chosen(self, event: CodeChosen) -> None:
        event.stop()
        self.apply_code(event.code_id)

    def on_code_highlighted(self, event: CodeHighlighted) -> None:
        event.stop()
        self.focus_code_id = event.code_id

    # -- progress -----------------------------------------------------------------------------

    def _note_progress(self, offset: int, turn_number: int) -> None:
        """Remember the place; written at most every PROGRESS_DELAY seconds, and on leaving."""
        self._max_turn = max(self._max_turn, turn_number)
        self._progress_pending = (offset, self._max_turn)
        if self._progress_timer is None:
            self._progress_timer = self.set_timer(PROGRESS_DELAY, self._write_progress_later)

    def _write_progress_later(self) -> None:
        self._progress_timer = None
        if self._progress_pending is not None:
            offset, turns = self._progress_pending
            self._progress_pending = None
            # Arguments are taken here, on the UI thread; the worker thread touches no widget.
            self.run_worker(
                partial(
                    transcript_service.record_progress,
                    self.workspace,
                    self.transcript_id,
                    turns_reviewed=turns,
                    last_offset=offset,
                ),
                thread=True,
                group="progress",
                exit_on_error=False,
            )

    def flush_progress(self) -> None:
        """Write the pending place now (leaving the screen or quitting)."""
        if self._progress_timer is not None:
            self._progress_timer.stop()
            self._progress_timer = None
        if self._progress_pending is not None:
            offset, turns = self._progress_pending
            self._progress_pending = None
            try:
                transcript_service.record_progress(
                    self.workspace, self.transcript_id, turns_reviewed=turns, last_offset=offset
                )
            except ConcordError as exc:
                # The screen may be going away: tell the app, not the status line.
                self.app.notify(str(exc), title="Could not save your place", severity="error", markup=False)

    def on_unmount(self) -> None:
        self.flush_progress()

    # -- coding -------------------------------------------------------------------------------

    def _target_span(self) -> tuple[int, int, str] | None:
        """The selection, or else the turn under the cursor, with words for the status line."""
        selection = self.view.selection()
        if selection and selection[1] > selection[0]:
            return selection[0], selection[1], f"{counted(selection[1] - selection[0], 'selected char')}"
        turn = self.view.current_turn()
        if turn.char_end > turn.char_start:
            return turn.char_start, turn.char_end, f"turn {turn.number}"
        return None

    def apply_code(self, code_id: int) -> CodingInfo | None:
        """Apply a code to the selection (or the turn); shown once the service has committed it."""
        if not self.loaded:
            return None
        target = self._target_span()
        if target is None:
            self._say("Nothing to code here: this turn is empty", "bold red")
            return None
        start, end, where = target
        try:
            coding = coding_service.apply_code(self.workspace, self.transcript_id, code_id, start, end)
        except ConcordError as exc:
            self._fail(exc)
            return None
        self.own.append(coding)
        view = self.view
        if view.anchor is not None:
            # Coding ends visual mode (the next motion drops the selection), but the span stays
            # selected until then, so another hotkey codes the same words.
            view.jump_to(view.anchor, select_to=view.cursor)
        self._refresh_codings()
        self._say(f"Coded {where} as “{self.codes[code_id].name}” ✓")
        return coding

    def _hotkey_books(self) -> list[str]:
        """Codebooks that give codes hotkeys, in the study's order."""
        return list(dict.fromkeys(code.codebook for code in self.codes.values() if code.hotkey))

    def _default_hotkey_book(self) -> str | None:
        # Each codebook numbers its codes from 1, so hotkeys apply within one codebook at a time;
        # an IPR interview starts with an IPR codebook when the study has one.
        books = self._hotkey_books()
        if self.summary.kind == "ipr":
            ipr = [book for book in books if "ipr" in book]
            if ipr:
                return ipr[0]
        return books[0] if books else None

    def _code_with_hotkey(self, hotkey: str) -> CodeInfo | None:
        return next(
            (code for code in self.codes.values() if code.hotkey == hotkey and code.codebook == self.hotkey_book), None
        )

    def action_cycle_hotkey_book(self) -> None:
        books = self._hotkey_books()
        if not books:
            self._say("No codebook here has hotkeys: use c", "bold red")
            return
        index = books.index(self.hotkey_book) + 1 if self.hotkey_book in books else 0
        self.hotkey_book = books[index % len(books)]
        self.query_one("#title-bar", Static).update(self._title())
        self._say(f"Hotkeys now apply codes of {self.hotkey_book}")

    def action_apply_hotkey(self, hotkey: str) -> None:
        code = self._code_with_hotkey(hotkey)
        if code is None:
            self._say(f"No code has the hotkey {hotkey}", "bold red")
            return
        self.apply_code(code.id)

    def on_key(self, event: events.Key) -> None:
        """A code's hotkey that is not a digit applies the code, unless a binding has that key."""
        if not self.loaded or event.character is None or event.character.isdigit():
            return
        code = self._code_with_hotkey(event.character)
        if code is None or event.key in self.active_bindings:
            return
        event.stop()
        event.prevent_default()
        self.apply_code(code.id)

    def _shadowed_hotkeys(self) -> list[str]:
        """Code hotkeys that keys of the transcript, the screen or the app take (those win)."""
        taken = {
            key
            for node, _ in self.key_nodes()
            for binding in declared_bindings(type(node))
            for key in effective_keys(binding, self.app.keymap)
        }
        return sorted(
            code.hotkey
            for code in self.codes.values()
            if code.hotkey
            and not code.hotkey.isdigit()
            and code.codebook == self.hotkey_book
            and any(binding.key in taken for binding in Binding.make_bindings([(code.hotkey, "")]))
        )

    def _create_code(self, name: str) -> CodeInfo | None:
        try:
            code = code_service.create_inductive_code(self.workspace, name)
        except ConcordError as exc:
            self._fail(exc, "Code not created")
            return None
        if code.id not in self.codes:
            self.codes[code.id] = code
            self.view.codes = dict(self.codes)
            self.panel.set_codes(list(self.codes.values()), self._own_counts())
        return code

    def _picked_code(self, picked: Picked | None) -> int | None:
        if picked is None:
            return None
        if picked.new_name is not None:
            code = self._create_code(picked.new_name)
            return code.id if code else None
        return picked.code_id

    def action_pick_code(self) -> None:
        self.app.push_screen(CodePicker(list(self.codes.values())), self._apply_picked)

    def action_new_code(self) -> None:
        self.app.push_screen(
            CodePicker(list(self.codes.values()), title="New inductive code", prefer_create=True), self._apply_picked
        )

    def _apply_picked(self, picked: Picked | None) -> None:
        code_id = self._picked_code(picked)
        if code_id is not None:
            self.apply_code(code_id)

    def action_in_vivo(self) -> None:
        """Name a new inductive code after the selected words and apply it to them."""
        selection = self.view.selection()
        if not selection or selection[1] <= selection[0]:
            self._say("Select the words first (v, or shift+motion), then press i", "bold red")
            return
        words = " ".join(self.detail.text[selection[0] : selection[1]].split()).strip(" .,;:!?\"'“”‘’()[]")
        if not words:
            self._say("The selection holds no words", "bold red")
            return
        if len(words) > IN_VIVO_MAX:
            self._say(f"An in vivo code takes at most {IN_VIVO_MAX} characters; select fewer words", "bold red")
            return
        code = self._create_code(words)
        if code is not None:
            self.apply_code(code.id)

    def own_codings_at_cursor(self) -> list[CodingInfo]:
        """The coder's codings under the cursor, innermost (shortest) first, newest first among equals."""
        here = self.view.codings_at(self.view.cursor)
        return sorted(here, key=lambda coding: (coding.end - coding.start, -coding.id))

    def _coding_at_cursor(self, verb: str) -> CodingInfo | None:
        here = self.own_codings_at_cursor()
        if not here:
            self._say(f"None of your codings is under the cursor to {verb}", "bold red")
            return None
        return here[0]

    def action_remove_coding(self) -> None:
        coding = self._coding_at_cursor("remove")
        if coding is None:
            return
        try:
            coding_service.remove_coding(self.workspace, coding.id)
        except ConcordError as exc:
            self._fail(exc)
            return
        self.own = [c for c in self.own if c.id != coding.id]
        self._refresh_codings()
        self._say(f"Removed “{self._code_name(coding.code_id)}” ({coding.start}–{coding.end}) ✓ · u undoes")

    def action_change_coding(self) -> None:
        coding = self._coding_at_cursor("change")
        if coding is None:
            return
        picker = CodePicker(
            [code for code in self.codes.values() if code.id != coding.code_id],
            title=f"Change “{self._code_name(coding.code_id)}” to",
        )
        self.app.push_screen(picker, partial(self._change_to, coding))

    def _change_to(self, coding: CodingInfo, picked: Picked | None) -> None:
        code_id = self._picked_code(picked)
        if code_id is None:
            return
        try:
            changed = coding_service.change_coding(self.workspace, coding.id, code_id=code_id)
        except ConcordError as exc:
            self._fail(exc)
            return
        self._replace(changed)
        self._refresh_codings()
        self._say(f"Changed to “{self._code_name(code_id)}” ✓")

    def _replace(self, changed: CodingInfo) -> None:
        self.own = [changed if c.id == changed.id else c for c in self.own]

    def _code_name(self, code_id: int) -> str:
        code = self.codes.get(code_id)
        return code.name if code else f"code {code_id}"

    # -- undo and redo ------------------------------------------------------------------------

    def _history(self, step: Callable[[Workspace, int], int | None], verb: str, done_word: str) -> None:
        try:
            coding_id = step(self.workspace, self.transcript_id)
            if coding_id is None:
                self._say(f"Nothing to {verb}")
                return
            self.own = coding_service.list_codings(self.workspace, self.transcript_id)
        except ConcordError as exc:
            self._fail(exc)
            return
        self._refresh_codings()
        self._say(f"{done_word} ✓ ({counted(len(self.own), 'coding')} of yours)")

    def action_undo(self) -> None:
        self._history(coding_service.undo, "undo", "Undone")

    def action_redo(self) -> None:
        self._history(coding_service.redo, "redo", "Redone")

    # -- memos --------------------------------------------------------------------------------

    def _memo_targets(self) -> list[MemoTarget]:
        """The innermost own coding at the cursor (if any), the turn, the transcript."""
        turn = self.view.current_turn()
        mine = {(memo.target_kind, memo.target_id): memo for memo in self.memos}
        targets = []
        coding_here = self.own_codings_at_cursor()
        if coding_here:
            coding = coding_here[0]
            targets.append(
                MemoTarget(
                    "coding",
                    coding.id,
                    f"coding “{self._code_name(coding.code_id)}” ({coding.start}–{coding.end})",
                    coding.memo or "",
                )
            )
        for kind, target_id, label in (
            ("turn", turn.id, f"turn {turn.number} ({turn.speaker_label})"),
            ("transcript", self.transcript_id, f"transcript {self.detail.key} (familiarisation notes)"),
        ):
            memo = mine.get((kind, target_id))
            targets.append(MemoTarget(kind, target_id, label, memo.text if memo else "", memo.id if memo else None))
        return targets

    def action_memo(self) -> None:
        self.app.push_screen(MemoScreen(self._memo_targets()), self._save_memos)

    def _save_memos(self, edits: list[MemoEdit] | None) -> None:
        """Save each changed memo: a coding's memo lives on the coding (so undo covers it),
        a turn's or the transcript's in the memos table (an empty text removes it)."""
        if not edits:
            return
        saved: list[str] = []
        try:
            for edit in edits:
                target = edit.target
                if target.kind == "coding":
                    self._replace(
                        coding_service.change_coding(
                            self.workspace, target.target_id, memo=edit.text or None, clear_memo=not edit.text
                        )
                    )
                elif target.memo_id is not None:
                    coding_service.update_memo(self.workspace, target.memo_id, edit.text)
                elif edit.text:
                    coding_service.add_memo(self.workspace, target.kind, target.target_id, edit.text)
                saved.append(target.kind)
        except ConcordError as exc:
            self._fail(exc, "Memo not saved")
        self.memos = own_memos(self.workspace, self.transcript_id)
        self._refresh_codings()
        if len(saved) == len(edits):
            self._say(f"Memo saved on {', '.join(saved)} ✓")

    # -- finding and jumping ------------------------------------------------------------------

    def action_find(self) -> None:
        screen = FindScreen(
            self.detail.text, self.detail.turns, query=self.find_query, fuzzy=self.find_fuzzy, cursor=self.view.cursor
        )
        self.app.push_screen(screen, self._found)

    def _found(self, outcome: FindOutcome | None) -> None:
        if outcome is None:
            return
        self.find_query, self.find_fuzzy = outcome.query, outcome.fuzzy
        if outcome.hit is not None:
            self.view.jump_to(outcome.hit.start, select_to=outcome.hit.end)
            self._say(f"Found “{outcome.query}” in turn {outcome.hit.turn_number}")

    def action_jump_coding(self, step: int) -> None:
        """Go to the next (or previous) of the coder's codings of the code at the cursor
        (or of the code highlighted in the codebook)."""
        here = self.own_codings_at_cursor()
        code_id = here[0].code_id if here else self.focus_code_id
        if code_id is None:
            self._say("Put the cursor on a coding, or highlight a code in the codebook", "bold red")
            return
        same = sorted((c for c in self.own if c.code_id == code_id), key=lambda c: (c.start, c.id))
        if not same:
            self._say(f"You have not coded “{self._code_name(code_id)}” here yet")
            return
        reference = next((c.start for c in here if c.code_id == code_id), self.view.cursor)
        if step > 0:
            target = next((c for c in same if c.start > reference), same[0])
        else:
            target = next((c for c in reversed(same) if c.start < reference), same[-1])
        self.view.jump_to(target.start)
        self.panel.select_code(code_id)
        index = same.index(target) + 1
        self._say(f"“{self._code_name(code_id)}” {index} of {len(same)}")

    # -- open mode, done, leaving ---------------------------------------------------------

    def action_cycle_overlay(self) -> None:
        """Off → other coders → consensus → both → off. Only in open mode; the services
        refuse these layers while the study is blind for this person anyway."""
        layers = OVERLAYS[(OVERLAYS.index(self.overlay_layers) + 1) % len(OVERLAYS)]
        try:
            overlay = [
                coding
                for layer in layers
                for coding in coding_service.list_codings(self.workspace, self.transcript_id, layer=layer)
            ]
        except ConcordError as exc:
            self._fail(exc, "Overlay not available")
            return
        self.overlay_layers, self.overlay = layers, overlay
        self._refresh_codings()
        self._say(f"Overlay: {' + '.join(layers)} ({counted(len(overlay), 'coding')})" if layers else "Overlay off")

    def action_toggle_done(self) -> None:
        try:
            transcript_service.set_done(self.workspace, self.transcript_id, not self.done)
        except ConcordError as exc:
            self._fail(exc)
            return
        self.done = not self.done
        self._say("Marked done ✓" if self.done else "Reopened: not done")

    def action_close(self) -> None:
        self.flush_progress()
        self.dismiss()
