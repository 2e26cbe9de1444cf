"""Bad input never crashes, never half-imports, never eats the machine.

Two halves:
* a hypothesis fuzz suite per importer (random bytes and structured mutations of valid files): the
  parser either succeeds or raises a ConcordError that names the file, never anything else;
* the named malformed corpus of tests/malformed.py, each file run through the real `concord`
  command against a study: exit 2, one error line naming the file, no traceback, no row changed.

Every test records how many cases it tried, how many ended in a traceback and how many changed the
study; tests/conftest.py adds them up and prints them at the end of the run.
"""

from __future__ import annotations

import io
import itertools
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from concord.analysis.scoring import load_instrument
from concord.app.cli import main
from concord.codebooks.loader import load_codebook
from concord.codebooks.qdc import export_qdc, read_qdc
from concord.importers import codings_table
from concord.importers.codings_table import read_codings
from concord.importers.manifest import read_manifest
from concord.importers.measures_table import read_measures
from concord.importers.name_register import NameRegister
from concord.importers.qdpx import read_qdpx
from concord.importers.transcript_formats import parse_transcript
from concord.services.qdpx_export import export_qdpx
from concord.storage import limits
from concord.storage.errors import ConcordError, InputError
from concord.storage.models import Base, Code, Coder
from tests import malformed
from tests.conftest import BACKENDS, drop_pg_database, fresh_pg_url
from tests.factories import as_person, make_study

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
_counter = itertools.count()


# ----------------------------------------------------------------------------------------- seeds


def _seed_qdpx(folder: Path) -> bytes:
    workspace = make_study(str(folder / "seed.concord"), blind=False)
    sue = as_person(workspace, "sue")
    from concord.services.coding import apply_code
    from concord.services.transcripts import get_transcript

    detail = get_transcript(sue, "S-A")
    turn = detail.turns[1]
    with workspace.store.reader() as session:
        code_id = session.scalar(select(Code.id).order_by(Code.id))
    apply_code(as_person(workspace, "ann"), detail.id, code_id, turn.char_start, turn.char_start + 5)
    out = folder / "seed.qdpx"
    export_qdpx(sue, out)
    workspace.close()
    return out.read_bytes()


@pytest.fixture(scope="module")
def qdpx_seed(tmp_path_factory) -> bytes:
    return _seed_qdpx(tmp_path_factory.mktemp("qdpx-seed"))


SEEDS: dict[str, list[tuple[str, Callable[[], bytes]]]] = {
    "transcripts": [
        ("t.txt", lambda: malformed.GOOD_TRANSCRIPT.encode()),
        ("t.md", lambda: ("# Session 5\n\n" + malformed.GOOD_TRANSCRIPT).encode()),
        ("t.vtt", lambda: b"WEBVTT\n\n00:00.000 --> 00:02.000\n<v T>Hello.\n\n00:02.000 --> 00:04.000\n<v P>Hi.\n"),
        ("t.srt", lambda: b"1\n00:00:00,000 --> 00:00:02,000\nT: Hello.\n\n2\n00:00:02,000 --> 00:00:04,000\nP: Hi.\n"),
        ("t.csv", lambda: b'turn,speaker,start,text\n1,T,0:01,Hello.\n2,P,0:03,"Hi, there."\n'),
        ("t.docx", malformed.good_docx),
        ("t.xlsx", lambda: malformed.good_xlsx([["speaker", "text"], ["T", "Hello."], ["P", "Hi."]])),
    ],
    "codings": [
        ("c.csv", lambda: b'transcript,turn,coder,code,group,start,end,memo\nS-A,2,cai,Hope,Themes,0,4,"a, memo"\n'),
        ("c.xlsx", lambda: malformed.good_xlsx([["transcript", "turn", "coder", "code"], ["S-A", 2, "cai", "Hope"]])),
    ],
    "measures": [
        ("m.csv", lambda: malformed.GOOD_MEASURES.encode()),
        (
            "m.xlsx",
            lambda: malformed.good_xlsx([["dyad", "session", *malformed.WAI_ITEMS.split(",")], [1, 6, *([4] * 12)]]),
        ),
    ],
    "instrument": [("i.yaml", lambda: malformed.GOOD_INSTRUMENT.encode())],
    "codebook": [("b.yaml", lambda: malformed.GOOD_CODEBOOK.encode())],
    "qdc": [("b.qdc", lambda: export_qdc(load_codebook(malformed.GOOD_CODEBOOK)))],
    "manifest": [("manifest.csv", lambda: malformed.GOOD_MANIFEST.encode())],
    "register": [
        ("names.csv", lambda: malformed.GOOD_REGISTER.encode()),
        ("names.yaml", lambda: b"- real: Anna\n  pseudonym: Maria\n  kind: person\n  aliases: [Ann]\n"),
    ],
}


