"""Writing a REFI-QDA project (.qdpx): project.qde plus one UTF-8 text file per source.

This module only serialises: services/qdpx_export.py gathers a study into the plain dataclasses
below, and write_qdpx_file turns them into an archive that validates against Project.xsd.

Offsets: every source is written as UTF-8 without BOM, exactly as Concord stores it (LF line
ends), and selection positions count Unicode code points over exactly those bytes, half-open
[start, end), as the REFI-QDA specification says.

Concord keeps what the schema has no place for (turns, sessions, coder roles, which codebook a code
belongs to) as readable blocks inside Description elements, like the .qdc codebook exchange does:
a marker line, then one "Key: value" line per field, continuation lines indented by two spaces.
Other tools show them as text; Concord's importer reads them back.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from concord.codebooks.qdc import project_code_elements
from concord.codebooks.spec import CodebookSpec
from concord.storage.errors import ConcordError

PROJECT_NAMESPACE = "urn:QDA-XML:project:1.0"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{PROJECT_NAMESPACE} http://schema.qdasoftware.org/versions/Project/v1.0/Project.xsd"
# Stable GUIDs for what Concord does not store a GUID for (sources, users, selections, notes...).
EXCHANGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:concord:qdpx")

STUDY_MARKER = "-- Concord study --"
TRANSCRIPT_MARKER = "-- Concord transcript --"
SESSION_MARKER = "-- Concord session --"
DYAD_MARKER = "-- Concord dyad --"
ATTRIBUTE_MARKER = "-- Concord attribute --"
MEMO_MARKER = "-- Concord memo --"
CODEBOOK_MARKER = "-- Concord codebook --"
CODE_CREATOR_MARKER = "-- Concord code creator --"

VARIABLE_TYPES = ("Text", "Boolean", "Integer", "Float", "Date", "DateTime")
SELECTION_NAME_LENGTH = 60


_EXCHANGE_PREFIX = EXCHANGE_NAMESPACE.bytes


def exchange_guid(*parts: object) -> str:
    """A GUID that stays the same for the same entity across exports: uuid5 in EXCHANGE_NAMESPACE of the
    parts joined by newlines (computed here directly, without a UUID object: an export makes one per
    coding and selection)."""
    digest = bytearray(hashlib.sha1(_EXCHANGE_PREFIX + "\n".join(map(str, parts)).encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def concord_block(marker: str, fields: list[tuple[str, str | None]]) -> str:
    """The marker line and one "Key: value" line per field that has a value."""
    lines = [marker]
    for key, value in fields:
        if value is None:
            continue
        first, *rest = str(value).split("\n")
        lines.append(f"{key}: {first}".rstrip(" ") if first else f"{key}:")
        lines.extend(f"  {line}" for line in rest)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# What a project holds, ready to write


@dataclass(frozen=True)
class ExportUser:
    guid: str
    name: str


@dataclass(frozen=True)
class ExportNote:
    guid: str
    name: str
    text: str
    description: str | None = None
    creating_user: str | None = None
    created: datetime | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class ExportCoding:
    guid: str
    code_guid: str
    creating_user: str | None = None
    created: datetime | None = None
    note_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportSelection:
    guid: str
    start: int
    end: int
    name: str | None = None
    description: str | None = None
    creating_user: str | None = None
    created: datetime | None = None
    codings: tuple[ExportCoding, ...] = ()
    note_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportValue:
    variable_guid: str
    kind: str  # one of VARIABLE_TYPES
    value: str | None


@dataclass(frozen=True)
class ExportSource:
    guid: str
    name: str
    text: str
    description: str | None = None
    creating_user: str | None = None
    created: datetime | None = None
    selections: tuple[ExportSelection, ...] = ()
    note_refs: tuple[str, ...] = ()
    values: tuple[ExportValue, ...] = ()


@dataclass(frozen=True)
class ExportVariable:
    guid: str
    name: str
    kind: str
    description: str | None = None


@dataclass(frozen=True)
class ExportCase:
    guid: str
    name: str
    description: str | None = None
    values: tuple[ExportValue, ...] = ()
    source_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportSet:
    guid: str
    name: str
    description: str | None = None
    member_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportProject:
    name: str
    creating_user: str | None = None
    created: datetime | None = None
    users: tuple[ExportUser, ...] = ()
    codebooks: tuple[CodebookSpec, ...] = ()
    # Code GUID -> the notes (memos) attached to that code.
    code_notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    variables: tuple[ExportVariable, ...] = ()
    cases: tuple[ExportCase, ...] = ()
    sources: tuple[ExportSource, ...] = ()
    notes: tuple[ExportNote, ...] = ()
    sets: tuple[ExportSet, ...] = ()
    description: str | None = None
    note_refs: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Writing


def origin() -> str:
    try:
        return f"Concord {metadata.version('concord')}"
    except metadata.PackageNotFoundError:
        return "Concord"


def selection_name(quote: str) -> str:
    """A short label for a selection: the quote's first characters, as ATLAS.ti writes them."""
    flat = " ".join(quote.split())
    return flat if len(flat) <= SELECTION_NAME_LENGTH else flat[:SELECTION_NAME_LENGTH].rstrip() + "…"


