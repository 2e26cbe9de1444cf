"""Horizontal bars drawn with block characters: per theme and sub-theme, one bar per group with the % of units
that show it. Lines are laid out for the widget's width, so the bars use whatever room there is."""

from __future__ import annotations

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from concord.services.prevalence import Prevalence

# Eighths of a cell, so a bar's length is exact to 1/8 of a character.
PARTIAL_BLOCKS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
FULL_BLOCK = "█"
# Theme colours (never fixed hex), one per group in turn.
GROUP_STYLES = ("$primary", "$accent", "$success", "$warning", "$error", "$secondary")
PERCENT_WIDTH = 4  # "100%"
MIN_BAR = 8
GAP = 1
HEADER = "Theme / sub-theme"


def bar(percent: float, width: int) -> str:
    """A bar of ``percent`` (0-100) of ``width`` cells, to the nearest eighth of a cell."""
    eighths = round(max(0.0, min(100.0, percent)) / 100.0 * width * 8)
    full, rest = divmod(eighths, 8)
    return FULL_BLOCK * full + PARTIAL_BLOCKS[rest]


def group_label(name: str, size: int, in_group: int | None = None) -> str:
    """'high (n=10)', or 'high (2 covered / 10)' when the layer covers only some of the group."""
    if in_group is not None and in_group != size:
        return f"{name} ({size} covered / {in_group})"
    return f"{name} (n={size})"


def group_labels(prevalence: Prevalence) -> list[str]:
    totals = prevalence.in_group or (None,) * len(prevalence.sizes)
    return [group_label(name, size, total) for name, size, total in zip(prevalence.groups, prevalence.sizes, totals)]


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def chart_lines(prevalence: Prevalence, width: int) -> list[Content]:
    """The chart as lines of at most ``width`` cells: a header, then per theme / sub-theme one line per group."""
    groups = group_labels(prevalence)
    group_width = max((len(g) for g in groups), default=0)
    wanted_label = max([len(HEADER)] + [2 * row.depth + len(row.label) for row in prevalence.rows])
    fixed = group_width + PERCENT_WIDTH + 3 * GAP
    label_width = max(8, min(wanted_label, width - fixed - MIN_BAR, max(16, width // 3)))
    bar_width = max(1, width - label_width - fixed)
    gap = " " * GAP
    noun = f"covered {prevalence.unit_noun}" if prevalence.partial else prevalence.unit_noun
    scale = _fit(f"% of {noun} with it", bar_width + GAP + PERCENT_WIDTH).rstrip()
    lines = [Content.styled(_fit(HEADER, label_width) + gap + " " * group_width + gap + scale, "bold")]
    for row in prevalence.rows:
        if row.depth == 0 and len(lines) > 1:
            lines.append(Content(""))
        for index, (label, percent) in enumerate(zip(groups, row.percent)):
            style = GROUP_STYLES[index % len(GROUP_STYLES)]
            name = _fit("  " * row.depth + row.label, label_width) if index == 0 else " " * label_width
            drawn = bar(percent, bar_width)
            lines.append(
                Content.assemble(
                    (name, "bold" if row.depth == 0 and index == 0 else ""),
                    gap,
                    (label.ljust(group_width), style),
                    gap,
                    (drawn, style),
                    " " * (bar_width - len(drawn)),
                    gap,
                    f"{percent:.0f}%".rjust(PERCENT_WIDTH),
                )
            )
    return lines


class PrevalenceChart(Widget):
    """Draws a Prevalence; empty until one is given."""

    DEFAULT_CSS = """
    PrevalenceChart {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prevalence: Prevalence | None = None

    def show(self, prevalence: Prevalence | None) -> None:
        self.prevalence = prevalence
        self.refresh(layout=True)

    def text(self, width: int | None = None) -> str:
        """What the chart shows, as plain text (for tests and screen readers)."""
        if self.prevalence is None:
            return ""
        return "\n".join(line.plain for line in chart_lines(self.prevalence, width or self.content_size.width))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self.prevalence is None:
            return 1
        return len(chart_lines(self.prevalence, width))

    def render(self) -> Content:
        if self.prevalence is None:
            return Content("")
        return Content("\n").join(chart_lines(self.prevalence, self.content_size.width))
