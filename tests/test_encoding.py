"""Decoding transcript bytes: every supported encoding round-trips, bad bytes are refused with a line."""

from __future__ import annotations

import codecs

import pytest

from concord.importers.encoding import decode_bytes, normalise_line_endings, read_text_file
from concord.storage.errors import InputError

NORDIC = "T: Hur mår du? Bra, æ ø å ä ö, ÅÄÖØÆ.\nP: (skrattar) Um-hm, /.../ det är svårt.\n"


def test_utf8_without_bom_is_kept_verbatim():
    text = "T: café  \tspaces kept\nP: a\u030a stays decomposed\n"
    decoded = decode_bytes(text.encode("utf-8"))
    assert decoded.encoding == "utf-8"
    assert decoded.text == text
    assert decoded.warnings == ()


def test_utf8_with_bom_drops_only_the_bom():
    decoded = decode_bytes(codecs.BOM_UTF8 + NORDIC.encode("utf-8"))
    assert decoded.encoding == "utf-8-sig"
    assert decoded.text == NORDIC


@pytest.mark.parametrize(
    ("bom", "codec", "expected"),
    [(codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be")],
)
def test_utf16_with_bom_as_word_unicode_text(bom, codec, expected):
    word_export = NORDIC.replace("\n", "\r\n")
    decoded = decode_bytes(bom + word_export.encode(codec))
    assert decoded.encoding == expected
    assert decoded.text == NORDIC


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_bomless_utf16_is_recognised_by_its_nul_pattern(codec):
    decoded = decode_bytes(NORDIC.encode(codec))
    assert decoded.encoding == codec
    assert decoded.text == NORDIC


def test_windows_1252_fallback_keeps_scandinavian_letters():
    raw = NORDIC.replace("\n", "\r\n").encode("cp1252")
    assert b"\xe5" in raw and b"\xf8" in raw and b"\xe6" in raw  # really single-byte å ø æ
    decoded = decode_bytes(raw)
    assert decoded.encoding == "cp1252"
    assert decoded.text == NORDIC
    assert "æ ø å ä ö" in decoded.text


def test_cp1252_specific_characters_decode_as_windows_not_latin1():
    raw = "T: \u201dså\u201d \u2013 sa hon\u2026\n".encode("cp1252")
    decoded = decode_bytes(raw)
    assert decoded.encoding == "cp1252"
    assert decoded.text == "T: \u201dså\u201d \u2013 sa hon\u2026\n"


def test_latin1_when_cp1252_has_no_character_for_a_byte():
    raw = b"T: bl\xe5b\xe4r \x81\nP: ja\n"
    decoded = decode_bytes(raw)
    assert decoded.encoding == "latin-1"
    assert decoded.text == "T: blåbär \x81\nP: ja\n"
    assert decoded.warnings == ("1 control character(s) kept as they are, the first at line 1",)


def test_line_endings_are_the_only_normalisation():
    assert normalise_line_endings("a\r\nb\rc\nd\u2028e") == "a\nb\nc\nd\u2028e"
    decoded = decode_bytes(b"T: one\r\rP: two\r\n")
    assert decoded.text == "T: one\n\nP: two\n"


def test_empty_bytes_are_an_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(InputError) as caught:
        read_text_file(path)
    assert str(caught.value) == f"{path}: empty file"


def test_nul_bytes_outside_utf16_are_binary_garbage():
    raw = b"T: hello\nP: fine\n\x89PNG\x00\x00\x01\x02binary"
    with pytest.raises(InputError) as caught:
        decode_bytes(raw, "scan.txt")
    assert caught.value.line == 3
    assert str(caught.value).startswith("scan.txt:3: binary data, not a text file")


def test_many_control_characters_are_binary_garbage():
    raw = b"T: hello\n" + bytes(range(1, 9)) * 4 + b"\n"
    with pytest.raises(InputError) as caught:
        decode_bytes(raw, "junk.txt")
    assert caught.value.line == 2
    assert "control characters" in str(caught.value)
    assert str(caught.value).startswith("junk.txt:2: ")


def test_mixed_utf8_and_cp1252_lines_name_the_first_bad_line():
    raw = "T: Hur mår du?\n".encode() + b"P: Bra.\nT: Och nu?\n" + "P: Svårt.\n".encode("cp1252")
    with pytest.raises(InputError) as caught:
        decode_bytes(raw, "mixed.txt")
    assert caught.value.line == 4
    assert str(caught.value).startswith("mixed.txt:4: mixed encodings: line 4 is not UTF-8")
    assert "line 1 is UTF-8" in str(caught.value)


def test_invalid_utf16_after_a_bom_names_the_line():
    payload = "T: ok\nP: bad ".encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le")  # lone surrogate
    with pytest.raises(InputError) as caught:
        decode_bytes(codecs.BOM_UTF16_LE + payload, "broken16.txt")
    assert caught.value.line == 2
    assert "not valid UTF-16-LE" in str(caught.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.txt"
    with pytest.raises(InputError) as caught:
        read_text_file(path)
    assert str(caught.value) == f"{path}: file not found"