def source_path(guid: str) -> str:
    return f"sources/{guid}.txt"


def _project_shell(project: ExportProject) -> etree._Element:
    """The Project element with every child in the order Project.xsd requires, empty containers left out,
    and an empty Sources element standing in for the sources (written one at a time)."""
    root = etree.Element(_tag("Project"), nsmap={None: PROJECT_NAMESPACE, "xsi": XSI_NAMESPACE})
    root.set(f"{{{XSI_NAMESPACE}}}schemaLocation", SCHEMA_LOCATION)
    _set(root, "name", project.name, "the project name")
    root.set("origin", origin())
    if project.creating_user:
        root.set("creatingUserGUID", project.creating_user)
    if project.created:
        root.set("creationDateTime", xml_datetime(project.created))
    if project.users:
        users = etree.SubElement(root, _tag("Users"))
        for user in project.users:
            element = etree.SubElement(users, _tag("User"), guid=user.guid)
            _set(element, "name", user.name, "a user name")
    _write_codebook(root, project)
    if project.variables:
        variables = etree.SubElement(root, _tag("Variables"))
        for variable in project.variables:
            element = etree.SubElement(variables, _tag("Variable"), guid=variable.guid, typeOfVariable=variable.kind)
            _set(element, "name", variable.name, "a variable name")
            _text_child(element, "Description", variable.description, variable.name)
    if project.cases:
        cases = etree.SubElement(root, _tag("Cases"))
        for case in project.cases:
            element = etree.SubElement(cases, _tag("Case"), guid=case.guid)
            _set(element, "name", case.name, "a case name")
            _text_child(element, "Description", case.description, case.name)
            for value in case.values:
                _write_value(element, value, case.name)
            for target in case.source_refs:
                etree.SubElement(element, _tag("SourceRef"), targetGUID=target)
    if project.sources:
        etree.SubElement(root, _tag("Sources"))
    if project.notes:
        notes = etree.SubElement(root, _tag("Notes"))
        for note in project.notes:
            _write_note(notes, note)
    if project.sets:
        sets = etree.SubElement(root, _tag("Sets"))
        for code_set in project.sets:
            element = etree.SubElement(sets, _tag("Set"), guid=code_set.guid)
            _set(element, "name", code_set.name, "a set name")
            _text_child(element, "Description", code_set.description, code_set.name)
            for member in code_set.member_codes:
                etree.SubElement(element, _tag("MemberCode"), targetGUID=member)
    _text_child(root, "Description", project.description, "the project description")
    for target in project.note_refs:
        etree.SubElement(root, _tag("NoteRef"), targetGUID=target)
    return root


def write_project_xml(stream: BinaryIO, project: ExportProject) -> None:
    """project.qde as UTF-8 into ``stream``, written as it is made: the sources (most of a study) one at a
    time, so no tree of the whole project is ever held."""
    _check_references(project)
    root = _project_shell(project)
    with etree.xmlfile(stream, encoding="utf-8") as xf:
        xf.write_declaration()
        # items(): lxml-stubs do not type an element's attrib as a mapping
        with xf.element(root.tag, dict(root.attrib.items()), nsmap=root.nsmap):
            for child in root:
                xf.write("\n ")
                if child.tag != _tag("Sources"):
                    etree.indent(child, space=" ", level=1)
                    xf.write(child)
                    continue
                with xf.element(child.tag):
                    for source in project.sources:
                        holder = etree.Element(_tag("Sources"), nsmap={None: PROJECT_NAMESPACE})
                        _write_source(holder, source)
                        element = holder[0]
                        etree.indent(element, space=" ", level=2)
                        xf.write("\n  ")
                        xf.write(element)
                    xf.write("\n ")
            xf.write("\n")


