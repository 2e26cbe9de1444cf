"""`concord export ...` as a user types it: every file opened with its own library and checked."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from docx import Document
from docx.oxml.ns import qn
from openpyxl import load_workbook

import concord.app.commands.export as export_module
import concord.exporters.writers as writers
from concord.app.cli import main
from tests.test_frequencies import ALLIANCE, ER, GOALS, MF, ST, TD, build_ipr_study, shared_study  # noqa: F401


@pytest.fixture
def target(shared_study):  # noqa: F811
    return shared_study.store.target


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def export(target, kind, out, *more, person="sue"):
    result = run("export", kind, target, "--out", out, "--as", person, *more)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def test_csv_long_and_group_summary(target, tmp_path):
    out = tmp_path / "freq.csv"
    result = export(target, "frequencies", out)
    assert "4 rows x 8 codes" in result.stdout
    long = pd.read_csv(out)
    assert len(long) == 32
    assert list(long.columns[:10]) == [
        "unit",
        "transcript",
        "kind",
        "dyad",
        "session",
        "code path",
        "code",
        "level",
        "measure",
        "count",
    ]
    row = long[(long["unit"] == "S-A") & (long["code path"] == MF)].iloc[0]
    assert (row["count"], row["level"], row["WAI-SR client total"], row[ALLIANCE], row["group"]) == (
        3,
        "subtheme",
        48,
        4.5,
        "high",
    )
    summary = pd.read_csv(tmp_path / "freq.group-summary.csv").set_index("code path")
    assert summary.at[TD, "high: mean segments"] == 3.0 and summary.at[ST, "low: n"] == 2
    assert summary.at[TD, "p (exploratory)"] == pytest.approx(1 / 3)


def test_csv_wide_words(target, tmp_path):
    out = tmp_path / "wide.csv"
    export(target, "frequencies", out, "--wide", "--count", "words")
    wide = pd.read_csv(out).set_index("unit")
    assert wide.at["S-A", MF] == 19 and wide.at["S-A", GOALS] == 11 and wide.at["S-D", MF] == 13
    assert wide.at["S-B", "WAI-SR client total"] == 24


def test_xlsx_sheets_frozen_header_and_widths(target, tmp_path):
    out = tmp_path / "freq.xlsx"
    export(target, "frequencies", out, "--by", "session", "--measures", "WAI-SR,WAI-S-T")
    book = load_workbook(out)
    assert book.sheetnames == ["Frequencies", "Group summary", "Notes"]
    sheet = book["Frequencies"]
    assert sheet.freeze_panes == "B2"
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["unit", "dyad", "session", "transcripts"]
    assert all(c.font.b for c in sheet[1])
    rows = {r[0]: dict(zip(header, r)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["dyad 1, session 5"][TD] == 4 and rows["dyad 1, session 5"]["group"] == "high"
    assert rows["dyad 2, session 4"][ALLIANCE] == pytest.approx(55 / 12)
    widths = {header[i]: sheet.column_dimensions[chr(ord("A") + i)].width for i in range(len(header[:20]))}
    assert widths["unit"] == len("dyad 1, session 5") + 2
    assert widths["session"] == len("session") + 2
    assert 12 <= widths[TD] <= 50
    summary = book["Group summary"]
    assert summary.freeze_panes == "B2"
    notes = [tuple(r) for r in book["Notes"].iter_rows(values_only=True)]
    assert ("layer", "consensus") in notes and ("count", "segments") in notes


def test_docx_publication_tables(target, tmp_path):
    out = tmp_path / "freq.docx"
    export(target, "frequencies", out)
    document = Document(str(out))
    captions = [p.text for p in document.paragraphs if p.text.startswith("Table ")]
    assert captions == [
        "Table 1. Transcripts with each theme and code by group",
        "Table 2. Theme and code counts per transcript",
    ]
    summary, per_unit = document.tables
    header = [c.text for c in summary.rows[0].cells]
    assert header == [
        "Theme / code",
        "high (2 covered / 2 in the group) n (%)",
        "high M segments",
        "low (2 covered / 2 in the group) n (%)",
        "low M segments",
        "p",
    ]
    assert all(run.bold for cell in summary.rows[0].cells for run in cell.paragraphs[0].runs)
    first = [c.text for c in summary.rows[1].cells]
    assert first == ["Therapeutic direction", "2 (100%)", "3.00", "2 (100%)", "1.00", ".333"]
    expert = [c.text for c in summary.rows[8].cells]
    assert expert == ["Expert role", "0 (0%)", "0.00", "2 (100%)", "1.50", ".333"]
    borders = summary._tbl.tblPr.find(qn("w:tblBorders"))
    assert borders.find(qn("w:insideV")).get(qn("w:val")) == "nil"
    assert borders.find(qn("w:top")).get(qn("w:val")) == "single"
    assert [c.text for c in per_unit.rows[0].cells] == [
        "Transcript",
        "group",
        "alliance mean",
        "alliance z within dyad",
        "Therapeutic direction",
        "Therapist style",
    ]
    assert [c.text for c in per_unit.rows[1].cells] == ["S-A", "high", "4.50", "1.00", "4", "1"]
    notes = [p.text for p in document.paragraphs if p.text.startswith("Note.")]
    assert notes and "coded segments per transcript" in notes[0]


def test_json(target, tmp_path):
    out = tmp_path / "freq.json"
    export(target, "frequencies", out, "--by", "dyad", "--wide")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["meta"]["by"] == "dyad" and data["meta"]["layer"] == "consensus"
    rows = {r["unit"]: r for r in data["tables"]["Frequencies"]}
    assert rows["dyad 1"][TD] == 5 and rows["dyad 2"][ER] == 1
    assert rows["dyad 1"][ALLIANCE] == pytest.approx(3.5)
    assert {r["code path"] for r in data["tables"]["Group summary"]} >= {TD, MF}


def test_blind_coder_is_refused_and_nothing_is_written(target, tmp_path):
    out = tmp_path / "freq.csv"
    for person in ("ann", None):
        args = ["export", "frequencies", target, "--out", out] + (["--as", person] if person else [])
        result = run(*args)
        assert result.exit_code == 2 and "blind" in result.stderr
    assert run("export", "frequencies", target, "--out", out, "--as", "ann", "--layer", "bob").exit_code == 2
    assert not list(tmp_path.iterdir())
    export(target, "frequencies", out, "--layer", "ann", person="ann")
    own = pd.read_csv(out)
    assert "group" not in own.columns and "dyad" not in own.columns
    assert not any(c.startswith("WAI") for c in own.columns)


def test_failed_write_leaves_no_half_file(target, tmp_path, monkeypatch):
    out = tmp_path / "freq.xlsx"
    out.write_bytes(b"the previous export")

    def broken(path, specs, meta, step):
        path.write_bytes(b"half a workbook")
        raise OSError("disk full")

    monkeypatch.setattr(writers, "write_xlsx", broken)
    result = run("export", "frequencies", target, "--out", out, "--as", "sue")
    assert result.exit_code != 0
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freq.xlsx"]


def test_unknown_format_and_progress_on_stderr(target, tmp_path, monkeypatch):
    result = run("export", "frequencies", target, "--out", tmp_path / "freq.sav", "--as", "sue")
    assert result.exit_code == 2 and ".sav" in result.stderr
    monkeypatch.setattr(export_module, "PROGRESS_FROM_ROWS", 0)
    result = export(target, "frequencies", tmp_path / "freq.csv")
    assert "writing freq.csv" in result.stderr and "writing" not in result.stdout


def test_representativeness_exports(study_target, tmp_path):
    workspace = build_ipr_study(study_target)
    workspace.close()
    out = tmp_path / "rep.docx"
    result = export(study_target, "representativeness", out, "--group-attribute", "outcome")
    assert "4 dyads x 3 themes" in result.stdout
    table = Document(str(out)).tables[0]
    rows = [[c.text for c in row.cells] for row in table.rows]
    assert rows[0] == ["dyad", "outcome", "Relational safety", "Equal partners", "Togetherness"]
    assert rows[1] == ["1", "positive", "C+T", "", ""]
    assert rows[5] == ["Total, all dyads", "", "1/4", "2/4", "1/4"]
    long_csv = tmp_path / "rep.csv"
    export(study_target, "representativeness", long_csv, "--group-attribute", "outcome", "--level", "subtheme")
    long = pd.read_csv(long_csv, keep_default_na=False)
    row = long[(long["dyad"] == 1) & (long["code path"] == "Relational safety > Fear stays")].iloc[0]
    assert (row["client"], row["therapist"], row["contribution"]) == (0, 1, "T")
    refused = run(
        "export", "representativeness", study_target, "--out", tmp_path / "x.csv", "--as", "ann", "--layer", "ann"
    )
    assert refused.exit_code == 2 and "blind" in refused.stderr


def test_excerpt_report_command(target, tmp_path):
    out = tmp_path / "report.docx"
    result = export(target, "excerpts", out, "--context", "1", "--memos", "--codes", "hope,Expert role")
    assert "5 excerpts" in result.stdout
    document = Document(str(out))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings == ["Therapeutic direction", "Moving forward", "hope", "Therapist style", "Expert role (low pole)"]
    assert len(document.inline_shapes) == 1
    html_out = tmp_path / "report.html"
    result = export(target, "excerpts", html_out, "--group-label", "{value}-alliance session")
    assert (tmp_path / "report.prevalence.png").exists()
    assert "(Session S-A, high-alliance session)" in html_out.read_text(encoding="utf-8")
    bad = run("export", "excerpts", target, "--out", tmp_path / "r.pdf", "--as", "sue")
    assert bad.exit_code == 2 and ".pdf" in bad.stderr
