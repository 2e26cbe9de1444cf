"""Limits that keep bad or hostile input from eating the machine, and the checks that apply them.

Every importer reads files a user was handed by someone else: exports of other tools, spreadsheets,
archives. Each limit below is far above anything a real study produces (a fifty-minute session is
about 60,000 characters; a codebook a few kilobytes) and far below what would exhaust a 24 GB
machine shared by a team. Each refusal is an InputError naming the file, so the CLI shows one line
and exits 2 before anything is written.

The module lives in storage/ beside errors.py because every layer that reads input (importers,
codebooks, analysis) may use it, and imports only go downwards.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from concord.storage.errors import InputError

MiB = 1024 * 1024

# Any one file an importer reads whole into memory (a .qdpx may carry media Concord skips).
MAX_FILE_BYTES = 256 * MiB
# A text file: a transcript, a CSV table (codings, measures, turns), a manifest, a name register.
MAX_TEXT_FILE_BYTES = 64 * MiB
# One line of text, and one CSV field (a memo, a turn's text). A long line is legal up to here:
# a whole session typed without a line break is still twenty times smaller.
MAX_LINE_CHARS = 1_000_000
MAX_CSV_FIELD_CHARS = 1_000_000
# A YAML file (codebook, instrument, name register): its size, nesting and aliases. A ten-level
# code tree nests about 22 deep; aliases are rare in hand-written files and let a small file
# describe a huge graph.
MAX_YAML_BYTES = 8 * MiB
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 100
# A JSON conversation (a transcript as a list of turns): read as text, nested like a YAML file at most.
MAX_JSON_BYTES = MAX_TEXT_FILE_BYTES
MAX_JSON_DEPTH = MAX_YAML_DEPTH
# ZIP containers (.docx, .xlsx, .qdpx), checked from the central directory before anything is
# extracted. Office XML compresses about 5-20 times; a ratio above MAX_COMPRESSION_RATIO for an
# entry of more than RATIO_FLOOR_BYTES is a decompression bomb, not a document.
MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_CENTRAL_DIRECTORY_BYTES = 16 * MiB
MAX_OFFICE_UNCOMPRESSED_BYTES = 256 * MiB  # all entries of a .docx or .xlsx together
MAX_OFFICE_ENTRY_BYTES = 128 * MiB  # one entry (word/document.xml, a worksheet)
# A REFI-QDA project: its project XML, one text source, and everything in the archive together
# (media sources are skipped but still unpacked by nothing; they only count towards the total).
MAX_QDPX_XML_BYTES = 256 * MiB
MAX_QDPX_SOURCE_BYTES = MAX_TEXT_FILE_BYTES
MAX_QDPX_UNCOMPRESSED_BYTES = 1024 * MiB
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 1 * MiB

_EOCD = b"PK\x05\x06"
_EOCD_STRUCT = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_STRUCT = struct.Struct("<4sLQL")
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_STRUCT = struct.Struct("<4sQ2H2L4Q")
_XML_SUFFIXES = (".xml", ".rels", ".qde", ".qdc", ".vml")
# A DTD opens with <!DOCTYPE; entity declarations can only live inside one. Both spellings in the
# encodings an XML part may use.
_DTD_MARKERS = tuple(
    marker.encode(codec) for marker in ("<!DOCTYPE", "<!ENTITY") for codec in ("ascii", "utf-16-le", "utf-16-be")
)
_DTD_OVERLAP = max(len(marker) for marker in _DTD_MARKERS)


def _size(number: int) -> str:
    if number >= MiB:
        return f"{number / MiB:,.1f} MiB"
    return f"{number:,} bytes"


# ----------------------------------------------------------------------------------------- files


def read_file_bytes(path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, where: str | None = None) -> bytes:
    """A file's bytes, refused before reading when it is larger than `limit`."""
    shown = where or str(path)
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError("file not found", shown) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", shown) from None
    if path.is_dir():
        raise InputError("is a folder, not a file", shown)
    check_size(size, shown, limit)
    try:
        with path.open("rb") as handle:
            # One byte more than allowed tells a file that grew since stat() from one that did not.
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", shown) from None
    check_size(len(data), shown, limit)
    return data


def check_size(size: int, where: str, limit: int) -> None:
    if size > limit:
        raise InputError(
            f"the file is {_size(size)}, more than Concord reads ({_size(limit)}); split it into smaller files", where
        )


def check_line_lengths(text: str, where: str | None, *, limit: int = MAX_LINE_CHARS) -> None:
    """Refuse text with a line longer than `limit` characters, naming the line."""
    if len(text) <= limit:
        return
    start, number, length = 0, 1, len(text)
    while start <= length:
        end = text.find("\n", start)
        if end < 0:
            end = length
        if end - start > limit:
            raise InputError(
                f"line {number} is {end - start:,} characters long; Concord reads lines of up to {limit:,} "
                "characters (is this really a text file?)",
                where,
                number,
            )
        start, number = end + 1, number + 1


