"""A corpus of named malformed inputs for every importer, generated at test time (never committed:
some are 50 MB). Each case says which `concord` command reads it; tests/test_fuzz_importers.py runs
them all through the CLI, and bench/bench_rejected_input.py reuses the big ones.

The study they are run against is tests.factories.make_study: transcript S-A (turns 1-4), dyad 1
session 5, coders ann, bob and the supervisor sue.
"""

from __future__ import annotations

import functools
import io
import os
import random
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
GOOD_TRANSCRIPT = "T: Good to see you again.\nP: It has been a hard week.\nT: Tell me more.\n"
WAI_ITEMS = ",".join(f"WAI{i}" for i in range(1, 13))
GOOD_MEASURES = f"dyad,session,{WAI_ITEMS}\n1,6,{','.join(['4'] * 12)}\n"
GOOD_INSTRUMENT = "id: mood\ntitle: Mood\nrespondent: client\nitems: [calm, tense]\nscale: {min: 0, max: 4}\n"
GOOD_CODEBOOK = "id: fuzz\ntitle: Fuzz\ncodes:\n  - name: Hope\n    definition: Talk of a better future.\n"
GOOD_CODINGS = "transcript,turn,coder,code,memo\nS-A,2,cai,Hope,a memo\n"
GOOD_MANIFEST = "file,key,dyad,session\ngood.txt,m1,7,1\n"
GOOD_REGISTER = "real,pseudonym,kind\nAnna,Maria,person\n"


@dataclass(frozen=True)
class Case:
    name: str  # the file name, unique in the corpus
    importer: str  # transcripts | codings | measures | instrument | codebook | qdc | qdpx | manifest | register
    build: Callable[[Path], None]  # writes the file at the path it is given
    big: bool = False  # tens of MB: the bench reuses these


def command(case: Case, study: str, path: Path, helpers: Path) -> list[str]:
    """The `concord ...` arguments that import `path` into `study`; `helpers` holds good companion files."""
    file = str(path)
    if case.importer == "transcripts":
        return ["import", "transcripts", study, file, "--no-pseudonymize"]
    if case.importer == "codings":
        return ["import", "codings", study, file, "--create-codes"]
    if case.importer == "measures":
        return ["import", "measures", study, file, "--instrument", "WAI-SR", "--respondent", "client"]
    if case.importer == "instrument":
        return ["import", "measures", study, str(helpers / "mood.csv"), "--instrument", file, "--create-sessions"]
    if case.importer in ("codebook", "qdc"):
        return ["codebook", "import", study, file]
    if case.importer == "qdpx":
        return ["import", "qdpx", study, file]
    if case.importer == "manifest":
        return ["import", "transcripts", study, "--manifest", file, "--no-pseudonymize"]
    if case.importer == "register":
        return ["import", "transcripts", study, str(helpers / "good.txt"), "--register", file]
    raise ValueError(case.importer)


