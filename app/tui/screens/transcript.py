"""The coding screen: the transcript, the codebook panel and a status line.

Every change goes through services.coding and is committed before the screen
shows it (the calls take milliseconds, so they run on the UI thread and keep
their order). Loading the transcript and recording progress run in thread
workers. The blind is the services' business; in blind mode this screen also
leaves out the overlay and the session panel, whose data the services refuse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
from concord.app.tui.screens.similar import SimilarOutcome, SimilarScreen, SimilarSource
from concord.app.tui.screens.value_prompt import ValuePrompt
from concord.app.tui.widgets.codebook_panel import CodebookPanel
from concord.app.tui.widgets.transcript_view import TranscriptView
from concord.services import assistant, workbench
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
        "accept_suggestion",
        "reject_suggestion",
        "more_like_this",
    }
)
# The coding assistant's keys: hidden, and inactive, while a supervisor has not switched it on.
ASSISTANT_ACTIONS = frozenset({"accept_suggestion", "reject_suggestion", "more_like_this"})
ASSISTANT_KEYS = frozenset(
    {"transcript.accept-suggestion", "transcript.reject-suggestion", "transcript.more-like-this"}
)
# Suggestions are asked for again this long after the coder's last change (training runs in a worker).
SUGGEST_DELAY = 0.4
# The hint line under the status line: binding id -> a short name.
# The hint line under the status line: binding id -> a short name, most wanted first (at 80
# columns the last ones give way).
HINTED = {
    "transcript.pick-code": "code",
    "transcript.hotkey-codebook": "book",
    "transcript.memo": "memo",
    "transcript.undo": "undo",
    "app.help": "keys",
    "transcript.close": "back",
    "transcript.find": "find",
    "transcript.done": "done",
    "transcript.overlay": "overlay",
    "app.palette": "commands",
}


@dataclass(frozen=True)
class LoadedTranscript:
    detail: TranscriptDetail
    codes: list[CodeInfo]
    own: list[CodingInfo]
    memos: list[MemoInfo]
    cursor: int
    # The codebook whose hotkeys the coder last used in this transcript, if any.
    remembered_book: str | None = None
    # {code id: speaker roles} for codes whose codebook says whose turns they are for.
    speakers: dict[int, tuple[str, ...]] | None = None
    # Whether a supervisor has switched the coding assistant on for the study.
    assistant_on: bool = False


def load_transcript(workspace: Workspace, transcript_id: int) -> LoadedTranscript:
    """Everything the screen needs, read in one go (called in a thread worker)."""
    detail = transcript_service.get_transcript(workspace, transcript_id)
    codes = code_service.visible_codes(workspace)
    return LoadedTranscript(
        detail=detail,
        codes=codes,
        own=coding_service.list_codings(workspace, transcript_id),
        memos=own_memos(workspace, transcript_id),
        cursor=transcript_service.last_position(workspace, transcript_id),
        remembered_book=workbench.workbench_state(workspace).hotkey_book(transcript_id),
        speakers=workbench.declared_speakers(codes),
        assistant_on=assistant.assistant_settings(workspace).on,
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


def _first_words(text: str, limit: int = 30) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


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
    # Nothing takes the focus until the transcript is loaded and the view takes it: otherwise the
    # codebook tree would hold it for a moment, and what the panel does then would depend on timing.
    AUTO_FOCUS = ""
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
        Binding("a", "accept_suggestion", "Accept the suggested code (assistant)", id="transcript.accept-suggestion"),
        Binding("r", "reject_suggestion", "Reject the suggested code (assistant)", id="transcript.reject-suggestion"),
        Binding("s", "more_like_this", "More like this (assistant)", id="transcript.more-like-this"),
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
        self.speakers: dict[int, tuple[str, ...]] = {}
        # The undo step a first u warned about (it would take a memo away); a second u takes it.
        self._undo_armed: int | None = None
        self.assistant_on = False
        # The assistant's suggestions by turn number, most confident first.
        self.suggestions: dict[int, list[assistant.TurnSuggestion]] = {}
        self._suggester: Worker | None = None
        self._suggest_timer = None

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
        self._update_hints()
        self._update_status()
        self._loader = self.run_worker(
            partial(load_transcript, self.app.workspace, self.transcript_id),
            thread=True,
            exclusive=True,
            group="load",
            exit_on_error=False,
            name="transcript-load",
        )

    def on_resize(self, event: events.Resize) -> None:
        # The key line and the status line are fitted to the width.
        self._update_hints()
        self._update_status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._loader:
            if event.state == WorkerState.SUCCESS:
                self._show_loaded(event.worker.result)
            elif event.state == WorkerState.ERROR:
                self.view.loading = False
                self._fail(event.worker.error, "Could not open the transcript")
        elif event.worker is self._suggester:
            if event.state == WorkerState.SUCCESS:
                self._show_suggestions(event.worker.result)
            elif event.state == WorkerState.ERROR:
                self._show_suggestions(None)
                self._say(f"No suggestions: {event.worker.error}", "yellow")
        elif event.state == WorkerState.ERROR and event.worker.group == "progress":
            self._fail(event.worker.error, "Could not save your place")

    def _show_loaded(self, loaded: LoadedTranscript) -> None:
        self.detail = loaded.detail
        self.codes = {code.id: code for code in loaded.codes}
        self.speakers = dict(loaded.speakers or {})
        self.hotkey_book = workbench.choose_hotkey_book(
            loaded.codes, kind=self.summary.kind, remembered=loaded.remembered_book
        )
        self.query_one("#title-bar", Static).update(self._title())
        self.own = list(loaded.own)
        self.memos = loaded.memos
        self.assistant_on = loaded.assistant_on
        view = self.view
        view.book_letters = self._letters()
        view.load(loaded.detail, self.codes, self._shown(self.own), overlay=(), cursor=loaded.cursor)
        if self.open_at is not None:
            view.jump_to(*self.open_at)
        view.loading = False
        view.focus()
        self.panel.set_codes(loaded.codes, self._own_counts(), active_book=self.hotkey_book, letters=self._letters())
        self._update_hints()
        if self.open_mode:
            self.query_one("#session-text", Static).update(session_text(loaded.detail))
        if loaded.detail.turns:
            self.message = Text(f"{counted(len(self.own), 'coding')} of yours")
            if self.hotkey_book:
                self.message.append(f" · keys: {self.hotkey_book}")
            shadowed = self._shadowed_hotkeys()
            if shadowed:
                self.message.append(f" · hotkeys {', '.join(shadowed)} are taken by other keys: use c", style="yellow")
        else:
            self.message = Text("This transcript has no turns to code", style="bold red")
        self._cursor_changed()
        if self.assistant_on and loaded.detail.turns:
            self._ask_for_suggestions()

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
        if action in ASSISTANT_ACTIONS and not self.assistant_on:
            return False
        if action in NEEDS_TRANSCRIPT and not self.loaded:
            return None
        return True

    def hidden_keys(self) -> frozenset[str]:
        """Binding ids the help and the key line leave out: the assistant's, while it is off."""
        return frozenset() if self.assistant_on else ASSISTANT_KEYS

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
        if self.assistant_on:
            self._schedule_suggestions()

    def _cursor_changed(self) -> None:
        if self.loaded:
            offset = self.view.cursor
            others_here = [c for c in self._shown(self.overlay) if c.start <= offset < c.end]
            turn = self.view.current_turn()
            word = workbench.word_at(self.detail.text, turn, offset)
            place = f"Turn {turn.number}{f', word {word}' if word else ''}\n{workbench.speaker_text(turn)}"
            self.panel.show_at_cursor(self.view.codings_at(offset), others_here, place=place, where=self._where)
        self._update_status()

    def _where(self, coding: CodingInfo) -> str:
        """Where a coding runs, as turn and words."""
        return workbench.describe_span(self.detail.text, self.detail.turns, coding.start, coding.end)

    def _letters(self) -> dict[str, str]:
        return workbench.book_letters(code.codebook for code in self.codes.values())

    def _update_hints(self) -> None:
        """The key line: first the hotkeys that fire now (the active codebook's), then the usual keys."""
        line = Text()
        live = sorted(
            (code.hotkey for code in self.codes.values() if code.hotkey and code.codebook == self.hotkey_book),
            key=lambda key: (not key.isdigit(), key == "0", key),
        )
        if live:
            keys = f"{live[0]}–{live[-1]}" if len(live) > 2 else ",".join(live)
            line.append(keys, style="bold")
            line.append(f" {self.hotkey_book}  ")
        rows = self.app.key_rows_for(self)
        names = dict(HINTED)
        if len(workbench.hotkey_books(self.codes.values())) < 2:
            names.pop("transcript.hotkey-codebook")
        hints = self.query_one("#key-hints", Static)
        width = (hints.size.width or self.app.size.width) - 2
        line.append_text(hint_line(rows, names, width=width - line.cell_len))
        hints.update(line)

    def _say(self, message: str, style: str = "", *, keep_armed: bool = False) -> None:
        if not keep_armed:
            self._undo_armed = None
        self.message = Text(message, style=style)
        self._update_status()

    def _fail(self, error: BaseException, title: str = "Not saved") -> None:
        text = str(error) if isinstance(error, ConcordError) else f"{type(error).__name__}: {error}"
        self.message = Text(f"{title}: {text}", style="bold red")
        self._update_status()
        self.notify(text, title=title, severity="error", markup=False)

    def _update_status(self) -> None:
        """Where the cursor is, then the last message; when both do not fit, the place gets shorter
        and the message keeps its words (it says what just happened)."""
        status_line = self.query_one("#status", Static)
        width = max(20, status_line.size.width - 2) if status_line.size.width else 78
        parts: list[tuple[str, str]] = []
        if self.loaded:
            view = self.view
            turn = view.current_turn()
            role = workbench.role_name(turn.speaker_role)
            selection = view.selection()
            words = (
                workbench.count_words(self.detail.text, *selection) if selection and selection[1] > selection[0] else 0
            )
            long = [(f"turn {turn.number}/{len(self.detail.turns)} {role}", "bold")]
            if words:
                long.append((f" · {counted(words, 'word')} selected", ""))
            if self.overlay_layers:
                long.append((f" · showing {' + '.join(self.overlay_layers)}", "italic"))
            suggested = self.suggestions.get(turn.number)
            if suggested:
                best = suggested[0]
                long.append(
                    (f" · suggests “{self._code_name(best.code_id)}” {round(best.confidence * 100)}% (a/r)", "dim")
                )
            if self.done:
                long.append((" · done ✓", "bold"))
            short = [(f"t{turn.number} {role}", "bold")]
            if words:
                short.append((f" · {words}w", ""))
            message_len = self.message.cell_len
            parts = long if sum(len(p) for p, _ in long) + 3 + message_len <= width else short
            parts.append((" · ", ""))
        status = Text()
        for part, style in parts:
            status.append(part, style=style)
        status.append_text(self.message)
        if status.cell_len > width:
            status.truncate(width - 1)
            status.append("…")
        # One line, always: no layout pass needed (this runs on every cursor move).
        status_line.update(status, layout=False)

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
        if event.code_id is not None and event.by_user and self.loaded:
            # The panel may show the name shortened in the middle: the status line has it whole.
            code = self.codes.get(event.code_id)
            key = f"{code.hotkey}: " if code and code.hotkey and code.codebook == self.hotkey_book else ""
            self._say(f"{key}{self.panel.full_name(event.code_id)}")

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
            return selection[0], selection[1], workbench.describe_span(self.detail.text, self.detail.turns, *selection)
        turn = self.view.current_turn()
        if turn.char_end > turn.char_start:
            return turn.char_start, turn.char_end, f"turn {turn.number}"
        return None

    def apply_code(
        self, code_id: int, value: float | None = None, target: tuple[int, int, str] | None = None
    ) -> CodingInfo | None:
        """Apply a code to the selection (or the turn); shown once the service has committed it.

        A code with a rating scale first asks for its value (ValuePrompt) and is applied, to the span
        chosen when it was asked, once the coder answers."""
        if not self.loaded:
            return None
        target = target or self._target_span()
        if target is None:
            self._say("Nothing to code here: this turn is empty", "bold red")
            return None
        scale = self.codes[code_id].scale if code_id in self.codes else None
        if scale is not None and value is None:

            def answered(given: float | None, target: tuple[int, int, str] = target) -> None:
                if given is None:
                    self._say("Not coded: no value given")
                else:
                    self.apply_code(code_id, given, target)

            self.app.push_screen(ValuePrompt(self.codes[code_id].name, scale), answered)
            return None
        start, end, where = target
        try:
            coding = coding_service.apply_code(self.workspace, self.transcript_id, code_id, start, end, value=value)
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
        code = self.codes[code_id]
        hint = workbench.speaker_hint(
            code, self.codes, self.speakers, workbench.turns_of_span(self.detail.turns, start, end)
        )
        if hint:
            self._say(f"Coded {where}; {hint}", "yellow")
        else:
            shown = f" = {value:g}" if value is not None else ""
            self._say(f"Coded “{code.name}”{shown} on {where} ✓")
        return coding

    def _code_with_hotkey(self, hotkey: str) -> CodeInfo | None:
        return workbench.code_for_hotkey(self.codes.values(), self.hotkey_book, hotkey)

    def action_cycle_hotkey_book(self) -> None:
        """Hotkeys apply one codebook's codes at a time (each numbers its codes from 1): switch to the
        next; the panel, the key line and the margin letters follow, and the choice is remembered."""
        books = workbench.hotkey_books(self.codes.values())
        if not books:
            self._say("No codebook here has hotkeys: use c", "bold red")
            return
        self.hotkey_book = workbench.next_hotkey_book(books, self.hotkey_book)
        self.query_one("#title-bar", Static).update(self._title())
        self.panel.set_active_book(self.hotkey_book)
        self._update_hints()
        try:
            workbench.workbench_state(self.workspace).remember_hotkey_book(self.transcript_id, self.hotkey_book)
        except OSError as exc:
            self._say(f"Keys: {self.hotkey_book} (not remembered: {exc})", "yellow")
            return
        self._say(f"Keys now: {self.hotkey_book} ({self.panel.letters.get(self.hotkey_book, '?')} in the margin)")

    def action_apply_hotkey(self, hotkey: str) -> None:
        code = self._code_with_hotkey(hotkey)
        if code is None:
            self._say(f"No code of {self.hotkey_book} has the key {hotkey} (ctrl+b: next book)", "bold red")
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
        self._say(f"Removed “{self._code_name(coding.code_id)}” ({self._where(coding)}) ✓ · u undoes")

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

    def _history(self, undo: bool) -> None:
        """Undo or redo one step and say which. Undoing a step that would take memo text away first
        says what it would remove; a second u takes it."""
        verb = "undo" if undo else "redo"
        try:
            upcoming = coding_service.peek_step(self.workspace, self.transcript_id, undo=undo)
            if upcoming is None:
                self._say(f"Nothing to {verb}")
                return
            if upcoming.memo_lost and self._undo_armed != (upcoming.step_id if undo else -upcoming.step_id):
                key = "u" if undo else "ctrl+r"
                self._say(
                    f"{key} again removes {upcoming.what}: “{_first_words(upcoming.memo_lost)}”",
                    "yellow",
                )
                self._undo_armed = upcoming.step_id if undo else -upcoming.step_id
                return
            step = (coding_service.undo_step if undo else coding_service.redo_step)(self.workspace, self.transcript_id)
            self._undo_armed = None
            if step is None:
                self._say(f"Nothing to {verb}")
                return
            self.own = coding_service.list_codings(self.workspace, self.transcript_id)
            if step.action == "memo":
                self.memos = own_memos(self.workspace, self.transcript_id)
        except ConcordError as exc:
            self._fail(exc)
            return
        self._refresh_codings()
        again = "ctrl+r redoes" if undo else "u undoes"
        self._say(f"{'Undone' if undo else 'Redone'}: {step.what} · {again}")

    def action_undo(self) -> None:
        self._history(undo=True)

    def action_redo(self) -> None:
        self._history(undo=False)

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
                    f"coding “{self._code_name(coding.code_id)}” ({self._where(coding)})",
                    coding.memo or "",
                    place=f"“{self._code_name(coding.code_id)}” ({self._where(coding)})",
                )
            )
        for kind, target_id, label, place in (
            ("turn", turn.id, f"turn {turn.number} · {workbench.speaker_text(turn)}", f"turn {turn.number}"),
            (
                "transcript",
                self.transcript_id,
                f"transcript {self.detail.key} (familiarisation notes)",
                f"transcript {self.detail.key}",
            ),
        ):
            memo = mine.get((kind, target_id))
            targets.append(
                MemoTarget(kind, target_id, label, memo.text if memo else "", memo.id if memo else None, place=place)
            )
        return targets

    def action_memo(self) -> None:
        self.app.push_screen(MemoScreen(self._memo_targets()), self._save_memos)

    def _save_memos(self, edits: list[MemoEdit] | None) -> None:
        """Save each changed memo: a coding's memo lives on the coding, a turn's or the transcript's in
        the memos table (an empty text removes it); either way u takes it back. The message says where
        each went."""
        if edits is None:
            return
        if not edits:
            self._say("Memo unchanged: nothing new to save")
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
                saved.append(("Removed memo on " if not edit.text else "") + target.place)
        except ConcordError as exc:
            self._fail(exc, "Memo not saved")
        self.memos = own_memos(self.workspace, self.transcript_id)
        self._refresh_codings()
        if len(saved) == len(edits):
            if all(edit.text for edit in edits):
                self._say(f"Memo saved on {', '.join(saved)} ✓ · u undoes")
            else:
                self._say(f"{'; '.join(saved)} ✓ · u undoes")

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

    # -- the coding assistant -----------------------------------------------------------------

    def _ask_for_suggestions(self) -> None:
        """Train (when what the coder did changed) and suggest, in a thread worker: the screen never waits."""
        self._suggest_timer = None
        self._suggester = self.run_worker(
            partial(assistant.suggest, self.workspace, self.transcript_id),
            thread=True,
            exclusive=True,
            group="suggest",
            exit_on_error=False,
            name="suggest",
        )

    def _schedule_suggestions(self) -> None:
        if self._suggest_timer is not None:
            self._suggest_timer.stop()
        self._suggest_timer = self.set_timer(SUGGEST_DELAY, self._ask_for_suggestions)

    def _show_suggestions(self, found: assistant.Suggestions | None) -> None:
        coded = (
            {
                turn.number
                for turn in self.detail.turns
                for c in self.own
                if c.start < turn.char_end and turn.char_start < c.end
            }
            if self.detail
            else set()
        )
        by_turn: dict[int, list[assistant.TurnSuggestion]] = {}
        for suggestion in found.suggestions if found else ():
            if suggestion.code_id in self.codes and suggestion.turn not in coded:
                by_turn.setdefault(suggestion.turn, []).append(suggestion)
        for listed in by_turn.values():
            listed.sort(key=lambda s: -s.confidence)
        self.suggestions = by_turn
        self._draw_suggestions()

    def _draw_suggestions(self) -> None:
        self.view.set_suggestions(
            {turn: (listed[0].code_id, listed[0].confidence) for turn, listed in self.suggestions.items() if listed}
        )
        self._update_status()

    def _suggestion_here(self) -> assistant.TurnSuggestion | None:
        listed = self.suggestions.get(self.view.current_turn().number)
        if not listed:
            self._say("No suggestion on this turn", "bold red")
            return None
        return listed[0]

    def action_accept_suggestion(self) -> None:
        suggestion = self._suggestion_here()
        if suggestion is None:
            return
        try:
            coding = assistant.accept(self.workspace, suggestion)
        except ConcordError as exc:
            self._fail(exc)
            return
        self.suggestions.pop(suggestion.turn, None)
        self.own.append(coding)
        self._draw_suggestions()
        self._refresh_codings()
        self._say(f"Accepted “{self._code_name(suggestion.code_id)}” on turn {suggestion.turn} ✓ · u undoes")

    def action_reject_suggestion(self) -> None:
        suggestion = self._suggestion_here()
        if suggestion is None:
            return
        try:
            assistant.reject(self.workspace, suggestion)
        except ConcordError as exc:
            self._fail(exc)
            return
        listed = self.suggestions.get(suggestion.turn, [])
        self.suggestions[suggestion.turn] = [s for s in listed if s.code_id != suggestion.code_id]
        self._draw_suggestions()
        self._schedule_suggestions()
        self._say(
            f"Rejected “{self._code_name(suggestion.code_id)}” on turn {suggestion.turn}: not suggested there again"
        )

    def _similar_source(self) -> SimilarSource:
        """The innermost own coding at the cursor, else the selection, else the turn."""
        text = self.detail.text
        here = self.own_codings_at_cursor()
        if here:
            coding = here[0]
            name = self._code_name(coding.code_id)
            return SimilarSource(
                text[coding.start : coding.end],
                f"“{name}” ({self._where(coding)})",
                self.transcript_id,
                coding.start,
                coding.end,
                coding.code_id,
                name,
            )
        selection = self.view.selection()
        if selection and selection[1] > selection[0]:
            where = workbench.describe_span(text, self.detail.turns, *selection)
            return SimilarSource(text[selection[0] : selection[1]], where, self.transcript_id, *selection)
        turn = self.view.current_turn()
        return SimilarSource(
            text[turn.char_start : turn.char_end],
            f"turn {turn.number}",
            self.transcript_id,
            turn.char_start,
            turn.char_end,
        )

    def action_more_like_this(self) -> None:
        source = self._similar_source()
        if not source.text.strip():
            self._say("Nothing to compare here: this turn is empty", "bold red")
            return
        self.app.push_screen(SimilarScreen(source), self._similar_done)

    def _similar_done(self, outcome: SimilarOutcome | None) -> None:
        if outcome is None:
            return
        if self.transcript_id in outcome.coded:
            self.own = coding_service.list_codings(self.workspace, self.transcript_id)
            self._refresh_codings()
        passage = outcome.passage
        if passage is None:
            return
        if passage.transcript_id == self.transcript_id:
            self.view.jump_to(passage.start, select_to=passage.end)
            self._say(f"Turn {passage.turn} ({passage.score:.2f} alike)")
            return
        summary = next(
            (s for s in transcript_service.list_transcripts(self.workspace) if s.id == passage.transcript_id), None
        )
        if summary is not None:
            self.flush_progress()
            self.app.open_transcript(summary, at=(passage.start, passage.end))