# ------------------------------------------------------------------------------------------- CSV


def csv_reader(text: str, **options: Any) -> Iterator[list[str]]:
    """csv.reader over text with Concord's field limit; iterate it inside `csv_errors`."""
    # The limit is module-wide in the csv module; every reader in Concord wants the same one.
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)
    return csv.reader(io.StringIO(text, newline=""), **options)


def csv_error(exc: csv.Error, where: str, line: int | None) -> InputError:
    message = str(exc)
    if "field larger than field limit" in message:
        message = f"a field is longer than {MAX_CSV_FIELD_CHARS:,} characters (an unclosed quote?)"
    return InputError(f"malformed CSV: {message}", where, line)


def extra_cells(cells: Iterable[object], width: int) -> int:
    """How many cells past the header's width hold something; trailing blanks are harmless."""
    extra = list(cells)[width:]
    while extra and (extra[-1] is None or (isinstance(extra[-1], str) and not extra[-1].strip())):
        extra.pop()
    return len(extra)


def refuse_extra_cells(
    cells: Sequence[object], header: Sequence[object], where: str, line: int, unit: str = "row"
) -> None:
    """Refuse a row with a value past the header's last named column: it would be dropped unseen.

    The header's width ends at its last non-blank name (spreadsheets pad rows with empty cells)."""
    named = list(header)
    while named and (named[-1] is None or (isinstance(named[-1], str) and not named[-1].strip())):
        named.pop()
    width = len(named)
    count = extra_cells(cells, width)
    if count:
        raise InputError(
            f"this {unit} has a value in column {width + count} but the header names {width} columns; "
            "it would be lost (a stray delimiter or an unquoted comma?)",
            where,
            line,
        )


# ------------------------------------------------------------------------------------------- ZIP


def check_zip(
    data: bytes,
    where: str,
    what: str,
    *,
    max_total: int = MAX_OFFICE_UNCOMPRESSED_BYTES,
    max_entry: int = MAX_OFFICE_ENTRY_BYTES,
    counted: Callable[[str], bool] | None = None,
    refuse_dtd: bool = True,
) -> None:
    """Check a ZIP container from its central directory before anything is extracted.

    `what` names the container in messages ("Word document"). `counted` picks the entries the caller
    will read (default: all); only those count towards the sizes and have their XML checked for a DTD.
    """
    check_zip_directory(data, where, what)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise InputError(f"not a readable {what} ({exc or type(exc).__name__})", where) from None
    with archive:
        total = 0
        chosen = []
        for info in archive.infolist():
            if info.is_dir() or (counted is not None and not counted(info.filename)):
                continue
            if info.flag_bits & 0x1:
                raise InputError(f"not a readable {what}: {info.filename} is encrypted (password-protected)", where)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise InputError(f"not a readable {what}: {info.filename} uses an unsupported compression", where)
            if info.file_size > max_entry:
                raise InputError(
                    f"{info.filename} would unpack to {_size(info.file_size)}, more than Concord unpacks "
                    f"from one entry ({_size(max_entry)})",
                    where,
                )
            if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
                info.compress_size, 1
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise InputError(
                    f"{info.filename} would unpack {ratio:,.0f} times larger ({_size(info.compress_size)} to "
                    f"{_size(info.file_size)}); Concord refuses ratios above {MAX_COMPRESSION_RATIO} "
                    "(a decompression bomb?)",
                    where,
                )
            total += info.file_size
            if total > max_total:
                raise InputError(
                    f"the {what} would unpack to more than {_size(max_total)}, more than Concord unpacks", where
                )
            chosen.append(info)
        if refuse_dtd:
            for info in chosen:
                if info.filename.lower().endswith(_XML_SUFFIXES):
                    _refuse_dtd_entry(archive, info, where, what)


def check_zip_directory(data: bytes, where: str, what: str) -> None:
    """Entry count and central-directory size from the end record, before zipfile builds one object per entry."""
    tail_start = max(0, len(data) - (_EOCD_STRUCT.size + 65535))
    at = data.rfind(_EOCD, tail_start)
    if at < 0 or at + _EOCD_STRUCT.size > len(data):
        raise InputError(f"not a readable {what} (a ZIP archive without its end record: cut short?)", where)
    _sig, _disk, _cd_disk, _here, entries, cd_size, _cd_offset, _comment = _EOCD_STRUCT.unpack_from(data, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator = at - _ZIP64_LOCATOR_STRUCT.size
        if locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
            _sig, _disk, record, _disks = _ZIP64_LOCATOR_STRUCT.unpack_from(data, locator)
            if record + _ZIP64_EOCD_STRUCT.size <= len(data) and data[record : record + 4] == _ZIP64_EOCD:
                fields = _ZIP64_EOCD_STRUCT.unpack_from(data, record)
                entries, cd_size = fields[7], fields[8]
    if entries > MAX_ZIP_ENTRIES:
        raise InputError(
            f"the {what} holds {entries:,} entries; Concord reads archives of up to {MAX_ZIP_ENTRIES:,}", where
        )
    if cd_size > MAX_ZIP_CENTRAL_DIRECTORY_BYTES:
        raise InputError(f"the {what}'s table of contents is {_size(cd_size)}; too large to be a document", where)


def _refuse_dtd_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, what: str) -> None:
    """Stream one XML entry (its size is already checked) and refuse it if it declares a DTD."""
    tail = b""
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(MiB):
                window = tail + chunk
                if any(marker in window for marker in _DTD_MARKERS):
                    raise InputError(
                        f"{info.filename} declares a DTD (<!DOCTYPE> or <!ENTITY>); Concord refuses XML with a DTD "
                        f"because entities can expand without bound. Save the {what} again from its program",
                        where,
                    )
                tail = window[-_DTD_OVERLAP:]
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise InputError(
            f"not a readable {what}: {info.filename} is damaged ({exc or type(exc).__name__})", where
        ) from None


