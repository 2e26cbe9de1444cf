"""A code is its place (group > name): imports never merge two codes that share a name, and the
exports write the path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.app.cli import main
from concord.services.importing import import_codings
from concord.storage.errors import InputError
from concord.storage.models import Code, Coding, Turn
from tests.factories import as_person, make_study


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield as_person(workspace, "sue")
    workspace.close()


def _codes(workspace) -> dict[str, Code]:
    """Live codes by their path of names."""
    with workspace.store.reader() as session:
        rows = list(session.scalars(select(Code).where(Code.live())))
    by_id = {row.id: row for row in rows}

    def path(row):
        names = []
        while row is not None:
            names.append(row.name)
            row = by_id.get(row.parent_id)
        return " > ".join(reversed(names))

    return {path(row): row for row in rows}


def _codings_by_path(workspace) -> dict[str, list[int]]:
    """Path of the code -> the turn numbers its codings sit in."""
    codes = {row.id: path for path, row in _codes(workspace).items()}
    with workspace.store.reader() as session:
        rows = session.execute(
            select(Coding.code_id, Turn.number)
            .join(Turn, (Turn.transcript_id == Coding.transcript_id) & (Turn.char_start == Coding.start_offset))
            .order_by(Turn.number)
        ).all()
    found: dict[str, list[int]] = {}
    for code_id, number in rows:
        found.setdefault(codes[code_id], []).append(number)
    return found


def test_the_same_name_in_two_groups_stays_two_codes(study, tmp_path):
    table = tmp_path / "codings.csv"
    table.write_text(
        "transcript,turn,coder,code,group\n"
        "S-A,1,cai,other,Therapist behaviour\n"
        "S-A,2,cai,other,Client talk\n"
        "S-A,3,cai,other,Therapist behaviour\n"
        "S-A,4,cai,other,Client talk\n"
    )
    report = import_codings(study, str(table), create_codes=True)
    assert report.codings == 4
    assert set(report.codes_created) == {
        "Client talk",
        "Client talk > other",
        "Therapist behaviour",
        "Therapist behaviour > other",
    }
    codes = _codes(study)
    assert codes["Client talk > other"].id != codes["Therapist behaviour > other"].id
    # Every coding lands in the code of its own group.
    placed = _codings_by_path(study)
    assert placed["Therapist behaviour > other"] == [1, 3]
    assert placed["Client talk > other"] == [2, 4]

    # A second import finds both by their place and creates nothing; the code cell may be the whole path.
    again = tmp_path / "again.csv"
    again.write_text(
        "transcript,turn,coder,code,group\nS-A,2,dee,Client talk > other,\nS-A,1,dee,other,therapist BEHAVIOUR\n"
    )
    report = import_codings(study, str(again))
    assert report.codes_created == ()
    placed = _codings_by_path(study)
    assert placed["Therapist behaviour > other"] == [1, 1, 3]
    assert placed["Client talk > other"] == [2, 2, 4]


def test_a_name_in_two_places_without_a_group_is_refused(study, tmp_path):
    first = tmp_path / "first.csv"
    first.write_text("transcript,turn,coder,code,group\nS-A,1,cai,other,A\nS-A,2,cai,other,B\n")
    import_codings(study, str(first), create_codes=True)
    vague = tmp_path / "vague.csv"
    vague.write_text("transcript,turn,coder,code\nS-A,3,cai,other\n")
    with pytest.raises(
        InputError, match=r"vague.csv: .*line 2: code 'other' is in more than one place \(A > other; B > other\)"
    ):
        import_codings(study, str(vague), create_codes=True)


def test_a_group_below_an_existing_theme_is_found_by_its_tail(study, tmp_path):
    """'Stagnation' is under 'Therapeutic direction' in the test codebook: a table that gives only the
    sub-theme as the group still puts a new code under it, not under a new top-level 'Stagnation'."""
    table = tmp_path / "codings.csv"
    table.write_text("transcript,turn,coder,code,group\nS-A,2,cai,other,Stagnation\n")
    report = import_codings(study, str(table), create_codes=True)
    assert report.codes_created == ("Therapeutic direction > Stagnation > other",)
    assert "Stagnation" not in _codes(study)


def test_the_cli_names_the_created_codes_by_their_path(tmp_path):
    target = tmp_path / "s.concord"
    workspace = make_study(str(target), blind=True)
    workspace.close()
    table = tmp_path / "codings.csv"
    table.write_text("transcript,turn,coder,code,group\nS-A,1,cai,other,Client talk\n")
    result = CliRunner().invoke(
        main, ["import", "codings", str(target), str(table), "--create-codes", "--as", "sue"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "New codes: Client talk, Client talk > other." in result.output


def test_exports_show_the_name_and_the_publication_label_only_when_asked(study, tmp_path):
    """One name per code: the workbench's name in every table, the publication label with --labels."""
    import pandas as pd

    from concord.services.reports import excerpt_report, frequency_tables

    with study.store.session() as session:
        forward = session.scalar(select(Code).where(Code.name == "Moving forward"))
        forward.label = "Client moves forward"
    _data, tables = frequency_tables(study, include_uncoded=True)
    assert "Therapeutic direction > Moving forward" in tables.code_columns
    assert "Moving forward" in [node.label for node in tables.codes]
    _data, labelled = frequency_tables(study, include_uncoded=True, labels="publication")
    assert "Therapeutic direction > Client moves forward" in labelled.code_columns
    report = excerpt_report(study, include_uncoded=True, all_codes=True)
    assert "Moving forward" in [s.node.label for s in report.sections]
    out = tmp_path / "freq.csv"
    run = CliRunner().invoke(
        main,
        ["export", "frequencies", study.store.target, "--out", str(out), "--include-uncoded", "--as", "sue"]
        + ["--labels", "publication"],
    )
    assert run.exit_code == 0, run.stderr
    assert "Therapeutic direction > Client moves forward" in set(pd.read_csv(out)["code path"])