def _parse(importer: str, path: Path) -> None:
    """Run one importer's parser (no database) on a file."""
    if importer == "transcripts":
        parse_transcript(path, unknown_speakers="other")
    elif importer == "codings":
        read_codings(path)
    elif importer == "measures":
        read_measures(path, "WAI-SR", respondent="client")
    elif importer == "instrument":
        load_instrument(path)
    elif importer == "codebook":
        load_codebook(path)
    elif importer == "qdc":
        read_qdc(path)
    elif importer == "qdpx":
        read_qdpx(path)
    elif importer == "manifest":
        read_manifest(path)
    elif importer == "register":
        path.chmod(0o600)
        NameRegister.load(path)
    else:
        raise ValueError(importer)


# ------------------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """A valid file changed the ways files get damaged: flipped, cut, spliced, repeated bytes; for a
    ZIP container, the same done to one entry and the archive packed again (so it still opens)."""
    if seed[:4] == b"PK\x03\x04" and draw(st.booleans()):
        with zipfile.ZipFile(io.BytesIO(seed)) as archive:
            entries = {info.filename: archive.read(info) for info in archive.infolist()}
        name = draw(st.sampled_from(sorted(entries)))
        entries[name] = draw(_byte_mutation(entries[name]))
        return malformed.zip_bytes(entries)
    return draw(_byte_mutation(seed))


@st.composite
def _byte_mutation(draw, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        at = draw(st.integers(0, size))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "repeat", "truncate", "special"]))
        if operation == "flip" and size:
            data[min(at, size - 1)] = draw(st.integers(0, 255))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "repeat":
            piece = bytes(data[at : at + draw(st.integers(1, 64))])
            data[at:at] = piece * draw(st.integers(1, 50))
        elif operation == "truncate":
            del data[at:]
        else:
            special = draw(
                st.sampled_from(
                    [
                        b"\x00",
                        b"\xff\xfe",
                        b"\xef\xbb\xbf",
                        b'"',
                        b",,,,",
                        b"\t",
                        b"\r",
                        b"\n" * 5,
                        b"&a;",
                        b"<!DOCTYPE x>",
                        b"!!python/object:os.system",
                        b"*a",
                        b"&a ",
                        b"[[[[[[",
                        b"{{{{",
                        b"1e999",
                        b"-1",
                        b"99999999999999999999",
                        b"\xc3",
                        b"\xed\xa0\x80",
                        b"-->",
                        b"]]>",
                        b"<v ",
                        b"::",
                    ]
                )
            )
            data[at:at] = special
    return bytes(data)


def _check(importer: str, name: str, content: bytes, record_property, must_pass: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    # A fresh name each time: nothing may be cached by path, and the message must carry this name.
    path = folder / f"case{next(_counter)}-{name}"
    path.write_bytes(content)
    if importer == "manifest":
        (folder / "good.txt").write_text(malformed.GOOD_TRANSCRIPT, encoding="utf-8")
    _tally(record_property, "fuzz_cases", 1)
    try:
        _parse(importer, path)
    except ConcordError as exc:
        if must_pass:
            raise
        assert path.name in str(exc) or str(path) in str(exc), f"{importer}: the error does not name the file: {exc}"
        assert "Traceback" not in str(exc)
    except BaseException:
        _tally(record_property, "tracebacks", 1)
        raise


_TALLIES: dict[str, int] = {}


def _tally(record_property, key: str, amount: int) -> None:
    _TALLIES[key] = _TALLIES.get(key, 0) + amount


@pytest.fixture
def tallied(record_property):
    """Records this test's cases, tracebacks and partial imports for the summary in tests/conftest.py."""
    _TALLIES.clear()
    yield record_property
    for key in ("fuzz_cases", "tracebacks", "partial_imports"):
        record_property(key, _TALLIES.get(key, 0))


IMPORTERS = sorted(SEEDS) + ["qdpx"]


@pytest.mark.parametrize("importer", IMPORTERS)
def test_random_bytes_never_crash_an_importer(importer, tallied):
    extensions = sorted({Path(name).suffix for name, _ in SEEDS.get(importer, [("x.qdpx", bytes)])})

    @FUZZ
    @given(content=st.binary(max_size=3000), extension=st.sampled_from(extensions))
    def run(content, extension):
        _check(importer, f"random{extension}", content, tallied)

    run()