def write_helpers(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.txt").write_text(GOOD_TRANSCRIPT, encoding="utf-8")
    (folder / "mood.csv").write_text("dyad,session,calm,tense\n1,9,2,3\n", encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------ building blocks


def _text(content: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content.encode(encoding))


def _bytes(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def _lazy(make: Callable[[], bytes]) -> Callable[[Path], None]:
    """Built only when the case is written: the bombs take a moment to compress."""
    return lambda path: path.write_bytes(make())


def _random(size: int, seed: int) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(random.Random(seed).randbytes(size))


def long_line(prefix: bytes, size: int = 50 * MB, suffix: bytes = b"\n") -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with path.open("wb") as handle:
            handle.write(prefix)
            chunk = b"blah " * (MB // 5)
            for _ in range(size // len(chunk)):
                handle.write(chunk)
            handle.write(suffix)

    return build


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def good_docx() -> bytes:
    from docx import Document

    document = Document()
    for line in GOOD_TRANSCRIPT.splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def good_xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def rezip(data: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """The archive with each entry passed through `change` (None drops the entry)."""
    entries = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            changed = change(info.filename, archive.read(info))
            if changed is not None:
                entries[info.filename] = changed
    return zip_bytes(entries)


def _with_dtd(target: str) -> Callable[[str, bytes], bytes]:
    doctype = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'

    def change(name: str, data: bytes) -> bytes:
        if name != target:
            return data
        if data.startswith(b"<?xml"):
            end = data.index(b"?>") + 2
            return data[:end] + doctype + data[end:]
        return doctype + data

    return change


def _bomb(target: str, size: int) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        return data + b" " * size if name == target else data

    return change


def unsupported_compression(data: bytes) -> bytes:
    """Every entry marked with compression method 99, which zipfile cannot unpack."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = patched.find(signature)
        while at >= 0:
            struct.pack_into("<H", patched, at + offset, 99)
            at = patched.find(signature, at + 4)
    return bytes(patched)


def encrypted_flag(data: bytes) -> bytes:
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = patched.find(signature)
        while at >= 0:
            struct.pack_into("<H", patched, at + offset, patched[at + offset] | 1)
            at = patched.find(signature, at + 4)
    return bytes(patched)


def many_entries(count: int = 12_000) -> bytes:
    return zip_bytes({f"e{i}.txt": b"" for i in range(count)}, zipfile.ZIP_STORED)


def deep_yaml(levels: int = 400) -> str:
    return "id: deep\ntitle: Deep\ncodes: " + "[" * levels + "]" * levels + "\n"


def alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    return "id: bomb\ntitle: Bomb\n" + "\n".join(lines) + "\n"


def qdpx_from(study_qdpx: bytes, change_xml: Callable[[bytes], bytes]) -> bytes:
    return rezip(study_qdpx, lambda name, data: change_xml(data) if name.lower().endswith(".qde") else data)


# ------------------------------------------------------------------------------------------ the corpus


@functools.lru_cache(maxsize=2)
def cases(qdpx_seed: bytes) -> list[Case]:
    """Every malformed case; `qdpx_seed` is a valid .qdpx exported from the test study."""
    docx_seed = good_docx()
    turns_xlsx = good_xlsx([["speaker", "text"], ["T", "Hello."], ["P", "Hi."]])
    codings_xlsx = good_xlsx([["transcript", "turn", "coder", "code"], ["S-A", 2, "cai", "Hope"]])
    measures_xlsx = good_xlsx([["dyad", "session", *WAI_ITEMS.split(",")], [1, 6, *([4] * 12)]])
    sheet = "xl/worksheets/sheet1.xml"
    source_entries = [
        name for name in zipfile.ZipFile(io.BytesIO(qdpx_seed)).namelist() if name.lower().startswith("sources/")
    ]
    source = source_entries[0] if source_entries else "sources/x.txt"
    huge_field = '"' + ("line of a memo\n" * 150_000) + '"'

    corpus = [
        # --- transcripts
        Case("long-line.txt", "transcripts", long_line(b"T: "), big=True),
        Case("long-line.md", "transcripts", long_line(b"# Session\n\nT: "), big=True),
        Case("random-bytes.txt", "transcripts", _random(4096, 1)),
        Case("nul-bytes.txt", "transcripts", _lazy(lambda: b"T: hello\x00\x00 world\n")),
        Case("empty.txt", "transcripts", _lazy(lambda: b"")),
        Case("blank-lines.txt", "transcripts", _text("\n\n  \n")),
        Case("unknown-speaker.txt", "transcripts", _text("T: Hello\nZed: who?\n")),
        Case("bad-timestamp.txt", "transcripts", _text("[00:75:99] T: Hello\n")),
        Case("invalid-utf16.txt", "transcripts", _lazy(lambda: b"\xff\xfeT\x00:\x00 \x00\x00\xdc\n\x00")),
        Case(
            "mixed-encodings.txt",
            "transcripts",
            _lazy(lambda: "T: Hej Åsa\n".encode() + "P: på måndag\n".encode("cp1252")),
        ),
        Case("no-turns.md", "transcripts", _text("# Notes\n\nNothing said here.\n")),
        Case("bad-cue.vtt", "transcripts", _text("WEBVTT\n\n00:01.000 --> 00:00.500\nT: back in time\n")),
        Case("no-timing.srt", "transcripts", _text("1\nT: hello\n\n2\nP: hi\n")),
        Case("extra-cells-turns.csv", "transcripts", _text("speaker,text\nT,Hello,and more\nP,Hi\n")),
        Case("unclosed-quote-turns.csv", "transcripts", _text('speaker,text\nT,"Hello\nP,Hi\n')),
        Case("huge-field-turns.csv", "transcripts", _text("speaker,text\nT," + huge_field + "\n")),
        Case("corrupt.xlsx", "transcripts", _lazy(lambda: b"PK\x03\x04" + random.Random(2).randbytes(3000))),
        Case("truncated.xlsx", "transcripts", _lazy(lambda: turns_xlsx[: len(turns_xlsx) // 2])),
        Case("dtd.xlsx", "transcripts", _lazy(lambda: rezip(turns_xlsx, _with_dtd(sheet)))),
        Case("unsupported-compression.xlsx", "transcripts", _lazy(lambda: unsupported_compression(turns_xlsx))),
        Case("ratio-bomb.xlsx", "transcripts", _lazy(lambda: rezip(turns_xlsx, _bomb(sheet, 30 * MB)))),
        Case("extra-cells.xlsx", "transcripts", _lazy(lambda: good_xlsx([["speaker", "text"], ["T", "Hi", "lost"]]))),
        Case("truncated.docx", "transcripts", _lazy(lambda: docx_seed[:300])),
        Case("dtd.docx", "transcripts", _lazy(lambda: rezip(docx_seed, _with_dtd("word/document.xml")))),
        Case("zip-bomb.docx", "transcripts", _lazy(lambda: rezip(docx_seed, _bomb("word/document.xml", 200 * MB)))),
        Case("ratio-bomb.docx", "transcripts", _lazy(lambda: rezip(docx_seed, _bomb("word/document.xml", 20 * MB)))),
        Case("encrypted.docx", "transcripts", _lazy(lambda: encrypted_flag(docx_seed))),
        Case("unsupported-compression.docx", "transcripts", _lazy(lambda: unsupported_compression(docx_seed))),
        Case("many-entries.docx", "transcripts", _lazy(lambda: many_entries())),
        Case("not-word.docx", "transcripts", _lazy(lambda: zip_bytes({"hello.txt": b"hi"}))),
        Case("old-word.docx", "transcripts", _lazy(lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000))),
        # --- codings
        Case("extra-cells-codings.csv", "codings", _text("transcript,turn,coder,code\nS-A,2,cai,Hope,lost,more\n")),
        Case(
            "invalid-utf8-codings.csv",
            "codings",
            _lazy(lambda: b"transcript,turn,coder,code\nS-A,2,an\xffn\xfe,Hope\n"),
        ),
        Case(
            "big-memo-codings.csv",
            "codings",
            long_line(b'transcript,turn,coder,code,memo\nS-A,2,cai,Hope,"', suffix=b'"\n'),
            big=True,
        ),
        Case(
            "multiline-memo-codings.csv",
            "codings",
            _text("transcript,turn,coder,code,memo\nS-A,2,cai,Hope," + huge_field + "\n"),
        ),
        Case("missing-columns-codings.csv", "codings", _text("transcript,coder\nS-A,cai\n")),
        Case("bad-turn-codings.csv", "codings", _text("transcript,turn,coder,code\nS-A,two,cai,Hope\n")),
        Case("overflow-turn-codings.csv", "codings", _text("transcript,turn,coder,code\nS-A,1e999,cai,Hope\n")),
        Case("long-coder-codings.csv", "codings", _text(f"transcript,turn,coder,code\nS-A,2,{'c' * 200},Hope\n")),
        Case("control-coder-codings.csv", "codings", _text("transcript,turn,coder,code\nS-A,2,c\x07ai,Hope\n")),
        Case("unknown-transcript-codings.csv", "codings", _text("transcript,turn,coder,code\nZZ,2,cai,Hope\n")),
        Case(
            "outside-turn-codings.csv",
            "codings",
            _text("transcript,turn,coder,code,start,end\nS-A,2,cai,Hope,5,99999\n"),
        ),
        Case("nul-codings.csv", "codings", _lazy(lambda: b"transcript,turn,coder,code\nS-A,2,c\x00ai,Hope\n")),
        Case("corrupt-codings.xlsx", "codings", _lazy(lambda: b"PK\x03\x04" + random.Random(3).randbytes(3000))),
        Case("dtd-codings.xlsx", "codings", _lazy(lambda: rezip(codings_xlsx, _with_dtd(sheet)))),
        Case("unsupported-compression-codings.xlsx", "codings", _lazy(lambda: unsupported_compression(codings_xlsx))),
        Case("zip-bomb-codings.xlsx", "codings", _lazy(lambda: rezip(codings_xlsx, _bomb(sheet, 200 * MB)))),
        Case("random-codings.csv", "codings", _random(3000, 4)),
        # --- measures
        Case("extra-cells-measures.csv", "measures", _text(f"dyad,session,{WAI_ITEMS}\n1,6,{','.join(['4'] * 14)}\n")),
        Case("huge-field-measures.csv", "measures", _text(f"dyad,session,{WAI_ITEMS}\n1,6," + huge_field + "\n")),
        Case("long-line-measures.csv", "measures", long_line(b"dyad,session\n1,"), big=True),
        Case("out-of-range-measures.csv", "measures", _text(f"dyad,session,{WAI_ITEMS}\n1,6,{','.join(['9'] * 12)}\n")),
        Case("random-measures.csv", "measures", _random(3000, 5)),
        Case("corrupt-measures.xlsx", "measures", _lazy(lambda: b"PK\x03\x04" + random.Random(6).randbytes(3000))),
        Case("dtd-measures.xlsx", "measures", _lazy(lambda: rezip(measures_xlsx, _with_dtd(sheet)))),
        Case(
            "unsupported-compression-measures.xlsx", "measures", _lazy(lambda: unsupported_compression(measures_xlsx))
        ),
        Case("ratio-bomb-measures.xlsx", "measures", _lazy(lambda: rezip(measures_xlsx, _bomb(sheet, 30 * MB)))),
        # --- instrument definitions
        Case(
            "python-tag-instrument.yaml",
            "instrument",
            _text(GOOD_INSTRUMENT + "scoring: !!python/object/apply:os.system [echo]\n"),
        ),
        Case(
            "tuple-tag-instrument.yaml",
            "instrument",
            _text(GOOD_INSTRUMENT.replace("[calm, tense]", "!!python/tuple [calm, tense]")),
        ),
        Case("deep-instrument.yaml", "instrument", _text(GOOD_INSTRUMENT + "reverse: " + "[" * 400 + "]" * 400 + "\n")),
        Case("utf16-nobom-instrument.yaml", "instrument", _text(GOOD_INSTRUMENT, "utf-16-le")),
        Case("alias-bomb-instrument.yaml", "instrument", _text(GOOD_INSTRUMENT + alias_bomb().split("\n", 2)[2])),
        Case(
            "bad-date-instrument.yaml",
            "instrument",
            _text(GOOD_INSTRUMENT.replace("{min: 0, max: 4}", "{min: 2021-13-45, max: 4}")),
        ),
        Case("cyclic-instrument.yaml", "instrument", _text(GOOD_INSTRUMENT + "reverse: &r [*r]\n")),
        Case("unhashable-key-instrument.yaml", "instrument", _text("? [a, b]\n: c\n" + GOOD_INSTRUMENT)),
        Case(
            "invalid-utf8-instrument.yaml", "instrument", _lazy(lambda: GOOD_INSTRUMENT.encode() + b"title: \xff\xfe\n")
        ),
        Case("not-mapping-instrument.yaml", "instrument", _text("- just\n- a list\n")),
        Case("random-instrument.yaml", "instrument", _random(2000, 7)),
        # --- codebook YAML
        Case(
            "python-tag-codebook.yaml", "codebook", _text("id: x\ntitle: !!python/object/apply:os.system ['echo hi']\n")
        ),
        Case("deep-codebook.yaml", "codebook", _text(deep_yaml())),
        Case(
            "deep-tree-codebook.yaml",
            "codebook",
            _text(
                "id: t\ntitle: T\ncodes:\n"
                + "".join(f"{'  ' * (2 * i)}  - name: c{i}\n{'  ' * (2 * i)}    children:\n" for i in range(60))
            ),
        ),
        Case("utf16-nobom-codebook.yaml", "codebook", _text(GOOD_CODEBOOK, "utf-16-le")),
        Case("alias-bomb-codebook.yaml", "codebook", _text(alias_bomb())),
        Case("cyclic-codebook.yaml", "codebook", _text("id: c\ntitle: C\ncodes: &c\n  - name: A\n    children: *c\n")),
        Case("invalid-utf8-codebook.yaml", "codebook", _lazy(lambda: b"id: x\ntitle: caf\xe9\n")),
        Case("tab-indent-codebook.yaml", "codebook", _text("id: x\ntitle: X\ncodes:\n\t- name: A\n")),
        Case("random-codebook.yaml", "codebook", _random(2000, 8)),
        # --- REFI-QDA codebooks
        Case(
            "billion-laughs.qdc",
            "qdc",
            _text(
                '<?xml version="1.0"?><!DOCTYPE CodeBook [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]><CodeBook><Codes><Code name="&b;" isCodable="true" guid="00000000-0000-0000-0000-000000000001"/></Codes></CodeBook>'
            ),
        ),
        Case(
            "external-entity.qdc",
            "qdc",
            _text(
                '<?xml version="1.0"?><!DOCTYPE CodeBook [<!ENTITY x SYSTEM "file:///etc/passwd">]><CodeBook><Codes><Code name="&x;" isCodable="true" guid="00000000-0000-0000-0000-000000000001"/></Codes></CodeBook>'
            ),
        ),
        Case("malformed.qdc", "qdc", _text("<CodeBook><Codes><Code name='a'></Codes>")),
        Case("wrong-root.qdc", "qdc", _text("<Something/>")),
        Case("random.qdc", "qdc", _random(2000, 9)),
        # --- REFI-QDA projects
        Case(
            "selection-outside.qdpx",
            "qdpx",
            _lazy(lambda: qdpx_from(qdpx_seed, lambda xml: xml.replace(b'endPosition="', b'endPosition="9', 1))),
        ),
        Case(
            "selection-start-beyond.qdpx",
            "qdpx",
            _lazy(
                lambda: qdpx_from(qdpx_seed, lambda xml: xml.replace(b'startPosition="', b'startPosition="99999', 1))
            ),
        ),
        Case("dtd.qdpx", "qdpx", _lazy(lambda: qdpx_from(qdpx_seed, lambda xml: _with_dtd("p")("p", xml)))),
        Case("bomb-source.qdpx", "qdpx", _lazy(lambda: rezip(qdpx_seed, _bomb(source, 250 * MB)))),
        Case("ratio-bomb.qdpx", "qdpx", _lazy(lambda: rezip(qdpx_seed, _bomb(source, 20 * MB)))),
        Case("truncated.qdpx", "qdpx", _lazy(lambda: qdpx_seed[: len(qdpx_seed) // 2])),
        Case(
            "no-project.qdpx",
            "qdpx",
            _lazy(lambda: rezip(qdpx_seed, lambda name, data: None if name.endswith(".qde") else data)),
        ),
        Case("many-entries.qdpx", "qdpx", _lazy(lambda: many_entries())),
        Case("unsupported-compression.qdpx", "qdpx", _lazy(lambda: unsupported_compression(qdpx_seed))),
        Case("malformed-xml.qdpx", "qdpx", _lazy(lambda: qdpx_from(qdpx_seed, lambda xml: xml[: len(xml) // 2]))),
        Case("random.qdpx", "qdpx", _random(3000, 10)),
        # --- manifests
        Case("extra-cells-manifest.csv", "manifest", _text(GOOD_MANIFEST.replace("m1,7,1", "m1,7,1,lost"))),
        Case("missing-file-manifest.csv", "manifest", _text("file,key\nnowhere.txt,x\n")),
        Case(
            "huge-session-manifest.csv",
            "manifest",
            _text("file,key,dyad,session\ngood.txt,m1,7,99999999999999999999\n"),
        ),
        Case("unclosed-quote-manifest.csv", "manifest", _text('file,key\n"good.txt,x\n')),
        Case("no-file-column-manifest.csv", "manifest", _text("key,dyad\nx,1\n")),
        Case("huge-field-manifest.csv", "manifest", _text("file,key,note\ngood.txt,m1," + huge_field + "\n")),
        # --- name registers
        Case(
            "unclosed-quote-register.csv", "register", _text('real,pseudonym,kind\n"Anna,Maria,person\n' + "x\n" * 10)
        ),
        Case("huge-field-register.csv", "register", _text("real,pseudonym,kind\nAnna,Maria," + huge_field + "\n")),
        Case("extra-cells-register.csv", "register", _text(GOOD_REGISTER.replace("person", "person,,lost"))),
        Case("deep-register.yaml", "register", _text("[" * 400 + "]" * 400 + "\n")),
        Case(
            "python-tag-register.yaml",
            "register",
            _text("- real: !!python/object/apply:os.system [echo]\n  pseudonym: M\n  kind: person\n"),
        ),
    ]
    names = [case.name for case in corpus]
    assert len(names) == len(set(names)), "case names must be unique"
    return corpus


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.name
    case.build(path)
    if case.importer == "register":
        os.chmod(path, 0o600)
    return path
