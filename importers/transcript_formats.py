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
from concord.importers.parsed import Design, DroppedValue, ParsedTranscript, ParsedTurn
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
from concord.storage.limits import (
    check_zip,
    check_zip_directory,
    csv_error,
    csv_reader,
    load_json,
    refuse_extra_cells,
)

FORMATS = ("txt", "md", "docx", "vtt", "srt", "csv", "xlsx", "json", "jsonl")
KINDS = ("session", "ipr")
UNKNOWN_SPEAKER_POLICIES = ("error", "other")
TABLE_FIELDS = ("transcript", "turn", "speaker", "start", "end", "text")
# Where a transcript sits in the study, read from a turn table's columns or a conversation's keys.
DESIGN_FIELDS = ("dyad", "session", "kind", "perspective", "about")
# JSON only: the path to the list of turns and to an object of attributes.
JSON_ONLY_FIELDS = ("turns", "attributes")
COLUMN_FIELDS = (*TABLE_FIELDS, *DESIGN_FIELDS, *JSON_ONLY_FIELDS)
_PERSPECTIVE_WORDS = {"client": "client", "patient": "client", "therapist": "therapist", "counsellor": "therapist"}

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
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
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
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
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
    lenient: bool = False,
) -> list[ParsedTranscript]:
    """Parse one file into transcripts (a turn table or JSON file may hold many, hence a list).

    lenient: a malformed auxiliary value (a timestamp, an attribute cell) is left empty and listed in
    the transcript's `dropped` instead of refusing the file; text, speakers and turn order never are."""
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
        lenient=lenient,
    )
    if chosen in ("csv", "xlsx"):
        return _parse_turn_table(data, chosen, source, key, columns, attributes, blinded)
    if chosen in ("json", "jsonl"):
        return _parse_json(data, chosen, source, key, columns, attributes, blinded)
    extra_warnings = []
    if attributes or blinded or columns:
        extra_warnings.append(
            f"--columns, --attributes and --blinded apply to turn tables and JSON only; ignored for {chosen}"
        )
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
    if by_extension in ("docx", "xlsx", "json", "jsonl"):
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
    lenient: bool = False


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
    dropped: list[DroppedValue] = field(default_factory=list)

    def drop(self, line: int | None, column: str, value: object, reason: str) -> None:
        """--lenient: an auxiliary value left empty, listed for the report."""
        self.dropped.append(DroppedValue(self.source.path, line, column, _cell_text(value), reason))

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

    def build(self, key: str, format_name: str, encoding: str | None, attributes=None, blinded=None, design=None):
        self.end_turn()
        self._drop_header_labels()
        text = self.text
        # Numbered before empty utterances are left out, so every later turn keeps the number of its
        # place in the file (a codings table written against the file still finds it).
        for index, draft in enumerate(self.turns, start=1):
            if draft.number is None:
                draft.number = index
        self._drop_empty_turns(text)
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
            dropped=tuple(self.dropped),
            design=design or Design(),
        )

    def _drop_empty_turns(self, text: str) -> None:
        """A speaker with nothing said is no turn: it would be a place nobody can code, and a later
        codings import would find a turn of no characters. The text keeps the line; the report says."""
        empty = [d for d in self.turns if _is_empty(_trimmed_range(text, d.utterance_start, d.content_end))]
        if not empty:
            return
        empty_ids = {id(d) for d in empty}
        self.turns = [d for d in self.turns if id(d) not in empty_ids]
        shown = "; ".join(f"{self.unit} {d.source_line} ({_shown_label(d.label)})" for d in empty[:_MAX_LISTED_LINES])
        more = f" and {len(empty) - _MAX_LISTED_LINES} more" if len(empty) > _MAX_LISTED_LINES else ""
        self.warnings.append(f"empty utterance(s) left out, not turns: {shown}{more}")

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