def project_xml(project: ExportProject) -> bytes:
    """project.qde as UTF-8 bytes (see ``write_project_xml``)."""
    buffer = io.BytesIO()
    write_project_xml(buffer, project)
    return buffer.getvalue()


def write_qdpx_file(project: ExportProject, path: str | Path | BinaryIO) -> None:
    """The .qdpx archive at ``path``: project.qde and sources/<guid>.txt (UTF-8, no BOM), nothing else.
    Written straight into the file, entry by entry: a study of thousands of transcripts is never held
    whole in memory, as XML or as a zip."""
    # Level 1: most of the time of a large export went into compressing at the default 6, for an archive
    # only a little smaller.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("project.qde", "w", force_zip64=True) as stream:
            write_project_xml(stream, project)
        for source in project.sources:
            data = source.text.encode("utf-8")
            if len(data) > 2_147_483_647:
                raise ConcordError(f"source {source.name!r} is larger than the 2 GB a REFI-QDA archive entry may hold")
            archive.writestr(source_path(source.guid), data)


def write_qdpx(project: ExportProject) -> bytes:
    """The .qdpx archive as bytes (see ``write_qdpx_file``)."""
    buffer = io.BytesIO()
    write_qdpx_file(project, buffer)
    return buffer.getvalue()


def xml_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat, not strftime: the same text, and an export writes one per coding and selection.
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def xml_value(kind: str, value: str) -> str | None:
    """The value as the schema's type for that variable kind wants it, or None when it is not one."""
    text = value.strip()
    try:
        if kind == "Boolean":
            lowered = text.lower()
            if lowered in ("true", "yes", "1"):
                return "true"
            if lowered in ("false", "no", "0"):
                return "false"
            return None
        if kind == "Integer":
            return str(int(text))
        if kind == "Float":
            number = Decimal(text.replace(",", "."))
            if not number.is_finite():
                return None
            return format(number, "f")
        if kind == "Date":
            return datetime.strptime(text[:10], "%Y-%m-%d").date().isoformat() if len(text) == 10 else None
    except (ValueError, InvalidOperation):
        return None
    return value


def _tag(local_name: str) -> str:
    return f"{{{PROJECT_NAMESPACE}}}{local_name}"


def _set(element: etree._Element, attribute: str, value: str, what: str) -> None:
    try:
        element.set(attribute, value)
    except ValueError:
        raise ConcordError(f"{what} {value!r} contains characters that XML cannot carry (control characters)") from None


def _text_child(parent: etree._Element, local_name: str, text: str | None, owner: str) -> None:
    if text is None or text == "":
        return
    element = etree.SubElement(parent, _tag(local_name))
    try:
        element.text = text
    except ValueError:
        raise ConcordError(f"the {local_name.lower()} of {owner!r} contains characters that XML cannot carry") from None


def _write_codebook(root: etree._Element, project: ExportProject) -> None:
    elements = [
        element
        for spec in project.codebooks
        if spec.codes
        for element in project_code_elements(spec, PROJECT_NAMESPACE)
    ]
    if not elements:
        return
    codes = etree.SubElement(etree.SubElement(root, _tag("CodeBook")), _tag("Codes"))
    for element in elements:
        codes.append(element)
    if not project.code_notes:
        return
    for code in codes.iter(_tag("Code")):
        notes = project.code_notes.get(code.get("guid"))
        if not notes:
            continue
        # Code: Description?, NoteRef*, Code*: the references go before the first child code.
        position = 1 if len(code) and etree.QName(code[0]).localname == "Description" else 0
        for offset, target in enumerate(notes):
            reference = etree.Element(_tag("NoteRef"), targetGUID=target)
            code.insert(position + offset, reference)


def _write_value(parent: etree._Element, value: ExportValue, owner: str) -> None:
    element = etree.SubElement(parent, _tag("VariableValue"))
    etree.SubElement(element, _tag("VariableRef"), targetGUID=value.variable_guid)
    if value.value is None:
        return
    kind = value.kind
    text = xml_value(kind, value.value)
    if text is None:
        kind, text = "Text", value.value
    _text_child(element, f"{kind}Value", text, owner)


def _write_source(parent: etree._Element, source: ExportSource) -> None:
    element = etree.SubElement(parent, _tag("TextSource"), guid=source.guid)
    _set(element, "name", source.name, "a source name")
    element.set("plainTextPath", f"internal://{source.guid}.txt")
    if source.creating_user:
        element.set("creatingUser", source.creating_user)
    if source.created:
        element.set("creationDateTime", xml_datetime(source.created))
    _text_child(element, "Description", source.description, source.name)
    for selection in source.selections:
        _write_selection(element, selection, source.name)
    for target in source.note_refs:
        etree.SubElement(element, _tag("NoteRef"), targetGUID=target)
    for value in source.values:
        _write_value(element, value, source.name)


