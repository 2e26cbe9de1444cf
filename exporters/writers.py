"""Writing tables to .csv, .xlsx, .docx and .json, chosen by the file's extension.

* .csv: the tidy long form by default (one row per unit and code, for R and pandas),
  the wide form with ``wide=True``. The first (primary) table goes to FILE; any other
  table goes beside it as FILE-STEM.<table>.csv.
* .xlsx: one sheet per table (wide form), header row bold and frozen with the first
  column, column widths fitted to the contents, and a "Notes" sheet.
* .docx: publication-style tables: a caption "Table 1. ..." above, bold header row,
  horizontal rules only (above and below the header, below the table), notes below.
* .json: {"meta": ..., "tables": {name: [records]}}; long form unless ``wide``.

Every file is written to FILE.part and then moved over FILE, so a failed export
leaves no half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from concord.exporters.formats import FORMATS, format_of  # noqa: F401  (re-exported)
from concord.storage.errors import ConcordError

MAX_XLSX_WIDTH = 50
TABLE_FONT_PT = 9


@dataclass(frozen=True)
class TableSpec:
    """One table of an export: its full (wide) form, its tidy (long) form, and a compact
    form for a printed page."""

    name: str
    caption: str
    frame: pd.DataFrame
    # The tidy form, or a function that makes it (built only when a format needs it).
    long: pd.DataFrame | Callable[[], pd.DataFrame] | None = None
    # Writes the tidy form as CSV faster than DataFrame.to_csv would.
    write_long_csv: Callable[[Path], None] | None = None
    print_frame: pd.DataFrame | None = None
    print_depths: Sequence[int] | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    print_limit: int | None = None
    primary: bool = False


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(part_path)`` and move the result into place only once it has succeeded (what it
    returns, such as the count of Path.write_text, is not used)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ConcordError(f"{path}: the folder {path.parent} does not exist")
    part = path.with_name(path.name + ".part")
    try:
        write(part)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


def plain_records(frame: pd.DataFrame) -> list[dict]:
    """Records with None for missing values and Python numbers, ready for JSON."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    records = cleaned.to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.integer):
                record[key] = int(value)
            elif isinstance(value, np.floating):
                record[key] = None if math.isnan(value) else float(value)
            elif isinstance(value, np.bool_):
                record[key] = bool(value)
    return records


def spec_frame(spec: TableSpec, wide: bool) -> pd.DataFrame:
    """The form of a table that CSV and JSON get: the tidy one unless ``wide`` (or there is none)."""
    if wide or spec.long is None:
        return spec.frame
    return spec.long() if callable(spec.long) else spec.long


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-") or "table"


def _ordered(specs: Sequence[TableSpec]) -> list[TableSpec]:
    return [s for s in specs if s.primary] + [s for s in specs if not s.primary]