def _is_empty(span: tuple[int, int]) -> bool:
    return span[0] >= span[1]


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
        self.pending_time: tuple[float | None, float | None] | None = None
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

        def malformed(token: str, reason: str) -> None:
            builder.drop(source_line, "timestamp", token, reason)

        try:
            recognised = match_speaker_line(
                line, self.source.roles, markdown=self.markdown, on_malformed=malformed if self.source.lenient else None
            )
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
        self.video_time = None
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
        self.video_time = None
        self.builder.start_turn(
            recognised.label, source_line, offset + recognised.utterance_start, start, end, self.in_video, typed=True
        )
        if line[recognised.utterance_start :].strip():
            self.builder.extend_turn(offset + len(line.rstrip()))

    def _inherited_time(self) -> tuple[float | None, float | None]:
        if self.pending_time is not None:
            return self.pending_time
        # The marker's time is where the replay starts in the session: the first replayed turn's
        # start, not every replayed turn's (those are unknown unless typed).
        time, self.video_time = self.video_time, None
        return time, None

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
                    if not self.source.lenient:
                        raise InputError(f"[VIDEO] marker: {exc}", self.source.path, source_line) from None
                    self.builder.drop(source_line, "[VIDEO] marker time", opening["time"], str(exc))
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
                if not source.lenient:
                    raise InputError(f"time cell: {exc}", source.path, number) from None
                builder.drop(number, "time cell", time_text, str(exc))
                start, end = None, None
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


_DESIGN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "dyad": ("dyad", "dyad_id", "dyad_key", "dyad_no", "dyad_nr", "pair"),
    "session": ("session", "session_number", "session_no", "session_nr", "session_num"),
    "kind": ("kind", "transcript_kind", "transcript_type"),
    "perspective": ("perspective", "ipr_perspective"),
    "about": ("about", "about_session", "ipr_of", "ipr_about", "replays_session"),
}
_COLUMN_CANDIDATES.update(_DESIGN_CANDIDATES)
_KIND_WORDS = {
    "session": "session",
    "therapy_session": "session",
    "ipr": "ipr",
    "ipr_interview": "ipr",
    "interview": "ipr",
}


def _option_text(field_name: str, value: str) -> str:
    """How the user typed a column mapping: --columns session=Visit."""
    return f"--columns {field_name}={value}"


def _constant(value: object) -> str | None:
    """ "=1" in a column mapping is the value 1 for every transcript (--columns session==1)."""
    text = str(value)
    return text[1:].strip() if text.startswith("=") else None


class _DesignReader:
    """Dyad, session, kind, perspective and the session an interview is about, for one transcript:
    each the same on every row it is given on (or a constant from --columns), checked and typed."""

    def __init__(self, source: _Source, constants: Mapping[str, str], unit: str):
        self.source = source
        self.unit = unit
        self.values: dict[str, tuple[str, int | None, str]] = {}  # field -> (value, line, where shown)
        for field_name, value in constants.items():
            self.values[field_name] = (value, None, _option_text(field_name, "=" + value))

    def add(self, field_name: str, raw: object, line: int | None, shown: str) -> None:
        value = _cell_text(raw).strip()
        if not value or (field_name in self.values and self.values[field_name][1] is None):
            return  # blank, or a constant from the command line already decided it
        if field_name in self.values and self.values[field_name][0] != value:
            first, first_line, _ = self.values[field_name]
            where = f" on {self.unit} {first_line}" if first_line is not None else ""
            raise InputError(
                f"{shown}: {field_name} {value!r} differs from {first!r}{where}; one transcript has one {field_name}",
                self.source.path,
                line,
            )
        self.values.setdefault(field_name, (value, line, shown))

    def design(self) -> Design:
        def number(field_name: str) -> int | None:
            if field_name not in self.values:
                return None
            value, line, shown = self.values[field_name]
            try:
                parsed = float(value.replace(",", "."))
            except ValueError:
                parsed = -1.0
            if not parsed.is_integer() or parsed < 1 or parsed > 999_999:
                raise InputError(
                    f"{shown}: {field_name} {value!r} is not a session number (1, 2, ...)", *self._at(line)
                )
            return int(parsed)

        def word(field_name: str, words: Mapping[str, str], allowed: str) -> str | None:
            if field_name not in self.values:
                return None
            value, line, shown = self.values[field_name]
            found = words.get(_column_key(value))
            if found is None:
                raise InputError(f"{shown}: {field_name} {value!r} is not one of {allowed}", *self._at(line))
            return found

        kind = word("kind", _KIND_WORDS, "session, ipr")
        perspective = word("perspective", _PERSPECTIVE_WORDS, "client, therapist")
        session, about = number("session"), number("about")
        if about is not None:
            if kind not in (None, "ipr"):
                raise InputError(
                    f"{self.values['about'][2]}: 'about' names the session an IPR interview is about, "
                    f"but this transcript is kind {kind}",
                    *self._at(self.values["about"][1]),
                )
            if session is not None and session != about:
                raise InputError(
                    f"{self.values['about'][2]}: the interview is about session {about}, but its session is {session}",
                    *self._at(self.values["about"][1]),
                )
            kind, session = "ipr", about
        dyad = self.values["dyad"][0] if "dyad" in self.values else None
        return Design(dyad=dyad, session=session, kind=kind, perspective=perspective)

    def _at(self, line: int | None) -> tuple[str, int | None]:
        return self.source.path, line


