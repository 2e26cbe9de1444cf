"""REFI-QDA codebook exchange: write a codebook as .qdc, read .qdc files and the codebook of .qdpx/.qde projects.

The Codebook schema gives a code only a guid, a name, isCodable, a colour and a free-text
Description, so the fields Concord adds travel inside the Description, after the definition, in a
block that opens with the line CODE_FIELDS_MARKER and holds one "Key: value" line per field
(continuation lines start with two spaces). Other tools show it as readable text; Concord parses
it back. The codebook's own id, version, source and description travel the same way in one code
Set named after the codebook title, with every code as a member. docs/codebook-format.md has the
details and an example.
"""

from __future__ import annotations

import io
import json
import os
import re
import uuid
import zipfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from lxml import etree

from concord.codebooks.loader import NAMED_COLOURS, colour_hex, hotkey_problem
from concord.codebooks.spec import (
    CodebookSpec,
    CodeFieldError,
    CodeSpec,
    ScaleSpec,
    applies_to_from_document,
    scale_from_document,
)
from concord.storage.errors import ConcordError, InputError
from concord.storage.limits import (
    MAX_QDPX_UNCOMPRESSED_BYTES,
    MAX_QDPX_XML_BYTES,
    check_zip,
    read_file_bytes,
    refuse_xml_dtd,
)

CODEBOOK_NAMESPACE = "urn:QDA-XML:codebook:1.0"
CODE_FIELDS_MARKER = "-- Concord code fields --"
CODEBOOK_FIELDS_MARKER = "-- Concord codebook --"
# Stable GUIDs: the same codebook id and path of code names always give the same GUID.
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:concord:codebook")
MAX_PROJECT_XML_BYTES = MAX_QDPX_XML_BYTES

# Block key -> CodeSpec field, in writing order.
_CODE_BLOCK_KEYS: dict[str, str] = {
    "Label": "label",
    "Include": "inclusion",
    "Exclude": "exclusion",
    "Example": "example",
    "Pole": "pole",
    "High pole": "high_pole",
    "Hotkey": "hotkey",
    "Colour": "colour",
    "Applies to": "applies_to",
    "Scale": "scale",
}
_CODEBOOK_BLOCK_KEYS: dict[str, str] = {
    "Id": "id",
    "Version": "version",
    "Source": "source",
    "Description": "description",
}
_BLOCK_LINE = re.compile(r"^([A-Za-z][A-Za-z ]*): ?(.*)$")
_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")
_HEX6 = re.compile(r"^#?([0-9a-fA-F]{6})$")
_HEX3 = re.compile(r"^#?([0-9a-fA-F]{3})$")
_RGB_FUNCTION = re.compile(r"^rgba?\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*(?:,[^)]*)?\)$", re.IGNORECASE)
_FLATTENED_NAME_SEPARATORS = ("::", "\\")


@dataclass(frozen=True)
class QdcImport:
    """An imported codebook and what had to be adjusted or left out to read it."""

    spec: CodebookSpec
    warnings: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Export


def stable_guid(codebook_id: str, path: tuple[str, ...]) -> str:
    """The GUID a code without a stored guid gets: derived from the codebook id and its path of names."""
    return str(uuid.uuid5(GUID_NAMESPACE, "\n".join((codebook_id, *path))))


def export_qdc(spec: CodebookSpec) -> bytes:
    """The codebook as a REFI-QDA .qdc document (UTF-8, no BOM), valid against Codebook.xsd."""
    if not spec.codes:
        raise ConcordError(
            f"codebook {spec.id!r} has no codes, and a .qdc file must contain at least one code; "
            "add codes before exporting it"
        )
    root = etree.Element(f"{{{CODEBOOK_NAMESPACE}}}CodeBook", nsmap={None: CODEBOOK_NAMESPACE})
    root.set("origin", _origin())
    codes_element = etree.SubElement(root, _tag("Codes"))
    member_guids: list[str] = []
    for code in spec.codes:
        _append_code(codes_element, code, spec.id, (), member_guids)
    sets = etree.SubElement(root, _tag("Sets"))
    codebook_set = etree.SubElement(sets, _tag("Set"))
    codebook_set.set("guid", str(uuid.uuid5(GUID_NAMESPACE, f"codebook\n{spec.id}")))
    codebook_set.set("name", spec.title)
    _set_text(etree.SubElement(codebook_set, _tag("Description")), _codebook_block(spec), spec.title)
    for guid in member_guids:
        etree.SubElement(codebook_set, _tag("MemberCode")).set("guid", guid)
    etree.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + etree.tostring(root, encoding="utf-8", pretty_print=True)


