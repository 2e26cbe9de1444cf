"""Questionnaire tables (CSV, XLSX) read into validated, scored rows; every bad cell is
reported with its spreadsheet row and column."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import openpyxl
import pytest

from concord.analysis.scoring import load_instrument
from concord.importers.measures_table import read_measures
from concord.storage.errors import InputError

MIBOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mibot" / "data.csv"

# Client answers for three sessions; WAI-SR Task 1,2,10,12 / Bond 3,5,7,9 / Goal 4,6,8,11.
WAI_ROWS = [
    ["1", "3", 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2],
    ["1", "5", 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5],
    ["2", "3", 4, 4, 3, 3, 2, 2, 1, 1, 2, 3, 4, 5],
]


def write_csv(
    path: Path, header: list[str], rows: list[list[object]], *, encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def wai_header(item_name: str = "WAI{}") -> list[str]:
    return ["dyad", "session", *(item_name.format(number) for number in range(1, 13))]


def refusal(path: Path, instrument: str = "wai-sr", **options) -> InputError:
    with pytest.raises(InputError) as raised:
        read_measures(path, load_instrument(instrument), **options)
    return raised.value


def test_reads_and_scores_a_wai_sr_table(tmp_path):
    path = write_csv(tmp_path / "wai.csv", wai_header(), WAI_ROWS)
    rows = read_measures(path, load_instrument("wai-sr"))
    assert [(row.row_number, row.dyad, row.client, row.session, row.respondent) for row in rows] == [
        (2, "1", None, 3, "client"),
        (3, "1", None, 5, "client"),
        (4, "2", None, 3, "client"),
    ]
    assert rows[0].items["10"] == 5
    assert rows[0].scored.subscales == {"Task": 1 + 2 + 5 + 2, "Bond": 3 + 5 + 2 + 4, "Goal": 4 + 1 + 3 + 1}
    assert rows[1].scored.total == 60
    # third row: Task 4,4,3,5 / Bond 3,2,1,2 / Goal 3,2,1,4
    assert rows[2].scored.subscales == {"Task": 16, "Bond": 8, "Goal": 10}
    assert rows[2].scored.total == 34


@pytest.mark.parametrize("item_name", ["WAI{}", "wai_sr_{}", "item{}", "Q{}", "WAISR_{:02d}", "wai-sr item {}"])
def test_item_columns_are_recognised_by_name(tmp_path, item_name):
    path = write_csv(tmp_path / "wai.csv", wai_header(item_name), WAI_ROWS)
    rows = read_measures(path, load_instrument("wai-sr"))
    assert [row.scored.total for row in rows] == [33, 60, 34]


def test_xlsx_with_a_title_row_numbers_rows_as_the_sheet_does(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([])  # row 1 left empty, as above many hand-made tables
    sheet.append(["Client_ID", "Session_Number", *(f"PHQ{number}" for number in range(1, 10)), "PHQ10"])
    sheet.append(["A7", 1.0, 0, 1, 2, 3, 0, 1, 2, 3, 1, 2])
    sheet.append([12, 2, 3, 3, 3, 3, 3, 3, 3, 3, 0, None])
    path = tmp_path / "phq.xlsx"
    workbook.save(path)
    rows = read_measures(path, load_instrument("phq-9"))
    assert [(row.row_number, row.client, row.dyad, row.session) for row in rows] == [
        (3, "A7", None, 1),
        (4, "12", None, 2),
    ]
    assert (rows[0].scored.total, rows[0].scored.band, rows[0].scored.review) == (13, "moderate", ["9"])
    assert (rows[1].scored.total, rows[1].scored.band, rows[1].scored.review) == (24, "severe", [])

    sheet.cell(row=4, column=5, value="three")
    workbook.save(path)
    error = refusal(path, "phq-9")
    assert error.line == 4
    assert "column 'PHQ3': PHQ-9 item 3: 'three' is not a number" in str(error)


def test_cp1252_and_utf8_bom_files(tmp_path):
    rows = [["Zoë", "1", 1, 1, 1, 1, 1, 1, 1], ["Jürgen", "1", 3, 3, 3, 3, 3, 3, 3]]
    header = ["Patient", "Sess", *(f"GAD{number}" for number in range(1, 8))]
    legacy = write_csv(tmp_path / "legacy.csv", header, rows, encoding="cp1252")
    bom = write_csv(tmp_path / "bom.csv", header, rows, encoding="utf-8-sig")
    for path in (legacy, bom):
        read = read_measures(path, load_instrument("gad-7"))
        assert [(row.client, row.scored.total, row.scored.band) for row in read] == [
            ("Zoë", 7, "mild"),
            ("Jürgen", 21, "severe"),
        ]


def test_semicolon_table_with_decimal_commas(tmp_path):
    path = tmp_path / "srs.csv"
    path.write_text("dyad;session;SRS1;SRS2;SRS3;SRS4\n4;3;9,1;9,0;8,9;9,0\n4;5;8,9;9;9;9\n", encoding="utf-8")
    rows = read_measures(path, load_instrument("srs"))
    assert [(row.scored.total, row.scored.band) for row in rows] == [
        (36.0, "at or above cutoff"),
        (35.9, "below cutoff"),
    ]


def test_column_overrides_and_constants(tmp_path):
    header = ["Pair", "Visit", "A1", *(f"WAI{number}" for number in range(2, 13))]
    path = write_csv(tmp_path / "wai.csv", header, WAI_ROWS)
    with pytest.raises(InputError, match="no session column"):
        read_measures(path, load_instrument("wai-sr"))
    rows = read_measures(path, load_instrument("wai-sr"), columns={"session": "Visit", "dyad": "Pair", "item:1": "A1"})
    assert [(row.dyad, row.session, row.scored.total) for row in rows] == [("1", 3, 33), ("1", 5, 60), ("2", 3, 34)]
    constant_session = {"session": "=7", "dyad": "Pair", "item:1": "A1"}
    error = refusal(path, columns=constant_session)
    assert error.line == 3 and str(error).endswith(":3: repeats dyad 1, session 7, client (first at row 2)")
    first_dyad_only = write_csv(tmp_path / "one.csv", header, WAI_ROWS[1:])
    constant = read_measures(first_dyad_only, load_instrument("wai-sr"), columns=constant_session)
    assert [(row.dyad, row.session) for row in constant] == [("1", 7), ("2", 7)]
    error = refusal(path, columns={"session": "Week", "dyad": "Pair", "item:1": "A1"})
    assert "columns: no column 'Week' for session; the columns are: Pair, Visit, A1, WAI2" in str(error)
    error = refusal(path, columns={"session": "Visit", "dyad": "Pair", "item:1": "A1", "pair": "Pair"})
    assert "--columns pair=...: unknown field 'pair'" in str(error)
    # What to type is said as the command line takes it, not as a Python dict.
    no_session = tmp_path / "no_session.csv"
    no_session.write_text("Pair,WAI1,WAI2,WAI3,WAI4,WAI5,WAI6,WAI7,WAI8,WAI9,WAI10,WAI11,WAI12\n1" + ",3" * 12 + "\n")
    error = refusal(no_session)
    assert "--columns session=Visit, or give one number for all rows with --columns session==1" in str(error)
    assert "{" not in str(error)


def test_out_of_range_value_names_row_and_column(tmp_path):
    rows = [list(row) for row in WAI_ROWS]
    rows[1][2 + 3] = 9  # row 3 of the sheet, item 4
    error = refusal(write_csv(tmp_path / "wai.csv", wai_header(), rows))
    assert (error.path, error.line) == (str(tmp_path / "wai.csv"), 3)
    assert str(error).endswith("column 'WAI4': WAI-SR item 4: 9 is outside the allowed range 1–5")


def test_non_numeric_value_names_row_and_column(tmp_path):
    rows = [list(row) for row in WAI_ROWS]
    rows[2][2 + 11] = "often"
    error = refusal(write_csv(tmp_path / "wai.csv", wai_header(), rows))
    assert error.line == 4 and "column 'WAI12': WAI-SR item 12: 'often' is not a number" in str(error)


def test_missing_session_names_row_and_column(tmp_path):
    rows = [list(row) for row in WAI_ROWS]
    rows[0][1] = ""
    rows[2][1] = "3b"
    error = refusal(write_csv(tmp_path / "wai.csv", wai_header(), rows))
    assert error.line == 2
    assert "row 2, column 'session': missing session number" in str(error)
    assert "row 4, column 'session': session '3b' is not a whole number" in str(error)


def test_duplicate_row_names_both_rows(tmp_path):
    rows = [*WAI_ROWS, ["1", "5", *[4] * 12]]
    error = refusal(write_csv(tmp_path / "wai.csv", wai_header(), rows))
    assert error.line == 5
    assert "column 'session': repeats dyad 1, session 5, client (first at row 3)" in str(error)


def test_an_item_without_a_column_is_named(tmp_path):
    header = wai_header()[:-1]
    path = write_csv(tmp_path / "wai.csv", header, [row[:-1] for row in WAI_ROWS])
    error = refusal(path)
    assert error.line == 1
    assert "no column for WAI-SR items 12 (found 'WAI1', 'WAI2'" in str(error)
    other = write_csv(tmp_path / "bdi.csv", ["dyad", "session", *(f"BDI{n}" for n in range(1, 22))], [])
    assert "no column for WAI-SR items 1–12" in str(refusal(other))


def test_all_problems_listed_up_to_twenty(tmp_path):
    rows = [[str(dyad), "1", *[7] * 12] for dyad in range(1, 4)]
    error = refusal(write_csv(tmp_path / "wai.csv", wai_header(), rows))
    text = str(error)
    assert text.startswith(f"{tmp_path / 'wai.csv'}:2: 36 problems; nothing was imported:")
    assert "row 2, column 'WAI1': WAI-SR item 1: 7 is outside" in text
    assert text.count("\n  row ") == 20
    assert text.endswith("... and 16 more")


def test_respondent_column_selects_and_checks_rows(tmp_path):
    header = ["dyad", "session", "respondent", *(f"GAD{number}" for number in range(1, 8))]
    path = write_csv(
        tmp_path / "gad.csv",
        header,
        [
            ["1", "1", "client", 1, 1, 1, 1, 1, 1, 1],
            ["1", "1", "therapist", 2, 2, 2, 2, 2, 2, 2],
        ],
    )
    error = refusal(path, "gad-7")
    assert error.line == 3
    assert "column 'respondent': this row was answered by the therapist, but GAD-7 is a client form" in str(error)
    rows = read_measures(path, load_instrument("gad-7"), respondent="client")
    assert [(row.row_number, row.respondent, row.scored.total) for row in rows] == [(2, "client", 7)]


def test_either_respondent_instrument_needs_to_know_who_answered(tmp_path):
    definition = tmp_path / "alliance.yaml"
    definition.write_text("id: alliance-3\nitems: 3\nscale: {min: 1, max: 7}\nrespondent: either\n", encoding="utf-8")
    instrument = load_instrument(definition)
    plain = write_csv(
        tmp_path / "plain.csv", ["dyad", "session", "alliance1", "alliance2", "alliance3"], [["1", "2", 7, 6, 5]]
    )
    with pytest.raises(InputError, match="may be answered by client or therapist"):
        read_measures(plain, instrument)
    assert read_measures(plain, instrument, respondent="therapist")[0].respondent == "therapist"
    both = write_csv(
        tmp_path / "both.csv",
        ["dyad", "session", "rater", "alliance1", "alliance2", "alliance3"],
        [["1", "2", "T", 7, 6, 5], ["1", "2", "P", 1, 2, 3], ["1", "2", "therapist", 1, 1, 1]],
    )
    error = refusal(both, str(definition))
    assert error.line == 4 and "repeats dyad 1, session 2, therapist (first at row 2)" in str(error)
    rows = read_measures(both, instrument, respondent="client")
    assert [(row.respondent, row.scored.total) for row in rows] == [("client", 6)]


def test_competing_item_columns_must_be_chosen(tmp_path):
    header = ["dyad", "session", *(f"WAI{n}" for n in range(1, 13)), *(f"WAISR{n}" for n in range(1, 13))]
    path = write_csv(tmp_path / "wai.csv", header, [row + row[2:] for row in WAI_ROWS])
    assert "more than one set of columns could hold the WAI-SR items ('WAI', 'WAISR')" in str(refusal(path))
    rows = read_measures(path, load_instrument("wai-sr"), columns={"items": "WAISR"})
    assert [row.scored.total for row in rows] == [33, 60, 34]

    generic = write_csv(
        tmp_path / "q.csv", ["dyad", "session", *(f"Q{n}" for n in range(1, 31))], [row + [1] * 18 for row in WAI_ROWS]
    )
    assert "the columns 'Q1' to 'Q30' hold more than the 12 WAI-SR items" in str(refusal(generic))
    rows = read_measures(generic, load_instrument("wai-sr"), columns={"items": "Q"})
    assert [row.scored.total for row in rows] == [33, 60, 34]


def test_blank_rows_are_skipped_and_blank_answers_are_missing(tmp_path):
    rows = [WAI_ROWS[0], [""] * 14, ["2", "1", *["NA"] * 12]]
    rows_read = read_measures(write_csv(tmp_path / "wai.csv", wai_header(), rows), load_instrument("wai-sr"))
    assert [row.row_number for row in rows_read] == [2, 4]
    assert rows_read[1].scored.total is None and len(rows_read[1].scored.missing) == 12


def test_templates_and_unreadable_files_are_refused(tmp_path):
    path = write_csv(tmp_path / "wai.csv", wai_header(), WAI_ROWS)
    template = load_instrument("rri-c-sf", allow_template=True)
    with pytest.raises(InputError, match="is a template and cannot score yet: complete scale, scoring, reverse"):
        read_measures(path, template)
    old_excel = tmp_path / "x.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match=r"old Excel \.xls files are not read"):
        read_measures(old_excel, "wai-sr")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"not a readable \.xlsx workbook"):
        read_measures(broken, "wai-sr")


@pytest.mark.skipif(not MIBOT.is_file(), reason=f"MIBot data not found at {MIBOT}")
def test_mibot_care_questionnaire_as_a_user_instrument(tmp_path):
    definition = tmp_path / "care.yaml"
    definition.write_text(
        textwrap.dedent("""
        id: care
        title: CARE
        citation: CARE questionnaire as collected in the MIBot data (Mahmood et al., 2025)
        status: user
        respondent: client
        items: 10
        scale: {min: 1, max: 5}
        scoring: sum
        missing_values: [0]   # 0 = not applicable
        missing: {rule: prorate, max_missing: 2}
        column_prefixes: [CAREQ]
    """),
        encoding="utf-8",
    )
    rows = read_measures(MIBOT, load_instrument(definition), columns={"dyad": "ParticipantID", "session": "=1"})

    with MIBOT.open(encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert len(rows) == len(records) == 106
    assert {row.session for row in rows} == {1} and {row.respondent for row in rows} == {"client"}
    assert [row.dyad for row in rows] == [record["ParticipantID"] for record in records]
    # first participant: 5,4,5,4,5,5,5,4,4,3
    assert (rows[0].row_number, rows[0].scored.total, rows[0].scored.prorated) == (2, 44, False)
    for row, record in zip(rows, records, strict=True):
        answered = [int(record[f"CAREQ{n}"]) for n in range(1, 11) if record[f"CAREQ{n}"] != "0"]
        assert row.scored.missing == [str(n) for n in range(1, 11) if record[f"CAREQ{n}"] == "0"]
        assert row.scored.total == pytest.approx(sum(answered) / len(answered) * 10)
    prorated = [row for row in rows if row.scored.prorated]
    assert len(prorated) == 5
    two_missing = [row for row in prorated if len(row.scored.missing) == 2]
    assert len(two_missing) == 2


def test_item_columns_of_user_instruments(tmp_path):
    lettered = tmp_path / "lettered.yaml"
    lettered.write_text("id: mood\nitems: [calm, tense]\nscale: {min: 0, max: 4}\nreverse: [tense]\n", encoding="utf-8")
    table = write_csv(
        tmp_path / "mood.csv", ["client", "session", "respondent", "Calm", "MOOD_tense"], [["c1", "2", "client", 3, 1]]
    )
    row = read_measures(table, load_instrument(lettered))[0]
    assert row.items == {"calm": 3, "tense": 1} and row.scored.total == 3 + 3

    # stems come from the id as well: CAREQ3 is item 3 of 'care' (a trailing Q names no instrument)
    care = tmp_path / "care.yaml"
    care.write_text("id: care\nitems: 3\nscale: {min: 1, max: 5}\nrespondent: client\n", encoding="utf-8")
    table = write_csv(
        tmp_path / "care.csv", ["dyad", "session", "CAREQ1", "CAREQ2", "CAREQ3", "careq_3"], [["1", "1", 5, 4, 3, 3]]
    )
    error = refusal(table, str(care))
    assert "columns 'CAREQ3' and 'careq_3' both look like the same item" in str(error)
    assert read_measures(table, load_instrument(care), columns={"item:3": "CAREQ3"})[0].scored.total == 12