@pytest.mark.parametrize(
    ("importer", "seed_name"),
    [(importer, name) for importer, seeds in SEEDS.items() for name, _ in seeds] + [("qdpx", "p.qdpx")],
)
def test_mutated_valid_files_never_crash_an_importer(importer, seed_name, tallied, qdpx_seed):
    seed = qdpx_seed if importer == "qdpx" else dict(SEEDS[importer])[seed_name]()
    _check(importer, seed_name, seed, tallied, must_pass=True)  # the mutations start from valid input

    @FUZZ
    @given(data=st.data())
    def run(data):
        _check(importer, seed_name, data.draw(mutated(seed)), tallied)

    run()


# ------------------------------------------------------------------------------- the named corpus


def _row_counts(workspace) -> dict[str, int]:
    with workspace.store.reader() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) for table in Base.metadata.sorted_tables
        }


@pytest.fixture(scope="module", params=BACKENDS)
def corpus_study(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"corpus-{request.param}")
    target = str(folder / "study.concord") if request.param == "sqlite" else fresh_pg_url()
    workspace = make_study(target, blind=True)
    yield workspace, target, malformed.write_helpers(folder / "helpers")
    workspace.close()
    if request.param == "postgresql":
        drop_pg_database(target)


def _corpus_names() -> list[str]:
    # The cases are built only inside the test (some are 50 MB); their names are listed from a stub seed.
    return [case.name for case in malformed.cases(malformed.zip_bytes({"project.qde": b"<Project/>"}))]


@pytest.mark.parametrize("name", _corpus_names())
def test_malformed_file_is_refused_by_the_cli_with_one_line_and_the_study_unchanged(
    name, corpus_study, qdpx_seed, tmp_path, tallied
):
    workspace, target, helpers = corpus_study
    case = next(case for case in malformed.cases(qdpx_seed) if case.name == name)
    path = malformed.write_case(case, tmp_path)
    before = _row_counts(workspace)
    _tally(tallied, "fuzz_cases", 1)
    result = CliRunner().invoke(main, [*malformed.command(case, target, path, helpers), "--as", "sue"])
    after = _row_counts(workspace)
    if after != before:
        _tally(tallied, "partial_imports", 1)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        _tally(tallied, "tracebacks", 1)
    stderr = result.stderr
    assert "Traceback" not in stderr and not isinstance(result.exception, (MemoryError, RecursionError))
    assert result.exit_code == 2, f"{name}: exit {result.exit_code}: {result.exception!r} {stderr[-2000:]}"
    errors = [line for line in stderr.splitlines() if line.startswith("concord: error:")]
    # A message may list every problem of a file on indented lines under its one error line.
    others = [
        line
        for line in stderr.splitlines()
        if line and not line.startswith(("concord: error:", "concord: note:", "  "))
    ]
    assert len(errors) == 1 and not others, stderr
    assert name in errors[0], errors[0]
    assert after == before, f"{name} changed the study: {before} -> {after}"


def test_a_50_mb_line_runs_through_the_installed_command(tmp_path, tallied):
    """The one case in a real process: `concord` as installed, not CliRunner."""
    import subprocess
    import sys

    workspace = make_study(str(tmp_path / "s.concord"))
    workspace.close()
    path = tmp_path / "long-line.txt"
    malformed.long_line(b"T: ")(path)
    _tally(tallied, "fuzz_cases", 1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "concord",
            "import",
            "transcripts",
            str(tmp_path / "s.concord"),
            str(path),
            "--no-pseudonymize",
            "--as",
            "sue",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("concord: error:")]
    assert len(error) == 1 and "long-line.txt:1: line 1 is" in error[0]


# ------------------------------------------------------------------------- limits and their edges


