"""A fuzzy code picker: find a code by name, label or definition, read its definition,
then apply it, or type a new name and create an inductive code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, utils
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from concord.app.tui.widgets.codebook_panel import code_description
from concord.app.tui.widgets.vim import VimOptionList
from concord.services.dto import CodeInfo

CREATE_ID = "create"
MIN_SCORE = 60.0
# A definition mentions many words; a hit there counts for less than one in the name.
DEFINITION_WEIGHT = 0.85


@dataclass(frozen=True)
class Picked:
    """The picker's answer: an existing code, or the name of a new inductive code."""

    code_id: int | None = None
    new_name: str | None = None


def code_score(query: str, code: CodeInfo) -> float:
    """How well a query matches a code's name or label (0-100), or, weighted down, its texts."""
    score = 0.0
    for name in (code.name, code.label):
        if name:
            score = max(score, fuzz.WRatio(query, name, processor=utils.default_process))
    if len(query) >= 3:
        for body in (code.definition, code.inclusion):
            if body:
                score = max(score, DEFINITION_WEIGHT * fuzz.partial_ratio(query, body, processor=utils.default_process))
    return score


def rank_codes(query: str, codes: Sequence[CodeInfo]) -> list[CodeInfo]:
    """Codes matching the query, best first (ties keep codebook order); all codes for no query."""
    query = query.strip()
    if not query:
        return list(codes)
    scored = [(code_score(query, code), index, code) for index, code in enumerate(codes)]
    return [code for score, _, code in sorted(scored, key=lambda item: (-item[0], item[1])) if score >= MIN_SCORE]


def code_prompt(code: CodeInfo) -> Text:
    prompt = Text()
    prompt.append(f"{code.hotkey} " if code.hotkey else "  ", style="bold")
    prompt.append(code.name)
    if len(code.path) > 1:
        prompt.append(f"  {' › '.join(code.path[:-1])}", style="dim")
    return prompt


class CodePicker(ModalScreen[Picked | None]):
    """Type to filter; up/down to choose; enter to commit; escape to cancel."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
        Binding("down", "move(1)", "Next code", show=False, id="picker.next"),
        Binding("up", "move(-1)", "Previous code", show=False, id="picker.previous"),
    ]

    def __init__(
        self,
        codes: Sequence[CodeInfo],
        *,
        title: str = "Apply a code",
        allow_create: bool = True,
        prefer_create: bool = False,
        query: str = "",
    ) -> None:
        super().__init__()
        self.codes = list(codes)
        self.title_text = title
        self.allow_create = allow_create
        self.prefer_create = prefer_create
        self.initial_query = query

    def compose(self) -> ComposeResult:
        placeholder = "Name of the new code" if self.prefer_create else "Search codes by name, label or definition"
        if self.allow_create and not self.prefer_create:
            placeholder += ", or type a new name"
        with Vertical(id="picker-dialog", classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Input(self.initial_query, placeholder=placeholder, id="picker-input")
            with Horizontal(id="picker-body"):
                yield VimOptionList(id="picker-options", markup=False)
                with VerticalScroll(id="picker-definition-scroll"):
                    yield Static(id="picker-definition")
            yield Static(Text("enter apply · ↑↓ choose · esc cancel", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._refill(self.initial_query)

    @property
    def options(self) -> OptionList:
        return self.query_one("#picker-options", OptionList)

    def _refill(self, query: str) -> None:
        options: list[Option] = [
            Option(code_prompt(code), id=f"code:{code.id}") for code in rank_codes(query, self.codes)
        ]
        name = " ".join(query.split())
        exists = any(code.name.casefold() == name.casefold() for code in self.codes)
        if self.allow_create and name and not exists:
            create = Option(Text.assemble(("+ create ", "bold"), f"“{name}”"), id=CREATE_ID)
            if self.prefer_create:
                options.insert(0, create)
            else:
                options.append(create)
        option_list = self.options
        option_list.set_options(options)
        if options:
            option_list.highlighted = 0
        self._describe()

    def _describe(self) -> None:
        definition = self.query_one("#picker-definition", Static)
        option = self.highlighted_option
        if option is None:
            definition.update(Text("No matching code", style="dim"))
        elif option.id == CREATE_ID:
            definition.update(
                Text.assemble(
                    "Create a new inductive code named ",
                    (self.typed_name, "bold"),
                    ", owned by you, and apply it here.",
                )
            )
        else:
            definition.update(code_description(self._code(option.id)))

    def _code(self, option_id: str) -> CodeInfo:
        code_id = int(option_id.split(":", 1)[1])
        return next(code for code in self.codes if code.id == code_id)

    @property
    def typed_name(self) -> str:
        return " ".join(self.query_one(Input).value.split())

    @property
    def highlighted_option(self) -> Option | None:
        option_list = self.options
        if option_list.highlighted is None or option_list.option_count == 0:
            return None
        return option_list.get_option_at_index(option_list.highlighted)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._refill(event.value)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._describe()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._commit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._commit()

    def _commit(self) -> None:
        option = self.highlighted_option
        if option is None:
            self.app.bell()
            return
        if option.id == CREATE_ID:
            self.dismiss(Picked(new_name=self.typed_name))
        else:
            self.dismiss(Picked(code_id=self._code(option.id).id))

    def action_move(self, step: int) -> None:
        option_list = self.options
        if option_list.option_count:
            current = option_list.highlighted or 0
            option_list.highlighted = max(0, min(option_list.option_count - 1, current + step))

    def action_cancel(self) -> None:
        self.dismiss(None)