def _origin() -> str:
    try:
        return f"Concord {metadata.version('concord')}"
    except metadata.PackageNotFoundError:
        return "Concord"


def _tag(local_name: str) -> str:
    return f"{{{CODEBOOK_NAMESPACE}}}{local_name}"


def _set_text(element: etree._Element, text: str, owner: str) -> None:
    try:
        element.text = text
    except ValueError:
        raise ConcordError(f"{owner!r} contains characters that XML cannot carry (control characters)") from None


def _append_code(
    parent: etree._Element, code: CodeSpec, codebook_id: str, prefix: tuple[str, ...], member_guids: list[str]
) -> None:
    path = (*prefix, code.name)
    guid = code.guid or stable_guid(codebook_id, path)
    element = etree.SubElement(parent, _tag("Code"))
    element.set("guid", guid)
    try:
        element.set("name", code.name)
    except ValueError:
        raise ConcordError(f"code name {code.name!r} contains characters that XML cannot carry") from None
    element.set("isCodable", "true")
    if code.colour is not None:
        element.set("color", colour_hex(code.colour))
    description = _code_description(code)
    if description:
        _set_text(etree.SubElement(element, _tag("Description")), description, code.name)
    member_guids.append(guid)
    for child in code.children:
        _append_code(element, child, codebook_id, path, member_guids)


def _code_description(code: CodeSpec) -> str:
    fields: list[tuple[str, str]] = []
    for key, field in _CODE_BLOCK_KEYS.items():
        value = getattr(code, field)
        if value is None:
            continue
        if field == "high_pole":
            value = "yes" if value else "no"
        elif field == "applies_to":
            value = ", ".join(value)
        elif field == "scale":
            value = json.dumps(value.to_document())
        if field == "colour" and value.lower() not in NAMED_COLOURS:
            continue  # a hex colour travels in the color attribute as it is
        fields.append((key, value))
    block = _block(CODE_FIELDS_MARKER, fields)
    if code.definition is None:
        return block
    return code.definition if not block else f"{code.definition}\n\n{block}"


def _codebook_block(spec: CodebookSpec) -> str:
    fields = [(key, getattr(spec, field)) for key, field in _CODEBOOK_BLOCK_KEYS.items()]
    return _block(CODEBOOK_FIELDS_MARKER, [(key, value) for key, value in fields if value is not None])


def _block(marker: str, fields: list[tuple[str, str]]) -> str:
    if not fields:
        return ""
    lines = [marker]
    for key, value in fields:
        first, *rest = value.split("\n")
        lines.append(f"{key}: {first}")
        lines.extend(f"  {line}" for line in rest)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Import


def import_qdc(
    path_or_bytes: str | os.PathLike[str] | bytes,
    source_name: str | None = None,
    *,
    split_flattened_names: bool = False,
) -> CodebookSpec:
    """Read a .qdc file, or the CodeBook of a .qdpx project (or its bare project.qde), as a CodebookSpec.

    Lenient like the REFI-QDA notes ask: namespaces are matched by local name, a BOM is accepted,
    schema slips such as an empty <Sets/> are ignored. See read_qdc for what was adjusted.
    """
    return read_qdc(path_or_bytes, source_name, split_flattened_names=split_flattened_names).spec


def read_qdc(
    path_or_bytes: str | os.PathLike[str] | bytes,
    source_name: str | None = None,
    *,
    split_flattened_names: bool = False,
) -> QdcImport:
    """Like import_qdc, plus the warnings a user should see (data that could not be kept as it was).

    With split_flattened_names, names that other tools flattened into one ("a::b", "a\\b") become
    a parent "a" with a child "b".
    """
    data, where = read_input(path_or_bytes, source_name)
    warnings: list[str] = []
    if data[:4] == b"PK\x03\x04":
        data, where = _project_xml_from_archive(data, where)
    root = parse_xml(data, where)
    kind = etree.QName(root).localname
    if kind == "CodeBook":
        codebook = root
    elif kind == "Project":
        codebook = _first_child(root, "CodeBook")
    else:
        raise InputError(
            f"expected a REFI-QDA CodeBook (.qdc) or Project (.qde), found <{kind}>", where, root.sourceline
        )
    codes_element = _first_child(codebook, "Codes") if codebook is not None else None
    code_elements = _children(codes_element, "Code") if codes_element is not None else []
    metadata_fields, set_title = _codebook_metadata(codebook, warnings)

    fallback_title = root.get("name") or Path(where).stem or "Imported codebook"
    title = set_title or fallback_title
    codebook_id = metadata_fields.get("id") or _slug(title)
    origin = root.get("origin")
    source = metadata_fields.get("source")
    if source is None and "id" not in metadata_fields and origin:
        source = f"REFI-QDA codebook from {origin}"
    reader = _CodeReader(codebook_id, where, warnings, owned_by_concord="id" in metadata_fields)
    codes = tuple(reader.code(element, ()) for element in code_elements)
    if split_flattened_names:
        codes = _split_flattened(codes, warnings)
    _warn_duplicate_siblings(codes, "the top level", warnings)
    if reader.folders:
        warnings.append(
            f"{reader.folders} code(s) were marked not codable (folders); Concord keeps them as codes with sub-codes"
        )
    spec = CodebookSpec(
        id=codebook_id,
        title=title,
        version=metadata_fields.get("version") or "1",
        source=source,
        description=metadata_fields.get("description"),
        codes=codes,
    )
    return QdcImport(spec=spec, warnings=tuple(warnings))


