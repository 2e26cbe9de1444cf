"""Read transcripts in the forms users have them into ParsedTranscript values.

Plain text and Markdown keep the file's text verbatim; Word documents keep their paragraphs as lines;
subtitle files and turn tables are rebuilt as "LABEL: utterance" lines. Every turn records the
character range of its spoken text in that canonical text, so codings can index into it.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import docx  # python-docx
import openpyxl

from concord.importers.encoding import DecodedText, decode_bytes, read_bytes
from concord.importers.parsed import ParsedTranscript, ParsedTurn
from concord.importers.speakers import (
    MalformedTimestamp,
    SpeakerLine,
    SpeakerRoles,
    TimeMarkLine,
    match_speaker_line,
    parse_clock,
    parse_time_value,
    parse_timestamp_token,
)
from concord.storage.errors import InputError
from concord.storage.limits import check_zip, check_zip_directory, csv_error, csv_reader, refuse_extra_cells

FORMATS = ("txt", "md", "docx", "vtt", "srt", "csv", "xlsx")
KINDS = ("session", "ipr")
UNKNOWN_SPEAKER_POLICIES = ("error", "other")
TABLE_FIELDS = ("transcript", "turn", "speaker", "start", "end", "text")

_FORMAT_ALIASES = {
    "txt": "txt",
    "text": "txt",
    "md": "md",
    "markdown": "md",
    "docx": "docx",
    "word": "docx",
    "vtt": "vtt",
    "webvtt": "vtt",
    "srt": "srt",
    "csv": "csv",
    "tsv": "csv",
    "xlsx": "xlsx",
    "excel": "xlsx",
}
_EXTENSION_FORMATS = {
    "txt": "txt",
    "text": "txt",
    "md": "md",
    "markdown": "md",
    "docx": "docx",
    "vtt": "vtt",
    "srt": "srt",
    "csv": "csv",
    "tsv": "csv",
    "xlsx": "xlsx",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# A non-verbal annotation is a bracketed or parenthesised note with at least one letter in it:
# (laughs shortly), [sighs], (inaudible words). Bracketed timestamps and elisions like [...] have none.
_NONVERBAL = re.compile(r"\((?=[^()]*?[^\W\d_])[^()]{1,300}\)|\[(?=[^\[\]]*?[^\W\d_])[^\[\]]{1,300}\]")
_VIDEO_OPEN = re.compile(r"[ \t]*\[[ \t]*VIDEO(?:[ \t]+(?P<time>[^\]]*?))?[ \t]*\][ \t]*", re.IGNORECASE)
_VIDEO_CLOSE = re.compile(r"[ \t]*\[[ \t]*/[ \t]*VIDEO[ \t]*\][ \t]*", re.IGNORECASE)
_MD_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_MAX_LISTED_LINES = 8


# ---------------------------------------------------------------------------------------------
# Public API


def parse_transcript(
    path: str | Path,
    *,
    format: str | None = None,
    key: str | None = None,
    kind: str = "session",
    speaker_map: str | Mapping[str, str] | None = None,
    unknown_speakers: str = "error",
    language: str | None = None,
    attributes: Sequence[str] = (),
    blinded: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
) -> list[ParsedTranscript]:
    """Parse one file into transcripts (a turn table may hold many, hence a list)."""
    path = Path(path)
    shown = str(path)
    kind = _checked_choice(kind, KINDS, "kind")
    unknown_speakers = _checked_choice(unknown_speakers, UNKNOWN_SPEAKER_POLICIES, "unknown_speakers")
    if key is not None:
        key = key.strip()
        if not key:
            raise InputError("the transcript key is blank", shown)
    roles = SpeakerRoles(speaker_map)
    data = read_bytes(path)
    if not data:
        raise InputError("empty file", shown)
    chosen = _checked_format(format, shown) if format else detect_format(path, data)
    source = _Source(
        path=shown,
        name=path.name,
        stem=path.stem,
        sha256=hashlib.sha256(data).hexdigest(),
        kind=kind,
        roles=roles,
        unknown_speakers=unknown_speakers,
        language=language.strip() if language and language.strip() else None,
    )
    if chosen in ("csv", "xlsx"):
        return _parse_turn_table(data, chosen, source, key, columns, attributes, blinded)
    extra_warnings = []
    if attributes or blinded or columns:
        extra_warnings.append(f"attribute and column options apply to turn tables only; ignored for {chosen}")
    if chosen == "docx":
        transcript = _parse_docx(data, source, key)
    else:
        decoded = decode_bytes(data, shown)
        if not decoded.text.strip():
            raise InputError("empty file (only blank lines)", shown)
        parsers = {"txt": _parse_plain_text, "md": _parse_plain_text, "vtt": _parse_vtt, "srt": _parse_srt}
        transcript = parsers[chosen](decoded, chosen, source, key)
    if extra_warnings:
        transcript = _with_warnings(transcript, extra_warnings)
    return [transcript]


def detect_format(path: str | Path, data: bytes) -> str:
    """The format from the content where it is telling, else from the file extension."""
    path = Path(path)
    extension = path.suffix.lower().lstrip(".")
    by_extension = _EXTENSION_FORMATS.get(extension)
    if data.startswith(b"PK\x03\x04"):
        try:
            check_zip_directory(data, str(path), "ZIP archive")
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (InputError, zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            names = None
        if names is not None and "word/document.xml" in names:
            return "docx"
        if names is not None and "xl/workbook.xml" in names:
            return "xlsx"
        if by_extension in ("docx", "xlsx"):
            return by_extension  # its parser says why the file cannot be read
        raise InputError("a ZIP archive that is neither a Word document nor an Excel workbook", str(path))
    if data.startswith(_OLE_MAGIC):
        raise InputError(
            "an old binary Office file (.doc/.xls) or a password-protected document; "
            "save it unprotected as .docx or .xlsx and import that",
            str(path),
        )
    if by_extension in ("docx", "xlsx"):
        return by_extension
    decoded = decode_bytes(data, str(path))
    sniffed = _sniff_text_format(decoded.text)
    if sniffed in ("vtt", "srt"):
        return sniffed
    if by_extension in ("csv", "vtt", "srt", "md"):
        return by_extension
    return sniffed or by_extension or "txt"


# ---------------------------------------------------------------------------------------------
# Shared building blocks


@dataclass(frozen=True)
class _Source:
    path: str
    name: str
    stem: str
    sha256: str
    kind: str
    roles: SpeakerRoles
    unknown_speakers: str
    language: str | None


@dataclass
class _DraftTurn:
    label: str
    source_line: int
    utterance_start: int
    content_end: int
    start_time: float | None
    end_time: float | None
    replayed: bool
    number: int | None = None
    typed: bool = False  # recognised from a typed "LABEL: ..." line rather than a table or cue


@dataclass
class _TranscriptBuilder:
    """Accumulates the canonical text line by line and the turns that index into it."""

    source: _Source
    unit: str  # what source_line counts: "line", "paragraph" or "row"
    lines: list[str] = field(default_factory=list)
    length: int = 0
    turns: list[_DraftTurn] = field(default_factory=list)
    current: _DraftTurn | None = None
    warnings: list[str] = field(default_factory=list)

    def add_line(self, line: str) -> int:
        offset = self.length
        self.lines.append(line)
        self.length += len(line) + 1
        return offset

    def start_turn(self, label, source_line, utterance_start, start_time, end_time, replayed, number=None, typed=False):
        self.end_turn()
        self.current = _DraftTurn(
            label, source_line, utterance_start, utterance_start, start_time, end_time, replayed, number, typed
        )

    def extend_turn(self, content_end: int) -> None:
        if self.current is not None:
            self.current.content_end = max(self.current.content_end, content_end)

    def end_turn(self) -> None:
        if self.current is not None:
            self.turns.append(self.current)
            self.current = None

    def add_structured_turn(self, label, utterance, source_line, start_time, end_time, replayed=False, number=None):
        """A turn whose speaker and text come separately (table row, subtitle cue): "LABEL: utterance"."""
        first, *rest = utterance.split("\n")
        if not label:
            line, prefix = first, 0  # no speaker known: the text alone, flagged when roles are resolved
        else:
            line = f"{label}: {first}" if (first or rest) else f"{label}:"
            prefix = len(label) + 1
        offset = self.add_line(line)
        self.start_turn(label, source_line, offset + prefix, start_time, end_time, replayed, number)
        self.extend_turn(offset + len(line))
        for more in rest:
            self.extend_turn(self.add_line(more) + len(more))

    def continue_structured_turn(self, utterance: str, end_time: float | None) -> None:
        """More text of the turn above (a further cue or table row of the same speaker)."""
        for more in utterance.split("\n"):
            self.extend_turn(self.add_line(more) + len(more))
        if self.current is not None and end_time is not None:
            self.current.end_time = end_time

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def build(self, key: str, format_name: str, encoding: str | None, attributes=None, blinded=None):
        self.end_turn()
        self._drop_header_labels()
        text = self.text
        if not self.turns:
            raise InputError(
                "no speaker turns found: expected lines such as 'T: ...' or 'Name: ...', "
                "or give the speaker column of a table",
                self.source.path,
            )
        roles = self._resolve_roles()
        turns = []
        seen_numbers: dict[int, int] = {}
        for index, draft in enumerate(self.turns, start=1):
            start, end = _trimmed_range(text, draft.utterance_start, draft.content_end)
            number = draft.number if draft.number is not None else index
            if number in seen_numbers:
                raise InputError(
                    f"turn number {number} appears twice (also at {self.unit} {seen_numbers[number]})",
                    self.source.path,
                    draft.source_line,
                )
            seen_numbers[number] = draft.source_line
            turns.append(
                ParsedTurn(
                    number=number,
                    speaker_label=draft.label,
                    speaker_role=roles[draft.label],
                    text_start=start,
                    text_end=end,
                    start_time=draft.start_time,
                    end_time=draft.end_time,
                    replayed=draft.replayed,
                    nonverbal=tuple(m.span() for m in _NONVERBAL.finditer(text, start, end)),
                    source_line=draft.source_line,
                )
            )
        attributes = dict(attributes or {})
        if self.source.language and "language" not in attributes:
            attributes["language"] = self.source.language
        return ParsedTranscript(
            key=key,
            source_name=self.source.name,
            sha256=self.source.sha256,
            encoding=encoding,
            format=format_name,
            text=text,
            turns=tuple(turns),
            attributes=attributes,
            blinded_attributes=dict(blinded or {}),
            warnings=tuple(self.warnings),
        )

    def _drop_header_labels(self) -> None:
        """Typed lines such as "Transkript: session 5" or "Datum: 2021-03-04" above the first turn of a
        known speaker are a header, not turns: their label is unknown and never comes back below."""
        roles = self.source.roles
        first_known = next((i for i, d in enumerate(self.turns) if roles.is_known(d.label)), None)
        if first_known is None or first_known == 0:
            return
        later_labels = {d.label for d in self.turns[first_known:]}
        header = [d for d in self.turns[:first_known] if d.typed and d.label not in later_labels]
        if not header:
            return
        header_ids = {id(d) for d in header}
        self.turns = [d for d in self.turns if id(d) not in header_ids]
        described = "; ".join(f"{d.label!r} ({self.unit} {d.source_line})" for d in header)
        self.warnings.append(
            f"kept as header text, not turns: {described} (unknown labels above the first known speaker)"
        )

    def _resolve_roles(self) -> dict[str, str]:
        roles: dict[str, str] = {}
        unknown: dict[str, list[int]] = {}
        for draft in self.turns:
            role = self.source.roles.role_for(draft.label) if draft.label else None
            if role is None:
                unknown.setdefault(draft.label, []).append(draft.source_line)
            else:
                roles[draft.label] = role
        if not unknown:
            return roles
        described = "; ".join(f"{_shown_label(label)} ({_units(self.unit, lines)})" for label, lines in unknown.items())
        if self.source.unknown_speakers == "error":
            example = next((label for label in unknown if label), "Name")
            raise InputError(
                f"unknown speaker label(s): {described}. Give them roles with a speaker map "
                f"(e.g. '{example}=therapist') or import unknown speakers as 'other'",
                self.source.path,
                min(line for lines in unknown.values() for line in lines),
            )
        for label in unknown:
            roles[label] = "other"
        self.warnings.append(f"speaker label(s) without a role, recorded as 'other': {described}")
        return roles


def _shown_label(label: str) -> str:
    return repr(label) if label else "(no speaker label)"


def _units(unit: str, numbers: Sequence[int]) -> str:
    return f"{unit}{'s' if len(numbers) > 1 else ''} {_listed(numbers)}"


def _listed(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED_LINES])
    return shown + (f" and {len(numbers) - _MAX_LISTED_LINES} more" if len(numbers) > _MAX_LISTED_LINES else "")


def _trimmed_range(text: str, start: int, end: int) -> tuple[int, int]:
    end = max(start, end)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _with_warnings(transcript: ParsedTranscript, warnings: Iterable[str]) -> ParsedTranscript:
    return replace(transcript, warnings=transcript.warnings + tuple(warnings))


def _checked_choice(value: str, allowed: Sequence[str], what: str) -> str:
    normalised = (value or "").strip().lower()
    if normalised not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return normalised


def _checked_format(value: str, path: str) -> str:
    normalised = _FORMAT_ALIASES.get(value.strip().lower().lstrip("."))
    if normalised is None:
        raise InputError(f"unknown transcript format {value!r} (use one of {', '.join(FORMATS)})", path)
    return normalised


def _sniff_text_format(text: str) -> str | None:
    stripped = text.lstrip("\ufeff \t\n")
    if stripped.startswith("WEBVTT"):
        return "vtt"
    head = [line.strip() for line in stripped.split("\n", 3)[:2]]
    if len(head) == 2 and head[0].isdigit() and "-->" in head[1]:
        return "srt"
    first_line = stripped.split("\n", 1)[0]
    if first_line:
        try:
            header: list[str] = next(csv_reader(first_line, delimiter=_guess_delimiter(first_line)), [])
        except csv.Error:
            return None  # not a table header; the text parser says what is wrong with the line
        normalised = [_column_key(name) for name in header]
        if (
            len(header) >= 2
            and _find_column(normalised, "speaker") is not None
            and _find_column(normalised, "text") is not None
        ):
            return "csv"
    return None


# ---------------------------------------------------------------------------------------------
# Plain text, Markdown and Word paragraphs


class _LineParser:
    """Reads typed transcript lines: speaker lines start turns, other lines continue the turn above."""

    def __init__(self, builder: _TranscriptBuilder, *, markdown: bool):
        self.builder = builder
        self.source = builder.source
        self.markdown = markdown
        self.video_open_line: int | None = None
        self.video_time: float | None = None
        self.pending_time: tuple[float, float | None] | None = None
        self.outside_lines: list[int] = []

    @property
    def in_video(self) -> bool:
        return self.video_open_line is not None

    def feed(self, line: str, source_line: int) -> None:
        builder = self.builder
        offset = builder.add_line(line)
        if self.source.kind == "ipr" and self._replay_marker(line, source_line):
            builder.end_turn()
            return
        if self.markdown and _MD_HEADING.match(line):
            builder.end_turn()
            return
        try:
            recognised = match_speaker_line(line, self.source.roles, markdown=self.markdown)
        except MalformedTimestamp as exc:
            raise InputError(str(exc), self.source.path, source_line) from None
        if isinstance(recognised, TimeMarkLine):
            builder.end_turn()
            self.pending_time = (recognised.start_time, recognised.end_time)
            return
        if isinstance(recognised, SpeakerLine):
            self._start_turn(recognised, offset, line, source_line)
            return
        if not line.strip():
            return
        if builder.current is not None:
            builder.extend_turn(offset + len(line.rstrip()))
        else:
            self.outside_lines.append(source_line)

    def start_structured_turn(self, label, utterance, source_line, start_time, end_time) -> None:
        """A Word table row met between typed paragraphs: it shares the replay state."""
        if start_time is None:
            start_time = self._inherited_time()[0]
        self.pending_time = None
        self.builder.add_structured_turn(label, utterance, source_line, start_time, end_time, self.in_video)

    def finish(self) -> None:
        self.builder.end_turn()
        if self.in_video:
            raise InputError("[VIDEO] marker is never closed with [/VIDEO]", self.source.path, self.video_open_line)
        if self.outside_lines:
            self.builder.warnings.append(
                f"text outside any turn ({_units(self.builder.unit, self.outside_lines)}): "
                "kept in the transcript but not attributed to a speaker"
            )

    def _start_turn(self, recognised: SpeakerLine, offset: int, line: str, source_line: int) -> None:
        start, end = recognised.start_time, recognised.end_time
        if start is None:
            start, end = self._inherited_time()
        self.pending_time = None
        self.builder.start_turn(
            recognised.label, source_line, offset + recognised.utterance_start, start, end, self.in_video, typed=True
        )
        if line[recognised.utterance_start :].strip():
            self.builder.extend_turn(offset + len(line.rstrip()))

    def _inherited_time(self) -> tuple[float | None, float | None]:
        if self.pending_time is not None:
            return self.pending_time
        return self.video_time, None

    def _replay_marker(self, line: str, source_line: int) -> bool:
        opening = _VIDEO_OPEN.fullmatch(line)
        if opening:
            if self.in_video:
                raise InputError(
                    f"[VIDEO] opened again before the one at {self.builder.unit} {self.video_open_line} "
                    "was closed with [/VIDEO]",
                    self.source.path,
                    source_line,
                )
            self.video_time = None
            if opening["time"]:
                try:
                    self.video_time = parse_timestamp_token(opening["time"])[0]
                except MalformedTimestamp as exc:
                    raise InputError(f"[VIDEO] marker: {exc}", self.source.path, source_line) from None
            self.video_open_line = source_line
            self.pending_time = None
            return True
        if _VIDEO_CLOSE.fullmatch(line):
            if not self.in_video:
                raise InputError("[/VIDEO] without an opening [VIDEO] marker", self.source.path, source_line)
            self.video_open_line = None
            self.video_time = None
            self.pending_time = None
            return True
        return False


def _parse_plain_text(decoded: DecodedText, format_name: str, source: _Source, key: str | None):
    builder = _TranscriptBuilder(source, unit="line")
    builder.warnings.extend(decoded.warnings)
    parser = _LineParser(builder, markdown=format_name == "md")
    for number, line in enumerate(decoded.text.split("\n"), start=1):
        parser.feed(line, number)
    parser.finish()
    transcript = builder.build(key or source.stem, format_name, decoded.encoding)
    assert transcript.text == decoded.text, "plain text must be kept verbatim"
    return transcript


# ---------------------------------------------------------------------------------------------
# Word documents


def _parse_docx(data: bytes, source: _Source, key: str | None) -> ParsedTranscript:
    check_zip(data, source.path, "Word document")
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
    except Exception as exc:  # noqa: BLE001 (python-docx raises zip, XML and key errors alike for a broken file)
        reason = str(exc) or type(exc).__name__
        raise InputError(
            f"not a readable Word document ({reason}); open it in Word and save it again as .docx",
            source.path,
        ) from None
    builder = _TranscriptBuilder(source, unit="paragraph")
    parser = _LineParser(builder, markdown=False)
    number = 0
    for block in _docx_blocks(body):
        if isinstance(block, str):
            number += 1
            for line in block.split("\n"):
                parser.feed(line, number)
            continue
        columns = _docx_table_columns(block)
        if columns is None:
            for row in block:
                number += 1
                for line in "\t".join(row).split("\n"):
                    parser.feed(line, number)
            continue
        header_rows, speaker_col, time_col, text_col = columns
        for row in block[:header_rows]:
            number += 1
            builder.end_turn()
            for line in "\t".join(row).split("\n"):
                builder.add_line(line)
        for row in block[header_rows:]:
            number += 1
            if len(row) == 1:
                builder.end_turn()  # a row merged into one cell is a note, e.g. [VIDEO 00:12:30]
                for line in row[0].split("\n"):
                    parser.feed(line, number)
                builder.end_turn()
                continue
            label = _cell(row, speaker_col).strip().rstrip(":").strip()
            utterance = _cell(row, text_col)
            time_text = _cell(row, time_col).strip() if time_col is not None else ""
            if not label and not utterance.strip() and not time_text:
                builder.end_turn()
                builder.add_line("")
                continue
            try:
                start, end = _cell_times(time_text)
            except MalformedTimestamp as exc:
                raise InputError(f"time cell: {exc}", source.path, number) from None
            if not label and builder.current is not None:
                builder.continue_structured_turn(utterance, end)
                continue
            parser.start_structured_turn(label, utterance, number, start, end)
        builder.end_turn()
    parser.finish()
    return builder.build(key or source.stem, "docx", None)


def _docx_namespace(tag: str) -> str:
    from docx.oxml.ns import qn

    return qn(tag)


def _docx_blocks(body) -> Iterator[str | list[list[str]]]:
    """Paragraph texts and tables (lists of rows of cell texts) in document order."""
    paragraph, table = _docx_namespace("w:p"), _docx_namespace("w:tbl")
    containers = {_docx_namespace("w:sdt"), _docx_namespace("w:sdtContent"), _docx_namespace("w:customXml")}
    for child in body.iterchildren():
        if child.tag == paragraph:
            yield _docx_paragraph_text(child)
        elif child.tag == table:
            yield _docx_table_rows(child)
        elif child.tag in containers:
            yield from _docx_blocks(child)


def _docx_paragraph_text(paragraph) -> str:
    """Visible text of a paragraph, tracked insertions included and deletions left out.

    python-docx's Paragraph.text skips runs inside <w:ins>, which would silently drop words.
    """
    ns = _docx_namespace
    text_tag, tab_tag = ns("w:t"), ns("w:tab")
    breaks = {ns("w:br"), ns("w:cr")}
    hyphen = ns("w:noBreakHyphen")
    skipped = {
        ns("w:pPr"),
        ns("w:rPr"),
        ns("w:del"),
        ns("w:moveFrom"),
        ns("w:p"),
        ns("w:txbxContent"),
        ns("w:instrText"),
        "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback",
    }
    parts: list[str] = []

    def walk(element) -> None:
        for child in element:
            tag = child.tag
            if tag == text_tag:
                parts.append(child.text or "")
            elif tag == tab_tag:
                parts.append("\t")
            elif tag in breaks:
                parts.append("\n")
            elif tag == hyphen:
                parts.append("-")
            elif tag not in skipped and isinstance(tag, str):
                walk(child)

    walk(paragraph)
    return "".join(parts).replace("\r\n", "\n").replace("\r", "\n")


def _docx_table_rows(table) -> list[list[str]]:
    ns = _docx_namespace
    row_tag, cell_tag, paragraph_tag, nested_table = ns("w:tr"), ns("w:tc"), ns("w:p"), ns("w:tbl")
    grid_span, grid_before, value = ns("w:gridSpan"), ns("w:gridBefore"), ns("w:val")
    rows = []
    for row in table.iter(row_tag):
        if next(row.iterancestors(nested_table), None) is not table:
            continue  # a row of a nested table: its text is part of the enclosing cell
        cells: list[str] = []
        before = row.find(f"{ns('w:trPr')}/{grid_before}")
        if before is not None:
            cells.extend([""] * int(before.get(value, "0")))
        row_cells = list(row.iterchildren(cell_tag))
        for cell in row_cells:
            texts = []
            for child in cell:
                if child.tag == paragraph_tag:
                    texts.append(_docx_paragraph_text(child))
                elif child.tag == nested_table:
                    texts.extend("\t".join(r) for r in _docx_table_rows(child))
            cells.append("\n".join(texts))
            span = cell.find(f"{ns('w:tcPr')}/{grid_span}")
            if span is not None:
                if len(row_cells) == 1 and before is None:
                    break  # one cell merged across the row: a note or heading, kept as a single-cell row
                cells.extend([""] * (int(span.get(value, "1")) - 1))
        rows.append(cells)
    return rows


_DOCX_SPEAKER_HEADERS = {
    "speaker",
    "talare",
    "taler",
    "role",
    "roll",
    "rolle",
    "who",
    "name",
    "namn",
    "navn",
    "person",
}
_DOCX_TIME_HEADERS = {
    "time",
    "tid",
    "timestamp",
    "tidpunkt",
    "start",
    "start time",
    "starttid",
    "tidskod",
    "tidskode",
    "timecode",
}
_DOCX_TEXT_HEADERS = {
    "text",
    "tekst",
    "utterance",
    "content",
    "transcript",
    "transkription",
    "transkripsjon",
    "yttrande",
    "ytring",
    "innhold",
    "innehåll",
    "speech",
    "tal",
    "tale",
}


def _docx_table_columns(rows: list[list[str]]):
    """(header rows, speaker, time, text) column indexes of a speaker table, or None for other tables."""
    rows = [row for row in rows if len(row) > 1]  # rows merged into one cell are notes
    if not rows:
        return None
    width = max(len(row) for row in rows)
    header = [" ".join(cell.split()).casefold().rstrip(":") for cell in rows[0]]

    def find(names):
        return next((i for i, name in enumerate(header) if name in names), None)

    speaker, time, text = find(_DOCX_SPEAKER_HEADERS), find(_DOCX_TIME_HEADERS), find(_DOCX_TEXT_HEADERS)
    if speaker is not None and text is not None:
        return 1, speaker, time, text
    if width not in (2, 3) or len(rows) < 1:
        return None
    columns = list(range(width))
    filled = {c: [row[c].strip() for row in rows if c < len(row) and row[c].strip()] for c in columns}
    time = None
    if width == 3:
        time = next((c for c in columns if filled[c] and all(_looks_like_time(v) for v in filled[c])), None)
        if time is None:
            return None
        columns.remove(time)
    label_like = [c for c in columns if filled[c] and all(_looks_like_label(v) for v in filled[c])]
    if len(label_like) != 1 and not (len(label_like) == 2 and columns[0] in label_like):
        return None
    speaker = label_like[0]
    text = next(c for c in columns if c != speaker)
    return 0, speaker, time, text


def _looks_like_time(value: str) -> bool:
    try:
        _cell_times(value)
    except MalformedTimestamp:
        return False
    return True


def _looks_like_label(value: str) -> bool:
    value = value.rstrip(":").strip()
    return 0 < len(value) <= 40 and "\n" not in value and len(value.split()) <= 3 and value[0].isalpha()


def _cell(row: Sequence[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index]


def _cell_times(value: str) -> tuple[float | None, float | None]:
    value = value.strip()
    if not value:
        return None, None
    if ":" in value:
        if not re.fullmatch(r"[\[(]?[\d:.,\s\-–>]+[\])]?", value):
            raise MalformedTimestamp(f"not a time: {value!r}")
        return parse_timestamp_token(value)
    return parse_time_value(value), None


# ---------------------------------------------------------------------------------------------
# Subtitles: WebVTT and SubRip

_CUE_TIMING = re.compile(r"[ \t]*(?P<start>\S+)[ \t]+-->[ \t]+(?P<end>\S+)(?P<settings>.*)")
_VTT_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:[ \t]+(?P<name>[^>]*))?>")
_VTT_MARKUP = re.compile(r"</?(?:c|i|b|u|v|ruby|rt|lang)(?:[.\s][^>]*)?>|<\d[\d:.]*>")
_SRT_MARKUP = re.compile(r"</?(?:i|b|u|font|s)(?:\s[^>]*)?>|\{\\[^}]*\}")


@dataclass
class _Cue:
    line: int  # the timing line
    start: float
    end: float
    payload: list[str]


def _cue_blocks(lines: list[str], first_index: int) -> Iterator[tuple[int, list[str]]]:
    block: list[str] = []
    start = 0
    for index in range(first_index, len(lines)):
        line = lines[index]
        if line.strip():
            if not block:
                start = index + 1
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def _cue_time(value: str, path: str, line: int) -> float:
    try:
        return parse_clock(value.replace(",", "."))
    except MalformedTimestamp as exc:
        raise InputError(f"cue timing: {exc}", path, line) from None


def _read_cues(lines: list[str], first_index: int, source: _Source, vtt: bool) -> list[_Cue]:
    cues = []
    for start_line, block in _cue_blocks(lines, first_index):
        head = block[0].strip()
        if vtt and head.startswith(("NOTE", "STYLE", "REGION")):
            continue
        if "-->" in block[0]:
            timing_index = 0
        elif len(block) > 1 and "-->" in block[1]:
            timing_index = 1
        else:
            raise InputError("cue without a timing line ('start --> end')", source.path, start_line)
        timing_line = start_line + timing_index
        timing = _CUE_TIMING.match(block[timing_index])
        if not timing:
            raise InputError(f"malformed cue timing {block[timing_index].strip()!r}", source.path, timing_line)
        start = _cue_time(timing["start"], source.path, timing_line)
        end = _cue_time(timing["end"], source.path, timing_line)
        if end < start:
            raise InputError("cue ends before it starts", source.path, timing_line)
        cues.append(_Cue(timing_line, start, end, block[timing_index + 1 :]))
    return cues


def _parse_vtt(decoded: DecodedText, format_name: str, source: _Source, key: str | None):
    lines = decoded.text.lstrip("\ufeff").split("\n")
    if not lines[0].startswith("WEBVTT"):
        raise InputError("not a WebVTT file: the first line must be WEBVTT", source.path, 1)
    header_end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    segments = []
    for cue in _read_cues(lines, header_end, source, vtt=True):
        for label, text in _vtt_segments(cue.payload, source.roles):
            segments.append((cue, label, text))
    return _build_from_cues(segments, source, key, "vtt", decoded)


def _vtt_segments(payload: list[str], roles: SpeakerRoles) -> list[tuple[str | None, str]]:
    joined = "\n".join(payload)
    voices = list(_VTT_VOICE.finditer(joined))
    if not voices:
        return _prefixed_segments([_clean_vtt(line) for line in payload], roles)
    segments: list[tuple[str | None, str]] = []
    leading = _clean_vtt(joined[: voices[0].start()]).strip()
    if leading:
        segments.append((None, leading))
    for index, voice in enumerate(voices):
        stop = voices[index + 1].start() if index + 1 < len(voices) else len(joined)
        text = _clean_vtt(joined[voice.end() : stop]).strip("\n")
        name = html.unescape(" ".join((voice["name"] or "").split()))
        segments.append((name or None, text))
    return segments


def _clean_vtt(text: str) -> str:
    return html.unescape(_VTT_MARKUP.sub("", text))


def _prefixed_segments(lines: list[str], roles: SpeakerRoles) -> list[tuple[str | None, str]]:
    """Cue lines that start with "Name:" (optionally after a dialogue dash) begin a new speaker."""
    segments: list[tuple[str | None, list[str]]] = []
    for line in lines:
        candidate = re.sub(r"^[ \t]*[-–][ \t]*", "", line)
        try:
            recognised = match_speaker_line(candidate, roles)
        except MalformedTimestamp:
            recognised = None
        if isinstance(recognised, SpeakerLine) and not recognised.header_only:
            segments.append((recognised.label, [candidate[recognised.utterance_start :]]))
        elif segments:
            segments[-1][1].append(line)
        else:
            segments.append((None, [line]))
    return [(label, "\n".join(parts)) for label, parts in segments]


def _parse_srt(decoded: DecodedText, format_name: str, source: _Source, key: str | None):
    lines = decoded.text.lstrip("\ufeff").split("\n")
    segments = []
    for cue in _read_cues(lines, 0, source, vtt=False):
        payload = [_SRT_MARKUP.sub("", line) for line in cue.payload]
        for label, text in _prefixed_segments(payload, source.roles):
            segments.append((cue, label, text))
    return _build_from_cues(segments, source, key, "srt", decoded)


def _build_from_cues(segments, source: _Source, key: str | None, format_name: str, decoded: DecodedText):
    """One turn per run of cues by the same speaker; a cue without a speaker continues the turn above."""
    if not segments:
        raise InputError("no cues found", source.path)
    builder = _TranscriptBuilder(source, unit="line")
    builder.warnings.extend(decoded.warnings)
    previous_label: str | None = None
    for cue, label, text in segments:
        continues = builder.current is not None and (label is None or label == previous_label)
        if continues:
            builder.continue_structured_turn(text, cue.end)
            continue
        builder.add_structured_turn(label or "", text, cue.line, cue.start, cue.end)
        previous_label = label or ""
    builder.add_line("")  # the canonical text ends with a newline like a file
    return builder.build(key or source.stem, format_name, decoded.encoding)


# ---------------------------------------------------------------------------------------------
# Turn tables: CSV and Excel

_COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "transcript": (
        "transcript",
        "transcript_id",
        "transcript_key",
        "transcript_name",
        "file",
        "filename",
        "file_name",
        "session_key",
        "document",
    ),
    "turn": ("turn", "turn_number", "turn_no", "turn_nr", "turn_id", "utterance_number", "utterance_no", "utterance"),
    "speaker": ("speaker", "role", "who", "speaker_label", "speaker_role", "talare", "taler"),
    "start": ("start", "start_time", "begin", "begin_time", "starttime", "start_seconds"),
    "end": ("end", "end_time", "stop", "endtime", "end_seconds"),
    "text": ("text", "content", "utterance_text", "utterance", "tekst", "transcript_text"),
}
# Text is found first so that a lone "utterance" column is the text, not the turn number.
_RESOLUTION_ORDER = ("text", "speaker", "transcript", "turn", "start", "end")


def _column_key(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name if name is not None else "").strip().casefold())


def _find_column(header_keys: Sequence[str], field_name: str, taken: Iterable[int] = ()) -> int | None:
    taken = set(taken)
    for candidate in _COLUMN_CANDIDATES[field_name]:
        for index, name in enumerate(header_keys):
            if name == candidate and index not in taken:
                return index
    return None


def _guess_delimiter(header_line: str) -> str:
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass(frozen=True)
class _TableRow:
    line: int
    cells: tuple[object, ...]


def _read_csv_table(data: bytes, source: _Source) -> tuple[str, int, list[object], list[_TableRow]]:
    decoded = decode_bytes(data, source.path)
    text = decoded.text.lstrip("\ufeff")
    lines = text.split("\n")
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise InputError("empty file (only blank lines)", source.path)
    delimiter = _guess_delimiter(lines[header_index])
    reader = csv_reader(text, delimiter=delimiter, strict=True)
    header: list[object] | None = None
    header_line = 0
    rows: list[_TableRow] = []
    previous_end = 0
    try:
        for cells in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if header is None:
                if not any(cell.strip() for cell in cells):
                    continue
                header, header_line = list(cells), line
                continue
            refuse_extra_cells(cells, header, source.path, line, "line")
            rows.append(_TableRow(line, tuple(cells)))
    except csv.Error as exc:
        raise csv_error(exc, source.path, reader.line_num) from None
    return decoded.encoding, header_line, header or [], rows


def _read_xlsx_table(data: bytes, source: _Source) -> tuple[None, int, list[object], list[_TableRow]]:
    check_zip(data, source.path, "Excel workbook")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 (openpyxl raises zip, XML and key errors alike for a broken file)
        reason = str(exc) or type(exc).__name__
        raise InputError(f"not a readable Excel workbook ({reason}); save it again as .xlsx", source.path) from None
    try:
        sheet = workbook.worksheets[0]
        header: list[object] | None = None
        header_line = 0
        rows: list[_TableRow] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if header is None:
                if not any(_cell_text(v).strip() for v in values):
                    continue
                header, header_line = list(values), number
                continue
            refuse_extra_cells(list(values), header, source.path, number)
            rows.append(_TableRow(number, tuple(values)))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (read-only openpyxl parses the sheet while rows are read)
        reason = str(exc) or type(exc).__name__
        raise InputError(f"not a readable Excel workbook ({reason}); save it again as .xlsx", source.path) from None
    finally:
        workbook.close()
    return None, header_line, header or [], rows


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).replace("\r\n", "\n").replace("\r", "\n")


def _resolve_table_columns(header: list[object], columns: Mapping[str, str] | None, source: _Source, line: int):
    keys = [_column_key(name) for name in header]
    resolved: dict[str, int] = {}
    for field_name, column in (columns or {}).items():
        if field_name not in TABLE_FIELDS:
            raise InputError(f"unknown column role {field_name!r} (use {', '.join(TABLE_FIELDS)})", source.path)
        if column is None or not str(column).strip():
            continue
        wanted = _column_key(column)
        if wanted not in keys:
            raise InputError(f"column {column!r} (given for {field_name}) is not in the header", source.path, line)
        resolved[field_name] = keys.index(wanted)
    for field_name in _RESOLUTION_ORDER:
        if field_name not in resolved and not (columns and field_name in columns):
            found = _find_column(keys, field_name, resolved.values())
            if found is not None:
                resolved[field_name] = found
    for required in ("speaker", "text"):
        if required not in resolved:
            raise InputError(
                f"turn table has no {required} column (looked for {', '.join(_COLUMN_CANDIDATES[required])}; "
                "or name it in the column mapping)",
                source.path,
                line,
            )
    return keys, resolved


def _parse_turn_table(data, format_name, source: _Source, key, columns, attributes, blinded):
    reader = _read_csv_table if format_name == "csv" else _read_xlsx_table
    encoding, header_line, header, rows = reader(data, source)
    if not header:
        raise InputError("empty table (no header row)", source.path)
    keys, resolved = _resolve_table_columns(header, columns, source, header_line)
    unit = "line" if format_name == "csv" else "row"  # a CSV line number; Excel's own row number
    attribute_columns: dict[str, int] = {}
    for name in list(dict.fromkeys([*attributes, *blinded])):
        wanted = _column_key(name)
        if wanted not in keys:
            raise InputError(f"attribute column {name!r} is not in the header", source.path, header_line)
        attribute_columns[name] = keys.index(wanted)
    blinded_names = set(blinded)

    def value(row: _TableRow, field_name: str) -> object:
        index = resolved.get(field_name)
        return row.cells[index] if index is not None and index < len(row.cells) else None

    groups: dict[str, list[_TableRow]] = {}
    for row in rows:
        if not any(_cell_text(cell).strip() for cell in row.cells):
            continue
        if "transcript" in resolved:
            transcript_key = _cell_text(value(row, "transcript")).strip()
            if not transcript_key:
                raise InputError(f"{unit} {row.line}: the transcript column is empty", source.path, row.line)
        else:
            transcript_key = key or source.stem
        groups.setdefault(transcript_key, []).append(row)
    if not groups:
        raise InputError("the table has a header but no rows", source.path, header_line)
    if key is not None and "transcript" in resolved:
        if key not in groups:
            listed = ", ".join(list(groups)[:10])
            raise InputError(f"transcript {key!r} is not in this table (it has: {listed})", source.path)
        groups = {key: groups[key]}

    transcripts = []
    for transcript_key, group in groups.items():
        builder = _TranscriptBuilder(source, unit=unit)
        found: dict[str, tuple[str, int]] = {}
        entries = []
        for row in group:
            label = _cell_text(value(row, "speaker")).strip()
            if not label:
                raise InputError(f"{unit} {row.line}: the speaker cell is empty", source.path, row.line)
            number = _turn_number(value(row, "turn"), source, row.line, unit) if "turn" in resolved else None
            start = _table_time(value(row, "start"), "start", source, row.line, unit)
            end = _table_time(value(row, "end"), "end", source, row.line, unit)
            if start is not None and end is not None and end < start:
                raise InputError(f"{unit} {row.line}: the turn ends before it starts", source.path, row.line)
            for name, index in attribute_columns.items():
                cell = _cell_text(row.cells[index] if index < len(row.cells) else None).strip()
                if not cell:
                    continue
                if name in found and found[name][0] != cell:
                    raise InputError(
                        f"{unit} {row.line}: attribute {name!r} of transcript {transcript_key!r} is {cell!r} here "
                        f"but {found[name][0]!r} on {unit} {found[name][1]}",
                        source.path,
                        row.line,
                    )
                found.setdefault(name, (cell, row.line))
            entries.append((number, row.line, label, _cell_text(value(row, "text")), start, end))
        if "turn" in resolved:
            entries.sort(key=lambda entry: entry[0])
        for number, line, label, text, start, end in entries:
            builder.add_structured_turn(label, text, line, start, end, number=number)
        builder.add_line("")  # the canonical text ends with a newline like a file
        attribute_values = {name: v for name, (v, _) in found.items() if name not in blinded_names}
        blinded_values = {name: v for name, (v, _) in found.items() if name in blinded_names}
        transcripts.append(builder.build(transcript_key, format_name, encoding, attribute_values, blinded_values))
    return transcripts


def _turn_number(raw: object, source: _Source, line: int, unit: str) -> int:
    text = _cell_text(raw).strip()
    if not re.fullmatch(r"\d+", text):
        raise InputError(f"{unit} {line}: turn number {text!r} is not a whole number", source.path, line)
    return int(text)


def _table_time(raw: object, what: str, source: _Source, line: int, unit: str) -> float | None:
    try:
        return parse_time_value(raw.strip() if isinstance(raw, str) else raw)
    except MalformedTimestamp as exc:
        raise InputError(f"{unit} {line}: {what} time: {exc}", source.path, line) from None
