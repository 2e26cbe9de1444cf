"""Theme prevalence by group for the results screen: the share of sessions (or transcripts) in which each
theme and sub-theme was coded, per group.

The counting is the frequency export's (services.reports): ``services.results.gather`` reads the layer
under the blind rule and ``exporters.frequencies.frequency_table`` counts presence per unit and builds the
group summary. This module only picks the rows (themes and sub-themes) and the columns (groups) to draw,
as plain data: the results screen runs it in a thread worker and draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from concord.exporters.frequencies import GATHER_FOR, frequency_table
from concord.services.results import CONSENSUS, gather
from concord.services.rights import require_results_rights
from concord.services.study import list_coders
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError

MEASURE = "presence"
# Themes and sub-themes: the codes below them count for them but get no row of their own.
DEEPEST_ROW = 1
# An attribute with more values than this is an identifier or a score, not a grouping.
MOST_GROUPS = 12
UNIT_NOUNS = {"session": "sessions", "transcript": "transcripts"}


@dataclass(frozen=True)
class PrevalenceRow:
    label: str
    path: str
    depth: int
    percent: tuple[float, ...]  # one per group, 0-100
    present: tuple[int, ...]  # units with the theme, one per group


@dataclass(frozen=True)
class Prevalence:
    title: str
    layer: str
    unit: str  # "session" or "transcript"
    group_attribute: str | None  # None: one bar, every unit together
    groups: tuple[str, ...]
    sizes: tuple[int, ...]  # units counted per group: the covered ones (all of them with include_uncoded)
    rows: tuple[PrevalenceRow, ...]
    layers: tuple[str, ...]  # what the layer key cycles through
    group_choices: tuple[str, ...]
    notes: tuple[str, ...]
    in_group: tuple[int, ...] = ()  # every unit of each group, covered or not
    include_uncoded: bool = False

    @property
    def partial(self) -> bool:
        """Some units of a group are not counted (not covered by the layer)."""
        return any(size != total for size, total in zip(self.sizes, self.in_group))

    @property
    def unit_noun(self) -> str:
        return UNIT_NOUNS[self.unit]


def layer_names(workspace: Workspace) -> tuple[str, ...]:
    """The consensus layer, then every coder's independent layer."""
    return (CONSENSUS,) + tuple(coder.name for coder in list_coders(workspace))


def theme_prevalence(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    unit: str | None = None,
    group_attribute: str | None = "group",
    covered: str = "done",
    include_uncoded: bool = False,
) -> Prevalence:
    """Per theme and sub-theme, the % of units of each group with at least one coding of it (or below it).

    ``unit`` is "session" or "transcript"; by default sessions when the transcripts belong to sessions.
    ``group_attribute`` None, or one no unit carries, gives one bar per row for all units together.
    Only the units the layer covers are counted (``covered``, as in the exports), unless ``include_uncoded``.
    """
    require_results_rights(workspace)
    if unit is not None and unit not in UNIT_NOUNS:
        raise ConcordError(f"unknown unit {unit!r}; choose one of {', '.join(UNIT_NOUNS)}")
    data = gather(
        workspace,
        layer=layer,
        purpose="results",
        covered=covered,
        include_uncoded=include_uncoded,
        **GATHER_FOR[MEASURE],
    )
    require_results_rights(workspace, blind=data.blind)
    if unit is None:
        unit = "session" if data.units["session_id"].notna().any() else "transcript"
    probe = frequency_table(data, by=unit, measure=MEASURE, group_attribute=group_attribute or "group")
    choices = tuple(name for name in probe.attribute_columns if 1 <= probe.wide[name].dropna().nunique() <= MOST_GROUPS)
    if group_attribute not in choices:
        group_attribute = None
    tables = (
        probe
        if group_attribute in (None, "group")
        else frequency_table(data, by=unit, measure=MEASURE, group_attribute=group_attribute)
    )
    summary = tables.summary if group_attribute is not None else None
    wide = tables.wide
    notes = list(tables.notes)
    if summary is not None:
        ungrouped = int(wide[group_attribute].isna().sum())
        if ungrouped:
            notes.append(f"{ungrouped} {UNIT_NOUNS[unit]} with no {group_attribute!r} value are in no group.")
        # The summary's own group order and sizes (its columns are "<group>: N", "<group>: n", "<group>: %").
        groups = tuple(column[: -len(": N")] for column in summary.columns if column.endswith(": N"))
        sizes = tuple(int(summary[f"{g}: N"].iloc[0]) if len(summary) else 0 for g in groups)
        in_group = tuple(int(summary[f"{g}: N in group"].iloc[0]) if len(summary) else 0 for g in groups)
    else:
        groups, sizes = (f"all {UNIT_NOUNS[unit]}",), (len(wide),)
        in_group = (tables.units_in_study if tables.units_in_study is not None else len(wide),)
    rows = []
    for index, (node, column) in enumerate(zip(tables.codes, tables.code_columns)):
        if node.depth > DEEPEST_ROW or node.id in data.outline_only:
            continue
        if summary is not None:
            # pandas-stubs types .iat as any scalar (dates, intervals, ...); these are counts
            present = tuple(int(summary[f"{g}: n"].iat[index]) for g in groups)  # type: ignore[arg-type]
            percent = tuple(_percent(summary[f"{g}: %"].iat[index]) for g in groups)
        else:
            count = int((wide[column] > 0).sum())
            present = (count,)
            percent = (100.0 * count / len(wide) if len(wide) else 0.0,)
        rows.append(
            PrevalenceRow(label=node.label, path=node.path_name, depth=node.depth, percent=percent, present=present)
        )
    return Prevalence(
        title=data.title,
        layer=data.layer,
        unit=unit,
        group_attribute=group_attribute,
        groups=groups,
        sizes=sizes,
        rows=tuple(rows),
        layers=layer_names(workspace),
        group_choices=choices,
        notes=tuple(notes),
        in_group=in_group,
        include_uncoded=include_uncoded,
    )


def _percent(cell: Any) -> float:  # a summary cell: pandas types it as any scalar
    value = float(cell)
    return 0.0 if math.isnan(value) else value
