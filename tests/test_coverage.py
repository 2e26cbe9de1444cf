"""Coverage: a layer counts the transcripts it covers, and every table says so.

The study is tests/test_frequencies.py's (four session transcripts with consensus codings), with the
consensus finished on three of them: S-A (high), S-B and S-C (low); S-D (high) is still open. Every
expected count below is read off the codings listed there; the expected p-values are computed with
scipy straight from the hand-made tables, not through Concord.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from sqlalchemy import select, update

from concord.app.cli import main
from concord.exporters.frequencies import frequency_table, overall_summary
from concord.services.prevalence import theme_prevalence
from concord.services.reports import excerpt_report
from concord.services.results import gather
from concord.storage.models import Coder, Transcript, TranscriptProgress
from tests.factories import as_person
from tests.test_frequencies import ER, EX, MF, ST, TD, TS, build_session_study


@pytest.fixture
def study(study_target):
    workspace = build_session_study(study_target)
    with workspace.store.session() as session:
        session.execute(update(Transcript).where(Transcript.key == "S-D").values(phase="in_consensus"))
    yield as_person(workspace, "sue")
    workspace.close()


def test_only_covered_transcripts_are_counted(study):
    tables = frequency_table(gather(study), measure="segments")
    wide = tables.wide.set_index("unit")
    assert list(wide.index) == ["S-A", "S-B", "S-C"]
    assert tables.units_in_study == 4
    assert tables.notes[0] == (
        "Coverage: 3 of 4 transcripts covered (consensus finished); only the covered ones are counted "
        "(--include-uncoded counts them all)."
    )
    summary = tables.summary.set_index("code path")
    assert summary.loc[TD, ["high: N", "high: N in group", "low: N", "low: N in group"]].tolist() == [1, 2, 2, 2]
    # Segments of Therapeutic direction: high [4] (S-A), low [1, 1] (S-B, S-C).
    assert summary.loc[TD, ["high: n", "high: %", "high: mean segments"]].tolist() == [1, 100.0, 4.0]
    assert summary.loc[TD, ["low: n", "low: %", "low: mean segments"]].tolist() == [2, 100.0, 1.0]
    expected = stats.mannwhitneyu([4], [1, 1], alternative="two-sided", method="exact").pvalue
    assert summary.at[TD, "p (exploratory)"] == pytest.approx(expected)
    # Expert role: high [0], low [2, 1].
    assert summary.loc[ER, ["high: n", "high: %", "low: n", "low: %"]].tolist() == [0, 0.0, 2, 100.0]
    assert summary.loc[ER, "low: mean segments"] == 1.5


def test_presence_tests_use_the_covered_units_only(study):
    summary = frequency_table(gather(study), measure="presence").summary.set_index("code path")
    # Moving forward: present in 1 of 1 covered high session, 0 of 2 low ones.
    assert summary.loc[MF, ["high: n", "high: N", "low: n", "low: N"]].tolist() == [1, 1, 0, 2]
    assert summary.at[MF, "p (exploratory)"] == pytest.approx(stats.fisher_exact([[1, 0], [0, 2]]).pvalue)
    # Expert role: 0 of 1 high, 2 of 2 low.
    assert summary.at[ER, "p (exploratory)"] == pytest.approx(stats.fisher_exact([[0, 2], [1, 0]]).pvalue)
    assert summary.at[ER, "test"] == "Fisher's exact"


def test_including_uncoded_transcripts_is_the_old_count_and_says_so(study):
    tables = frequency_table(gather(study, include_uncoded=True), measure="segments")
    assert list(tables.wide["unit"]) == ["S-A", "S-B", "S-C", "S-D"]
    # The old count: S-D's codings count although its consensus is open.
    assert tables.wide.set_index("unit").loc["S-D", [TD, MF, TS, EX]].tolist() == [2, 2, 1, 1]
    summary = tables.summary.set_index("code path")
    assert summary.loc[TD, ["high: N", "high: n", "high: %"]].tolist() == [2, 2, 100.0]
    assert "--include-uncoded: all 4 are counted, the uncovered ones as having no codings." in tables.notes[0]
    # [4, 2] against [1, 1]: no ties between the groups, so scipy's exact U distribution applies.
    expected = stats.mannwhitneyu([4, 2], [1, 1], alternative="two-sided", method="exact").pvalue
    assert summary.at[TD, "p (exploratory)"] == pytest.approx(expected)


def test_overall_shares_are_of_covered_units(study):
    tables = frequency_table(gather(study), measure="segments", group_attribute="no such attribute")
    frame = overall_summary(tables).set_index("code path")
    assert frame.loc[ST, ["N covered", "N in study", "n", "% of covered"]].tolist() == [3, 4, 3, 100.0]
    assert frame.loc[MF, ["n", "% of covered", "total segments"]].tolist() == [1, pytest.approx(100 / 3), 3]
    assert frame.at[ER, "mean segments"] == pytest.approx(1.0)


def test_sessions_and_groups_say_covered_and_in_the_group(study):
    sessions = frequency_table(gather(study), by="session")
    assert sessions.notes[0].startswith("Coverage: 3 of 4 sessions covered")
    assert sessions.group_sizes == {"high": 2, "low": 2}
    groups = frequency_table(gather(study), by="group").wide.set_index("unit")
    assert groups.loc["high", ["transcripts", "transcripts in the group", TD]].tolist() == [1, 2, 4]
    assert groups.loc["low", ["transcripts", "transcripts in the group", TD]].tolist() == [2, 2, 2]


def test_a_coders_layer_covers_what_they_marked_done_or_coded(study):
    with study.store.session() as session:
        ann = session.scalar(select(Coder.id).where(Coder.name == "ann"))
        session.query(TranscriptProgress).filter_by(coder_id=ann).delete()
    done = gather(study, layer="ann")
    assert done.coverage.transcripts == frozenset() and done.codings.empty
    coded = gather(study, layer="ann", covered="coded")
    assert coded.coverage.description == "transcripts ann coded"
    assert frequency_table(coded).wide.set_index("unit").at["S-A", TD] == 2
    with study.store.session() as session:
        session.add(TranscriptProgress(coder_id=ann, transcript_id=_tid(study, "S-B"), done_at=datetime.now(UTC)))
    marked = gather(study, layer="ann")
    # Done without a coding: covered, and counted as a transcript without the codes.
    assert frequency_table(marked).wide.set_index("unit").loc["S-B", TD] == 0


def _tid(workspace, key):
    with workspace.store.reader() as session:
        return session.scalar(select(Transcript.id).where(Transcript.key == key))


def test_the_excerpt_report_states_coverage_first_and_leaves_out_codes_never_applied(study):
    report = excerpt_report(study)
    assert report.lead.startswith("Coverage: 3 of 4 sessions covered (consensus finished)")
    labels = [s.node.label for s in report.sections]
    # hope was coded only in S-A and S-D (merged old hope): S-A's coding keeps it; every code here was applied.
    assert labels == [
        "Therapeutic direction",
        "Moving forward",
        "talk about goals",
        "hope",
        "Stagnation",
        "Therapist style",
        "Exploring",
        "Expert role",
    ]
    td = next(s for s in report.sections if s.node.label == "Therapeutic direction")
    assert td.count_line == (
        "Coded 6 times in 3 of 3 covered sessions "
        "(high alliance: 1 of 1 covered / 2 in the group; low alliance: 2 of 2 covered / 2 in the group)."
    )
    only_b = excerpt_report(study, codes=["Expert role", "Moving forward"])
    assert [s.node.label for s in only_b.sections] == [
        "Therapeutic direction",
        "Moving forward",
        "talk about goals",
        "hope",
        "Therapist style",
        "Expert role",
    ]
    ann = excerpt_report(study, layer="ann")
    assert "code" in ann.lead and "never applied" in ann.lead
    assert "Therapist style" not in [s.node.label for s in ann.sections]
    every = excerpt_report(study, layer="ann", all_codes=True)
    assert "Therapist style" in [s.node.label for s in every.sections]


def test_the_results_screen_counts_covered_sessions(study):
    prevalence = theme_prevalence(study, unit="session")
    assert prevalence.groups == ("high", "low")
    assert prevalence.sizes == (1, 2) and prevalence.in_group == (2, 2)
    row = next(r for r in prevalence.rows if r.path == MF)
    assert row.present == (1, 0) and row.percent == (100.0, 0.0)
    assert prevalence.notes[0].startswith("Coverage: 3 of 4 sessions covered")


def test_the_cli_says_what_it_counted(study, tmp_path):
    out = tmp_path / "freq.csv"
    run = CliRunner().invoke(
        main,
        ["export", "frequencies", study.store.target, "--out", str(out), "--count", "presence", "--as", "sue"],
    )
    assert run.exit_code == 0, run.stderr
    assert "note: Coverage: 3 of 4 transcripts covered (consensus finished)" in run.stderr
    summary = pd.read_csv(tmp_path / "freq.group-summary.csv").set_index("code path")
    assert summary.loc[ER, ["high: N", "high: N in group", "high: n", "high: %"]].tolist() == [1, 2, 0, 0.0]
    everything = tmp_path / "all.csv"
    run = CliRunner().invoke(
        main,
        ["export", "frequencies", study.store.target, "--out", str(everything), "--include-uncoded", "--as", "sue"]
        + ["--count", "presence"],
    )
    assert run.exit_code == 0, run.stderr
    assert "--include-uncoded: all 4 are counted" in run.stderr
    summary = pd.read_csv(tmp_path / "all.group-summary.csv").set_index("code path")
    assert summary.loc[ER, ["high: N", "high: n"]].tolist() == [2, 0]
    assert np.isclose(summary.at[MF, "high: %"], 100.0) and np.isclose(summary.at[MF, "low: %"], 0.0)


def test_the_exact_permutation_test_agrees_with_scipy_where_scipy_can_run():
    """The exact Mann-Whitney p Concord computes itself (so that a group of one covered unit gets a
    test too) equals scipy's exact permutation p on random tables with ties."""
    from concord.exporters.frequencies import _exact_u

    rng = np.random.default_rng(1)
    for _ in range(40):
        n1, n2 = rng.integers(2, 6, 2)
        x, y = rng.integers(0, 4, (n1, 2)).astype(float), rng.integers(0, 4, (n2, 2)).astype(float)
        mine = _exact_u(x, y)
        for column in range(2):
            if np.ptp(np.concatenate([x[:, column], y[:, column]])) == 0:
                continue
            method = stats.PermutationMethod(n_resamples=np.inf)
            expected = stats.mannwhitneyu(x[:, column], y[:, column], alternative="two-sided", method=method).pvalue
            assert mine[column] == pytest.approx(expected)
    assert _exact_u(np.array([[4.0]]), np.array([[1.0], [1.0]]))[0] == pytest.approx(2 / 3)
