"""services.reports: the one home of the frequency, representativeness and excerpt exports (gather -> table ->
write), as the CLI and the workbench call it."""

from __future__ import annotations

from contextlib import contextmanager

import pandas as pd
import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.services import audit
from concord.services.prevalence import theme_prevalence
from concord.services.reports import (
    excerpt_report,
    export_excerpts,
    export_frequencies,
    export_representativeness,
    frequency_tables,
)
from concord.storage.errors import ConcordError, PermissionDenied
from tests.factories import as_person
from tests.test_frequencies import MF, TD, build_ipr_study, shared_study  # noqa: F401


@pytest.fixture
def sue(shared_study):  # noqa: F811
    return as_person(shared_study, "sue")


def test_the_service_writes_what_the_cli_writes(sue, tmp_path):
    by_service = tmp_path / "service.csv"
    written = export_frequencies(sue, by_service, by="session", measure="words", wide=True)
    assert written.paths[0] == by_service and written.summary == "4 rows x 8 codes"
    by_cli = tmp_path / "cli.csv"
    result = CliRunner().invoke(
        main,
        ["export", "frequencies", sue.store.target, "--out", str(by_cli), "--as", "sue"]
        + ["--by", "session", "--count", "words", "--wide"],
    )
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_csv(by_service), pd.read_csv(by_cli))


def test_tables_and_the_workbench_count_alike(sue):
    data, tables = frequency_tables(sue, measure="presence", by="session", purpose="results")
    assert data.layer == "consensus" and tables.measure == "presence"
    wide = tables.wide.set_index("unit")
    prevalence = theme_prevalence(sue, unit="session")
    row = next(r for r in prevalence.rows if r.path == TD)
    assert sum(row.present) == int((wide[TD] > 0).sum())


def test_progress_is_the_callers(sue, tmp_path):
    calls = []

    @contextmanager
    def progress(size, steps, label):
        calls.append((size, steps, label))
        yield lambda n: calls.append(n)

    export_frequencies(sue, tmp_path / "freq.xlsx", progress=progress)
    assert calls[0] == (4, 2, "writing freq.xlsx")  # 4 rows; two tables: frequencies, group summary
    assert sum(calls[1:]) == 2
    calls.clear()
    export_excerpts(sue, tmp_path / "report.md", progress=progress)
    size, steps, label = calls[0]
    assert size == steps > 0 and label == "writing report.md"


def test_a_wrong_file_is_refused_before_anything_is_read(sue, tmp_path):
    before = len(audit.list_events(sue))
    with pytest.raises(ConcordError, match=r"\.sav"):
        export_frequencies(sue, tmp_path / "freq.sav")
    with pytest.raises(ConcordError, match=r"\.csv"):
        export_excerpts(sue, tmp_path / "report.csv")
    assert len(audit.list_events(sue)) == before
    assert not list(tmp_path.iterdir())


def test_the_blind_holds_for_every_export(shared_study, tmp_path):  # noqa: F811
    ann = as_person(shared_study, "ann")
    with pytest.raises(PermissionDenied, match="may not export the consensus layer"):
        export_frequencies(ann, tmp_path / "freq.csv")
    with pytest.raises(PermissionDenied):
        export_frequencies(ann, tmp_path / "freq.csv", layer="ann", by="session")
    with pytest.raises(PermissionDenied):
        excerpt_report(ann)
    assert not list(tmp_path.iterdir())
    own = export_frequencies(ann, tmp_path / "own.csv", layer="ann")
    assert any("blind" in note for note in own.notes)
    assert "group" not in pd.read_csv(own.paths[0]).columns


def test_group_label_needs_its_place_for_the_value(sue):
    with pytest.raises(ConcordError, match=r"must contain \{value\}"):
        excerpt_report(sue, group_label="alliance")


def test_representativeness(study_target, tmp_path):
    workspace = build_ipr_study(study_target)
    try:
        sue = as_person(workspace, "sue")
        written = export_representativeness(sue, tmp_path / "rep.csv", group_attribute="outcome")
        assert written.summary == "4 dyads x 3 themes"
        assert all(not note.startswith("C: the client's") for note in written.notes)
        long = pd.read_csv(written.paths[0], keep_default_na=False)
        assert {"dyad", "client", "therapist", "contribution"} <= set(long.columns)
    finally:
        workspace.close()


def test_nothing_below_the_services_reads_them():
    """Exporters, importers, analysis and codebooks take plain data: not one import of concord.services."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for folder in ("exporters", "importers", "analysis", "codebooks", "storage"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                found += [f"{path.relative_to(root)}:{node.lineno}" for n in names if n.startswith("concord.services")]
    assert not found, found