def _write_selection(parent: etree._Element, selection: ExportSelection, owner: str) -> None:
    element = etree.SubElement(parent, _tag("PlainTextSelection"), guid=selection.guid)
    if selection.name is not None:
        _set(element, "name", selection.name, f"a selection name in {owner!r}")
    element.set("startPosition", str(selection.start))
    element.set("endPosition", str(selection.end))
    if selection.creating_user:
        element.set("creatingUser", selection.creating_user)
    if selection.created:
        element.set("creationDateTime", xml_datetime(selection.created))
    _text_child(element, "Description", selection.description, owner)
    for coding in selection.codings:
        coding_element = etree.SubElement(element, _tag("Coding"), guid=coding.guid)
        if coding.creating_user:
            coding_element.set("creatingUser", coding.creating_user)
        if coding.created:
            coding_element.set("creationDateTime", xml_datetime(coding.created))
        etree.SubElement(coding_element, _tag("CodeRef"), targetGUID=coding.code_guid)
        for target in coding.note_refs:
            etree.SubElement(coding_element, _tag("NoteRef"), targetGUID=target)
    for target in selection.note_refs:
        etree.SubElement(element, _tag("NoteRef"), targetGUID=target)


def _write_note(parent: etree._Element, note: ExportNote) -> None:
    element = etree.SubElement(parent, _tag("Note"), guid=note.guid)
    _set(element, "name", note.name, "a note name")
    if note.creating_user:
        element.set("creatingUser", note.creating_user)
    if note.created:
        element.set("creationDateTime", xml_datetime(note.created))
    if note.modified:
        element.set("modifiedDateTime", xml_datetime(note.modified))
    _text_child(element, "Description", note.description, note.name)
    # XML turns CR into LF inside element text; Concord stores memos with LF only, so nothing shifts.
    _text_child(element, "PlainTextContent", note.text.replace("\r\n", "\n").replace("\r", "\n"), note.name)


def _check_references(project: ExportProject) -> None:
    """Every GUID a reference names must exist in the project, or other tools refuse the file."""
    users = {user.guid for user in project.users}
    notes = {note.guid for note in project.notes}
    sources = {source.guid for source in project.sources}
    variables = {variable.guid for variable in project.variables}
    codes = {code.guid for spec in project.codebooks for _path, code in spec.walk() if code.guid}
    problems: list[str] = []

    def need(kind: str, known: set[str], guid: str | None, where: str) -> None:
        if guid is not None and guid not in known:
            problems.append(f"{where} refers to a missing {kind} {guid}")

    need("user", users, project.creating_user, "the project")
    for target in project.note_refs:
        need("note", notes, target, "the project")
    for code_guid, targets in project.code_notes.items():
        need("code", codes, code_guid, "a code note")
        for target in targets:
            need("note", notes, target, f"code {code_guid}")
    for case in project.cases:
        for value in case.values:
            need("variable", variables, value.variable_guid, f"case {case.name!r}")
        for target in case.source_refs:
            need("source", sources, target, f"case {case.name!r}")
    for source in project.sources:
        need("user", users, source.creating_user, f"source {source.name!r}")
        for target in source.note_refs:
            need("note", notes, target, f"source {source.name!r}")
        for value in source.values:
            need("variable", variables, value.variable_guid, f"source {source.name!r}")
        length = len(source.text)
        for selection in source.selections:
            if not 0 <= selection.start <= selection.end <= length:
                problems.append(f"a selection {selection.start}-{selection.end} lies outside source {source.name!r}")
            need("user", users, selection.creating_user, f"a selection in {source.name!r}")
            for target in selection.note_refs:
                need("note", notes, target, f"a selection in {source.name!r}")
            for coding in selection.codings:
                need("code", codes, coding.code_guid, f"a coding in {source.name!r}")
                need("user", users, coding.creating_user, f"a coding in {source.name!r}")
                for target in coding.note_refs:
                    need("note", notes, target, f"a coding in {source.name!r}")
    for note in project.notes:
        need("user", users, note.creating_user, f"note {note.name!r}")
    for code_set in project.sets:
        for target in code_set.member_codes:
            need("code", codes, target, f"set {code_set.name!r}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ConcordError(f"the project cannot be exported: {shown}")
