"""Guards against paths going quadratic again in the size of a study (issue 20).

Each test runs a path on a small study and on the same study grown, and counts the SQL statements it
sends (a ``before_cursor_execute`` listener on the engine): a fixed number, whatever the number of
transcripts or rows. bench/bench_growth.py measures the same paths at 10 to 2,000 transcripts.
"""

from __future__ import annotations

import random
import uuid
from contextlib import contextmanager

import numpy as np
import pytest
from sqlalchemy import event, insert, select

from concord.analysis.agreement_units import stack
from concord.services import agreement as agreement_service
from concord.services.agreement import AgreementOptions, compute_agreement
from concord.services.study import add_coder, init_study
from concord.services.workspace import Workspace
from concord.storage.models import Code, Codebook, Coder, Coding, Transcript, Turn

TURNS = 12


@contextmanager
def counted(workspace):
    """Count the SQL statements sent through the study's engine inside the block."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = workspace.store.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def new_study(target: str, coders=("ann", "bob", "cal")) -> Workspace:
    workspace = init_study(target, title="Scaling", blind=True)
    add_coder(workspace, "sue", "supervisor")
    workspace = Workspace(workspace.store, "sue")
    for name in coders:
        add_coder(workspace, name)
    with workspace.store.session() as session:
        book = Codebook(key="scaling", title="Scaling", version="1", origin="test")
        session.add(book)
        session.flush()
        for top, children in (("Rating", ("high", "mid", "low")), ("Talk", ("plan", "past"))):
            parent = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name=top)
            session.add(parent)
            session.flush()
            for position, name in enumerate(children):
                session.add(
                    Code(codebook_id=book.id, parent_id=parent.id, guid=str(uuid.uuid4()), name=name, position=position)
                )
    return workspace


def grow(workspace: Workspace, count: int, *, seed: int, skip: dict[str, set[int]] | None = None) -> None:
    """Add ``count`` transcripts of 12 turns with random turn codings by every coder (a coder named in
    ``skip`` leaves those transcript numbers uncoded)."""
    rng = random.Random(seed)
    with workspace.store.session() as session:
        coders = dict(session.execute(select(Coder.name, Coder.id).where(Coder.role == "coder")).all())
        leaves = list(session.scalars(select(Code.id).where(Code.parent_id.is_not(None)).order_by(Code.id)))
        first = session.query(Transcript).count()
        for number in range(first, first + count):
            parts, spans, offset = [], [], 0
            for turn in range(TURNS):
                label = "T" if turn % 2 == 0 else "P"
                utterance = f"turn {turn} of transcript {number} " + "word " * rng.randint(1, 6)
                parts.append(f"{label}: {utterance}")
                spans.append((offset + 3, offset + 3 + len(utterance)))
                offset += len(parts[-1]) + 1
            transcript = Transcript(key=f"S{number:04d}", kind="session", language="en", text="\n".join(parts))
            session.add(transcript)
            session.flush()
            session.execute(
                insert(Turn),
                [
                    {
                        "transcript_id": transcript.id,
                        "number": turn + 1,
                        "speaker_role": "therapist" if turn % 2 == 0 else "client",
                        "speaker_label": "T" if turn % 2 == 0 else "P",
                        "char_start": start,
                        "char_end": end,
                        "nonverbal": [],
                    }
                    for turn, (start, end) in enumerate(spans)
                ],
            )
            truth = [(rng.randrange(TURNS), rng.choice(leaves)) for _ in range(6)]
            rows = []
            for name, coder_id in coders.items():
                if number in (skip or {}).get(name, ()):
                    continue
                for turn, code in truth:
                    if rng.random() < 0.3:
                        turn, code = rng.randrange(TURNS), rng.choice(leaves)
                    start, end = spans[turn]
                    rows.append(
                        {
                            "coder_id": coder_id,
                            "transcript_id": transcript.id,
                            "code_id": code,
                            "start_offset": start,
                            "end_offset": end,
                            "phase": "independent",
                            "made_blind": True,
                        }
                    )
            if rows:
                session.execute(insert(Coding), rows)


# ------------------------------------------------------------------------------------------ agreement


def reference_transcript_rows(workspace: Workspace, options: AgreementOptions) -> list:
    """The per-transcript rows the way they were computed before issue 20: each transcript's units masked
    out of the stacked table (``select_units``) and its statistics computed on their own."""
    loaded, readings, _ = agreement_service._build(workspace, options)
    statistics, alone = agreement_service._statistics(options.statistics)
    rows = []
    for reading, tables in readings:
        if reading == "scale" or not tables:
            continue
        stacked = stack(tables, "all codes" if reading == "code" else "all groups")
        with_units = np.unique(stacked.unit_transcript).tolist()
        if len(with_units) < 2:
            continue
        for index in with_units:
            part = stacked.select_units(stacked.unit_transcript == index)
            rows += agreement_service._result_rows(
                part, statistics, alone, options, "transcript", transcript=loaded.corpus.transcripts[index]
            )
    return rows


def same_rows(found, expected) -> None:
    assert len(found) == len(expected) > 0
    for got, want in zip(found, expected):
        assert (got.transcript, got.statistic, got.reading) == (want.transcript, want.statistic, want.reading)
        assert (got.units, got.coders, got.units_total, got.disagreements, got.note) == (
            want.units,
            want.coders,
            want.units_total,
            want.disagreements,
            want.note,
        ), (got, want)
        if want.value is None:
            assert got.value is None
        else:
            assert got.value == pytest.approx(want.value, abs=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        AgreementOptions(),
        AgreementOptions(groups=("Rating", "Talk")),
        AgreementOptions(coders=("ann", "bob"), uncoded="exclude"),
        AgreementOptions(unit="transcript"),
    ],
    ids=["codes", "groups", "two-coders", "transcript-units"],
)
def test_per_transcript_rows_equal_one_transcript_at_a_time(tmp_path, options):
    workspace = new_study(str(tmp_path / "study.concord"))
    # cal skips some transcripts: their units carry two ratings where the others carry three (Fleiss'
    # kappa is then skipped for the pooled rows, not per transcript), and the group's "(none)" varies.
    grow(workspace, 9, seed=3, skip={"cal": {1, 4}})
    report = compute_agreement(workspace, options)
    found = [row for row in report.rows if row.scope == "transcript"]
    same_rows(found, reference_transcript_rows(workspace, options))
    workspace.close()


def test_agreement_sends_the_same_statements_for_any_number_of_transcripts(study_target):
    workspace = new_study(study_target)
    grow(workspace, 3, seed=1)
    with counted(workspace) as small:
        compute_agreement(workspace)
    grow(workspace, 12, seed=2)
    with counted(workspace) as large:
        report = compute_agreement(workspace)
    assert len(report.transcripts) == 15
    assert len(large) == len(small), (len(small), len(large))
    workspace.close()


@pytest.mark.parametrize("coders", [2, 3])
def test_statistics_on_rating_patterns_equal_those_on_every_unit(coders):
    """A large matrix is computed on its distinct columns weighted by their counts; a bootstrap still
    resamples every unit, so its point value is the statistic computed on all units."""
    from concord.analysis.agreement_stats import MISSING, SCALE_STATISTICS, STATISTICS, compute

    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, size=6000)
    ratings = np.where(rng.random((coders, 6000)) < 0.75, truth, rng.integers(0, 4, size=(coders, 6000)))
    ratings[rng.random((coders, 6000)) < 0.1] = MISSING
    for name in STATISTICS + SCALE_STATISTICS:
        if coders != 2 and ("cohen" in name or "weighted" in name):
            continue
        if name == "fleiss_kappa":
            continue  # missing ratings: refused either way (tested through the service above)
        values = (1.0, 2.0, 4.0, 8.0) if name in SCALE_STATISTICS else None
        fast = compute(name, ratings, 4, values=values)
        full = compute(name, ratings, 4, bootstrap=1, values=values)
        assert (fast.units, fast.coders) == (full.units, full.coders), name
        assert fast.value == pytest.approx(full.value, abs=1e-12), name


# ------------------------------------------------------------------------------------------- overview


def add_places(workspace: Workspace) -> None:
    """Put every transcript in a session of a dyad, with an attribute on each level."""
    from concord.storage.models import Attribute, Dyad, TherapySession

    with workspace.store.session() as session:
        for transcript in session.scalars(select(Transcript).where(Transcript.session_id.is_(None))):
            dyad = Dyad(key=f"D-{transcript.key}")
            session.add(dyad)
            session.flush()
            therapy = TherapySession(dyad_id=dyad.id, number=1)
            session.add(therapy)
            session.flush()
            transcript.session_id = therapy.id
            for kind, target in (("dyad", dyad.id), ("session", therapy.id), ("transcript", transcript.id)):
                session.add(Attribute(target_kind=kind, target_id=target, name=f"{kind}-note", value="x", blinded=True))


@pytest.mark.parametrize("actor", ["sue", "ann"])
def test_listing_the_transcripts_sends_the_same_statements_for_any_number(study_target, actor):
    from concord.services.transcripts import list_transcripts

    workspace = new_study(study_target)
    grow(workspace, 2, seed=1)
    add_places(workspace)
    person = Workspace(workspace.store, actor)
    list_transcripts(person)  # the workspace looks its person up once
    with counted(workspace) as small:
        before = list_transcripts(person)
    grow(workspace, 10, seed=2)
    add_places(workspace)
    with counted(workspace) as large:
        after = list_transcripts(person)
    assert len(after) == 12 and len(large) == len(small), (len(small), len(large))
    first = next(s for s in after if s.key == before[0].key)
    if actor == "sue":
        # Outside the blind: dyad, session, the attributes of all three levels and everyone's progress.
        assert first.dyad == f"D-{first.key}" and first.session_number == 1
        assert [a.target_kind for a in first.attributes] == ["transcript", "session", "dyad"]
        assert [p.coder for p in first.others] == ["ann", "bob", "cal"]
        assert sum(p.codings for p in first.others) == 18
    else:
        assert first.dyad is None and first.attributes == () and first.others == ()
        assert first.progress.coder == "ann" and first.progress.codings == 6
    workspace.close()


async def test_the_overview_lists_a_page_and_the_rest_as_the_cursor_goes_down(tmp_path):
    from concord.app.tui.app import make_app
    from concord.app.tui.screens.overview import PAGE

    workspace = new_study(str(tmp_path / "study.concord"))
    grow(workspace, PAGE + 60, seed=5)
    workspace.close()
    app = make_app(str(tmp_path / "study.concord"), "sue")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        overview = app.screen
        table = overview.table
        assert table.row_count == PAGE and len(overview.rows) == PAGE + 60
        assert "more as you go down" in str(overview.query_one("#overview-status").render())
        await pilot.press("G")
        assert table.row_count == PAGE + 60 and table.cursor_row == PAGE + 59
        await pilot.press("g")
        # Filtering looks through every transcript, listed or not.
        await pilot.press("slash", *"S0250", "enter")
        await pilot.pause()
        assert table.row_count == 1
        assert table.get_row_at(0)[0].plain == "S0250"


# -------------------------------------------------------------------------------------- import codings


def codings_file(path, rows: int, *, transcripts: int, coder: str = "dee") -> str:
    rng = random.Random(rows)
    lines = ["transcript,turn,coder,code"]
    for _ in range(rows):
        key = f"S{rng.randrange(transcripts):04d}"
        code = rng.choice(("Rating > high", "Rating > low", "Talk > plan"))
        lines.append(f"{key},{rng.randrange(TURNS) + 1},{coder},{code}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_importing_codings_sends_the_same_statements_for_any_number_of_rows(study_target, tmp_path):
    from concord.services.importing import import_codings

    workspace = new_study(study_target)
    grow(workspace, 6, seed=4)
    sue = Workspace(workspace.store, "sue")
    few = codings_file(tmp_path / "few.csv", 12, transcripts=2, coder="dee")
    many = codings_file(tmp_path / "many.csv", 600, transcripts=6, coder="eve")
    import_codings(sue, few, dry_run=True)  # the workspace looks its person up once
    with counted(workspace) as small:
        first = import_codings(sue, few)
    with counted(workspace) as large:
        second = import_codings(sue, many)
    assert (first.codings, second.codings) == (12, 600)
    assert first.coders_created == ("dee",) and second.coders_created == ("eve",)
    assert len(large) == len(small), (len(small), len(large))
    with workspace.store.reader() as session:
        stored = session.execute(
            select(Coding.start_offset, Coding.end_offset, Turn.char_start, Turn.char_end)
            .join(Coder, Coder.id == Coding.coder_id)
            .join(Turn, (Turn.transcript_id == Coding.transcript_id) & (Turn.char_start == Coding.start_offset))
            .where(Coder.name == "eve")
        ).all()
    # Each coding covers its whole turn (no start/end columns) and carries its timestamps.
    assert len(stored) == 600 and all(row[:2] == row[2:] for row in stored)
    workspace.close()


# ---------------------------------------------------------------------------------------------- qdpx


def test_qdpx_export_sends_the_same_statements_for_any_number_of_transcripts(study_target, tmp_path):
    import zipfile

    from lxml import etree

    from concord.services.qdpx_export import export_qdpx

    workspace = new_study(study_target)
    grow(workspace, 2, seed=1)
    sue = Workspace(workspace.store, "sue")
    export_qdpx(sue, tmp_path / "warm.qdpx")  # the workspace looks its person up once
    with counted(workspace) as small:
        export_qdpx(sue, tmp_path / "small.qdpx")
    grow(workspace, 10, seed=2)
    with counted(workspace) as large:
        result = export_qdpx(sue, tmp_path / "large.qdpx")
    assert result.transcripts == 12 and len(large) == len(small), (len(small), len(large))
    with zipfile.ZipFile(tmp_path / "large.qdpx") as archive:
        root = etree.fromstring(archive.read("project.qde"))
        assert len(archive.namelist()) == 13
    namespace = "{urn:QDA-XML:project:1.0}"
    assert len(root.findall(f"{namespace}Sources/{namespace}TextSource")) == 12
    assert len(root.findall(f".//{namespace}Coding")) == result.codings
    workspace.close()


def test_turn_lines_read_as_json_dumps_writes_them():
    import json
    from collections import namedtuple

    from concord.services.qdpx_export import _turn_line

    Row = namedtuple(
        "Row",
        "number id transcript_id speaker_role speaker_label char_start char_end start_time end_time replayed nonverbal",
    )
    for start_time, end_time, replayed, nonverbal, label in (
        (None, None, False, "[]", "T"),
        (12.5, 14.0, True, "[[3, 9], [12, 20]]", 'Thé "rapist"'),
        (3.0, None, False, None, "P\\1"),
    ):
        row = Row(7, 1, 1, "therapist", label, 10, 40, start_time, end_time, replayed, nonverbal)
        expected = json.dumps(
            [7, "therapist", label, 10, 40, start_time, end_time, replayed, json.loads(nonverbal or "[]")],
            ensure_ascii=False,
        )
        assert _turn_line(row) == expected