def read_input(
    path_or_bytes: str | os.PathLike[str] | bytes, source_name: str | None, kind: str = "qdc"
) -> tuple[bytes, str]:
    """The bytes of a REFI-QDA file (or the bytes given) and the name errors should show."""
    if isinstance(path_or_bytes, bytes | bytearray):
        return bytes(path_or_bytes), source_name or f"<{kind} data>"
    path = Path(path_or_bytes)
    where = source_name or str(path)
    if path.is_dir():
        raise InputError(f"is a folder, not a .{kind} file", where)
    if not path.exists():
        raise InputError("no such file", where)
    return read_file_bytes(path, where=where), where


def _project_xml_from_archive(data: bytes, where: str) -> tuple[bytes, str]:
    check_archive(data, where)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise InputError(f"not a readable .qdpx (ZIP) archive: {error}", where) from None
    with archive:
        candidates = [
            info for info in archive.infolist() if "/" not in info.filename and info.filename.lower().endswith(".qde")
        ]
        chosen = [info for info in candidates if info.filename.lower() == "project.qde"] or candidates
        if not chosen:
            raise InputError("the .qdpx archive has no project.qde at its top level", where)
        if len(chosen) > 1:
            names = ", ".join(info.filename for info in chosen)
            raise InputError(f"the .qdpx archive has several project files ({names}); expected one", where)
        info = chosen[0]
        if info.file_size > MAX_PROJECT_XML_BYTES:
            raise InputError(f"{info.filename} is {info.file_size} bytes, too large to be a project file", where)
        return archive.read(info), f"{where}!{info.filename}"


def parse_xml(data: bytes, where: str, *, huge_tree: bool = False) -> etree._Element:
    """Parse a REFI-QDA XML document safely (no entities, no network, no DTD); errors name file and line.

    Whole projects may be large, so the .qdpx importer passes ``huge_tree=True``.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=huge_tree)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise InputError(f"not well-formed XML: {error.msg}", where, error.lineno) from None
    except ValueError as error:  # lxml refuses some inputs (e.g. a str with an encoding declaration) this way
        raise InputError(f"not well-formed XML: {error}", where) from None
    if root is None:
        raise InputError("the file holds no XML element", where)
    refuse_xml_dtd(root, where)
    return root


def check_archive(data: bytes, where: str) -> None:
    """The limits of a .qdpx (ZIP) archive, checked from its directory before anything is unpacked."""
    check_zip(data, where, ".qdpx (ZIP) archive", max_total=MAX_QDPX_UNCOMPRESSED_BYTES, max_entry=MAX_QDPX_XML_BYTES)


def _children(element: etree._Element, local_name: str) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str) and etree.QName(child).localname == local_name]


def _first_child(element: etree._Element, local_name: str) -> etree._Element | None:
    found = _children(element, local_name)
    return found[0] if found else None


def _element_text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text


def _codebook_metadata(codebook: etree._Element | None, warnings: list[str]) -> tuple[dict[str, str], str | None]:
    """Fields from Concord's codebook Set, if the file has one; other Sets are reported as not kept."""
    if codebook is None:
        return {}, None
    sets = _first_child(codebook, "Sets")
    found: dict[str, str] = {}
    title: str | None = None
    ignored = 0
    if sets is not None and not _children(sets, "Set"):
        warnings.append("an empty <Sets/> element (the schema needs at least one Set) was ignored")
    for code_set in _children(sets, "Set") if sets is not None else []:
        text = _element_text(_first_child(code_set, "Description")) or ""
        if not found and text.lstrip().startswith(CODEBOOK_FIELDS_MARKER):
            found = _parse_block(
                text.lstrip()[len(CODEBOOK_FIELDS_MARKER) :], _CODEBOOK_BLOCK_KEYS, warnings, "codebook"
            )
            title = (code_set.get("name") or "").strip() or None
        else:
            ignored += 1
    if ignored:
        warnings.append(f"{ignored} code set(s) were not imported: Concord codebooks have no sets")
    return found, title


