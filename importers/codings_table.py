"""Reading earlier codings from a spreadsheet: one row per coding.

Columns: transcript (the transcript key), turn (the turn number as stored at
import), coder, code, and optionally group (the parent code or theme), start and
end (character offsets inside the turn; the whole turn when absent), memo, and
value (the number given on the code's rating scale, for a code that carries one).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from concord.importers.encoding import read_text_file
from concord.storage.errors import InputError
from concord.storage.limits import check_zip, csv_error, csv_reader, read_file_bytes, refuse_extra_cells

REQUIRED = ("transcript", "turn", "coder", "code")
OPTIONAL = ("group", "start", "end", "memo", "value")
_ALIASES = {
    "transcript": ("transcript", "transcript_key", "document", "file"),
    "turn": ("turn", "turn_number", "utterance"),
    "coder": ("coder", "user", "annotator", "rater"),
    "code": ("code", "label", "category"),
    "group": ("group", "theme", "parent", "parent_code"),
    "start": ("start", "start_offset", "from"),
    "end": ("end", "end_offset", "to"),
    "memo": ("memo", "note", "comment"),
    "value": ("value", "rating", "score"),
}


# Names become rows of the study: longer than its columns hold (coders.name, codes.name in
# storage/models.py; tests/test_fuzz_importers.py keeps them in step) would fail on PostgreSQL mid-import.
NAME_LIMITS = {"coder": 120, "code": 300, "group": 300}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CodingRow:
    line: int
    transcript: str
    turn: int
    coder: str
    code: str
    group: str | None
    start: int | None
    end: int | None
    memo: str | None
    value: float | None = None

    @property
    def path(self) -> tuple[str, ...]:
        """Where the code sits: the group's names (a group may be written "Theme > Sub") and the code's
        own, so ``other`` under two groups is two codes. A code cell written as a path
        ("Therapist behaviour > other", as the exports write it) is read the same way."""
        return split_path(self.group or "") + split_path(self.code)


PATH_SEPARATOR = ">"


def split_path(text: str) -> tuple[str, ...]:
    """'Theme > Sub > code' as its names, spaces tidied; an empty text is no names."""
    return tuple(" ".join(part.split()) for part in text.split(PATH_SEPARATOR) if part.strip())


def _records(path: Path) -> list[tuple[int, list[str]]]:
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        data = read_file_bytes(path)
        check_zip(data, str(path), "Excel workbook")
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 (openpyxl raises zip, XML, key and value errors for a broken file)
            raise InputError(f"not a readable Excel workbook ({exc.__class__.__name__})", str(path)) from None
        try:
            sheet = book.worksheets[0]
            return [
                (number, ["" if v is None else str(v).strip() for v in row])
                for number, row in enumerate(sheet.iter_rows(values_only=True), 1)
            ]
        except Exception as exc:  # noqa: BLE001 (read-only openpyxl parses the sheet while rows are read)
            raise InputError(f"not a readable Excel workbook ({exc.__class__.__name__})", str(path)) from None
        finally:
            book.close()
    # Coder and code names come from these cells: bytes that are not UTF-8 are refused, not guessed.
    text = read_text_file(path, legacy=False)[1].text
    dialect = "excel-tab" if "\t" in text.split("\n", 1)[0] else "excel"
    rows, line = [], 1
    reader = csv_reader(text, dialect=dialect)
    try:
        for row in reader:
            rows.append((line, [cell.strip() for cell in row]))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise csv_error(exc, str(path), line) from None
    return rows


def _column_map(header: list[str], path: str) -> dict[str, int]:
    keys = [" ".join(h.split()).casefold().replace(" ", "_") for h in header]
    found = {}
    for field, names in _ALIASES.items():
        for name in names:
            if name in keys:
                found[field] = keys.index(name)
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; found {', '.join(header)}", path, 1)
    return found


def _int(value: str, column: str, path: str, line: int, *, minimum: int) -> int:
    try:
        number = int(float(value))
    except (ValueError, OverflowError):
        raise InputError(f"column {column}: {value!r} is not a whole number", path, line) from None
    if number != float(value) or number < minimum:
        raise InputError(f"column {column}: {value!r} must be a whole number >= {minimum}", path, line)
    return number


def _number(value: str, column: str, path: str, line: int) -> float:
    # A decimal comma ("2,5", as Swedish or German spreadsheets write it) reads as a decimal point.
    text = value.replace(",", ".") if value.count(",") == 1 and "." not in value else value
    try:
        number = float(text)
    except (ValueError, OverflowError):
        raise InputError(f"column {column}: {value!r} is not a number", path, line) from None
    if not math.isfinite(number):
        raise InputError(f"column {column}: {value!r} is not a finite number", path, line)
    return number


def read_codings(path: str | Path) -> list[CodingRow]:
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise InputError("no such file", shown)
    records = [(n, r) for n, r in _records(path) if any(r)]
    if not records:
        raise InputError("empty file", shown)
    _header_line, header = records[0]
    columns = _column_map(header, shown)
    rows, problems = [], []
    for line, cells in records[1:]:

        def cell(field: str, cells: list[str] = cells) -> str:
            index = columns.get(field)
            return cells[index] if index is not None and index < len(cells) else ""

        try:
            refuse_extra_cells(cells, header, shown, line)
            for field in REQUIRED:
                if not cell(field):
                    raise InputError(f"column {field} is empty", shown, line)
            for field, limit in NAME_LIMITS.items():
                if len(cell(field)) > limit:
                    raise InputError(f"column {field}: longer than {limit} characters", shown, line)
                if _CONTROL.search(cell(field)):
                    raise InputError(f"column {field}: {cell(field)!r} holds a control character", shown, line)
            start = _int(cell("start"), "start", shown, line, minimum=0) if cell("start") else None
            end = _int(cell("end"), "end", shown, line, minimum=1) if cell("end") else None
            if start is not None and end is not None and end <= start:
                raise InputError(f"end {end} must be after start {start}", shown, line)
            rows.append(
                CodingRow(
                    line=line,
                    transcript=cell("transcript"),
                    turn=_int(cell("turn"), "turn", shown, line, minimum=0),
                    coder=cell("coder"),
                    code=cell("code"),
                    group=cell("group") or None,
                    start=start,
                    end=end,
                    memo=cell("memo") or None,
                    value=_number(cell("value"), "value", shown, line) if cell("value") else None,
                )
            )
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        shown_problems = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise InputError("; ".join(p.replace(f"{shown}:", "line ", 1) for p in shown_problems), shown)
    return rows
