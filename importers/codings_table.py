"""Reading earlier codings from a spreadsheet: one row per coding.

Columns: transcript (the transcript key), turn (the turn number as stored at
import), coder, code, and optionally group (the parent code or theme), start and
end (character offsets inside the turn; the whole turn when absent), memo, and
value (the number given on the code's rating scale, for a code that carries one).

Other column names are mapped like the transcript import's (--columns turn=utterance_id); a field
may also be one value for every row (--columns coder==auto). A wide table has one column per
coding dimension (--wide MISC,Topic): each named column becomes a code group, its cells the codes.
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
    "transcript": ("transcript", "transcript_key", "transcript_id", "document", "file"),
    "turn": ("turn", "turn_number", "turn_id", "utterance", "utterance_id", "utterance_number"),
    "coder": ("coder", "coder_id", "user", "annotator", "annotator_id", "rater"),
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


def _key(name: str) -> str:
    return " ".join(name.split()).casefold().replace(" ", "_")


def _column_map(
    header: list[str], path: str, columns: dict[str, str] | None = None, wide: tuple[str, ...] = ()
) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
    """(field -> column index, field -> value for every row, wide column name -> index)."""
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    constants: dict[str, str] = {}
    for field, column in (columns or {}).items():
        if field not in _ALIASES:
            raise InputError(f"--columns {field}=...: unknown field {field!r} (use {', '.join(_ALIASES)})", path)
        if column.startswith("="):
            if field not in ("transcript", "coder", "group"):
                raise InputError(
                    f"--columns {field}={column}: one value for every row is for transcript, coder and group only",
                    path,
                )
            constants[field] = column[1:].strip()
            continue
        if _key(column) not in keys:
            raise InputError(
                f"--columns {field}={column}: no column {column!r} in the header (it has: {', '.join(header)})", path, 1
            )
        found[field] = keys.index(_key(column))
    wide_columns: dict[str, int] = {}
    for name in wide:
        if _key(name) not in keys:
            raise InputError(f"--wide {name}: no column {name!r} in the header (it has: {', '.join(header)})", path, 1)
        wide_columns[header[keys.index(_key(name))]] = keys.index(_key(name))
    taken = set(found.values()) | set(wide_columns.values())
    for field, names in _ALIASES.items():
        if field in found or field in constants or (wide and field in ("code", "group", "value")):
            continue
        for name in names:
            if name in keys and keys.index(name) not in taken:
                found[field] = keys.index(name)
                taken.add(found[field])
                break
    required = [f for f in REQUIRED if not (wide and f == "code")]
    missing = [f for f in required if f not in found and f not in constants]
    if missing:
        hint = " ".join(f"--columns {f}=COLUMN" for f in missing)
        raise InputError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(header)}; name them with {hint}", path, 1
        )
    return found, constants, wide_columns


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


def read_codings(
    path: str | Path, *, columns: dict[str, str] | None = None, wide: tuple[str, ...] = ()
) -> list[CodingRow]:
    """One CodingRow per coding; a wide table gives one per filled cell of its dimension columns."""
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise InputError("no such file", shown)
    records = [(n, r) for n, r in _records(path) if any(r)]
    if not records:
        raise InputError("empty file", shown)
    _header_line, header = records[0]
    mapped, constants, wide_columns = _column_map(header, shown, columns, tuple(wide))
    rows, problems = [], []
    for line, cells in records[1:]:

        def cell(field: str, cells: list[str] = cells) -> str:
            if field in constants:
                return constants[field]
            index = mapped.get(field)
            return cells[index] if index is not None and index < len(cells) else ""

        try:
            refuse_extra_cells(cells, header, shown, line)
            if wide_columns:
                rows.extend(_wide_rows(cells, line, wide_columns, cell, shown))
                continue
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


def _wide_rows(cells: list[str], line: int, wide_columns: dict[str, int], cell, shown: str) -> list[CodingRow]:
    """One coding per filled dimension cell: the column's name is the code's group, the cell its name."""
    for field in ("transcript", "turn", "coder"):
        if not cell(field):
            raise InputError(f"column {field} is empty", shown, line)
    for field in ("coder",):
        if len(cell(field)) > NAME_LIMITS[field] or _CONTROL.search(cell(field)):
            raise InputError(f"column {field}: {cell(field)[:40]!r} is not a usable name", shown, line)
    made = []
    for column, index in wide_columns.items():
        code = cells[index] if index < len(cells) else ""
        if not code:
            continue
        if len(code) > NAME_LIMITS["code"] or _CONTROL.search(code):
            raise InputError(f"column {column!r}: {code[:40]!r} is not a usable code name", shown, line)
        made.append(
            CodingRow(
                line=line,
                transcript=cell("transcript"),
                turn=_int(cell("turn"), "turn", shown, line, minimum=0),
                coder=cell("coder"),
                code=code,
                # A group path is split at '>': a column named with one stays a single group name.
                group=column.replace(PATH_SEPARATOR, "-"),
                start=None,
                end=None,
                memo=None,
            )
        )
    return made