def refuse_xml_dtd(root: Any, where: str) -> None:
    """Refuse a parsed lxml document that carries a DTD (parsed without resolving it)."""
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise InputError(
            "the XML declares a DTD (<!DOCTYPE>); Concord refuses XML with a DTD because entities can expand "
            "without bound",
            where,
            1,
        )


# ------------------------------------------------------------------------------------------ YAML

# Explicit tags a file may carry. Values are read as plain text, lists and mappings, so a tag that
# asks for another type (!!python/object, !!binary, even !!int on a word) is refused up front.
_SAFE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "map", "seq"))


def decode_yaml(raw: bytes, where: str) -> str:
    """YAML text from bytes: UTF-8 (BOM or not), or UTF-16/32 with a BOM, as the YAML spec allows."""
    check_size(len(raw), where, MAX_YAML_BYTES)
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if raw.startswith(bom):
            payload, chosen = raw[len(bom) :], codec
            break
    else:
        payload, chosen = raw, "utf-8"
        nul = raw.find(b"\x00")
        if nul >= 0:
            raise InputError(
                f"NUL byte at byte {nul}: not UTF-8 text (UTF-16 without a byte order mark?); save it as UTF-8",
                where,
                raw[:nul].count(b"\n") + 1,
            )
    try:
        return payload.decode(chosen)
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(raw) - len(payload))
        line = raw[:offset].count(b"\n") + 1 if chosen == "utf-8" else None
        hint = " (UTF-16 without a byte order mark? save it as UTF-8)" if b"\x00" in raw[:64] else "; save it as UTF-8"
        raise InputError(
            f"not valid {chosen.upper()} text at byte {offset} ({exc.reason}){hint}", where, line
        ) from None


def check_yaml(text: str, where: str) -> None:
    """Walk the YAML events (no recursion, no objects built) and refuse what would hurt the loader:
    nesting deeper than MAX_YAML_DEPTH, more than MAX_YAML_ALIASES aliases, and tags a safe loader
    does not know (such as !!python/object)."""
    if len(text) > MAX_YAML_BYTES:
        check_size(len(text.encode("utf-8", "surrogatepass")), where, MAX_YAML_BYTES)
    depth = aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise InputError(f"YAML nested more than {MAX_YAML_DEPTH} levels deep", where, line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise InputError(f"more than {MAX_YAML_ALIASES} YAML aliases (*name)", where, line)
            tag = getattr(event, "tag", None)
            if tag is not None and tag != "!" and tag not in _SAFE_TAGS:
                shown = tag.replace("tag:yaml.org,2002:", "!!")
                raise InputError(
                    f"YAML tag {shown} is not allowed (only plain YAML: text, numbers, lists, mappings)", where, line
                )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InputError(
            f"not valid YAML: {exc.problem or exc.context or 'malformed'}", where, mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {_one_line(str(exc))}", where) from None


def compose_yaml(text: str, where: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> yaml.Node | None:
    """yaml.compose after check_yaml, with every YAML error turned into an InputError."""
    check_yaml(text, where)
    instance = loader(text)
    try:
        return instance.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InputError(
            f"not valid YAML: {exc.problem or exc.context or 'malformed'}", where, mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {_one_line(str(exc))}", where) from None
    finally:
        instance.dispose()


# ------------------------------------------------------------------------------------------ JSON


def load_json(text: str, where: str, *, line: int | None = None) -> Any:
    """json.loads with Concord's size and depth limits; every failure is one InputError naming the line.

    `line` is the file line a JSON Lines record starts on (the decoder's own line is then 1)."""
    import json

    if len(text) > MAX_JSON_BYTES:
        check_size(len(text.encode("utf-8", "surrogatepass")), where, MAX_JSON_BYTES)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        shown = exc.lineno if line is None else line + exc.lineno - 1
        raise InputError(f"not valid JSON: {exc.msg} (column {exc.colno})", where, shown) from None
    except RecursionError:
        raise InputError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep", where, line) from None
    # Walked without recursion: a value nested a thousand deep must not be what breaks the walker.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InputError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep", where, line)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
