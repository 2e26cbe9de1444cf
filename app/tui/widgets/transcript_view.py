"""TranscriptView: the scrolling, keyboard-first view of one transcript at the heart of coding.

A Line API widget: it draws only the lines on screen, each from the wrap index in
``app.tui.layout`` and an LRU cache of finished strips, so a 20,000-turn transcript costs the same
to scroll as a short one. Transcript text is user text: it is turned into Segments as it is, never
read as markup, so "[laughs]" shows as typed.

The view owns the cursor and the selection and reports them with ``CursorMoved`` and
``SelectionChanged``; applying codes is the screen's business (the keys for it are left free).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.color import Color
from textual.events import MouseDown, MouseMove, MouseUp, Resize
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from concord.app.tui.layout import CONTROL_TO_SPACE, LayoutSource, SpanIndex, TranscriptLayout
from concord.codebooks.loader import colour_hex
from concord.services.dto import CodeInfo, CodingInfo, TranscriptDetail, TurnInfo
from concord.services.workbench import role_name

# Code markers in the gutter: up to this many one-cell blocks, then "+N" for the rest.
GUTTER_SLOTS = 4
GUTTER_WIDTH = GUTTER_SLOTS + 1
CODE_TINT = 0.35  # how much of a code's colour tints the background of its coded text
ROLES = ("therapist", "client", "interviewer", "other")
# Theme colours used, in turn, for codes whose codebook gives no colour.
FALLBACK_PALETTE = ("primary", "secondary", "accent", "warning", "success", "error")

Selection = tuple[int, int]


@dataclass(frozen=True)
class _CodeLook:
    marker: str
    tint: Style  # background for own coded text
    block: Style  # gutter block for an own coding
    outline: Style  # text and gutter style for an overlay coding


class TranscriptView(ScrollView, can_focus=True):
    """One transcript: turn numbers, times, speakers, coded spans, cursor and selection."""

    # Mouse drags select transcript offsets here, not the screen's plain-text selection.
    ALLOW_SELECT = False

    BINDINGS: list[BindingType] = [
        Binding("j,down", "next_turn", "Next turn", id="transcript.next-turn"),
        Binding("k,up", "previous_turn", "Previous turn", id="transcript.previous-turn"),
        Binding(")", "next_sentence", "Next sentence", show=False, id="transcript.next-sentence"),
        Binding("(", "previous_sentence", "Previous sentence", show=False, id="transcript.previous-sentence"),
        Binding("w,ctrl+right", "next_word", "Next word", show=False, id="transcript.next-word"),
        Binding("b,ctrl+left", "previous_word", "Previous word", show=False, id="transcript.previous-word"),
        Binding("l,right", "next_char", "Next character", show=False, id="transcript.next-char"),
        Binding("h,left", "previous_char", "Previous character", show=False, id="transcript.previous-char"),
        Binding("g,home", "start", "Start of transcript", show=False, id="transcript.start"),
        Binding("G,end", "end", "End of transcript", show=False, id="transcript.end"),
        Binding("pagedown", "page_down", "Page down", show=False, id="transcript.page-down"),
        Binding("pageup", "page_up", "Page up", show=False, id="transcript.page-up"),
        Binding(
            "shift+right", "extend('next_char')", "Select character right", show=False, id="transcript.select-next-char"
        ),
        Binding(
            "shift+left",
            "extend('previous_char')",
            "Select character left",
            show=False,
            id="transcript.select-previous-char",
        ),
        Binding(
            "shift+down", "extend('next_turn')", "Select to turn end", show=False, id="transcript.select-next-turn"
        ),
        Binding(
            "shift+up",
            "extend('previous_turn')",
            "Select to turn start",
            show=False,
            id="transcript.select-previous-turn",
        ),
        Binding(
            "ctrl+shift+right", "extend('next_word')", "Select word right", show=False, id="transcript.select-next-word"
        ),
        Binding(
            "ctrl+shift+left",
            "extend('previous_word')",
            "Select word left",
            show=False,
            id="transcript.select-previous-word",
        ),
        Binding("v", "toggle_visual", "Select mode", id="transcript.visual"),
        Binding("t", "select_turn", "Select turn", id="transcript.select-turn"),
        Binding("escape", "clear_selection", "Clear selection", show=False, id="transcript.clear-selection"),
    ]

    COMPONENT_CLASSES = {
        "transcript-view--therapist",
        "transcript-view--client",
        "transcript-view--interviewer",
        "transcript-view--other",
        "transcript-view--turn-number",
        "transcript-view--timestamp",
        "transcript-view--video",
        "transcript-view--replayed",
        "transcript-view--nonverbal",
        "transcript-view--selection",
        "transcript-view--cursor",
        "transcript-view--cursor-blurred",
        "transcript-view--gutter",
    }

    DEFAULT_CSS = """
    TranscriptView {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: scroll;
        & > .transcript-view--therapist { color: $text-primary; text-style: bold; }
        & > .transcript-view--client { color: $text-success; text-style: bold; }
        & > .transcript-view--interviewer { color: $text-accent; text-style: bold; }
        & > .transcript-view--other { color: $text-warning; text-style: bold; }
        & > .transcript-view--turn-number { color: $text-muted; }
        & > .transcript-view--timestamp { color: $text-muted; }
        & > .transcript-view--video { color: $text-accent; }
        & > .transcript-view--replayed { text-style: italic; }
        & > .transcript-view--nonverbal { color: $text-muted; text-style: italic; }
        & > .transcript-view--selection { background: $primary 45%; }
        & > .transcript-view--cursor { background: $foreground; color: $background; }
        & > .transcript-view--cursor-blurred { text-style: underline; }
        & > .transcript-view--gutter { color: $text-muted; }
    }
    """

    @dataclass
    class CursorMoved(Message):
        """The cursor is at a new offset of the transcript text (posted coalesced)."""

        offset: int
        turn_number: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TranscriptView.CursorMoved)

        @property
        def control(self) -> TranscriptView | None:
            """The view that posted it (lets ``@on(..., "#id")`` pick a view)."""
            return getattr(self, "_view", None)

    @dataclass
    class SelectionChanged(Message):
        """The selection is a new [start, end) range of the transcript text, or gone (None)."""

        selection: Selection | None

        @property
        def control(self) -> TranscriptView | None:
            """The view that posted it (lets ``@on(..., "#id")`` pick a view)."""
            return getattr(self, "_view", None)

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None, disabled: bool = False
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.detail: TranscriptDetail | None = None
        self.codes: Mapping[int, CodeInfo] = {}
        self._cursor = 0
        self._anchor: int | None = None
        self.visual: bool = False
        self._source: LayoutSource | None = None
        self._layout: TranscriptLayout | None = None
        self._wrapped_width = -1
        self._own: SpanIndex[CodingInfo] | None = None
        self._overlay: SpanIndex[CodingInfo] | None = None
        self._codings: tuple[CodingInfo, ...] = ()
        self._overlay_codings: tuple[CodingInfo, ...] = ()
        self._version = 0  # bumped whenever codings or colours change: old cached strips go stale
        self._strips: LRUCache[tuple[int, int, int], Strip] = LRUCache(1024)
        self._looks: dict[int, _CodeLook] = {}
        self._dragging = False
        self._posted_selection: Selection | None = None
        # The margin marks a coding with its codebook's letter: a hotkey digit means another code in
        # every codebook, so a digit in the margin could not say which code it was.
        self.book_letters: dict[str, str] = {}
        # The coding assistant's best suggestion per turn index: (code id, confidence), drawn dimmed.
        self._suggested: dict[int, tuple[int, float]] = {}

    # --- public API ----------------------------------------------------------------------------

    def load(
        self,
        detail: TranscriptDetail,
        codes: Mapping[int, CodeInfo],
        codings: Sequence[CodingInfo],
        overlay: Sequence[CodingInfo] = (),
        cursor: int = 0,
    ) -> None:
        """Show a transcript with the acting coder's codings (and optionally someone else's overlay)."""
        self.detail = detail
        self.codes = dict(codes)
        # Speakers by role ("therapist", "client"): imports label them "T", "Therapist" or "counsellor".
        self._source = (
            LayoutSource(detail.text, detail.turns, lambda turn: role_name(turn.speaker_role)) if detail.turns else None
        )
        self._layout = None
        self._suggested = {}
        self._set_spans(codings, overlay)
        self._anchor = None
        self.visual = False
        self._cursor = self._source.clamp(cursor) if self._source else 0
        self._relayout()
        if self._layout is not None:
            self._show_cursor(center=True)
        self.refresh()
        self._announce(cursor_moved=True)

    def set_book_letters(self, letters: Mapping[str, str]) -> None:
        """The letter each codebook's codings carry in the margin."""
        self.book_letters = dict(letters)
        self._looks.clear()
        self._version += 1
        self.refresh()

    def set_codings(self, codings: Sequence[CodingInfo], overlay: Sequence[CodingInfo] | None = None) -> None:
        """Replace the codings (and the overlay, unless None); redraws the lines on screen."""
        self._set_spans(codings, self._overlay_codings if overlay is None else overlay)
        self.refresh()

    def set_suggestions(self, suggestions: Mapping[int, tuple[int, float]]) -> None:
        """The assistant's suggestion for each turn (by turn number): shown dimmed in the margin of an
        uncoded turn, with its codebook letter and the confidence in percent on the turn's first line."""
        by_number = {turn.number: index for index, turn in enumerate(self._source.turns)} if self._source else {}
        self._suggested = {by_number[n]: value for n, value in suggestions.items() if n in by_number}
        self._version += 1
        self.refresh()

    def jump_to(self, offset: int, select_to: int | None = None) -> None:
        """Put the cursor at `offset`; with `select_to`, select from `offset` to `select_to`."""
        if self._source is None:
            return
        before = self._state()
        self.visual = False
        if select_to is None:
            self._anchor = None
            self._cursor = self._source.clamp(offset)
        else:
            self._anchor = self._source.clamp(offset)
            self._cursor = self._source.clamp(select_to)
        self._moved(before, center=True)

    @property
    def cursor(self) -> int:
        """The cursor's offset into ``detail.text``, always inside some turn's text (or at its end)."""
        return self._cursor

    @cursor.setter
    def cursor(self, offset: int) -> None:
        if self._source is None:
            return
        before = self._state()
        self._cursor = self._source.clamp(offset)
        self._moved(before)

    @property
    def anchor(self) -> int | None:
        """Where the selection started (None: no selection); the cursor is its other end."""
        return self._anchor

    @anchor.setter
    def anchor(self, offset: int | None) -> None:
        if self._source is None:
            return
        before = self._state()
        self._anchor = None if offset is None else self._source.clamp(offset)
        self._moved(before)

    def selection(self) -> Selection | None:
        if self._anchor is None:
            return None
        return (min(self._anchor, self._cursor), max(self._anchor, self._cursor))

    def current_turn(self) -> TurnInfo:
        if self._source is None:
            raise LookupError("no transcript with turns is loaded")
        return self._source.turns[self._source.turn_at(self._cursor)]

    def codings_at(self, offset: int) -> list[CodingInfo]:
        """The acting coder's codings covering the character at `offset`."""
        if self._source is None or self._own is None:
            return []
        return self._own.at(self._source.turn_at(offset), offset)

    @property
    def layout_index(self) -> TranscriptLayout | None:
        """The current wrap (None until the view has a width and a transcript)."""
        return self._layout

    # --- spans and colours --------------------------------------------------------------------

    def _set_spans(self, codings: Sequence[CodingInfo], overlay: Sequence[CodingInfo]) -> None:
        self._codings, self._overlay_codings = tuple(codings), tuple(overlay)
        if self._source is None:
            self._own = self._overlay = None
        else:
            self._own = SpanIndex(self._codings, self._source)
            self._overlay = SpanIndex(self._overlay_codings, self._source)
        self._version += 1

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._looks.clear()
        self._version += 1

    def _look(self, code_id: int) -> _CodeLook:
        look = self._looks.get(code_id)
        if look is None:
            look = self._looks[code_id] = self._make_look(code_id)
        return look

    def _make_look(self, code_id: int) -> _CodeLook:
        code = self.codes.get(code_id)
        colour: Color | None = None
        if code is not None and code.colour:
            try:
                colour = Color.parse(colour_hex(code.colour))
            except ValueError:
                colour = None
        if colour is None:
            variables = self.app.theme_variables
            name = FALLBACK_PALETTE[code_id % len(FALLBACK_PALETTE)]
            colour = Color.parse(variables.get(name, "#808080"))
        background = self._background()
        marker = "?"
        if code is not None:
            marker = self.book_letters.get(code.codebook) or (code.codebook or "?")[:1].upper()
        contrast = colour.get_contrast_text(1.0)
        return _CodeLook(
            marker=marker,
            tint=Style(bgcolor=background.blend(colour, CODE_TINT).rich_color),
            block=Style(bgcolor=colour.rich_color, color=contrast.rich_color, bold=True),
            outline=Style(color=colour.rich_color, underline=True),
        )

    def _background(self) -> Color:
        bgcolor = self.rich_style.bgcolor
        return Color.from_rich_color(bgcolor) if bgcolor is not None else Color(0, 0, 0)

    # --- geometry -------------------------------------------------------------------------------

    def _text_width(self) -> int:
        return self.scrollable_content_region.width

    def _relayout(self) -> None:
        """Wrap to the current width (nothing to do before the view has one)."""
        width = self._text_width()
        self._wrapped_width = width
        if self._source is None or width <= 0:
            self._layout = None
            self.virtual_size = Size(max(width, 0), 0)
            return
        self._layout = TranscriptLayout(self._source, width, GUTTER_WIDTH)
        self._version += 1
        self.virtual_size = Size(self._layout.width, self._layout.line_count)

    def _on_resize(self, event: Resize) -> None:
        if self._source is None or self._text_width() == self._wrapped_width:
            return
        old = self._layout
        top_offset = None
        if old is not None and old.line_count:
            top_offset = old.line_starts[min(round(self.scroll_y), old.line_count - 1)]
        self._relayout()
        if self._layout is None:
            return
        if top_offset is not None:  # keep the same text at the top while the width changes
            self.scroll_to(y=self._layout.line_of(top_offset), animate=False, immediate=True)
            self._show_cursor()
        else:
            self._show_cursor(center=True)

    def _show_cursor(self, center: bool = False) -> None:
        layout = self._layout
        if layout is None:
            return
        y, _x = layout.offset_to_yx(self._cursor)
        height = self.scrollable_content_region.height
        top = round(self.scroll_y)
        if center and not top <= y < top + height:
            self.scroll_to(y=max(0, y - height // 2), animate=False, immediate=True)
        else:
            self.scroll_to_region(Region(0, y, 1, 1), animate=False, immediate=True, x_axis=False)

    # --- rendering ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        if self._layout is None and self._source is not None and self._text_width() > 0:
            # The first frame can come before the first Resize: wrap now so it already shows text.
            self._relayout()
            self.call_after_refresh(self._show_cursor, True)
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        layout = self._layout
        line_y = scroll_y + y
        if layout is None or line_y >= layout.line_count:
            return Strip.blank(width, base)
        selection = self.selection()
        start, end = layout.line_starts[line_y], layout.line_ends[line_y]
        touched = (start <= self._cursor <= end) or (
            selection is not None and selection[0] <= end and selection[1] >= start and selection[0] != selection[1]
        )
        if touched:
            strip = self._build_line(line_y, selection, self._cursor)
        else:
            key = (line_y, layout.width, self._version)
            strip = self._strips.get(key)
            if strip is None:
                strip = self._strips[key] = self._build_line(line_y, None, None)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _component(self, name: str) -> Style:
        return self.get_component_rich_style(f"transcript-view--{name}")

    def _build_line(self, y: int, selection: Selection | None, cursor: int | None) -> Strip:
        layout, source = self._layout, self._source
        assert layout is not None and source is not None
        base = self.rich_style
        info = layout.line(y)
        turn = source.turns[info.turn_index]
        start, shown_end = info.start, layout.shown_end(y)
        own = self._own.overlapping(info.turn_index, info.start, info.end) if self._own else []
        overlay = self._overlay.overlapping(info.turn_index, info.start, info.end) if self._overlay else []

        suggested = self._suggested.get(info.turn_index) if not own else None
        if suggested is not None:
            segments = self._suggestion_segments(suggested, info.line_in_turn == 0, base)
        else:
            segments = self._gutter_segments(own, overlay, base)
        if info.line_in_turn == 0:
            segments += self._header_segments(info.turn_index, turn, base)
        else:
            segments.append(Segment(" " * source.header_width, base))

        text_style = base + self._component("replayed") if turn.replayed else base
        nonverbal_style = self._component("nonverbal")
        nonverbal_style = Style(color=nonverbal_style.color, italic=nonverbal_style.italic, dim=nonverbal_style.dim)
        selection_bg = Style(bgcolor=self._component("selection").bgcolor)
        cursor_style = self._component("cursor") if self.has_focus else self._component("cursor-blurred")

        cuts = {start, shown_end}
        nonverbal = [(a, b) for a, b in turn.nonverbal if a < shown_end and b > start]
        for a, b in nonverbal:
            cuts.update((max(a, start), min(b, shown_end)))
        for span in (*own, *overlay):
            cuts.update((max(span.start, start), min(span.end, shown_end)))
        if selection is not None:
            cuts.update((min(max(selection[0], start), shown_end), min(max(selection[1], start), shown_end)))
        if cursor is not None and start <= cursor < shown_end:
            cuts.update((cursor, cursor + 1))
        points = sorted(cuts)
        text = source.text
        for a, b in itertools.pairwise(points):
            style = text_style
            if any(na <= a < nb for na, nb in nonverbal):
                style = style + nonverbal_style
            covering = [span for span in own if span.start <= a < span.end]
            if covering:
                innermost = min(covering, key=lambda span: span.end - span.start)
                style = style + self._look(innermost.code_id).tint
            for span in overlay:
                if span.start <= a < span.end:
                    style = style + self._look(span.code_id).outline
                    break
            if selection is not None and selection[0] <= a < selection[1]:
                style = style + selection_bg
            if cursor is not None and a == cursor:
                style = style + cursor_style
            segments.append(Segment(text[a:b].translate(CONTROL_TO_SPACE), style))
        used = layout.text_x + source.cells(start, shown_end, info.turn_index)
        # A cursor after the last character drawn gets a cell of its own, unless that position
        # is the first one of the next line (a wrapped line's end).
        is_last = y + 1 == layout.turn_first_line[info.turn_index + 1]
        if cursor is not None and cursor == shown_end and (cursor < info.end or is_last):
            segments.append(Segment(" ", base + cursor_style))
            used += 1
        if used < layout.width:
            segments.append(Segment(" " * (layout.width - used), base))
        return Strip(segments, max(used, layout.width))

    def _gutter_segments(self, own: list[CodingInfo], overlay: list[CodingInfo], base: Style) -> list[Segment]:
        codes: list[tuple[int, bool]] = []
        seen: set[tuple[int, bool]] = set()
        for spans, is_own in ((own, True), (overlay, False)):
            for span in spans:
                key = (span.code_id, is_own)
                if key not in seen:
                    seen.add(key)
                    codes.append(key)
        segments: list[Segment] = []
        shown = codes if len(codes) <= GUTTER_SLOTS else codes[: GUTTER_SLOTS - 2]
        for code_id, is_own in shown:
            look = self._look(code_id)
            segments.append(Segment(look.marker, base + (look.block if is_own else look.outline)))
        used = len(shown)
        if len(codes) > GUTTER_SLOTS:
            hidden = len(codes) - len(shown)
            segments.append(Segment(f"+{min(hidden, 9)}", base + self._component("gutter")))
            used += 2
        segments.append(Segment(" " * (GUTTER_WIDTH - used), base))
        return segments

    def _suggestion_segments(self, suggested: tuple[int, float], first_line: bool, base: Style) -> list[Segment]:
        code_id, confidence = suggested
        look = self._look(code_id)
        mark = f"{look.marker}{min(99, round(confidence * 100)):02d}" if first_line else look.marker
        style = base + Style(color=look.outline.color, dim=True, italic=True)
        return [Segment(mark, style), Segment(" " * (GUTTER_WIDTH - len(mark)), base)]

    def _header_segments(self, turn_index: int, turn: TurnInfo, base: Style) -> list[Segment]:
        assert self._source is not None
        role = turn.speaker_role if turn.speaker_role in ROLES else "other"
        styles = {
            "number": self._component("turn-number"),
            "time": self._component("timestamp"),
            "mark": self._component("video"),
            "label": self._component(role),
            "space": base,
        }
        return [
            Segment(part.text.translate(CONTROL_TO_SPACE), styles[part.kind])
            for part in self._source.header(turn_index)
        ]

    # --- state changes --------------------------------------------------------------------------

    def _state(self) -> tuple[int, Selection | None]:
        return self._cursor, self.selection()

    def _moved(self, before: tuple[int, Selection | None], center: bool = False) -> None:
        """Redraw what the move touched, keep the cursor on screen, tell the screen."""
        old_cursor, old_selection = before
        self._refresh_offsets(old_cursor, self._cursor)
        new_selection = self.selection()
        if old_selection != new_selection:
            self._refresh_selection_change(old_selection, new_selection)
        self._show_cursor(center=center)
        self._announce(cursor_moved=old_cursor != self._cursor)

    def _announce(self, cursor_moved: bool) -> None:
        if cursor_moved and self._source is not None:
            self._post(self.CursorMoved(self._cursor, self.current_turn().number))
        selection = self.selection()
        if selection != self._posted_selection:
            self._posted_selection = selection
            self._post(self.SelectionChanged(selection))

    def _post(self, message: CursorMoved | SelectionChanged) -> None:
        message._view = self  # the contract's constructors take only the values; `control` needs the view
        self.post_message(message)

    def _refresh_offsets(self, *offsets: int) -> None:
        layout = self._layout
        if layout is None:
            return
        for offset in offsets:
            self._refresh_lines(layout.lines_between(offset, offset))

    def _refresh_selection_change(self, old: Selection | None, new: Selection | None) -> None:
        """Refresh the lines whose selected part changed: the difference of the two ranges."""
        layout = self._layout
        if layout is None:
            return
        if old is None or new is None:
            for span in (old, new):
                if span is not None:
                    self._refresh_lines(layout.lines_between(*span))
            return
        for a, b in ((old[0], new[0]), (old[1], new[1])):
            if a != b:
                self._refresh_lines(layout.lines_between(a, b))

    def _refresh_lines(self, lines: range) -> None:
        top = round(self.scroll_y)
        bottom = top + self.scrollable_content_region.height
        first, last = max(lines.start, top), min(lines.stop, bottom)
        if first < last:
            self.refresh_lines(first, last - first)

    # --- motions --------------------------------------------------------------------------------

    _FORWARD = {
        "next_turn": "turn_next_start",
        "next_sentence": "sentence_next_start",
        "next_word": "word_next_start",
        "next_char": "char_right",
    }
    _FORWARD_SELECTING = {
        "next_turn": "turn_next_end",
        "next_sentence": "sentence_next_end",
        "next_word": "word_next_end",
        "next_char": "char_right",
    }
    _BACKWARD = {
        "previous_turn": "turn_prev_start",
        "previous_sentence": "sentence_prev_start",
        "previous_word": "word_prev_start",
        "previous_char": "char_left",
    }

    def _target(self, motion: str, selecting: bool) -> int:
        """Where a motion takes the cursor; forward motions stop at unit ends while selecting."""
        source = self._source
        assert source is not None
        if motion == "start":
            return source.first_position
        if motion == "end":
            return source.last_position
        if motion in ("page_down", "page_up"):
            return self._page_target(down=motion == "page_down")
        table = self._FORWARD_SELECTING if selecting else self._FORWARD
        name = table.get(motion) or self._BACKWARD[motion]
        return getattr(source, name)(self._cursor)

    def _page_target(self, down: bool) -> int:
        layout = self._layout
        if layout is None:
            return self._cursor
        height = max(1, self.scrollable_content_region.height)
        y, x = layout.offset_to_yx(self._cursor)
        target_y = min(layout.line_count - 1, y + height) if down else max(0, y - height)
        self.scroll_to(y=self.scroll_y + (height if down else -height), animate=False, immediate=True)
        return layout.yx_to_offset(target_y, x)

    def _move(self, motion: str, extend: bool) -> None:
        if self._source is None:
            return
        before = self._state()
        selecting = extend or self.visual
        if selecting and self._anchor is None:
            self._anchor = self._cursor
        if not selecting:
            self._anchor = None
        self._cursor = self._target(motion, selecting)
        self._moved(before)

    def action_next_turn(self) -> None:
        self._move("next_turn", extend=False)

    def action_previous_turn(self) -> None:
        self._move("previous_turn", extend=False)

    def action_next_sentence(self) -> None:
        self._move("next_sentence", extend=False)

    def action_previous_sentence(self) -> None:
        self._move("previous_sentence", extend=False)

    def action_next_word(self) -> None:
        self._move("next_word", extend=False)

    def action_previous_word(self) -> None:
        self._move("previous_word", extend=False)

    def action_next_char(self) -> None:
        self._move("next_char", extend=False)

    def action_previous_char(self) -> None:
        self._move("previous_char", extend=False)

    def action_start(self) -> None:
        self._move("start", extend=False)

    def action_end(self) -> None:
        self._move("end", extend=False)

    def action_page_down(self) -> None:
        self._move("page_down", extend=False)

    def action_page_up(self) -> None:
        self._move("page_up", extend=False)

    def action_extend(self, motion: str) -> None:
        if motion not in self._FORWARD and motion not in self._BACKWARD:
            raise ValueError(f"unknown motion {motion!r}")
        self._move(motion, extend=True)

    def action_toggle_visual(self) -> None:
        if self._source is None:
            return
        before = self._state()
        self.visual = not self.visual
        self._anchor = self._cursor if self.visual else None
        self._moved(before)

    def action_select_turn(self) -> None:
        if self._source is None:
            return
        before = self._state()
        turn = self.current_turn()
        self.visual = False
        self._anchor, self._cursor = turn.char_start, turn.char_end
        self._moved(before)

    def action_clear_selection(self) -> None:
        before = self._state()
        self.visual = False
        self._anchor = None
        self._moved(before)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Escape with nothing to clear goes on to the screen (which may use it to leave).
        if action == "clear_selection":
            return self._anchor is not None or self.visual
        return True

    # --- mouse ------------------------------------------------------------------------------

    def _offset_at(self, event: MouseDown | MouseMove | MouseUp) -> int | None:
        layout = self._layout
        if layout is None or layout.line_count == 0:
            return None
        position = event.get_content_offset_capture(self)
        x = position.x + round(self.scroll_x)
        y = position.y + round(self.scroll_y)
        return layout.yx_to_offset(y, x)

    async def _on_mouse_down(self, event: MouseDown) -> None:
        if event.button != 1 or event.get_content_offset(self) is None:
            return
        offset = self._offset_at(event)
        if offset is None:
            return
        event.stop()
        before = self._state()
        self.visual = False
        if event.shift:
            if self._anchor is None:
                self._anchor = self._cursor
        else:
            self._anchor = None
        self._cursor = offset
        self._dragging = True
        self.capture_mouse()
        self._moved(before)

    async def _on_mouse_move(self, event: MouseMove) -> None:
        if not self._dragging:
            return
        height = self.scrollable_content_region.height
        position = event.get_content_offset_capture(self)
        if position.y < 0:  # dragging above or below the view scrolls it
            self.scroll_to(y=self.scroll_y - 1, animate=False, immediate=True)
        elif position.y >= height:
            self.scroll_to(y=self.scroll_y + 1, animate=False, immediate=True)
        offset = self._offset_at(event)
        if offset is None or offset == self._cursor:
            return
        before = self._state()
        if self._anchor is None:
            self._anchor = self._cursor
        self._cursor = offset
        self._moved(before)

    async def _on_mouse_up(self, event: MouseUp) -> None:
        if not self._dragging:
            return
        self._dragging = False
        self.release_mouse()
        if self._anchor is not None and self._anchor == self._cursor:
            before = self._state()
            self._anchor = None
            self._moved(before)