def _split_constants(columns: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """The column mapping as (names of columns or keys, constants); only design fields take constants."""
    named: dict[str, str] = {}
    constants: dict[str, str] = {}
    for field_name, column in (columns or {}).items():
        if field_name not in COLUMN_FIELDS:
            raise InputError(
                f"--columns {field_name}=...: unknown field {field_name!r} (use {', '.join(COLUMN_FIELDS)})"
            )
        if column is None or not str(column).strip():
            continue
        constant = _constant(column)
        if constant is not None:
            if field_name not in DESIGN_FIELDS:
                raise InputError(
                    f"{_option_text(field_name, str(column))}: a value for every transcript ('=...') is for "
                    f"{', '.join(DESIGN_FIELDS)} only; name the {field_name} column instead"
                )
            if not constant:
                raise InputError(f"{_option_text(field_name, str(column))}: give the value after '='")
            constants[field_name] = constant
        else:
            named[field_name] = str(column)
    return named, constants


def _resolve_table_columns(
    header: list[object],
    columns: Mapping[str, str] | None,
    source: _Source,
    line: int,
    reserved: Iterable[str] = (),
):
    keys = [_column_key(name) for name in header]
    named, constants = _split_constants(columns)
    for json_only in JSON_ONLY_FIELDS:
        if json_only in named:
            raise InputError(f"{_option_text(json_only, named[json_only])}: {json_only}= is for JSON files only")
    resolved: dict[str, int] = {}
    for field_name, column in named.items():
        wanted = _column_key(column)
        if wanted not in keys:
            shown = ", ".join(str(name) for name in header if name is not None)
            raise InputError(
                f"{_option_text(field_name, column)}: no column {column!r} in the header (it has: {shown})",
                source.path,
                line,
            )
        resolved[field_name] = keys.index(wanted)
    for field_name in _RESOLUTION_ORDER:
        if field_name not in resolved and field_name not in (columns or {}):
            found = _find_column(keys, field_name, resolved.values())
            if found is not None:
                resolved[field_name] = found
    # Design columns are found by name unless the command line makes the column an attribute.
    taken_by_attributes = {keys.index(_column_key(name)) for name in reserved if _column_key(name) in keys}
    for field_name in DESIGN_FIELDS:
        if field_name not in resolved and field_name not in (columns or {}):
            found = _find_column(keys, field_name, [*resolved.values(), *taken_by_attributes])
            if found is not None:
                resolved[field_name] = found
    for required in ("speaker", "text"):
        if required not in resolved:
            raise InputError(
                f"turn table has no {required} column (looked for {', '.join(_COLUMN_CANDIDATES[required])}); "
                f"name it with --columns {required}=COLUMN",
                source.path,
                line,
            )
    return keys, resolved, constants


def _parse_turn_table(data, format_name, source: _Source, key, columns, attributes, blinded):
    reader = _read_csv_table if format_name == "csv" else _read_xlsx_table
    encoding, header_line, header, rows = reader(data, source)
    if not header:
        raise InputError("empty table (no header row)", source.path)
    keys, resolved, constants = _resolve_table_columns(
        header, columns, source, header_line, reserved=[*attributes, *blinded]
    )
    unit = "line" if format_name == "csv" else "row"  # a CSV line number; Excel's own row number
    shown_column = {field_name: str(header[index]) for field_name, index in resolved.items()}
    attribute_columns: dict[str, int] = {}
    for name in list(dict.fromkeys([*attributes, *blinded])):
        wanted = _column_key(name)
        if wanted not in keys:
            raise InputError(f"--attributes/--blinded: column {name!r} is not in the header", source.path, header_line)
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
                raise InputError(f"column {shown_column['transcript']!r} is empty", source.path, row.line)
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
        design = _DesignReader(source, constants, unit)
        found: dict[str, tuple[str, int]] = {}
        conflicted: set[str] = set()
        entries = []
        for row in group:
            label = _cell_text(value(row, "speaker")).strip()
            if not label:
                raise InputError(f"column {shown_column['speaker']!r}: the speaker is empty", source.path, row.line)
            number = (
                _turn_number(value(row, "turn"), source, row.line, shown_column.get("turn", "turn"))
                if "turn" in resolved
                else None
            )
            start = _table_time(builder, value(row, "start"), f"column {shown_column.get('start')!r}", row.line)
            end = _table_time(builder, value(row, "end"), f"column {shown_column.get('end')!r}", row.line)
            if start is not None and end is not None and end < start:
                if not source.lenient:
                    raise InputError(
                        f"column {shown_column['end']!r}: the turn ends ({_cell_text(value(row, 'end'))}) "
                        f"before it starts ({_cell_text(value(row, 'start'))})",
                        source.path,
                        row.line,
                    )
                builder.drop(row.line, f"column {shown_column['end']!r}", value(row, "end"), "ends before it starts")
                end = None
            for field_name in DESIGN_FIELDS:
                if field_name in resolved:
                    design.add(field_name, value(row, field_name), row.line, f"column {shown_column[field_name]!r}")
            for name, index in attribute_columns.items():
                cell = _cell_text(row.cells[index] if index < len(row.cells) else None).strip()
                if not cell or name in conflicted:
                    continue
                if name in found and found[name][0] != cell:
                    first, first_line = found[name]
                    if not source.lenient:
                        raise InputError(
                            f"column {name!r}: attribute {name!r} of transcript {transcript_key!r} is {cell!r} here "
                            f"but {first!r} on {unit} {first_line}",
                            source.path,
                            row.line,
                        )
                    reason = f"{first!r} on {unit} {first_line}; the attribute is left empty"
                    builder.drop(row.line, f"column {name!r}", cell, reason)
                    builder.drop(found[name][1], f"column {name!r}", found[name][0], "the attribute is left empty")
                    conflicted.add(name)
                    found.pop(name)
                    continue
                found.setdefault(name, (cell, row.line))
            entries.append((number, row.line, label, _cell_text(value(row, "text")), start, end))
        if "turn" in resolved:
            entries.sort(key=lambda entry: entry[0])
        for number, line, label, text, start, end in entries:
            builder.add_structured_turn(label, text, line, start, end, number=number)
        builder.add_line("")  # the canonical text ends with a newline like a file
        attribute_values = {name: v for name, (v, _) in found.items() if name not in blinded_names}
        blinded_values = {name: v for name, (v, _) in found.items() if name in blinded_names}
        transcripts.append(
            builder.build(
                transcript_key, format_name, encoding, attribute_values, blinded_values, design=design.design()
            )
        )
    return transcripts


def _turn_number(raw: object, source: _Source, line: int, column: str) -> int:
    text = _cell_text(raw).strip()
    if not re.fullmatch(r"\d+", text):
        raise InputError(f"column {column!r}: turn number {text!r} is not a whole number", source.path, line)
    return int(text)


def _table_time(builder: _TranscriptBuilder, raw: object, shown: str, line: int | None) -> float | None:
    """A time cell or value; malformed, it refuses the file, or with --lenient is left empty and listed.
    `shown` says where it is as the user would look for it: "column 'start'", "$.turns[3].start"."""
    try:
        return parse_time_value(raw.strip() if isinstance(raw, str) else raw)
    except MalformedTimestamp as exc:
        if not builder.source.lenient:
            raise InputError(f"{shown}: {exc}", builder.source.path, line) from None
        builder.drop(line, shown, raw, str(exc))
        return None


# ---------------------------------------------------------------------------------------------
# JSON and JSON Lines conversations
#
# A conversation is an object with a list of turns (each an object with a speaker and a text, and
# optionally start and end times) and, beside the list, its id, design and attributes:
#   {"id": "c01", "dyad": "12", "session": 5, "attributes": {"group": "A"},
#    "turns": [{"speaker": "T", "text": "Hello.", "start": 0.0}, ...]}
# A file holds one conversation, a list of them, or a bare list of turns; a JSON Lines file holds
# one conversation or one turn per line. Other key names are mapped with --columns, and a list of
# turns nested deeper is named by its path (--columns turns=data.session.turns).

_JSON_TURN_LISTS = ("turns", "utterances", "messages", "dialogue", "dialog", "conversation", "lines")
_JSON_ID_KEYS = (
    "id",
    "key",
    "transcript",
    "transcript_id",
    "transcript_key",
    "conversation_id",
    "participant_id",
    "session_key",
    "name",
)
# A JSON list is in the order it was spoken; only a key that says "turn" numbers it otherwise.
_JSON_TURN_NUMBERS = ("turn", "turn_number", "turn_no", "turn_nr")
_JSON_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")

JsonPath = tuple[str | int, ...]


def _json_path(text: str, field_name: str) -> JsonPath:
    """ "data.session.turns", "$.sessions[0].turns" -> ("data", "session", "turns") / ("sessions", 0, "turns")."""
    body = text.strip()
    body = body[1:] if body.startswith("$") else body
    parts: list[str | int] = []
    position = 0
    while position < len(body):
        match = _JSON_PATH_PART.match(body, position)
        if match is None or match.end() == position:
            raise InputError(
                f"{_option_text(field_name, text)}: not a JSON path (write it like data.turns or $.sessions[0].turns)"
            )
        parts.append(match[1] if match[1] is not None else int(match[2]))
        position = match.end()
    return tuple(parts)


def _shown_path(parts: JsonPath) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


_MISSING = object()


def _follow(value: object, path: JsonPath) -> object:
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return _MISSING
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
    return value


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def _key_by_candidates(obj: Mapping[str, object], candidates: Sequence[str], *, list_only=False) -> str | None:
    """The key of `obj` that names a field, compared as column names are (case and spaces ignored)."""
    folded = {_column_key(name): name for name in obj}
    for candidate in candidates:
        name = folded.get(candidate)
        if name is not None and (not list_only or isinstance(obj[name], list)):
            return name
    return None


@dataclass
class _Conversation:
    root: dict | None  # the object holding the turns (None: a bare list of turns)
    base: JsonPath  # where the root is in the file
    turns: list
    turns_path: JsonPath  # where the turns are, from the root
    line: int | None = None  # JSON Lines: the line the conversation is on


def _json_error(message: str, source: _Source, path: JsonPath, line: int | None = None) -> InputError:
    return InputError(f"{_shown_path(path)}: {message}", source.path, line)


def _turn_list_hint() -> str:
    return (
        f"expected a list of turns (objects with a speaker and a text), or an object holding one under "
        f"{', '.join(_JSON_TURN_LISTS)}; name another place with --columns turns=PATH"
    )


def _conversations_in(doc: object, source: _Source, named: Mapping[str, str], line: int | None) -> list[_Conversation]:
    turns_path = _json_path(named["turns"], "turns") if "turns" in named else None

    def one(root: object, base: JsonPath) -> _Conversation:
        if turns_path is not None:
            turns = _follow(root, turns_path)
            if turns is _MISSING:
                raise _json_error(f"no {_shown_path(turns_path)[2:]!r} here ({_turn_list_hint()})", source, base, line)
            if not isinstance(turns, list):
                raise _json_error(
                    f"expected a list of turns, found {_json_kind(turns)}", source, base + turns_path, line
                )
            return _Conversation(root if isinstance(root, dict) else None, base, turns, turns_path, line)
        if isinstance(root, dict):
            found = _key_by_candidates(root, _JSON_TURN_LISTS, list_only=True)
            if found is None:
                raise _json_error(
                    f"no list of turns in this object (its keys: {', '.join(root)}); {_turn_list_hint()}",
                    source,
                    base,
                    line,
                )
            return _Conversation(root, base, root[found], (found,), line)
        if isinstance(root, list):
            return _Conversation(None, base, root, (), line)
        raise _json_error(f"found {_json_kind(root)}; {_turn_list_hint()}", source, base, line)

    if isinstance(doc, list) and doc and all(isinstance(item, dict) for item in doc):
        first = doc[0]
        holds_turns = (
            _follow(first, turns_path) is not _MISSING
            if turns_path is not None
            else _key_by_candidates(first, _JSON_TURN_LISTS, list_only=True) is not None
        )
        if holds_turns:
            return [one(item, (index,)) for index, item in enumerate(doc)]
    return [one(doc, ())]


def _parse_json(data: bytes, format_name: str, source: _Source, key, columns, attributes, blinded):
    decoded = decode_bytes(data, source.path, legacy=False)
    text = decoded.text.lstrip("\ufeff")
    if not text.strip():
        raise InputError("empty file (only blank lines)", source.path)
    named, constants = _split_constants(columns)
    conversations: list[_Conversation] = []
    if format_name == "json":
        conversations = _conversations_in(load_json(text, source.path), source, named, None)
    else:
        records: list[tuple[int, object]] = []
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                records.append((number, load_json(line, source.path, line=number)))
        _, first = records[0]
        is_conversation = isinstance(first, dict) and (
            _follow(first, _json_path(named["turns"], "turns")) is not _MISSING
            if "turns" in named
            else _key_by_candidates(first, _JSON_TURN_LISTS, list_only=True) is not None
        )
        if is_conversation:
            for number, record in records:
                conversations.extend(_conversations_in(record, source, named, number))
        else:
            # One turn per line, grouped into transcripts by their id like the rows of a turn table.
            return _json_turn_records(records, source, key, named, constants, attributes, blinded, decoded.encoding)
    if not conversations:
        raise InputError(f"no conversations; {_turn_list_hint()}", source.path)
    transcripts = []
    for conversation in conversations:
        transcripts.append(
            _json_conversation(
                conversation,
                source,
                key,
                named,
                constants,
                attributes,
                blinded,
                format_name,
                decoded.encoding,
                several=len(conversations) > 1,
            )
        )
    if key is not None and len(transcripts) > 1:
        chosen = [t for t in transcripts if t.key == key]
        if not chosen:
            listed = ", ".join(t.key for t in transcripts[:10])
            raise InputError(f"transcript {key!r} is not in this file (it has: {listed})", source.path)
        transcripts = chosen
    return transcripts


def _scalar_text(value: object) -> str | None:
    """A JSON scalar as an attribute or design value; None for an object or list."""
    if isinstance(value, (dict, list)):
        return None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_conversation(
    conversation: _Conversation, source, key, named, constants, attributes, blinded, format_name, encoding, *, several
) -> ParsedTranscript:
    root, base, line = conversation.root, conversation.base, conversation.line
    used_root_keys: set[str] = set()
    if conversation.turns_path and isinstance(conversation.turns_path[0], str):
        used_root_keys.add(conversation.turns_path[0])

    def at(*parts: str | int) -> JsonPath:
        return base + tuple(parts)

    # Its id: the mapped key, a key that names one, else the file's name.
    transcript_key = None
    if root is not None:
        id_path = _json_path(named["transcript"], "transcript") if "transcript" in named else None
        if id_path is None:
            found = _key_by_candidates(root, _JSON_ID_KEYS)
            id_path = (found,) if found is not None and not isinstance(root[found], (dict, list)) else None
        if id_path is not None:
            raw = _follow(root, id_path)
            if raw is _MISSING or _scalar_text(raw) in (None, ""):
                raise _json_error(
                    "the conversation has no id here; name its key with --columns transcript=KEY",
                    source,
                    at(*id_path),
                    line,
                )
            transcript_key = (_scalar_text(raw) or "").strip()
            if isinstance(id_path[0], str):
                used_root_keys.add(id_path[0])
    if transcript_key is None:
        if several:
            raise _json_error(
                f"a conversation without an id (looked for {', '.join(_JSON_ID_KEYS)}); name its key with --columns transcript=KEY",
                source,
                base,
                line,
            )
        transcript_key = key or source.stem
    elif key is not None and not several:
        transcript_key = key

    design = _DesignReader(source, constants, "line")
    for field_name in DESIGN_FIELDS:
        if root is None or field_name in constants:
            continue
        path = _json_path(named[field_name], field_name) if field_name in named else None
        if path is None:
            found = _key_by_candidates(root, _DESIGN_CANDIDATES[field_name])
            path = (found,) if found is not None else None
        if path is None:
            continue
        raw = _follow(root, path)
        if raw is _MISSING:
            raise _json_error(
                f"no such key (given as {_option_text(field_name, named[field_name])})", source, at(*path), line
            )
        value = _scalar_text(raw)
        if value is None:
            raise _json_error(f"{field_name} must be a single value, not {_json_kind(raw)}", source, at(*path), line)
        design.add(field_name, value, line, _shown_path(at(*path)))
        if isinstance(path[0], str):
            used_root_keys.add(path[0])

    builder = _TranscriptBuilder(source, unit="line" if line is not None else "turn")
    attribute_values: dict[str, str] = {}
    blinded_values: dict[str, str] = {}
    if root is not None:
        objects = []
        if "attributes" in named:
            objects.append((_json_path(named["attributes"], "attributes"), attribute_values))
        else:
            for candidate, target in (("attributes", attribute_values), ("blinded_attributes", blinded_values)):
                found = _key_by_candidates(root, (candidate,))
                if found is not None:
                    objects.append(((found,), target))
        for path, target in objects:
            holder = _follow(root, path)
            if holder is _MISSING or not isinstance(holder, dict):
                raise _json_error(
                    f"expected an object of attributes, found {_json_kind(holder) if holder is not _MISSING else 'nothing'}",
                    source,
                    at(*path),
                    line,
                )
            if isinstance(path[0], str):
                used_root_keys.add(path[0])
            for name, raw in holder.items():
                _json_attribute(builder, target, str(name), raw, at(*path, name), line)
        for name in dict.fromkeys([*attributes, *blinded]):
            path = _json_path(name, "attributes")
            raw = _follow(root, path)
            if raw is _MISSING:
                raise _json_error(f"no key {name!r} for --attributes/--blinded", source, base, line)
            target = blinded_values if name in blinded else attribute_values
            _json_attribute(builder, target, name, raw, at(*path), line)
            if isinstance(path[0], str):
                used_root_keys.add(path[0])
    elif attributes or blinded:
        builder.warnings.append(
            "--attributes/--blinded name keys of a conversation object; a bare list of turns has none"
        )

    fields = _json_turn_fields(conversation.turns, source, named, base + conversation.turns_path, line)
    used_turn_keys = {path[0] for path in fields.values() if isinstance(path[0], str)}
    unread_turn_keys: dict[str, None] = {}
    for index, turn in enumerate(conversation.turns):
        where = base + conversation.turns_path + (index,)
        number = index + 1 if line is None else line
        entry = _json_turn(builder, turn, fields, where, number, line)
        unread_turn_keys.update(dict.fromkeys(k for k in turn if k not in used_turn_keys))
        label, utterance, start, end, turn_number = entry
        builder.add_structured_turn(label, utterance, number, start, end, number=turn_number)
    builder.add_line("")
    if root is not None:
        unread = [name for name in root if name not in used_root_keys]
        if unread:
            builder.warnings.append(f"keys not read: {', '.join(unread)}")
    if unread_turn_keys:
        builder.warnings.append(f"turn keys not read: {', '.join(unread_turn_keys)}")
    return builder.build(
        transcript_key, format_name, encoding, attribute_values, blinded_values, design=design.design()
    )


def _json_attribute(builder: _TranscriptBuilder, target: dict, name: str, raw: object, path: JsonPath, line) -> None:
    value = _scalar_text(raw)
    if value is None:
        message = f"attribute {name!r} must be a single value, not {_json_kind(raw)}"
        if not builder.source.lenient:
            raise _json_error(message, builder.source, path, line)
        builder.drop(line, _shown_path(path), _one_json_line(raw), message)
        return
    if value.strip():
        target[name] = value.strip()


def _one_json_line(value: object) -> str:
    import json

    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_turn_fields(
    turns: list, source: _Source, named: Mapping[str, str], where: JsonPath, line
) -> dict[str, JsonPath]:
    """Which key of a turn holds its speaker, text, times and number: mapped, else found by name."""
    keys: dict[str, None] = {}
    for turn in turns:
        if isinstance(turn, dict):
            keys.update(dict.fromkeys(turn))
    fields: dict[str, JsonPath] = {}
    for field_name in TABLE_FIELDS:
        if field_name == "transcript":
            continue
        if field_name in named:
            fields[field_name] = _json_path(named[field_name], field_name)
            continue
        candidates = _JSON_TURN_NUMBERS if field_name == "turn" else _COLUMN_CANDIDATES[field_name]
        taken = {path[0] for path in fields.values()}
        found = _key_by_candidates({k: None for k in keys if k not in taken}, candidates)
        if found is not None:
            fields[field_name] = (found,)
    for required in ("speaker", "text"):
        if required not in fields:
            shown_keys = ", ".join(keys) or "none"
            raise _json_error(
                f"the turns have no {required} key (their keys: {shown_keys}); name it with --columns {required}=KEY",
                source,
                where,
                line,
            )
    return fields


def _json_turn(builder: _TranscriptBuilder, turn: object, fields, where: JsonPath, number: int, line):
    source = builder.source
    if not isinstance(turn, dict):
        raise _json_error(
            f"a turn must be an object with a speaker and a text, not {_json_kind(turn)}", source, where, line
        )

    def get(field_name: str) -> object:
        path = fields.get(field_name)
        return None if path is None else _follow(turn, path)

    speaker = get("speaker")
    label = _scalar_text(speaker) if speaker is not _MISSING else None
    if not label or not label.strip():
        raise _json_error("the turn has no speaker", source, where + fields["speaker"], line)
    text = get("text")
    if text is _MISSING:
        raise _json_error(f"the turn has no {_shown_path(fields['text'])[2:]!r}", source, where, line)
    utterance = _scalar_text(text)
    if utterance is None:
        raise _json_error(f"the text must be a text, not {_json_kind(text)}", source, where + fields["text"], line)
    times = []
    for field_name in ("start", "end"):
        raw = get(field_name)
        raw = None if raw is _MISSING else raw
        times.append(
            _table_time(builder, raw, _shown_path(where + fields[field_name]) if raw is not None else field_name, line)
        )
    start, end = times
    if start is not None and end is not None and end < start:
        shown = _shown_path(where + fields["end"])
        if not source.lenient:
            raise InputError(f"{shown}: the turn ends ({end:g} s) before it starts ({start:g} s)", source.path, line)
        builder.drop(line, shown, end, "ends before it starts")
        end = None
    turn_number = None
    if "turn" in fields:
        raw = get("turn")
        if raw is _MISSING or raw is None:
            raise _json_error("the turn has no turn number", source, where + fields["turn"], line)
        turn_number = _turn_number(raw, source, line or number, _shown_path(where + fields["turn"]))
    return " ".join(label.split()), utterance.replace("\r\n", "\n").replace("\r", "\n"), start, end, turn_number


def _json_turn_records(records, source: _Source, key, named, constants, attributes, blinded, encoding):
    """JSON Lines with one turn per line: grouped by their transcript id, like a turn table's rows."""
    objects = [(number, record) for number, record in records]
    for number, record in objects:
        if not isinstance(record, dict):
            raise InputError(
                f"a turn must be an object with a speaker and a text, not {_json_kind(record)}", source.path, number
            )
    keys: dict[str, None] = {}
    for _, record in objects:
        keys.update(dict.fromkeys(record))
    id_key = named.get("transcript") or _key_by_candidates(dict.fromkeys(keys), _COLUMN_CANDIDATES["transcript"])
    groups: dict[str, list[tuple[int, dict]]] = {}
    for number, record in objects:
        if id_key is not None:
            raw = _follow(record, _json_path(id_key, "transcript"))
            value = _scalar_text(raw) if raw is not _MISSING else None
            if not value or not value.strip():
                raise InputError(f"{id_key!r}: the transcript id is missing", source.path, number)
            group_key = value.strip()
        else:
            group_key = key or source.stem
        groups.setdefault(group_key, []).append((number, record))
    if key is not None and id_key is not None:
        if key not in groups:
            raise InputError(
                f"transcript {key!r} is not in this file (it has: {', '.join(list(groups)[:10])})", source.path
            )
        groups = {key: groups[key]}
    transcripts = []
    for transcript_key, group in groups.items():
        builder = _TranscriptBuilder(source, unit="line")
        design = _DesignReader(source, constants, "line")
        fields = _json_turn_fields([record for _, record in group], source, named, (), group[0][0])
        found: dict[str, tuple[str, int]] = {}
        for number, record in group:
            for field_name in DESIGN_FIELDS:
                if field_name in constants:
                    continue
                name = named.get(field_name) or _key_by_candidates(record, _DESIGN_CANDIDATES[field_name])
                if name is not None:
                    raw = _follow(record, _json_path(name, field_name))
                    if raw is not _MISSING and _scalar_text(raw) is not None:
                        design.add(field_name, _scalar_text(raw), number, f"{name!r}")
            for name in dict.fromkeys([*attributes, *blinded]):
                raw = _follow(record, _json_path(name, "attributes"))
                value = _scalar_text(raw) if raw is not _MISSING else ""
                if value is None:
                    if not source.lenient:
                        raise InputError(f"{name!r}: an attribute must be a single value", source.path, number)
                    builder.drop(number, repr(name), _one_json_line(raw), "an attribute must be a single value")
                    continue
                if value.strip() and name in found and found[name][0] != value.strip():
                    raise InputError(
                        f"{name!r}: {value.strip()!r} here, but {found[name][0]!r} on line {found[name][1]}",
                        source.path,
                        number,
                    )
                if value.strip():
                    found.setdefault(name, (value.strip(), number))
            label, utterance, start, end, turn_number = _json_turn(builder, record, fields, (), number, number)
            builder.add_structured_turn(label, utterance, number, start, end, number=turn_number)
        builder.add_line("")
        attribute_values = {n: v for n, (v, _) in found.items() if n not in blinded}
        blinded_values = {n: v for n, (v, _) in found.items() if n in blinded}
        transcripts.append(
            builder.build(transcript_key, "jsonl", encoding, attribute_values, blinded_values, design=design.design())
        )
    return transcripts
