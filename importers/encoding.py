"""Turn a text file's bytes into str without guessing silently: report the encoding, refuse what is not text.

Transcripts arrive as UTF-8 (with or without BOM), as Word's "Unicode text" (UTF-16 with BOM), as
BOM-less UTF-16 from some exporters, or as Windows-1252 from older Windows tools. Only line endings
are normalised; every other character is kept as decoded.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from concord.storage.errors import InputError
from concord.storage.limits import MAX_FILE_BYTES, MAX_TEXT_FILE_BYTES, check_line_lengths, check_size, read_file_bytes

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters (Unicode category Cc) other than tab, line feed, carriage return, vertical tab
# (Word's manual line break) and form feed, which are text.
_NON_TEXT_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_RAW_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_LINE_BREAK = re.compile(r"\r\n|\r")
_UTF16_SAMPLE = 8192


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str  # a Python codec name: utf-8, utf-8-sig, utf-16-le, utf-16-be, cp1252, latin-1, ...
    warnings: tuple[str, ...] = ()


def normalise_line_endings(text: str) -> str:
    return _LINE_BREAK.sub("\n", text)


def read_text_file(path: str | Path, *, legacy: bool = True) -> tuple[bytes, DecodedText]:
    """The file's raw bytes (for hashing) and its decoded text (see decode_bytes for `legacy`)."""
    data = read_file_bytes(path, limit=MAX_TEXT_FILE_BYTES)
    return data, decode_bytes(data, str(path), legacy=legacy)


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes; files larger than storage.limits.MAX_FILE_BYTES are refused before reading."""
    return read_file_bytes(path, limit=MAX_FILE_BYTES)


def decode_bytes(data: bytes, path: str | None = None, *, legacy: bool = True) -> DecodedText:
    """Decode text, refusing what is not text and lines longer than storage.limits.MAX_LINE_CHARS.

    With legacy=False only Unicode is accepted: bytes that are not UTF-8 are an error naming their
    offset instead of being read as Windows-1252. Tables whose cells become names (coders, codes)
    use that, so a damaged byte cannot become a person nobody can type.
    """
    if not data:
        raise InputError("empty file", path)
    check_size(len(data), path or "<text>", MAX_TEXT_FILE_BYTES)
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _decode_unicode(data[len(bom) :], codec, path, bom_codec=codec, bom_length=len(bom))
    utf16 = _bomless_utf16_codec(data)
    if utf16 is not None:
        return _decode_unicode(data, utf16, path, bom_codec=None)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(
            "binary data, not a text file (NUL byte found); save the transcript as text, .docx or .csv",
            path,
            _raw_line_number(data, nul),
        )
    try:
        text = data.decode("utf-8")
        codec = "utf-8"
    except UnicodeDecodeError as exc:
        if not legacy:
            raise InputError(
                f"not valid UTF-8 at byte {exc.start} ({exc.reason}); save the file as UTF-8",
                path,
                _raw_line_number(data, exc.start),
            ) from None
        _reject_mixed_utf8(data, path)
        try:
            text = data.decode("cp1252")
            codec = "cp1252"
        except UnicodeDecodeError:
            # cp1252 leaves five bytes undefined; Latin-1 maps every byte, and the control check
            # below refuses the file if those bytes are frequent.
            text = data.decode("latin-1")
            codec = "latin-1"
    text = normalise_line_endings(text)
    check_line_lengths(text, path)
    return DecodedText(text, codec, _control_character_warnings(text, path))


def _decode_unicode(
    payload: bytes, codec: str, path: str | None, bom_codec: str | None, bom_length: int = 0
) -> DecodedText:
    try:
        text = payload.decode(codec)
    except UnicodeDecodeError as exc:
        prefix = payload[: exc.start].decode(codec, errors="replace")
        line = normalise_line_endings(prefix).count("\n") + 1
        how = "its byte order mark says" if bom_codec else "its NUL byte pattern suggests"
        offset = exc.start + bom_length
        raise InputError(
            f"not valid {codec.upper()} at byte {offset} although {how} so ({exc.reason})", path, line
        ) from None
    text = normalise_line_endings(text)
    if not text:
        raise InputError("empty file", path)
    check_line_lengths(text, path)
    return DecodedText(text, codec, _control_character_warnings(text, path))


def _bomless_utf16_codec(data: bytes) -> str | None:
    """UTF-16 without BOM shows as NULs on every other byte for Latin-script text."""
    sample = data[:_UTF16_SAMPLE]
    if len(sample) < 4 or len(data) % 2:
        return None
    pairs = len(sample) // 2
    even_nuls = sum(1 for i in range(0, 2 * pairs, 2) if sample[i] == 0)
    odd_nuls = sum(1 for i in range(1, 2 * pairs, 2) if sample[i] == 0)
    if odd_nuls >= 0.3 * pairs and even_nuls <= 0.02 * pairs:
        return "utf-16-le"
    if even_nuls >= 0.3 * pairs and odd_nuls <= 0.02 * pairs:
        return "utf-16-be"
    return None


def _reject_mixed_utf8(data: bytes, path: str | None) -> None:
    """A file pasted together from UTF-8 and Windows-1252 sources cannot be decoded as either."""
    first_utf8_line = None
    first_bad_line = None
    first_bad_byte = 0
    position = 0
    for number, raw_line in enumerate(_RAW_LINE_BREAK.split(data), start=1):
        line_start = data.find(raw_line, position) if raw_line else position
        position = line_start + len(raw_line)
        if raw_line.isascii():
            continue
        try:
            raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            if first_bad_line is None:
                first_bad_line = number
                first_bad_byte = line_start + exc.start
        else:
            if first_utf8_line is None:
                first_utf8_line = number
        if first_bad_line is not None and first_utf8_line is not None:
            raise InputError(
                f"mixed encodings: line {first_bad_line} is not UTF-8 at byte {first_bad_byte} "
                "(Windows-1252/Latin-1 bytes?) "
                f"while line {first_utf8_line} is UTF-8; re-save the whole file as UTF-8",
                path,
                first_bad_line,
            )


def _control_character_warnings(text: str, path: str | None) -> tuple[str, ...]:
    first = _NON_TEXT_CONTROL.search(text)
    if first is None:
        return ()
    count = len(_NON_TEXT_CONTROL.findall(text))
    first_line = text.count("\n", 0, first.start()) + 1
    if count > max(3, len(text) // 200):
        raise InputError(
            f"binary data, not a text file ({count} control characters, the first at this line)",
            path,
            first_line,
        )
    return (f"{count} control character(s) kept as they are, the first at line {first_line}",)


def _raw_line_number(data: bytes, position: int) -> int:
    return len(_RAW_LINE_BREAK.findall(data, 0, position)) + 1
