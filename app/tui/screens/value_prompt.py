"""The value of a code that carries one: a small dialog asked when such a code is applied.

A code whose codebook gives it a rating scale (``scale:``) is applied with a number on that scale. On a
scale of single digits (such as 1-5) one key press answers; otherwise the number is typed and enter
confirms. Escape cancels, and then nothing is coded.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from concord.codebooks.spec import ScaleSpec


def parse_value(text: str) -> float | None:
    """The number typed, with a decimal comma read as a point; None when it is not a number."""
    cleaned = text.strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def single_digit_points(scale: ScaleSpec) -> bool:
    """Whether every value on the scale is one digit, so that one key press can answer."""
    points = scale.point_values()
    return points is not None and all(p.is_integer() and 0 <= p <= 9 for p in points)


class ValuePrompt(ModalScreen[float | None]):
    """Asks for the value of a code on its scale; answers a number on the scale, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="value.cancel")]
    DEFAULT_CSS = """
    ValuePrompt { align: center middle; }
    ValuePrompt > Vertical {
        width: 60; height: auto; padding: 1 2; border: round $accent; background: $surface;
    }
    ValuePrompt #value-error { color: $error; height: auto; }
    """

    def __init__(self, code_name: str, scale: ScaleSpec) -> None:
        super().__init__()
        self.code_name = code_name
        self.scale = scale
        self.quick = single_digit_points(scale)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Value for “{self.code_name}”", style="bold"), classes="dialog-title")
            yield Static(Text(self.scale.describe()), id="value-scale")
            yield Input(placeholder="a number on the scale", restrict=r"[-0-9.,]*", id="value-input")
            yield Static("", id="value-error")
            hint = "a digit answers · " if self.quick else ""
            yield Static(Text(f"{hint}enter: code with this value · escape: cancel", style="dim"))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        # On a scale of single digits the first digit typed is the answer, if it is on the scale.
        event.stop()
        error = self.query_one("#value-error", Static)
        error.update("")
        if not self.quick or len(event.value) != 1 or not event.value.isdigit():
            return
        value = float(event.value)
        if self.scale.allows(value):
            self.dismiss(value)
        else:
            error.update(Text(f"{event.value} is not on the scale ({self.scale.describe()})"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = parse_value(event.value)
        error = self.query_one("#value-error", Static)
        if value is None:
            error.update(Text("Type a number, then enter"))
            return
        if not self.scale.allows(value):
            error.update(Text(f"{value:g} is not on the scale ({self.scale.describe()})"))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
