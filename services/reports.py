"""The frequency, representativeness and excerpt exports, from the study to the file: gather -> table -> write.

One home for each, so the CLI (``concord export ...``) and the workbench make the same table from the same
rows. ``services.results.gather`` reads the layer under the blind rule; ``exporters.frequencies`` and
``exporters.excerpts`` count and format the plain records they are given; ``exporters.writers`` writes the
file (atomically: a failed write leaves the previous file as it was). What a caller shows while a long
file is written is its own business: it passes ``progress``, a factory of step callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from concord.exporters.excerpts import REPORT_FORMATS, Report, build_report, write_report
from concord.exporters.formats import format_of
from concord.exporters.frequencies import (
    GATHER_FOR,
    FrequencyTables,
    RepresentativenessTable,
    frequency_specs,
    frequency_table,
    representativeness_specs,
    representativeness_table,
)
from concord.exporters.records import ResultsData
from concord.exporters.writers import TableSpec, write_tables
from concord.services.results import CONSENSUS, gather
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError

# (size, steps, label) -> a context that yields a callback taking a number of steps done, or None to show
# nothing. ``size`` is what the file holds (rows, excerpts), for the caller to decide whether to show it.
Progress = Callable[[int, int, str], AbstractContextManager[Callable[[int], None] | None]]


@dataclass(frozen=True)
class WrittenExport:
    paths: tuple[Path, ...]
    summary: str  # "12 rows x 8 codes", "4 dyads x 3 themes", "31 excerpts"
    notes: tuple[str, ...]  # what a reader of the file should know (units left out, the blind)


def export_meta(data: ResultsData, **more: Any) -> dict[str, Any]:
    """The front matter every table file carries: what it is, from which layer, for whom, when."""
    return {
        "title": data.title,
        "layer": data.layer,
        "exported by": data.actor,
        "blind for the exporter": data.blind,
        "exported at": datetime.now(UTC).isoformat(timespec="seconds"),
        **more,
    }


# ------------------------------------------------------------------------------------ frequencies


def frequency_tables(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    by: str = "transcript",
    measure: str = "segments",
    measures: Iterable[str] | None = None,
    group_attribute: str = "group",
    codebooks: Iterable[str] | None = None,
    purpose: str = "frequencies",
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> tuple[ResultsData, FrequencyTables]:
    """The rows read for ``measure`` and the frequency table (one row per ``by`` unit) with its group summary.

    Only the transcripts the layer covers are counted (``covered``: "done" or "coded"; see
    ``services.results.gather``), unless ``include_uncoded``."""
    if measure not in GATHER_FOR:
        raise ConcordError(f"unknown count {measure!r}; choose one of {', '.join(GATHER_FOR)}")
    data = gather(
        workspace,
        layer=layer,
        codebooks=codebooks or None,
        purpose=purpose,
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
        **GATHER_FOR[measure],
    )
    tables = frequency_table(
        data, by=by, measure=measure, measures=list(measures or ()) or None, group_attribute=group_attribute
    )
    return data, tables


def export_frequencies(
    workspace: Workspace,
    out: str | Path,
    *,
    layer: str = CONSENSUS,
    by: str = "transcript",
    measure: str = "segments",
    measures: Iterable[str] | None = None,
    group_attribute: str = "group",
    codebooks: Iterable[str] | None = None,
    wide: bool = False,
    progress: Progress | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> WrittenExport:
    """Theme, sub-theme and code counts per unit, with linked scores and the group summary, written to ``out``
    (its extension picks the format)."""
    format_of(out)  # a wrong extension is refused before anything is read
    data, tables = frequency_tables(
        workspace,
        layer=layer,
        by=by,
        measure=measure,
        measures=measures,
        group_attribute=group_attribute,
        codebooks=codebooks,
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    units, codes = len(tables.wide), len(tables.code_columns)
    meta = export_meta(
        data,
        by=by,
        count=measure,
        units=units,
        codes=codes,
        coverage=tables.coverage,
        subtitle=f"{units} {by}s, {codes} codes, layer {data.layer}",
    )
    paths = _write_tables(
        out, frequency_specs(tables, long=not wide), wide=wide, meta=meta, rows=units, progress=progress
    )
    return WrittenExport(paths=paths, summary=f"{units} rows x {codes} codes", notes=tuple(tables.notes))


# ------------------------------------------------------------------------------------ representativeness


def representativeness(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    level: str = "theme",
    group_attribute: str = "group",
    codebooks: Iterable[str] | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> tuple[ResultsData, RepresentativenessTable]:
    data = gather(
        workspace,
        layer=layer,
        codebooks=codebooks or None,
        purpose="representativeness",
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    return data, representativeness_table(data, level=level, group_attribute=group_attribute)


def export_representativeness(
    workspace: Workspace,
    out: str | Path,
    *,
    layer: str = CONSENSUS,
    level: str = "theme",
    group_attribute: str = "group",
    codebooks: Iterable[str] | None = None,
    wide: bool = False,
    progress: Progress | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> WrittenExport:
    """Which dyads, and which side of each, contribute to each theme (or sub-theme), written to ``out``."""
    format_of(out)
    data, table = representativeness(
        workspace,
        layer=layer,
        level=level,
        group_attribute=group_attribute,
        codebooks=codebooks,
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    specs = representativeness_specs(table)
    paths = _write_tables(
        out, specs, wide=wide, meta=export_meta(data, level=level), rows=len(table.wide), progress=progress
    )
    dyads = table.long["dyad"].nunique() if len(table.long) else 0
    # The last note is the table's own legend (C, T, C+T), printed in the file, not news for the person.
    return WrittenExport(
        paths=paths, summary=f"{dyads} dyads x {len(table.code_columns)} {level}s", notes=tuple(table.notes[:-1])
    )


# ------------------------------------------------------------------------------------ excerpts


def excerpt_report(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    codes: Iterable[str] | None = None,
    memos: bool = False,
    context: int = 0,
    group_attribute: str = "group",
    group_label: str = "{value} alliance",
    codebooks: Iterable[str] | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
    all_codes: bool = False,
) -> Report:
    """Per theme -> sub-theme -> code: definition, count and excerpts with their context; codes never
    applied in the covered transcripts only with ``all_codes``."""
    if "{value}" not in group_label:
        raise ConcordError(f"the group label {group_label!r} must contain {{value}}, where the group's value goes")
    data = gather(
        workspace,
        layer=layer,
        codebooks=codebooks or None,
        codes=list(codes or ()) or None,
        spans=True,
        turns="text",
        with_memos=memos,
        purpose="excerpts",
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    return build_report(
        data,
        context=context,
        group_attribute=group_attribute,
        group_label=group_label,
        memos=memos,
        all_codes=all_codes,
    )


def export_excerpts(
    workspace: Workspace,
    out: str | Path,
    *,
    layer: str = CONSENSUS,
    codes: Iterable[str] | None = None,
    memos: bool = False,
    context: int = 0,
    group_attribute: str = "group",
    group_label: str = "{value} alliance",
    codebooks: Iterable[str] | None = None,
    progress: Progress | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
    all_codes: bool = False,
) -> WrittenExport:
    """The excerpt report written to ``out`` (.docx, .md or .html; md and html get the chart beside them)."""
    format_of(out, REPORT_FORMATS)
    report = excerpt_report(
        workspace,
        layer=layer,
        codes=codes,
        memos=memos,
        context=context,
        group_attribute=group_attribute,
        group_label=group_label,
        codebooks=codebooks,
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
        all_codes=all_codes,
    )
    count = report.excerpt_count
    paths = _with_progress(
        progress, count, count, f"writing {Path(out).name}", lambda step: write_report(report, out, progress=step)
    )
    return WrittenExport(paths=tuple(paths), summary=f"{count} excerpts", notes=tuple(report.notes))


# ------------------------------------------------------------------------------------ writing


def _write_tables(
    out: str | Path,
    specs: list[TableSpec],
    *,
    wide: bool,
    meta: dict[str, Any],
    rows: int,
    progress: Progress | None,
) -> tuple[Path, ...]:
    def write(step: Callable[[int], None] | None) -> list[Path]:
        return write_tables(out, specs, wide=wide, meta=meta, progress=step)

    return tuple(_with_progress(progress, rows, len(specs), f"writing {Path(out).name}", write))


def _with_progress(
    progress: Progress | None,
    size: int,
    steps: int,
    label: str,
    write: Callable[[Callable[[int], None] | None], list[Path]],
) -> list[Path]:
    if progress is None:
        return write(None)
    with progress(size, steps, label) as step:
        return write(step)