def _parse_block(text: str, keys: dict[str, str], warnings: list[str], owner: str) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.split("\n"):
        match = _BLOCK_LINE.match(line)
        if match and match.group(1) in keys:
            current = keys[match.group(1)]
            values[current] = [match.group(2)]
        elif current is not None and (line.startswith("  ") or not line.strip()):
            values[current].append(line[2:])
        elif line.strip():
            warnings.append(f"{owner}: an unreadable line in the Concord fields was skipped: {line.strip()!r}")
    return {field: "\n".join(lines).strip() for field, lines in values.items() if "\n".join(lines).strip()}


class _CodeReader:
    def __init__(self, codebook_id: str, where: str, warnings: list[str], owned_by_concord: bool):
        self.codebook_id = codebook_id
        self.where = where
        self.warnings = warnings
        self.owned_by_concord = owned_by_concord
        self.folders = 0
        self.hotkeys: dict[str, str] = {}

    def warn(self, element: etree._Element, message: str) -> None:
        self.warnings.append(f"{self.where}:{element.sourceline}: {message}")

    def code(self, element: etree._Element, prefix: tuple[str, ...]) -> CodeSpec:
        name = (element.get("name") or "").strip()
        if not name:
            name = "(unnamed code)"
            self.warn(element, "a code without a name was called '(unnamed code)'")
        path = (*prefix, name)
        if (element.get("isCodable") or "").strip().lower() in ("false", "0"):
            self.folders += 1
        definition, fields = self._description(element, name)
        colour = self._colour(element, name, fields.pop("colour", None))
        high_pole = fields.pop("high_pole", None)
        hotkey = self._hotkey(element, name, fields.pop("hotkey", None))
        applies_to, scale = self._applies_to_and_scale(element, name, fields)
        children = tuple(self.code(child, path) for child in _children(element, "Code"))
        _warn_duplicate_siblings(children, repr(name), self.warnings)
        return CodeSpec(
            name=name,
            definition=definition,
            high_pole=None if high_pole is None else high_pole.lower() in ("yes", "true"),
            hotkey=hotkey,
            colour=colour,
            guid=self._guid(element, path),
            applies_to=applies_to,
            scale=scale,
            children=children,
            **fields,
        )

    def _applies_to_and_scale(
        self, element: etree._Element, name: str, fields: dict[str, str]
    ) -> tuple[tuple[str, ...] | None, ScaleSpec | None]:
        """The two structured fields of the block; one that does not read is left out with a warning."""
        applies_to = scale = None
        raw_roles = fields.pop("applies_to", None)
        raw_scale = fields.pop("scale", None)
        try:
            if raw_roles is not None:
                applies_to = applies_to_from_document([role.strip() for role in raw_roles.split(",")])
        except CodeFieldError as error:
            self.warn(element, f"code {name!r}: {error}; left out")
        try:
            if raw_scale is not None:
                scale = scale_from_document(json.loads(raw_scale))
        except (CodeFieldError, ValueError) as error:
            self.warn(element, f"code {name!r}: scale {raw_scale!r} does not read ({error}); left out")
        return applies_to, scale

    def _description(self, element: etree._Element, name: str) -> tuple[str | None, dict[str, str]]:
        text = _element_text(_first_child(element, "Description"))
        if text is None:
            return None, {}
        lines = text.split("\n")
        marker_at = next((i for i, line in enumerate(lines) if line.strip() == CODE_FIELDS_MARKER), None)
        if marker_at is None:
            return text.strip() or None, {}
        definition = "\n".join(lines[:marker_at]).strip() or None
        fields = _parse_block("\n".join(lines[marker_at + 1 :]), _CODE_BLOCK_KEYS, self.warnings, f"code {name!r}")
        return definition, fields

    def _colour(self, element: etree._Element, name: str, named: str | None) -> str | None:
        raw = (element.get("color") or "").strip()
        if not raw:
            return named.lower() if named and named.lower() in NAMED_COLOURS else None
        hex_colour = _lenient_hex(raw)
        if hex_colour is None:
            self.warn(element, f"colour {raw!r} of code {name!r} is not a colour Concord can read; it was dropped")
            return None
        if named and named.lower() in NAMED_COLOURS and colour_hex(named.lower()).lower() == hex_colour.lower():
            return named.lower()
        return hex_colour

    def _hotkey(self, element: etree._Element, name: str, key: str | None) -> str | None:
        if key is None:
            return None
        problem = hotkey_problem(key)
        if problem is None and key in self.hotkeys:
            problem = f"hotkey {key!r} is already used by {self.hotkeys[key]!r}"
        if problem:
            self.warn(element, f"{problem}; code {name!r} was imported without a hotkey")
            return None
        self.hotkeys[key] = name
        return key

    def _guid(self, element: etree._Element, path: tuple[str, ...]) -> str | None:
        guid = (element.get("guid") or "").strip()
        if not _GUID.match(guid):
            self.warn(element, f"code {path[-1]!r} has no valid guid ({guid!r}); a new one will be made on export")
            return None
        # A GUID Concord derived from the path is not stored, so the round trip gives back guid=None.
        if self.owned_by_concord and guid.strip("{}").lower() == stable_guid(self.codebook_id, path):
            return None
        return guid


