"""Reading a table of questionnaire answers (CSV or XLSX) into validated, scored rows.

One row is one form: who answered (dyad and/or client id, respondent) for which session,
and one column per item. Columns are found by their names (see docs/instruments.md,
"Measures tables") unless the caller names them. The whole file is refused when any row
is wrong, with every problem listed (up to MAX_LISTED) by row number and column name, so
that a half-imported table never reaches a study.

Row numbers are the ones a spreadsheet shows: the header is row 1 when it is the first
line, and a CSV record whose quoted text spans several lines still counts as one row.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from concord.analysis.scoring import (
    BLANK_MARKERS,
    Instrument,
    Scored,
    format_number,
    load_instrument,
    score,
    squash,
    template_message,
)
from concord.importers.encoding import read_text_file
from concord.storage.errors import InputError
from concord.storage.limits import check_zip, csv_error, csv_reader, read_file_bytes, refuse_extra_cells

MAX_LISTED = 20

ROLE_NAMES = {
    "dyad": ("dyad", "dyadid", "dyadno", "dyadnr", "dyadnumber", "dyadcode"),
    "client": (
        "client",
        "clientid",
        "clientno",
        "clientnr",
        "clientcode",
        "patient",
        "patientid",
        "patientno",
        "patientnr",
        "patientcode",
        "patid",
        "participant",
        "participantid",
        "participantcode",
        "subject",
        "subjectid",
    ),
    "session": (
        "session",
        "sessionnumber",
        "sessionno",
        "sessionnr",
        "sessionnum",
        "sess",
        "sessno",
        "sessnr",
        "sessnum",
    ),
    "respondent": ("respondent", "respondentrole", "rater", "informant", "perspective", "role"),
}
RESPONDENT_WORDS = {
    "client": ("client", "c", "patient", "pat", "p", "participant"),
    "therapist": ("therapist", "t", "ther", "th", "counsellor", "counselor", "clinician"),
}
# Column-name stems that carry no instrument name: 'Q3', 'item3', '3'.
GENERIC_PREFIXES = ("", "item", "items", "q", "question", "i")
GENERIC_ENDINGS = ("item", "q", "question")
OVERRIDE_KEYS = ("dyad", "client", "session", "respondent", "items")


@dataclass(frozen=True)
class MeasureRow:
    row_number: int
    dyad: str | None
    client: str | None
    session: int
    respondent: str
    items: dict[str, float | None]
    scored: Scored


@dataclass(frozen=True)
class _Source:
    """Where one value of a row comes from: a column, a constant ('=1'), or nowhere."""

    column: int | None = None
    name: str = ""
    constant: str | None = None

    @property
    def present(self) -> bool:
        return self.column is not None or self.constant is not None

    def read(self, cells: list[object]) -> object:
        if self.constant is not None:
            return self.constant
        if self.column is None or self.column >= len(cells):
            return None
        return cells[self.column]


@dataclass
class _Layout:
    roles: dict[str, _Source]
    items: dict[str, _Source]


@dataclass
class _Problem:
    row: int
    column: str | None  # None when the value is a constant given by the caller
    message: str


@dataclass
class _Table:
    header_row: int
    header: list[str]
    records: list[tuple[int, list[object]]] = field(default_factory=list)


def read_measures(
    path: str | os.PathLike[str],
    instrument: Instrument | str,
    respondent: str | None = None,
    columns: Mapping[str, str | None] | None = None,
    *,
    sheet: str | None = None,
) -> list[MeasureRow]:
    """Read and score every form in a .csv or .xlsx table.

    respondent: 'client' or 'therapist' for every row when the table has no respondent
    column; when it has one, only the rows of that respondent are read.
    columns: names the columns instead of detecting them, e.g. {"session": "Visit",
    "dyad": "Pair", "item:1": "A1"}; "=value" is a constant for every row ({"session": "=1"});
    None says there is no such column; "items" names the prefix of the item columns
    ({"items": "WAI_T"} for WAI_T1 ... WAI_T12).
    """
    where = str(path)
    if isinstance(instrument, str):
        instrument = load_instrument(instrument)
    if instrument.is_template:
        raise InputError(template_message(instrument), path=instrument.source or None)
    if respondent is not None and respondent not in RESPONDENT_WORDS:
        raise InputError(f"respondent must be client or therapist, not {respondent!r}", path=where)
    if respondent is not None and not instrument.answered_by(respondent):
        raise InputError(
            f"{instrument.title} is answered by the {instrument.respondent}, not the {respondent}", path=where
        )

    table = _read_table(Path(path), sheet)
    layout = _layout(where, table, instrument, respondent, dict(columns or {}))
    rows, problems = _rows(table, layout, instrument, respondent)
    if problems:
        raise _combined(where, problems)
    return rows


# ----------------------------------------------------------------------------- reading files


def _read_table(path: Path, sheet: str | None) -> _Table:
    where = str(path)
    if not path.is_file():
        raise InputError("no such file", path=where)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        records = _xlsx_records(path, sheet)
    elif suffix in (".csv", ".tsv", ".txt"):
        if sheet is not None:
            raise InputError("a CSV file has no sheets; leave out --sheet", path=where)
        records = _csv_records(path)
    elif suffix == ".xls":
        raise InputError("old Excel .xls files are not read; save the sheet as .xlsx or CSV", path=where)
    else:
        raise InputError(
            f"cannot read {suffix or 'extension-less'} files as a measures table; use .csv or .xlsx", path=where
        )
    for index, (row_number, cells) in enumerate(records):
        if not _blank_row(cells):
            header = ["" if cell is None else str(cell).strip() for cell in cells]
            body = [(number, row) for number, row in records[index + 1 :] if not _blank_row(row)]
            for number, row in body:
                refuse_extra_cells(row, header, where, number)
            return _Table(row_number, header, body)
    raise InputError("the table is empty", path=where)


def _blank_row(cells: list[object]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _csv_records(path: Path) -> list[tuple[int, list[object]]]:
    text = read_text_file(path)[1].text
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    # Excel writes ';' where the decimal separator is a comma, and tabs for "Text" exports.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    reader = csv_reader(text, delimiter=delimiter)
    try:
        return [(number, list(cells)) for number, cells in enumerate(reader, start=1)]
    except csv.Error as error:
        raise csv_error(error, str(path), reader.line_num + 1) from None


def _xlsx_records(path: Path, sheet: str | None) -> list[tuple[int, list[object]]]:
    import openpyxl

    data = read_file_bytes(path)
    check_zip(data, str(path), ".xlsx workbook")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 (openpyxl raises zip, XML, key and value errors for a broken file)
        raise InputError(f"not a readable .xlsx workbook ({error or type(error).__name__})", path=str(path)) from None
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise InputError(f"no sheet {sheet!r}; sheets: {', '.join(workbook.sheetnames)}", path=str(path))
        # Some writers store a wrong used-range; without it openpyxl reads every row there is.
        worksheet.reset_dimensions()
        return [
            (number, list(cells))
            for number, cells in enumerate(worksheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1)
        ]
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 (read-only openpyxl parses the sheet while rows are read)
        raise InputError(f"not a readable .xlsx workbook ({error or type(error).__name__})", path=str(path)) from None
    finally:
        workbook.close()


# ----------------------------------------------------------------------------- finding columns


def _layout(
    where: str, table: _Table, instrument: Instrument, respondent: str | None, overrides: dict[str, str | None]
) -> _Layout:
    header = table.header
    line = table.header_row
    used: dict[int, str] = {}

    def find(column_name: str, purpose: str) -> int:
        exact = [index for index, name in enumerate(header) if name == column_name]
        if not exact:
            exact = [index for index, name in enumerate(header) if name.lower() == column_name.strip().lower()]
        if not exact:
            available = ", ".join(name for name in header if name)
            raise InputError(
                f"--columns: no column {column_name!r} for {purpose}; the columns are: {available}",
                path=where,
                line=line,
            )
        if len(exact) > 1:
            raise InputError(f"two columns are named {column_name!r}; rename one", path=where, line=line)
        return exact[0]

    def claim(index: int, purpose: str) -> None:
        if index in used:
            raise InputError(
                f"column {header[index]!r} is used for both {used[index]} and {purpose}", path=where, line=line
            )
        used[index] = purpose

    roles: dict[str, _Source] = {}
    items: dict[str, _Source] = {}
    item_prefix: str | None = None
    for key, value in overrides.items():
        if key.startswith("item:"):
            try:
                item = instrument.item_id(key[len("item:") :])
            except ValueError as error:
                raise InputError(f"--columns {key}=...: {error}", path=where) from None
            if value is None or str(value).startswith("="):
                raise InputError(f"--columns {key}={value or ''}: must name a column", path=where)
            index = find(str(value), f"item {item}")
            claim(index, f"item {item}")
            items[item] = _Source(index, header[index])
        elif key == "items":
            item_prefix = None if value is None else str(value)
        elif key in ROLE_NAMES:
            if value is None:
                roles[key] = _Source()
            elif str(value).startswith("="):
                roles[key] = _Source(None, str(value), str(value)[1:].strip())
            else:
                index = find(str(value), key)
                claim(index, key)
                roles[key] = _Source(index, header[index])
        else:
            raise InputError(
                f"--columns {key}=...: unknown field {key!r}; use {', '.join(OVERRIDE_KEYS)} or item:ID", path=where
            )

    for role, names in ROLE_NAMES.items():
        if role in roles:
            continue
        candidates = [index for index, name in enumerate(header) if index not in used and squash(name) in names]
        if len(candidates) > 1:
            listed = ", ".join(repr(header[index]) for index in candidates)
            raise InputError(
                f"several columns could be the {role} ({listed}); name one with --columns {role}=COLUMN",
                path=where,
                line=line,
            )
        if candidates:
            claim(candidates[0], role)
            roles[role] = _Source(candidates[0], header[candidates[0]])
        else:
            roles[role] = _Source()

    if not roles["session"].present:
        raise InputError(
            "no session column (looked for session, session_number, sess); name it with "
            "--columns session=Visit, or give one number for all rows with --columns session==1",
            path=where,
            line=line,
        )
    if not roles["dyad"].present and not roles["client"].present:
        raise InputError(
            "no dyad or client id column (looked for dyad, dyad_id, client, client_id, patient, "
            "participant_id); name it with --columns dyad=COLUMN or --columns client=COLUMN",
            path=where,
            line=line,
        )
    if not roles["respondent"].present and respondent is None and instrument.respondent == "either":
        raise InputError(
            f"{instrument.title} may be answered by client or therapist: add a respondent column "
            "or give --respondent client or --respondent therapist",
            path=where,
            line=line,
        )
    if roles["respondent"].constant is not None and _respondent(roles["respondent"].constant) is None:
        raise InputError(
            f"--columns respondent=={roles['respondent'].constant}: neither client nor therapist", path=where
        )
    if roles["session"].constant is not None and _session(roles["session"].constant)[0] is None:
        raise InputError(f"--columns session=={roles['session'].constant}: not a whole number", path=where)

    wanted = [item for item in instrument.items if item not in items]
    if wanted:
        free = {index: name for index, name in enumerate(header) if index not in used and name}
        found = _match_items(where, line, instrument, wanted, free, item_prefix)
        for item, index in found.items():
            claim(index, f"item {item}")
            items[item] = _Source(index, header[index])
    return _Layout(roles, items)


@dataclass
class _Family:
    """Numbered columns sharing a stem: 'WAI1', 'WAI2' ... (stem 'wai', written 'WAI')."""

    written: str
    columns: dict[int, int] = field(default_factory=dict)
    clashes: list[tuple[str, str]] = field(default_factory=list)

    def numbers(self) -> set[int]:
        return set(self.columns)


def _match_items(
    where: str, line: int, instrument: Instrument, wanted: list[str], free: dict[int, str], chosen_prefix: str | None
) -> dict[str, int]:
    """Item columns by name. Items with text ids ('a1') match a column of that name, bare or
    after the instrument's stem. Numbered items match a family of numbered columns
    ('WAI1'..'WAI12', 'wai_sr_01', 'Q1', 'CAREQ3') whose stem is the instrument's, or a
    generic one ('item', 'Q') that holds exactly the instrument's numbers, because
    'Q1'..'Q30' may well hold two questionnaires."""

    def refuse(message: str) -> InputError:
        return InputError(message, path=where, line=line)

    own_stems = _instrument_stems(instrument)
    by_squashed: dict[str, list[int]] = {}
    for index, name in free.items():
        by_squashed.setdefault(squash(name), []).append(index)
    found: dict[str, int] = {}
    for item in (item for item in wanted if not item.isdigit()):
        for key in (squash(item), *(stem + squash(item) for stem in own_stems)):
            if len(by_squashed.get(key, [])) == 1:
                found[item] = by_squashed[key][0]
                break
        else:
            raise refuse(f"no column for {instrument.title} item {item}; map it with --columns item:{item}=COLUMN")
    numbered = [item for item in wanted if item.isdigit()]
    if not numbered:
        return found

    families: dict[str, _Family] = {}
    for index, name in free.items():
        match = re.fullmatch(r"(.*?)(\d+)\s*", name)
        if not match:
            continue
        family = families.setdefault(squash(match.group(1)), _Family(match.group(1).strip(" _-.")))
        number = int(match.group(2))
        if number in family.columns:
            family.clashes.append((free[family.columns[number]], name))
        else:
            family.columns[number] = index

    needed = {int(item) for item in numbered}
    all_numbers = {int(item) for item in instrument.items if item.isdigit()}
    if chosen_prefix is not None:
        chosen = families.get(squash(chosen_prefix))
        if chosen is None:
            raise refuse(f"--columns items={chosen_prefix}: no numbered item columns start with {chosen_prefix!r}")
    else:
        own = [stem for stem in families if _stem_forms(stem) & own_stems]
        generic = [stem for stem in families if stem in GENERIC_PREFIXES]
        generic_exact = [stem for stem in generic if needed <= families[stem].numbers() <= all_numbers]
        candidates = [stem for stem in own if needed <= families[stem].numbers()] or generic_exact
        if len(candidates) > 1:
            shown = ", ".join(repr(families[stem].written or "(bare numbers)") for stem in candidates)
            raise refuse(
                f"more than one set of columns could hold the {instrument.title} items ({shown}); "
                "choose one with --columns items=PREFIX"
            )
        wide = [families[stem] for stem in generic if needed <= families[stem].numbers()]
        if not candidates and wide:
            first, last = free[wide[0].columns[min(wide[0].columns)]], free[wide[0].columns[max(wide[0].columns)]]
            raise refuse(
                f"the columns {first!r} to {last!r} hold more than the {len(all_numbers)} {instrument.title} "
                f"items, so they may hold another questionnaire too; if these are the items, say so with "
                f"--columns items={wide[0].written}"
            )
        fallback = own or generic
        if not candidates and not fallback:
            example = f"{instrument.column_prefixes[0] if instrument.column_prefixes else instrument.id}1"
            raise refuse(
                f"no column for {instrument.title} items {_ranges(sorted(needed))}; name them like "
                f"{example!r} or 'item1', or map them with --columns item:1=COLUMN"
            )
        chosen = families[(candidates or fallback)[0]]
    absent = sorted(needed - chosen.numbers())
    if absent:
        shown = ", ".join(repr(free[chosen.columns[number]]) for number in sorted(chosen.columns)[:5])
        more = " ..." if len(chosen.columns) > 5 else ""
        raise refuse(
            f"no column for {instrument.title} items {_ranges(absent)} (found {shown}{more}); "
            f"map them with --columns item:{absent[0]}=COLUMN"
        )
    if chosen.clashes:
        first, second = chosen.clashes[0]
        raise refuse(
            f"columns {first!r} and {second!r} both look like the same item; rename one, or map the "
            "items with --columns item:ID=COLUMN"
        )
    for item in numbered:
        found[item] = chosen.columns[int(item)]
    return found


def _instrument_stems(instrument: Instrument) -> set[str]:
    stems = {squash(instrument.id), *(squash(prefix) for prefix in instrument.column_prefixes)}
    stems |= {stem.rstrip("0123456789") for stem in stems}
    return {stem for stem in stems if stem}


def _stem_forms(stem: str) -> set[str]:
    """'careq' also reads as 'care', 'waiitem' as 'wai': a trailing 'item' or 'q' names no instrument."""
    forms = {stem}
    for ending in GENERIC_ENDINGS:
        if stem.endswith(ending) and len(stem) > len(ending):
            forms.add(stem[: -len(ending)])
    return forms


def _ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    start = previous = None
    for number in numbers:
        if start is None:
            start = previous = number
        elif number == previous + 1:
            previous = number
        else:
            parts.append(f"{start}" if start == previous else f"{start}–{previous}")
            start = previous = number
    if start is not None:
        parts.append(f"{start}" if start == previous else f"{start}–{previous}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- reading rows


def _rows(
    table: _Table, layout: _Layout, instrument: Instrument, wanted_respondent: str | None
) -> tuple[list[MeasureRow], list[_Problem]]:
    rows: list[MeasureRow] = []
    problems: list[_Problem] = []
    first_seen: dict[tuple[str | None, str | None, int, str], int] = {}
    roles = layout.roles
    for row_number, cells in table.records:
        row_problems: list[_Problem] = []

        def problem(
            source: _Source, message: str, row_problems: list[_Problem] = row_problems, row_number: int = row_number
        ) -> None:
            row_problems.append(_Problem(row_number, source.name if source.column is not None else None, message))

        who = _who(roles["respondent"], cells, instrument, wanted_respondent, problem)
        if who is None and not row_problems:
            continue  # a row of the other respondent, not asked for
        ids: dict[str, str | None] = {}
        for role in ("dyad", "client"):
            source = roles[role]
            ids[role] = _identifier(source.read(cells)) if source.present else None
            if source.present and ids[role] is None:
                problem(source, f"empty {role} id")
        session, session_error = _session(roles["session"].read(cells))
        if session_error:
            problem(roles["session"], session_error)
        values: dict[str, float | None] = {}
        for item in instrument.items:
            source = layout.items[item]
            try:
                values[item] = instrument.parse_response(item, source.read(cells))
            except ValueError as error:
                problem(source, str(error))
        if not row_problems:
            assert session is not None and who is not None
            key = (ids["dyad"], ids["client"], session, who)
            if key in first_seen:
                problem(roles["session"], f"repeats {_describe_key(key)} (first at row {first_seen[key]})")
            else:
                first_seen[key] = row_number
        if row_problems:
            problems.extend(row_problems)
            continue
        assert session is not None and who is not None
        rows.append(MeasureRow(row_number, ids["dyad"], ids["client"], session, who, values, score(instrument, values)))
    return rows, problems


def _who(source: _Source, cells: list[object], instrument: Instrument, wanted: str | None, problem) -> str | None:
    if not source.present:
        return wanted or instrument.respondent
    raw = source.read(cells)
    text = _identifier(raw)
    if text is None:
        problem(source, "empty respondent")
        return None
    who = _respondent(text)
    if who is None:
        problem(source, f"respondent {text!r} is neither client nor therapist")
        return None
    if wanted is not None and who != wanted:
        return None
    if not instrument.answered_by(who):
        problem(source, f"this row was answered by the {who}, but {instrument.title} is a {instrument.respondent} form")
        return None
    return who


def _respondent(text: str) -> str | None:
    word = text.strip().lower()
    for who, words in RESPONDENT_WORDS.items():
        if word in words:
            return who
    return None


def _identifier(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    text = str(raw).strip()
    return text or None


def _session(raw: object) -> tuple[int | None, str | None]:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in BLANK_MARKERS):
        return None, "missing session number"
    if isinstance(raw, bool):
        return None, f"session {raw!r} is not a whole number"
    value: float
    if isinstance(raw, (int, float)):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            return None, f"session {str(raw).strip()!r} is not a whole number"
    if not value.is_integer() or value < 0:
        return None, f"session {format_number(value)} is not a whole number of 0 or more"
    return int(value), None


def _describe_key(key: tuple[str | None, str | None, int, str]) -> str:
    dyad, client, session, who = key
    parts = [f"dyad {dyad}" if dyad is not None else None, f"client {client}" if client is not None else None]
    return ", ".join(part for part in parts if part) + f", session {session}, {who}"


def _combined(where: str, problems: list[_Problem]) -> InputError:
    def one(problem: _Problem) -> str:
        return problem.message if problem.column is None else f"column {problem.column!r}: {problem.message}"

    first = problems[0]
    if len(problems) == 1:
        return InputError(one(first), path=where, line=first.row)
    listed = "\n".join(
        f"  row {problem.row}{':' if problem.column is None else ','} {one(problem)}"
        for problem in problems[:MAX_LISTED]
    )
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return InputError(f"{len(problems)} problems; nothing was imported:\n{listed}{more}", path=where, line=first.row)