def test_a_long_line_under_the_limit_is_legal_text(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("T: " + "word " * ((limits.MAX_LINE_CHARS - 10) // 5) + "\nP: fine.\n", encoding="utf-8")
    (transcript,) = parse_transcript(path)
    assert len(transcript.turns) == 2


def test_yaml_nesting_up_to_the_limit_is_read(tmp_path):
    depth = limits.MAX_YAML_DEPTH - 1  # the top-level mapping is one level
    path = tmp_path / "nested.yaml"
    path.write_text(
        "id: n\ntitle: N\ncodes:\n"
        + "".join(f"{'    ' * i}  - name: c{i}\n{'    ' * i}    children:\n" for i in range(depth // 2 - 1))
    )
    spec = load_codebook(path)
    assert spec.codes[0].name == "c0"


def test_trailing_empty_cells_are_not_extra_cells(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("transcript,turn,coder,code\nS-A,2,cai,Hope,,\n", encoding="utf-8")
    assert [row.coder for row in read_codings(path)] == ["cai"]


def test_invalid_text_names_its_byte_offset(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"transcript,turn,coder,code\nS-A,2,an\xffn,Hope\n")
    with pytest.raises(InputError, match=r"c\.csv:2: not valid UTF-8 at byte 35"):
        read_codings(path)


def test_codings_name_limits_match_the_schema():
    assert {
        "coder": Coder.name.type.length,
        "code": Code.name.type.length,
        "group": Code.name.type.length,
    } == codings_table.NAME_LIMITS


def test_zip_checks_read_the_directory_not_the_data():
    # A directory that claims 10 GB in one entry is refused without anything being unpacked.
    data = bytearray(malformed.zip_bytes({"word/document.xml": b"<w/>"}))
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little")  # uncompressed size in the central directory
    with pytest.raises(InputError, match="would unpack to"):
        limits.check_zip(bytes(data), "x.docx", "Word document")


# -------------------------------------------------------------------------------- concurrent imports


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs CONCORD_TEST_PG")
def test_two_imports_creating_the_same_coder_and_codes_at_once_on_postgresql(tmp_path):
    """Both imports name a coder and codes the study does not have: one creates them, the other
    reuses them; neither fails and nothing is doubled."""
    import threading

    from concord.services.importing import import_codings
    from concord.services.workspace import Workspace

    url = fresh_pg_url()
    try:
        make_study(url, blind=False).close()
        files = []
        for index in range(2):
            path = tmp_path / f"codings{index}.csv"
            path.write_text(
                "transcript,turn,coder,code,group\n" + f"S-A,{index + 1},newcomer,Fresh code,Fresh theme\n",
                encoding="utf-8",
            )
            files.append(path)
        barrier = threading.Barrier(2)
        outcomes: list[object] = [None, None]

        def run(index: int) -> None:
            workspace = Workspace.open(url, "sue")
            try:
                barrier.wait()
                outcomes[index] = import_codings(workspace, str(files[index]), create_codes=True)
            except BaseException as exc:  # recorded and asserted below, in the main thread
                outcomes[index] = exc
            finally:
                workspace.close()

        threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(isinstance(outcome, BaseException) for outcome in outcomes), outcomes
        check = Workspace.open(url, "sue")
        with check.store.reader() as session:
            assert session.scalar(select(func.count()).select_from(Coder).where(Coder.name == "newcomer")) == 1
            assert session.scalar(select(func.count()).select_from(Code).where(Code.name == "Fresh code")) == 1
            assert session.scalar(select(func.count()).select_from(Code).where(Code.name == "Fresh theme")) == 1
        check.close()
        created = [set(outcome.coders_created) for outcome in outcomes]
        assert sorted(map(len, created)) == [0, 1]
    finally:
        drop_pg_database(url)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs CONCORD_TEST_PG")
def test_ensure_coder_reuses_a_coder_another_transaction_just_committed(tmp_path):
    """The race itself, made certain: the second transaction looked before the first inserted."""
    import threading

    from concord.services.study import ensure_coder
    from concord.services.workspace import Workspace

    url = fresh_pg_url()
    try:
        make_study(url, blind=False).close()
        first, second = Workspace.open(url, "sue"), Workspace.open(url, "sue")
        inserted, may_commit, committed = threading.Event(), threading.Event(), threading.Event()

        def winner() -> None:
            with first.store.session() as session:
                ensure_coder(session, "racer", "sue")
                inserted.set()
                may_commit.wait(10)
            committed.set()

        with second.store.session() as session:
            thread = threading.Thread(target=winner)
            thread.start()
            assert inserted.wait(10)
            # Our look comes after their insert but before their commit: we see no coder, insert,
            # wait on the unique index, and get the violation when they commit a second later.
            threading.Timer(1.0, may_commit.set).start()
            coder = ensure_coder(session, "racer", "sue")
            thread.join(10)
            assert committed.is_set() and coder.name == "racer"
        with second.store.reader() as session:
            assert session.scalar(select(func.count()).select_from(Coder).where(Coder.name == "racer")) == 1
        first.close()
        second.close()
    finally:
        drop_pg_database(url)