def _lenient_hex(raw: str) -> str | None:
    if match := _HEX6.match(raw):
        return raw if raw.startswith("#") else f"#{match.group(1)}"
    if match := _HEX3.match(raw):
        return "#" + "".join(digit * 2 for digit in match.group(1)).upper()
    if match := _RGB_FUNCTION.match(raw):
        channels = [int(value) for value in match.groups()]
        if all(value <= 255 for value in channels):
            return "#" + "".join(f"{value:02X}" for value in channels)
    return None


def _warn_duplicate_siblings(codes: tuple[CodeSpec, ...], where: str, warnings: list[str]) -> None:
    seen: set[str] = set()
    for code in codes:
        folded = " ".join(code.name.casefold().split())
        if folded in seen:
            warnings.append(f"two codes named {code.name!r} under {where}; rename one before editing as YAML")
        seen.add(folded)


def _split_flattened(codes: tuple[CodeSpec, ...], warnings: list[str]) -> tuple[CodeSpec, ...]:
    """Turn names such as "interesting\\places" into a child "places" of a code "interesting"."""
    result: list[CodeSpec] = []
    for code in codes:
        code = replace(code, children=_split_flattened(code.children, warnings))
        parts = _split_name(code.name)
        if len(parts) == 1:
            _merge_into(result, code)
            continue
        nested = replace(code, name=parts[-1])
        for part in reversed(parts[:-1]):
            nested = CodeSpec(name=part, children=(nested,))
        warnings.append(f"code '{code.name}' was split into {' > '.join(parts)}")
        _merge_into(result, nested)
    return tuple(result)


def _split_name(name: str) -> list[str]:
    parts = [name]
    for separator in _FLATTENED_NAME_SEPARATORS:
        parts = [piece.strip() for part in parts for piece in part.split(separator)]
    return [part for part in parts if part] or [name]


def _merge_into(siblings: list[CodeSpec], code: CodeSpec) -> None:
    """Add a code to its siblings; a placeholder parent made by splitting joins an existing namesake."""
    for index, existing in enumerate(siblings):
        if existing.name != code.name:
            continue
        if _is_placeholder(code):
            keeper, extra = existing, code
        elif _is_placeholder(existing):
            keeper, extra = code, existing
        else:
            break  # two real codes of the same name stay apart; the caller warns about it
        merged_children = list(keeper.children)
        for child in extra.children:
            _merge_into(merged_children, child)
        siblings[index] = replace(keeper, children=tuple(merged_children))
        return
    siblings.append(code)


def _is_placeholder(code: CodeSpec) -> bool:
    return code == CodeSpec(name=code.name, children=code.children)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "imported-codebook"


# --------------------------------------------------------------------------------------------------
# Codes inside a REFI-QDA project


def project_code_elements(spec: CodebookSpec, namespace: str) -> list[etree._Element]:
    """The codebook's top-level <Code> elements (with their sub-codes) in another namespace.

    A .qdpx project's CodeBook holds the same Code elements as a .qdc file, in the project
    namespace; the Concord fields travel in each Description exactly as in a .qdc export.
    """
    holder = etree.Element(_tag("Codes"))
    for code in spec.codes:
        _append_code(holder, code, spec.id, (), [])
    for element in holder.iter():
        element.tag = f"{{{namespace}}}{etree.QName(element).localname}"
    return list(holder)