def write_tables(
    path: str | os.PathLike,
    specs: Sequence[TableSpec],
    *,
    wide: bool = False,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write the tables to ``path`` in the format its extension names; returns the files written."""
    suffix = format_of(path)
    path = Path(path)
    meta = dict(meta or {})
    step = progress or (lambda n: None)
    if suffix == ".csv":
        written = []
        for index, spec in enumerate(_ordered(specs)):
            target = path if index == 0 else path.with_name(f"{path.stem}.{_slug(spec.name)}.csv")
            if not wide and spec.write_long_csv is not None:
                written.append(atomic_write(target, spec.write_long_csv))
            else:
                frame = spec_frame(spec, wide)
                written.append(atomic_write(target, lambda part, f=frame: f.to_csv(part, index=False)))
            step(1)
        return written
    if suffix == ".json":

        def write_json(part: Path) -> None:
            tables = {}
            for spec in _ordered(specs):
                tables[spec.name] = plain_records(spec_frame(spec, wide))
                step(1)
            part.write_text(
                json.dumps(
                    {"meta": meta, "notes": {s.name: list(s.notes) for s in specs}, "tables": tables},
                    ensure_ascii=False,
                    indent=1,
                ),
                encoding="utf-8",
            )

        return [atomic_write(path, write_json)]
    if suffix == ".xlsx":
        return [atomic_write(path, lambda part: write_xlsx(part, _ordered(specs), meta, step))]
    return [atomic_write(path, lambda part: write_docx(part, specs, meta, step))]


# -- xlsx -----------------------------------------------------------------------------------


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)


def column_widths(frame: pd.DataFrame) -> list[float]:
    """Readable widths: the longest value (or a header up to 30 characters, which wraps), plus a margin."""
    widths = []
    for column in frame.columns:
        values = frame[column]
        if values.empty:
            longest = 0
        elif pd.api.types.is_float_dtype(values):
            longest = max(len(f"{v:.4g}") for v in values.dropna()) if values.notna().any() else 0
        else:
            longest = int(values.dropna().astype(str).str.len().max() or 0) if values.notna().any() else 0
        header = min(len(str(column)), 30)
        widths.append(float(min(max(longest, header, 6) + 2, MAX_XLSX_WIDTH)))
    return widths


def _sheet_title(name: str, used: set[str]) -> str:
    title = re.sub(r"[\[\]:*?/\\]", " ", name)[:31] or "Sheet"
    base, n = title, 2
    while title in used:
        title = f"{base[:28]} {n}"
        n += 1
    used.add(title)
    return title


def write_xlsx(path: Path, specs: Sequence[TableSpec], meta: dict, step: Callable[[int], None]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font

    book = Workbook(write_only=True)
    used: set[str] = set()
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for spec in specs:
        frame = spec.frame
        sheet = book.create_sheet(_sheet_title(spec.name, used))
        for index, width in enumerate(column_widths(frame), 1):
            sheet.column_dimensions[_column_letter(index)].width = width
        sheet.freeze_panes = "B2"
        header = []
        for column in frame.columns:
            cell = WriteOnlyCell(sheet, value=str(column))
            cell.font, cell.alignment = bold, wrap
            header.append(cell)
        sheet.append(header)
        cleaned = frame.astype(object).where(frame.notna(), None)
        for row in cleaned.itertuples(index=False, name=None):
            sheet.append([v.item() if isinstance(v, np.generic) else v for v in row])
        step(1)
    notes = book.create_sheet(_sheet_title("Notes", used))
    notes.column_dimensions["A"].width = 24
    notes.column_dimensions["B"].width = 100
    notes.append(["about", "value"])
    for key, value in meta.items():
        notes.append([str(key), str(value)])
    for spec in specs:
        for note in spec.notes:
            notes.append([spec.name, note])
    book.save(path)


# -- docx -----------------------------------------------------------------------------------


def _border(tag: str, size: int = 8):
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    element = OxmlElement(f"w:{tag}")
    if size:
        element.set(qn("w:val"), "single")
        element.set(qn("w:sz"), str(size))
        element.set(qn("w:space"), "0")
        element.set(qn("w:color"), "000000")
    else:
        element.set(qn("w:val"), "nil")
    return element


def publication_rules(table) -> None:
    """Horizontal rules only: above the table, below the header row, below the table."""
    from docx.oxml import OxmlElement

    properties = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for tag, size in (("top", 8), ("left", 0), ("bottom", 8), ("right", 0), ("insideH", 0), ("insideV", 0)):
        borders.append(_border(tag, size))
    properties.append(borders)
    for cell in table.rows[0].cells:
        cell_properties = cell._tc.get_or_add_tcPr()
        cell_borders = OxmlElement("w:tcBorders")
        cell_borders.append(_border("bottom", 4))
        cell_properties.append(cell_borders)


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def new_document(landscape: bool = False):
    from docx import Document
    from docx.shared import Cm, Pt

    document = Document()
    normal = document.styles["Normal"]
    normal.font.name = "Liberation Serif"
    normal.font.size = Pt(11)
    section = document.sections[0]
    section.page_height, section.page_width = Cm(29.7), Cm(21.0)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(2.2))
    if landscape:
        set_landscape(section)
    return document


def set_landscape(section) -> None:
    from docx.enum.section import WD_ORIENT

    if section.orientation != WD_ORIENT.LANDSCAPE:
        section.orientation = WD_ORIENT.LANDSCAPE
        section.page_width, section.page_height = section.page_height, section.page_width


def add_caption(document, number: int, caption: str, kind: str = "Table"):
    from docx.shared import Pt

    paragraph = document.add_paragraph()
    paragraph.paragraph_format.space_before = Pt(12)
    paragraph.paragraph_format.space_after = Pt(4)
    paragraph.paragraph_format.keep_with_next = True
    label = paragraph.add_run(f"{kind} {number}.")
    label.bold = True
    title = paragraph.add_run(f" {caption}")
    title.italic = True
    return paragraph


def add_note(document, text: str):
    from docx.shared import Pt

    paragraph = document.add_paragraph()
    paragraph.paragraph_format.space_after = Pt(2)
    lead = paragraph.add_run("Note. ")
    lead.italic = True
    lead.font.size = Pt(TABLE_FONT_PT)
    body = paragraph.add_run(text)
    body.font.size = Pt(TABLE_FONT_PT)
    return paragraph


def add_table(document, frame: pd.DataFrame, depths: Sequence[int] | None = None):
    """A publication-style table of ``frame``: bold header, first column left, the rest centred."""
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    rows, columns = frame.shape
    table = document.add_table(rows=rows + 1, cols=columns)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    cells = table._cells
    values = frame.astype(object).where(frame.notna(), None).to_numpy()
    widths = _docx_widths(document, frame, values, depths)
    for r in range(rows + 1):
        for c in range(columns):
            cell = cells[r * columns + c]
            cell.width = widths[c]
            paragraph = cell.paragraphs[0]
            paragraph.paragraph_format.space_after = Pt(0)
            paragraph.paragraph_format.space_before = Pt(1)
            if c:
                paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
            text = str(frame.columns[c]) if r == 0 else cell_text(values[r - 1, c])
            run = paragraph.add_run(text)
            run.font.size = Pt(TABLE_FONT_PT)
            if r == 0:
                run.bold = True
            elif c == 0 and depths is not None and depths[r - 1]:
                paragraph.paragraph_format.left_indent = Pt(10 * depths[r - 1])
    publication_rules(table)
    return table


def _docx_widths(document, frame: pd.DataFrame, values, depths) -> list[int]:
    """Column widths (EMU) that share the text width by how much each column holds: headers wrap,
    so they count half; the first column (labels, indented by depth) gets what it needs."""
    section = document.sections[-1]
    available = section.page_width - section.left_margin - section.right_margin
    weights = []
    for c, column in enumerate(frame.columns):
        longest = max((len(cell_text(v)) for v in values[:, c]), default=0)
        if c == 0 and depths is not None and len(depths):
            longest += 2 * max(depths)
        weights.append(min(max(longest, len(str(column)) / 2, 4), 40))
    total = sum(weights) or 1
    return [int(available * w / total) for w in weights]


def write_docx(path: Path, specs: Sequence[TableSpec], meta: dict, step: Callable[[int], None]) -> None:
    frames = [spec.print_frame if spec.print_frame is not None else spec.frame for spec in specs]
    widest = max((f.shape[1] for f in frames), default=0)
    document = new_document(landscape=widest > 7)
    heading = document.add_paragraph()
    run = heading.add_run(str(meta.get("title", "Tables")))
    run.bold = True
    if meta.get("subtitle"):
        document.add_paragraph(str(meta["subtitle"]))
    for number, (spec, frame) in enumerate(zip(specs, frames), 1):
        add_caption(document, number, spec.caption)
        if spec.print_limit is not None and len(frame) > spec.print_limit:
            document.add_paragraph(
                f"{len(frame)} rows: too many to print here; the .xlsx and .csv exports hold the full table."
            )
        else:
            add_table(document, frame, spec.print_depths)
        if spec.notes:
            add_note(document, " ".join(spec.notes))
        step(1)
    document.save(str(path))
