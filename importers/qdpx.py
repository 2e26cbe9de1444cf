"""Reading a REFI-QDA project (.qdpx, or a bare .qde) leniently, into plain data with canonical offsets.

Nothing here touches a study: services/qdpx_import.py decides what becomes a transcript, a code, a
coding or a memo. What this module does:

* finds the project XML (project.qde, else the single *.qde at the root) and the source files
  (``sources/`` matched case-insensitively; ``internal://x``, bare ``x`` and absolute/relative
  paths whose file happens to be inside the archive);
* matches elements by local name, so older namespaces and a BOM do not matter;
* reads each text source's bytes (BOM dropped, UTF-8, else UTF-16 by BOM, else Windows-1252 with a
  warning) and turns every selection's positions into *canonical* offsets: code points into the
  text with line ends normalised to LF, which is how Concord stores a transcript;
* picks the offset model per project (NOTES.md §5): NVivo counts UTF-16 code units with CRLF as 2,
  ATLAS.ti counts a CRLF as 1, everyone else counts code points over the file as it is. The choice
  is then checked against the quotes tools write into selection names, and switched when another
  model reproduces clearly more of them;
* lists what Concord cannot keep (PDF, picture, audio and video sources, graphs, ...) so the
  caller can tell the user.
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from lxml import etree

from concord.codebooks.qdc import check_archive, parse_xml, read_input, read_qdc
from concord.codebooks.spec import CodebookSpec
from concord.storage.errors import InputError
from concord.storage.limits import MAX_QDPX_SOURCE_BYTES, MAX_QDPX_XML_BYTES, check_line_lengths

MAX_XML_BYTES = MAX_QDPX_XML_BYTES
MAX_SOURCE_BYTES = MAX_QDPX_SOURCE_BYTES
# The user ATLAS.ti adds to every project; it never codes anything itself.
ATLAS_TI_SYSTEM_USER = "c32a2bd5-537f-4838-8b17-df9efbafdf4b"

CODE_POINTS = "code points"
CODE_POINTS_LF = "code points, CRLF counted once"
UTF16 = "UTF-16 code units"
UTF16_LF = "UTF-16 code units, CRLF counted once"
OFFSET_MODELS = (CODE_POINTS, CODE_POINTS_LF, UTF16, UTF16_LF)

_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")
_LINE_NAME = re.compile(r"^line\s*:?\s*\d+$", re.IGNORECASE)
_BLOCK_LINE = re.compile(r"^([A-Za-z][A-Za-z ]*):(?: (.*))?$")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def canonical_guid(guid: str | None) -> str | None:
    """GUIDs compare without braces, spaces or case; None for anything that is not a GUID."""
    if guid is None:
        return None
    text = guid.strip()
    if not _GUID.match(text):
        return None
    return text.strip("{}").lower()


def concord_fields(text: str | None, marker: str) -> tuple[str | None, dict[str, str]] | None:
    """(free text before the block, {key: value}) if the text holds a Concord block with that marker."""
    if not text:
        return None
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.strip() == marker), None)
    if at is None:
        return None
    before = "\n".join(lines[:at]).strip() or None
    values: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines[at + 1 :]:
        match = _BLOCK_LINE.match(line)
        if match and not line.startswith(" "):
            current = match.group(1)
            values[current] = [match.group(2) or ""]
        elif current is not None and line.startswith("  "):
            values[current].append(line[2:])
        elif current is not None and not line.strip():
            values[current].append("")
    return before, {key: "\n".join(parts).strip("\n") for key, parts in values.items()}


# --------------------------------------------------------------------------------------------------
# What a project holds


@dataclass(frozen=True)
class ParsedUser:
    guid: str
    key: str
    name: str | None
    id: str | None


@dataclass(frozen=True)
class ParsedCoding:
    guid: str | None
    code_key: str | None  # canonical GUID of the code
    creating_user: str | None  # canonical GUID of the user
    created: datetime | None
    note_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedSelection:
    guid: str | None
    key: str | None
    raw_start: int
    raw_end: int
    name: str | None
    description: str | None
    creating_user: str | None
    created: datetime | None
    codings: tuple[ParsedCoding, ...] = ()
    note_refs: tuple[str, ...] = ()
    line: int | None = None
    # Canonical offsets, set once the project's offset model is chosen; None when they fall outside the text.
    start: int | None = None
    end: int | None = None
    clamped: bool = False


@dataclass(frozen=True)
class ParsedValue:
    variable_key: str | None
    kind: str | None  # "Text", "Boolean", ... or None when the value is left out
    value: str | None


@dataclass(frozen=True)
class ParsedSource:
    guid: str
    key: str
    name: str | None
    raw_text: str
    text: str  # canonical: LF line ends
    encoding: str
    description: str | None
    creating_user: str | None
    created: datetime | None
    selections: tuple[ParsedSelection, ...] = ()
    whole_codings: tuple[ParsedCoding, ...] = ()
    note_refs: tuple[str, ...] = ()
    values: tuple[ParsedValue, ...] = ()
    line: int | None = None
    # The source file's name without extension, when it is not just the GUID (qc names files this way).
    file_stem: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.file_stem or self.guid


@dataclass(frozen=True)
class ParsedNote:
    guid: str
    key: str
    name: str | None
    text: str
    description: str | None
    creating_user: str | None
    created: datetime | None
    modified: datetime | None


@dataclass(frozen=True)
class ParsedVariable:
    guid: str
    key: str
    name: str
    kind: str
    description: str | None


@dataclass(frozen=True)
class ParsedCase:
    guid: str
    key: str
    name: str | None
    description: str | None
    values: tuple[ParsedValue, ...]
    source_refs: tuple[str, ...]
    selection_refs: int
    code_refs: int


@dataclass(frozen=True)
class ParsedSet:
    guid: str
    key: str
    name: str
    description: str | None
    member_codes: tuple[str, ...]
    member_sources: tuple[str, ...]
    member_notes: tuple[str, ...]


@dataclass(frozen=True)
class ParsedLink:
    guid: str
    name: str | None
    origin: str | None
    target: str | None
    note_refs: tuple[str, ...]


@dataclass
class ParsedProject:
    where: str
    name: str
    origin: str | None
    creating_user: str | None
    description: str | None
    codebook: CodebookSpec
    users: dict[str, ParsedUser] = field(default_factory=dict)
    code_keys: set[str] = field(default_factory=set)
    code_notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    variables: dict[str, ParsedVariable] = field(default_factory=dict)
    cases: list[ParsedCase] = field(default_factory=list)
    sources: list[ParsedSource] = field(default_factory=list)
    notes: dict[str, ParsedNote] = field(default_factory=dict)
    sets: list[ParsedSet] = field(default_factory=list)
    links: list[ParsedLink] = field(default_factory=list)
    note_refs: tuple[str, ...] = ()
    # The CodeBook's top-level <Code> elements (canonical GUID, element), for reading parts of it on their own.
    top_codes: list[tuple[str, etree._Element]] = field(default_factory=list)
    codebook_warnings: list[str] = field(default_factory=list)
    offset_model: str = CODE_POINTS
    # What could not be kept, what was adjusted, and plain remarks, for the data-loss report.
    lost: list[str] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Reading


def read_qdpx(path_or_bytes: str | os.PathLike[str] | bytes, source_name: str | None = None) -> ParsedProject:
    """Parse a .qdpx archive (or a bare .qde) into a ParsedProject with canonical offsets."""
    data, where = read_input(path_or_bytes, source_name, "qdpx")
    archive: _Archive | None = None
    if data[:4] == b"PK\x03\x04":
        archive = _Archive(data, where)
        xml, xml_name = archive.project_xml()
        xml_where = f"{where}!{xml_name}"
    else:
        xml, xml_where = data, where
    root = parse_xml(xml, xml_where, huge_tree=True)
    if _local(root) != "Project":
        raise InputError(f"expected a REFI-QDA <Project>, found <{_local(root)}>", xml_where, root.sourceline)
    codebook = read_qdc(xml, xml_where)
    project = ParsedProject(
        where=where,
        name=(root.get("name") or "").strip() or Path(where).stem or "Imported project",
        origin=(root.get("origin") or "").strip() or None,
        creating_user=canonical_guid(root.get("creatingUserGUID")),
        description=_text(_child(root, "Description")),
        codebook=codebook.spec,
    )
    project.adjusted.extend(codebook.warnings)
    project.codebook_warnings = list(codebook.warnings)
    reader = _ProjectReader(project, archive, xml_where)
    reader.read(root)
    choose_offset_model(project)
    _refuse_misfit_selections(project, xml_where)
    return project


def _refuse_misfit_selections(project: ParsedProject, where: str) -> None:
    """A selection outside its source's text means the positions and the text disagree: the file is
    damaged or was edited by hand, and codings made from it would mark the wrong words."""
    for source in project.sources:
        check_line_lengths(source.text, f"{where} (source {source.name or source.guid!r})")
        for selection in source.selections:
            if selection.start is None or selection.clamped:
                raise InputError(
                    f"selection {selection.name or selection.guid!r} at positions {selection.raw_start}-"
                    f"{selection.raw_end} does not fit the text of source {source.name or source.guid!r} "
                    f"({len(source.text):,} characters, read as {project.offset_model}); the project's "
                    "positions do not match its text",
                    where,
                    selection.line,
                )


class _Archive:
    """The ZIP container, read in memory; entry names are looked up case-insensitively."""

    def __init__(self, data: bytes, where: str):
        self.where = where
        check_archive(data, where)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as error:
            raise InputError(f"not a readable .qdpx (ZIP) archive: {error}", where) from None
        self.entries = {info.filename.lower(): info for info in self.zip.infolist() if not info.is_dir()}

    def project_xml(self) -> tuple[bytes, str]:
        top = [info for name, info in self.entries.items() if "/" not in name and name.endswith(".qde")]
        chosen = [info for info in top if info.filename.lower() == "project.qde"] or top
        if not chosen:
            raise InputError("the .qdpx archive has no project.qde at its top level", self.where)
        if len(chosen) > 1:
            names = ", ".join(info.filename for info in chosen)
            raise InputError(f"the .qdpx archive has several project files ({names}); expected one", self.where)
        return self._read(chosen[0], MAX_XML_BYTES), chosen[0].filename

    def source(self, path: str) -> tuple[bytes, str] | None:
        """The bytes of a source file named by a REFI path, or None when the archive does not hold it."""
        for candidate in _archive_candidates(path):
            info = self.entries.get(candidate.lower())
            if info is not None:
                return self._read(info, MAX_SOURCE_BYTES), info.filename
        return None

    def _read(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        if info.file_size > limit:
            raise InputError(
                f"{info.filename} is {info.file_size} bytes, larger than Concord reads ({limit})", self.where
            )
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise InputError(f"{info.filename} cannot be read from the archive: {error}", self.where) from None


def _archive_candidates(path: str) -> list[str]:
    text = path.strip().replace("\\", "/")
    scheme, sep, rest = text.partition("://")
    if not sep:
        rest, scheme = text, ""
    scheme = scheme.lower()
    name = PurePosixPath(rest.lstrip("/")).name
    if scheme == "internal":
        inner = rest.lstrip("/")
        return [f"sources/{inner}", inner]
    if scheme == "":
        return [f"sources/{rest.lstrip('/')}", rest.lstrip("/"), f"sources/{name}"]
    # absolute:// and relative:// name files outside the archive; some tools still pack them inside.
    return [f"sources/{name}", name]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _children(element: etree._Element | None, local_name: str) -> list[etree._Element]:
    if element is None:
        return []
    return [child for child in element if isinstance(child.tag, str) and _local(child) == local_name]


def _child(element: etree._Element | None, local_name: str) -> etree._Element | None:
    found = _children(element, local_name)
    return found[0] if found else None


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text


def _refs(element: etree._Element, local_name: str) -> tuple[str, ...]:
    found = []
    for ref in _children(element, local_name):
        key = canonical_guid(ref.get("targetGUID"))
        if key is not None:
            found.append(key)
    return tuple(found)


def parse_datetime(value: str | None) -> datetime | None:
    """An xsd:dateTime, read leniently (a space for the T, no zone = UTC); None when unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decode_source(data: bytes) -> tuple[str, str, str | None]:
    """(text, encoding, warning): a leading BOM is dropped and never counted in offsets."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec), codec + " with BOM", None
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError:
        return (
            data.decode("cp1252", errors="replace"),
            "cp1252",
            "is not UTF-8 as REFI-QDA requires; read as Windows-1252",
        )


class _ProjectReader:
    def __init__(self, project: ParsedProject, archive: _Archive | None, where: str):
        self.project = project
        self.archive = archive
        self.where = where

    def lost(self, message: str, element: etree._Element | None = None) -> None:
        self.project.lost.append(self._located(message, element))

    def adjusted(self, message: str, element: etree._Element | None = None) -> None:
        self.project.adjusted.append(self._located(message, element))

    def _located(self, message: str, element: etree._Element | None) -> str:
        return f"{self.where}:{element.sourceline}: {message}" if element is not None else message

    def read(self, root: etree._Element) -> None:
        project = self.project
        for user in _children(_child(root, "Users"), "User"):
            key = canonical_guid(user.get("guid"))
            if key is None:
                self.adjusted(f"a user with an invalid guid {user.get('guid')!r} was skipped", user)
                continue
            project.users[key] = ParsedUser(
                guid=user.get("guid").strip(),
                key=key,
                name=(user.get("name") or "").strip() or None,
                id=(user.get("id") or "").strip() or None,
            )
        codes = _child(_child(root, "CodeBook"), "Codes")
        for code in _children(codes, "Code"):
            key = canonical_guid(code.get("guid"))
            if key is not None:
                project.top_codes.append((key, code))
        if codes is not None:
            for code in codes.iter():
                if not isinstance(code.tag, str) or _local(code) != "Code":
                    continue
                key = canonical_guid(code.get("guid"))
                if key is None:
                    continue
                project.code_keys.add(key)
                notes = _refs(code, "NoteRef")
                if notes:
                    project.code_notes[key] = notes
        for variable in _children(_child(root, "Variables"), "Variable"):
            key = canonical_guid(variable.get("guid"))
            if key is None:
                self.adjusted(f"variable {variable.get('name')!r} has an invalid guid and was skipped", variable)
                continue
            project.variables[key] = ParsedVariable(
                guid=variable.get("guid").strip(),
                key=key,
                name=(variable.get("name") or "").strip() or "variable",
                kind=(variable.get("typeOfVariable") or "Text").strip(),
                description=_text(_child(variable, "Description")),
            )
        for case in _children(_child(root, "Cases"), "Case"):
            self._case(case)
        sources = _child(root, "Sources")
        for source in sources if sources is not None else ():
            if isinstance(source.tag, str):
                self._source(source)
        for note in _children(_child(root, "Notes"), "Note"):
            self._note(note)
        for link in _children(_child(root, "Links"), "Link"):
            key = canonical_guid(link.get("guid"))
            project.links.append(
                ParsedLink(
                    guid=key or "",
                    name=link.get("name"),
                    origin=canonical_guid(link.get("originGUID")),
                    target=canonical_guid(link.get("targetGUID")),
                    note_refs=_refs(link, "NoteRef"),
                )
            )
        sets = _child(root, "Sets")
        if sets is not None and not _children(sets, "Set"):
            self.adjusted("an empty <Sets/> element (the schema needs at least one Set) was ignored", sets)
        for code_set in _children(sets, "Set"):
            key = canonical_guid(code_set.get("guid")) or ""
            project.sets.append(
                ParsedSet(
                    guid=(code_set.get("guid") or "").strip(),
                    key=key,
                    name=(code_set.get("name") or "").strip(),
                    description=_text(_child(code_set, "Description")),
                    member_codes=tuple(
                        k
                        for k in (
                            canonical_guid(m.get("targetGUID") or m.get("guid"))
                            for m in _children(code_set, "MemberCode")
                        )
                        if k
                    ),
                    member_sources=_refs(code_set, "MemberSource"),
                    member_notes=_refs(code_set, "MemberNote"),
                )
            )
        graphs = _children(_child(root, "Graphs"), "Graph")
        if graphs:
            self.lost(f"{len(graphs)} graph(s) (network views): Concord has no graphs")
        project.note_refs = _refs(root, "NoteRef")

    def _values(self, element: etree._Element) -> tuple[ParsedValue, ...]:
        values = []
        for value in _children(element, "VariableValue"):
            reference = _child(value, "VariableRef")
            variable = canonical_guid(reference.get("targetGUID")) if reference is not None else None
            typed = [child for child in value if isinstance(child.tag, str) and _local(child) != "VariableRef"]
            if typed:
                kind = _local(typed[0])
                kind = kind[: -len("Value")] if kind.endswith("Value") else kind
                values.append(ParsedValue(variable, kind, typed[0].text or ""))
            else:
                values.append(ParsedValue(variable, None, None))
        return tuple(values)

    def _case(self, case: etree._Element) -> None:
        key = canonical_guid(case.get("guid"))
        if key is None:
            self.adjusted(f"case {case.get('name')!r} has an invalid guid and was skipped", case)
            return
        self.project.cases.append(
            ParsedCase(
                guid=case.get("guid").strip(),
                key=key,
                name=(case.get("name") or "").strip() or None,
                description=_text(_child(case, "Description")),
                values=self._values(case),
                source_refs=_refs(case, "SourceRef"),
                selection_refs=len(_children(case, "SelectionRef")),
                code_refs=len(_children(case, "CodeRef")),
            )
        )

    def _read_text(self, element: etree._Element, what: str) -> tuple[str, str] | None:
        """(raw text, encoding) of a TextSource or Note: its plain-text file, else its inline content."""
        path = element.get("plainTextPath")
        inline = _child(element, "PlainTextContent")
        if path and inline is not None:
            self.adjusted(f"{what} has both a plain-text file and inline text; the file was used", element)
        if path:
            found = self.archive.source(path) if self.archive is not None else None
            if found is None:
                if inline is None:
                    self.lost(f"{what}: its text file {path!r} is not in the archive", element)
                    return None
            else:
                data, entry = found
                text, encoding, warning = decode_source(data)
                if warning:
                    self.adjusted(f"{entry} {warning}", element)
                return text, encoding
        if inline is not None:
            return inline.text or "", "inline"
        if element.get("richTextPath"):
            self.lost(
                f"{what} has only a rich-text file ({element.get('richTextPath')}); Concord needs its plain text",
                element,
            )
        else:
            self.lost(f"{what} has no text", element)
        return None

    def _coding(self, coding: etree._Element) -> ParsedCoding:
        code_ref = _child(coding, "CodeRef")
        return ParsedCoding(
            guid=coding.get("guid"),
            code_key=canonical_guid(code_ref.get("targetGUID")) if code_ref is not None else None,
            creating_user=canonical_guid(coding.get("creatingUser")),
            created=parse_datetime(coding.get("creationDateTime")),
            note_refs=_refs(coding, "NoteRef"),
        )

    def _source(self, source: etree._Element) -> None:
        kind = _local(source)
        name = (source.get("name") or "").strip() or None
        label = f"{kind} {name or source.get('guid')!r}"
        if kind != "TextSource":
            selections = sum(
                1 for child in source.iter() if isinstance(child.tag, str) and _local(child).endswith("Selection")
            )
            codings = sum(1 for child in source.iter() if isinstance(child.tag, str) and _local(child) == "Coding")
            what = {"PDFSource": "PDF", "PictureSource": "picture", "AudioSource": "audio", "VideoSource": "video"}.get(
                kind, kind
            )
            self.lost(
                f"{what} source {name or source.get('guid')!r} with {selections} selection(s) and "
                f"{codings} coding(s): Concord keeps only text sources",
                source,
            )
            return
        key = canonical_guid(source.get("guid"))
        if key is None:
            self.lost(f"{label} has an invalid guid {source.get('guid')!r}; it was skipped", source)
            return
        found = self._read_text(source, label)
        if found is None:
            return
        raw, encoding = found
        if source.get("plainTextPath") and source.get("richTextPath"):
            self.project.remarks.append(
                f"{label}: its rich-text copy ({source.get('richTextPath')}) was not imported; the plain text was"
            )
        stem = PurePosixPath(_archive_candidates(source.get("plainTextPath") or "x")[0]).stem
        file_stem = stem if stem and canonical_guid(stem) is None and source.get("plainTextPath") else None
        selections = []
        for selection in _children(source, "PlainTextSelection"):
            try:
                start = int((selection.get("startPosition") or "").strip())
                end = int((selection.get("endPosition") or "").strip())
            except ValueError:
                self.lost(
                    f"a selection in {label} has unreadable positions "
                    f"({selection.get('startPosition')!r}-{selection.get('endPosition')!r})",
                    selection,
                )
                continue
            selections.append(
                ParsedSelection(
                    guid=selection.get("guid"),
                    key=canonical_guid(selection.get("guid")),
                    raw_start=start,
                    raw_end=end,
                    name=selection.get("name"),
                    description=_text(_child(selection, "Description")),
                    creating_user=canonical_guid(selection.get("creatingUser")),
                    created=parse_datetime(selection.get("creationDateTime")),
                    codings=tuple(self._coding(c) for c in _children(selection, "Coding")),
                    note_refs=_refs(selection, "NoteRef"),
                    line=selection.sourceline,
                )
            )
        self.project.sources.append(
            ParsedSource(
                guid=source.get("guid").strip(),
                key=key,
                name=name,
                raw_text=raw,
                text=normalise_line_ends(raw),
                encoding=encoding,
                description=_text(_child(source, "Description")),
                creating_user=canonical_guid(source.get("creatingUser")),
                created=parse_datetime(source.get("creationDateTime")),
                selections=tuple(selections),
                whole_codings=tuple(self._coding(c) for c in _children(source, "Coding")),
                note_refs=_refs(source, "NoteRef"),
                values=self._values(source),
                line=source.sourceline,
                file_stem=file_stem,
            )
        )

    def _note(self, note: etree._Element) -> None:
        key = canonical_guid(note.get("guid"))
        name = (note.get("name") or "").strip() or None
        if key is None:
            self.lost(f"note {name!r} has an invalid guid and was skipped", note)
            return
        found = self._read_text(note, f"note {name or note.get('guid')!r}")
        if found is None:
            return
        selections = _children(note, "PlainTextSelection")
        if selections:
            self.lost(f"{len(selections)} selection(s) inside note {name!r}: Concord memos are plain text", note)
        self.project.notes[key] = ParsedNote(
            guid=note.get("guid").strip(),
            key=key,
            name=name,
            text=normalise_line_ends(found[0]),
            description=_text(_child(note, "Description")),
            creating_user=canonical_guid(note.get("creatingUser")),
            created=parse_datetime(note.get("creationDateTime")),
            modified=parse_datetime(note.get("modifiedDateTime")),
        )


def normalise_line_ends(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------------------------------
# Offsets


class OffsetMap:
    """Converts positions counted by one of the OFFSET_MODELS into canonical offsets of one text."""

    def __init__(self, raw: str):
        self.raw = raw
        self.length = len(normalise_line_ends(raw))
        self.has_cr = "\r" in raw
        self.has_astral = _ASTRAL.search(raw) is not None
        self._boundaries: dict[str, list[int]] = {}

    def boundaries(self, model: str) -> list[int]:
        """Position (in the model's units) at which each canonical character starts, then the end."""
        if model not in self._boundaries:
            widths = []
            raw = self.raw
            index = 0
            count = len(raw)
            while index < count:
                char = raw[index]
                if char == "\r" and index + 1 < count and raw[index + 1] == "\n":
                    widths.append(2 if model in (CODE_POINTS, UTF16) else 1)
                    index += 2
                    continue
                widths.append(2 if ord(char) > 0xFFFF and model in (UTF16, UTF16_LF) else 1)
                index += 1
            self._boundaries[model] = [0, *itertools.accumulate(widths)]
        return self._boundaries[model]

    def convert(self, model: str, start: int, end: int) -> tuple[int, int, bool] | None:
        """Canonical (start, end, clamped); None when the selection begins beyond the text."""
        if self.has_cr or self.has_astral:
            marks = self.boundaries(model)
            total = marks[-1]
        else:
            marks = None
            total = self.length
        if start < 0 or end < start or start > total:
            return None
        clamped = end > total
        end = min(end, total)
        if marks is None:
            return start, end, clamped
        canonical_start = bisect.bisect_right(marks, start) - 1
        canonical_end = bisect.bisect_left(marks, end)
        return canonical_start, min(canonical_end, self.length), clamped


def default_offset_model(origin: str | None) -> str:
    name = (origin or "").lower()
    if name.startswith("nvivo"):
        return UTF16
    if name.startswith("atlas.ti"):
        return CODE_POINTS_LF
    return CODE_POINTS


def _quote(name: str | None) -> tuple[str, bool] | None:
    """The quote a selection name holds (whitespace folded) and whether it was cut short; None if no quote."""
    if not name:
        return None
    flat = " ".join(name.split())
    truncated = False
    for ellipsis in ("…", "..."):
        if flat.endswith(ellipsis):
            flat, truncated = flat[: -len(ellipsis)].rstrip(), True
    if len(flat) < 3 or _LINE_NAME.match(flat):
        return None
    return flat, truncated


def _matches(text: str, start: int, end: int, quote: tuple[str, bool]) -> bool:
    found = " ".join(text[start:end].split())
    wanted, truncated = quote
    return found.startswith(wanted) if truncated else found == wanted or found.startswith(wanted)


@dataclass
class _Score:
    matches: int = 0
    outside: int = 0


def choose_offset_model(project: ParsedProject) -> None:
    """Pick the offset model, verify it against the quotes in selection names, convert every selection."""
    maps = {source.key: OffsetMap(source.raw_text) for source in project.sources}
    default = default_offset_model(project.origin)
    distinct = any(m.has_astral or (m.has_cr and "\r\n" in m.raw) for m in maps.values())
    chosen = default
    if distinct:
        scores = {model: _Score() for model in OFFSET_MODELS}
        checkable = 0
        for source in project.sources:
            offsets = maps[source.key]
            for selection in source.selections:
                quote = _quote(selection.name)
                checkable += quote is not None
                for model, score in scores.items():
                    converted = offsets.convert(model, selection.raw_start, selection.raw_end)
                    if converted is None or converted[2]:
                        score.outside += 1
                    elif quote is not None and _matches(source.text, converted[0], converted[1], quote):
                        score.matches += 1
        best = max(OFFSET_MODELS, key=lambda m: (scores[m].matches, -scores[m].outside, m == default))
        margin = max(1, checkable // 10)
        if scores[best].matches >= scores[default].matches + margin or (
            scores[default].outside and not scores[best].outside and scores[best].matches >= scores[default].matches
        ):
            chosen = best
        if chosen != default:
            project.remarks.append(
                f"selection positions were read as {chosen}: that reproduces {scores[chosen].matches} of "
                f"{checkable} quoted selection names, against {scores[default].matches} for {default}, "
                f"which {project.origin or 'this producer'} normally uses"
            )
        else:
            project.remarks.append(
                f"selection positions were read as {chosen}"
                + (f" ({scores[chosen].matches} of {checkable} quoted selection names agree)" if checkable else "")
            )
        astral = [s.name or s.guid for s in project.sources if maps[s.key].has_astral]
        if astral and chosen in (CODE_POINTS, CODE_POINTS_LF) and default == UTF16:
            project.adjusted.append(
                f"sources with characters beyond U+FFFF ({', '.join(astral[:5])}) were read "
                "with code-point offsets although NVivo usually counts UTF-16 units"
            )
    project.offset_model = chosen
    converted_sources = []
    for source in project.sources:
        offsets = maps[source.key]
        selections = []
        for selection in source.selections:
            converted = offsets.convert(chosen, selection.raw_start, selection.raw_end)
            if converted is None:
                selections.append(selection)
                continue
            start, end, clamped = converted
            selections.append(replace(selection, start=start, end=end, clamped=clamped))
        converted_sources.append(replace(source, selections=tuple(selections)))
    project.sources = converted_sources


# --------------------------------------------------------------------------------------------------
# Turns for a foreign text


@dataclass(frozen=True)
class RebuiltTurn:
    number: int
    speaker_role: str
    speaker_label: str
    char_start: int
    char_end: int


def turns_from_text(text: str, speaker_map=None) -> list[RebuiltTurn]:
    """One turn per non-empty line, or per speaker: "T: ..." starts a turn of that speaker, and the
    lines under it (up to a blank line or the next speaker) continue it. Unlabelled lines are turns of
    role "other" with no label. Turn ranges exclude the speaker prefix and surrounding blanks.
    `speaker_map` ("Anna=client,Interviewer=interviewer" or a dict) gives labels their roles."""
    from concord.importers.speakers import MalformedTimestamp, SpeakerLine, SpeakerRoles, match_speaker_line

    roles = SpeakerRoles(speaker_map)
    turns: list[list] = []  # [role, label, start, end, has_speaker]
    offset = 0
    previous_blank = True
    for line in text.split("\n"):
        line_start = offset
        offset += len(line) + 1
        content = line.strip()
        if not content:
            previous_blank = True
            continue
        try:
            recognised = match_speaker_line(line, roles)
        except MalformedTimestamp:
            recognised = None
        if isinstance(recognised, SpeakerLine) and not recognised.header_only:
            start, end = _trimmed(line, recognised.utterance_start, len(line))
            role = roles.role_for(recognised.label) or "other"
            turns.append([role, recognised.label.strip()[:120], line_start + start, line_start + end, True])
        elif turns and turns[-1][4] and not previous_blank:
            start, end = _trimmed(line, 0, len(line))
            turns[-1][3] = line_start + end
        else:
            start, end = _trimmed(line, 0, len(line))
            turns.append(["other", "", line_start + start, line_start + end, False])
        previous_blank = False
    return [
        RebuiltTurn(number, role, label, start, max(start, end))
        for number, (role, label, start, end, _) in enumerate(turns, 1)
    ]


def _trimmed(line: str, start: int, end: int) -> tuple[int, int]:
    while start < end and line[start].isspace():
        start += 1
    while end > start and line[end - 1].isspace():
        end -= 1
    return start, end


def unique_names(names: Iterable[str]) -> list[str]:
    """The names with " (2)", " (3)" ... added to repeats, first come first served."""
    seen: dict[str, int] = {}
    result = []
    taken = set()
    for name in names:
        candidate = name
        count = seen.get(name, 1)
        while candidate in taken:
            count += 1
            candidate = f"{name} ({count})"
        seen[name] = count
        taken.add(candidate)
        result.append(candidate)
    return result
