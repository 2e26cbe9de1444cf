"""Peak memory of `concord` refusing a 100 MB input: it must stay under 500 MB.

Each input is refused by a different guard in storage/limits.py (file size, line length, ZIP
directory, DTD scan, the size of one .qdpx source). Every case runs the installed command in its own
child process; the peak is that child's maximum resident set size (getrusage of the children of a
small wrapper process that runs nothing else), so the interpreter, SQLAlchemy and the importers'
libraries are counted too. The baseline is the same command on a 1 KB good file.

    python bench/bench_rejected_input.py [--write]
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_section  # noqa: E402
from concord.storage import limits  # noqa: E402
from tests import malformed  # noqa: E402
from tests.factories import make_study  # noqa: E402

MB = 1024 * 1024
SIZE = 100 * MB
LIMIT_MB = 500
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "last = (done.stderr.strip().splitlines() or [''])[-1]\n"
    "print(done.returncode, peak, last, sep='\\t')\n"
)


def _text_file(path: Path, first: bytes, size: int, line_every: int | None) -> None:
    """`size` bytes of words; a line break every `line_every` bytes (None: one line)."""
    line = b"blah " * ((line_every or MB) // 5)
    if line_every:
        line = line[:-1] + b"\n"
    with path.open("wb") as handle:
        handle.write(first)
        for _ in range(size // len(line)):
            handle.write(line)


def _stored_zip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def build_inputs(folder: Path) -> list[tuple[str, str, Path, list[str]]]:
    """(what, guard, file, command arguments after the study) for every case."""
    cases = []

    path = folder / "100mb-one-line.txt"
    _text_file(path, b"T: ", SIZE, None)
    cases.append(("transcript .txt, 100 MB, one line", "file size (text)", path, ["import", "transcripts"]))

    path = folder / "60mb-one-line.txt"
    _text_file(path, b"T: ", 60 * MB, None)
    cases.append(("transcript .txt, 60 MB, one line", "line length", path, ["import", "transcripts"]))

    path = folder / "100mb-codings.csv"
    _text_file(path, b"transcript,turn,coder,code,memo\n", SIZE, 200)
    cases.append(("codings .csv, 100 MB", "file size (text)", path, ["import", "codings"]))

    path = folder / "100mb-codebook.yaml"
    _text_file(path, b"id: big\ntitle: Big\ndescription: ", SIZE, None)
    cases.append(("codebook .yaml, 100 MB", "file size (YAML)", path, ["codebook", "import"]))

    document = malformed.good_docx()
    big_xml = b"<w:p><w:r><w:t>" + b"blah " * (SIZE // 5) + b"</w:t></w:r></w:p>"
    path = folder / "100mb-stored.docx"
    with zipfile.ZipFile(io.BytesIO(document)) as seed:
        entries = {info.filename: seed.read(info) for info in seed.infolist()}
    entries["word/document.xml"] = entries["word/document.xml"].replace(b"<w:body>", b"<w:body>" + big_xml, 1)
    _stored_zip(path, entries)
    cases.append(
        ("Word .docx, 100 MB stored, one 100 MB run of text", "XML parser (text node)", path, ["import", "transcripts"])
    )

    book = malformed.good_xlsx([["speaker", "text"], ["T", "Hello."]])
    with zipfile.ZipFile(io.BytesIO(book)) as seed:
        entries = {info.filename: seed.read(info) for info in seed.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    entries[sheet] = b"<!DOCTYPE x>" + entries[sheet] + b" " * SIZE
    path = folder / "100mb-dtd.xlsx"
    _stored_zip(path, entries)
    cases.append(("Excel .xlsx, 100 MB stored, a DTD", "DTD scan (streamed)", path, ["import", "transcripts"]))

    path = folder / "100mb-source.qdpx"
    project = (
        b'<?xml version="1.0" encoding="utf-8"?><Project xmlns="urn:QDA-XML:project:1.0" name="big">'
        b'<Sources><TextSource guid="00000000-0000-0000-0000-000000000001" name="s" '
        b'plainTextPath="internal://s.txt"/></Sources></Project>'
    )
    _stored_zip(path, {"project.qde": project, "sources/s.txt": b"T: " + b"blah " * (SIZE // 5)})
    cases.append(("REFI-QDA .qdpx, 100 MB stored source", "one source's size", path, ["import", "qdpx"]))

    bomb = malformed.rezip(document, malformed._bomb("word/document.xml", 1024 * MB))
    path = folder / "zip-bomb-1gb.docx"
    path.write_bytes(bomb)
    cases.append(("Word .docx zip bomb (1 MB -> 1 GB)", "ZIP directory", path, ["import", "transcripts"]))
    return cases


def measure(study: str, arguments: list[str], path: Path) -> tuple[int, float, str]:
    command = [sys.executable, "-m", "concord", *arguments[:2], study, str(path), *arguments[2:], "--as", "sue"]
    if arguments[:2] == ["import", "transcripts"]:
        command.append("--no-pseudonymize")
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    code, peak_kb, last = done.stdout.rstrip("\n").split("\t", 2)
    return int(code), int(peak_kb) / 1024, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="concord-bench-rejected-") as temporary:
        folder = Path(temporary)
        study = str(folder / "study.concord")
        make_study(study).close()
        good = malformed.write_helpers(folder / "helpers") / "good.txt"
        _, baseline, _ = measure(study, ["import", "transcripts", "--dry-run"], good)
        rows = []
        worst = 0.0
        for what, guard, path, arguments in build_inputs(folder):
            started = time.perf_counter()
            code, peak, last = measure(study, arguments, path)
            seconds = time.perf_counter() - started
            worst = max(worst, peak)
            size = path.stat().st_size / MB
            refused = code == 2 and last.startswith("concord: error:")
            print(f"{what}: exit {code}, peak {peak:.0f} MB, {seconds:.1f} s; {last[:150]}")
            rows.append(
                f"| {what} | {size:,.1f} MB | {guard} | {code} | {peak:.0f} MB | {seconds:.1f} s | "
                f"{'yes' if refused else 'NO'} |"
            )
            if not refused:
                print(f"  not refused with one error line: {last}", file=sys.stderr)
                return 1
            path.unlink()
    verdict = "under" if worst < LIMIT_MB else "OVER"
    print(
        f"baseline (a 1 KB good file, --dry-run): {baseline:.0f} MB; worst refused input: {worst:.0f} MB ({verdict} {LIMIT_MB} MB)"
    )
    if options.write:
        text = (
            "## Refused input: peak memory\n\n"
            f"Measured {date.today().isoformat()} on {platform.machine()}, Python {platform.python_version()}, "
            "2 cores shared with other work. Each input runs `concord` in its own child process; the peak is "
            "that process's maximum resident set size (`getrusage(RUSAGE_CHILDREN).ru_maxrss` in a wrapper that "
            "runs nothing else). Limits from storage/limits.py: text files "
            f"{limits.MAX_TEXT_FILE_BYTES // MB} MiB, lines {limits.MAX_LINE_CHARS:,} characters, YAML "
            f"{limits.MAX_YAML_BYTES // MB} MiB, one Office entry {limits.MAX_OFFICE_ENTRY_BYTES // MB} MiB, "
            f"one .qdpx source {limits.MAX_QDPX_SOURCE_BYTES // MB} MiB, compression ratio {limits.MAX_COMPRESSION_RATIO}.\n\n"
            "| input | size on disk | refused by | exit | peak RSS | time | one error line |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Baseline, the same command on a 1 KB good transcript (`--dry-run`): {baseline:.0f} MB. "
            f"Worst refused input: **{worst:.0f} MB**, target under {LIMIT_MB} MB.\n\n"
            "Command (from the repository root): `python bench/bench_rejected_input.py --write`\n"
        )
        write_section("## Refused input: peak memory", text)
    return 0 if worst < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
