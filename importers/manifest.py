"""Batch manifest: one CSV row per transcript file with its study metadata.

Columns: file, key, kind, dyad, session, perspective, about (the session number an IPR interview is
about, when `session` is left empty), language; every other column is an attribute
of the transcript, and a column named `blinded:NAME` is an attribute hidden from blind coders. Any other
prefix (a word and a colon: `blind:NAME`) is an error, so a typo cannot make a hidden attribute visible.
File paths are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from concord.importers.encoding import decode_bytes, read_bytes
from concord.importers.parsed import ParsedTranscript
from concord.importers.transcript_formats import KINDS, parse_transcript
from concord.storage.errors import InputError
from concord.storage.limits import csv_error, csv_reader, refuse_extra_cells

RESERVED_COLUMNS = ("file", "key", "kind", "dyad", "session", "perspective", "about", "language")
PERSPECTIVES = ("client", "therapist")
BLINDED_PREFIX = "blinded:"
# A word and a colon at the start of a column name is a prefix; "blinded:" is the only one known.
_PREFIX = re.compile(r"^\s*([A-Za-z][A-Za-z_-]*)\s*:")
_PERSPECTIVE_WORDS = {"client": "client", "patient": "client", "therapist": "therapist"}
_TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class ManifestEntry:
    line: int  # the manifest line this entry was read from
    file: Path
    key: str | None  # None: the file stem, or every transcript of a turn table
    kind: str  # session | ipr
    dyad: str | None
    session: int | None
    perspective: str | None  # client | therapist, for IPR interviews
    language: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    blinded_attributes: dict[str, str] = field(default_factory=dict)
    kind_given: bool = False  # the kind cell was filled in (else "session" by default)


@dataclass(frozen=True)
class Manifest:
    path: Path
    encoding: str
    entries: tuple[ManifestEntry, ...]


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    shown = str(path)
    decoded = decode_bytes(read_bytes(path), shown)
    text = decoded.text.lstrip("\ufeff")
    if not text.strip():
        raise InputError("empty file", shown)
    first_line = next(line for line in text.split("\n") if line.strip())
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv_reader(text, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    header_line = 0
    columns: dict[str, int] = {}
    attribute_columns: list[tuple[str, int, bool]] = []
    entries: list[ManifestEntry] = []
    previous_end = 0
    try:
        for cells in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header, header_line = cells, line
                columns, attribute_columns = _read_header(header, shown, line)
                continue
            refuse_extra_cells(cells, header, shown, line)
            entries.append(_read_entry(cells, line, columns, attribute_columns, path))
    except csv.Error as exc:
        raise csv_error(exc, shown, reader.line_num) from None
    if header is None or not entries:
        raise InputError("the manifest has no rows under its header", shown, header_line or None)
    _check_unique_keys(entries, shown)
    return Manifest(path, decoded.encoding, tuple(entries))


def _read_header(header: list[str], path: str, line: int):
    columns: dict[str, int] = {}
    attribute_columns: list[tuple[str, int, bool]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = " ".join(raw.split())
        if not name:
            raise InputError(f"column {index + 1} of the header has no name", path, line)
        blinded = name.casefold().startswith(BLINDED_PREFIX)
        prefix = _PREFIX.match(name)
        if prefix and not blinded:
            # A mistyped "blinded:" must not turn a hidden attribute into a visible one.
            raise InputError(
                f"column {index + 1} ({raw.strip()!r}): unknown prefix {prefix.group(1) + ':'!r};"
                f" the known prefix is {BLINDED_PREFIX!r} (an attribute hidden from blind coders)",
                path,
                line,
            )
        if blinded:
            name = name[len(BLINDED_PREFIX) :].strip()
            if not name:
                raise InputError(f"column {index + 1}: 'blinded:' needs an attribute name after it", path, line)
        folded = name.casefold()
        if folded in seen:
            raise InputError(f"column {name!r} appears twice (columns {seen[folded] + 1} and {index + 1})", path, line)
        seen[folded] = index
        if folded in RESERVED_COLUMNS:
            if blinded:
                raise InputError(f"column {raw!r}: {name} is a manifest field and cannot be blinded", path, line)
            columns[folded] = index
        else:
            attribute_columns.append((name, index, blinded))
    if "file" not in columns:
        raise InputError("the manifest has no 'file' column", path, line)
    return columns, attribute_columns


def _read_entry(cells, line, columns, attribute_columns, manifest_path: Path) -> ManifestEntry:
    shown = str(manifest_path)

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    file_text = cell("file")
    if not file_text:
        raise InputError("the file column is empty", shown, line)
    file = Path(file_text)
    if not file.is_absolute():
        file = manifest_path.parent / file
    if not file.is_file():
        raise InputError(f"file not found: {file_text}", shown, line)

    kind = (cell("kind") or "session").casefold()
    if kind not in KINDS:
        raise InputError(f"kind {cell('kind')!r} is not one of {', '.join(KINDS)}", shown, line)

    def session_number(name: str) -> int | None:
        if not cell(name):
            return None
        if not re.fullmatch(r"\d{1,6}", cell(name)) or int(cell(name)) < 1:
            raise InputError(f"{name} {cell(name)!r} is not a session number (1, 2, ...)", shown, line)
        return int(cell(name))

    session = session_number("session")
    about = session_number("about")
    if about is not None:
        if kind != "ipr":
            raise InputError(
                "column 'about' is the session an IPR interview is about; this row's kind is session", shown, line
            )
        if session is not None and session != about:
            raise InputError(
                f"the interview is about session {about}, but its session column says {session}", shown, line
            )
        session = about

    perspective = None
    if cell("perspective"):
        perspective = _PERSPECTIVE_WORDS.get(cell("perspective").casefold())
        if perspective is None:
            raise InputError(
                f"perspective {cell('perspective')!r} is not one of {', '.join(PERSPECTIVES)}", shown, line
            )
    if kind == "ipr":
        if perspective is None:
            raise InputError("an IPR interview needs a perspective (client or therapist)", shown, line)
        if not cell("dyad"):
            raise InputError("an IPR interview needs its dyad", shown, line)

    attributes: dict[str, str] = {}
    blinded_attributes: dict[str, str] = {}
    for name, index, blinded in attribute_columns:
        value = cells[index].strip() if index < len(cells) else ""
        if value:
            (blinded_attributes if blinded else attributes)[name] = value
    return ManifestEntry(
        line=line,
        file=file,
        key=cell("key") or None,
        kind=kind,
        dyad=cell("dyad") or None,
        session=session,
        perspective=perspective,
        language=cell("language") or None,
        attributes=attributes,
        blinded_attributes=blinded_attributes,
        kind_given=bool(cell("kind")),
    )


def _check_unique_keys(entries: list[ManifestEntry], path: str) -> None:
    seen_keys: dict[str, int] = {}
    seen_files: dict[tuple[Path, str | None], int] = {}
    for entry in entries:
        resolved = entry.file.resolve()
        if (resolved, entry.key) in seen_files:
            raise InputError(
                f"{entry.file.name} is listed twice (also on line {seen_files[(resolved, entry.key)]})",
                path,
                entry.line,
            )
        seen_files[(resolved, entry.key)] = entry.line
        key = entry.key
        if key is None and entry.file.suffix.lower() not in (*_TABLE_SUFFIXES, *_JSON_SUFFIXES):
            key = entry.file.stem
        if key is None:
            continue
        if key in seen_keys:
            raise InputError(f"transcript key {key!r} is used twice (also on line {seen_keys[key]})", path, entry.line)
        seen_keys[key] = entry.line


def parse_manifest_transcripts(
    manifest: Manifest,
    *,
    speaker_map: str | Mapping[str, str] | None = None,
    unknown_speakers: str = "error",
    columns: Mapping[str, str] | None = None,
    table_attributes: tuple[str, ...] = (),
    table_blinded: tuple[str, ...] = (),
    lenient: bool = False,
) -> list[tuple[ManifestEntry, ParsedTranscript]]:
    """Parse every listed file; the manifest's attributes are added to each transcript it yields.

    `columns`, `table_attributes` and `table_blinded` apply to the turn tables (.csv/.xlsx) and JSON
    files listed.
    """
    results = []
    seen_keys: dict[str, int] = {}
    for entry in manifest.entries:
        is_table = entry.file.suffix.lower() in (*_TABLE_SUFFIXES, *_JSON_SUFFIXES)
        transcripts = parse_transcript(
            entry.file,
            key=entry.key,
            kind=entry.kind,
            speaker_map=speaker_map,
            unknown_speakers=unknown_speakers,
            language=entry.language,
            columns=columns if is_table else None,
            attributes=table_attributes if is_table else (),
            blinded=table_blinded if is_table else (),
            lenient=lenient,
        )
        for transcript in transcripts:
            if transcript.key in seen_keys:
                raise InputError(
                    f"transcript key {transcript.key!r} from {entry.file.name} is also produced by line "
                    f"{seen_keys[transcript.key]}",
                    str(manifest.path),
                    entry.line,
                )
            seen_keys[transcript.key] = entry.line
            results.append((entry, _with_manifest_attributes(transcript, entry, manifest)))
    return results


def _with_manifest_attributes(transcript: ParsedTranscript, entry: ManifestEntry, manifest: Manifest):
    attributes = dict(transcript.attributes)
    blinded = dict(transcript.blinded_attributes)
    for target, values in ((attributes, entry.attributes), (blinded, entry.blinded_attributes)):
        for name, value in values.items():
            if name in target and target[name] != value:
                raise InputError(
                    f"attribute {name!r} is {value!r} in the manifest but {target[name]!r} in {entry.file.name}",
                    str(manifest.path),
                    entry.line,
                )
            target[name] = value
    clash = set(attributes) & set(blinded)
    if clash:
        name = sorted(clash)[0]
        raise InputError(f"attribute {name!r} is both open and blinded", str(manifest.path), entry.line)
    return replace(transcript, attributes=attributes, blinded_attributes=blinded)
