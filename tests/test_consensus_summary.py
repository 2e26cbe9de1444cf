"""`concord consensus --list` and `--accept-agreed` summarise (counts per transcript, a total; every
unit with --verbose), and the consensus report carries the coders' memos when asked (--memos)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.services import coding, consensus
from tests.factories import as_person, make_study
from tests.test_consensus import coded


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_list_counts_per_transcript_and_verbose_lists_every_unit(study, study_target):
    coded(study)
    summary = run("consensus", study_target, "--as", "sue", "--list")
    assert summary.exit_code == 0, summary.output
    lines = summary.stdout.strip().splitlines()
    assert lines == [
        "S-A  2 open",
        "Total: 2 units in 1 of 1 transcript (1 independent); 1 agreed not yet accepted (--accept-agreed)"
        " · --verbose: every unit",
    ]
    verbose = run("consensus", study_target, "--as", "sue", "--list", "--verbose")
    assert verbose.exit_code == 0
    assert "transcript" in verbose.stdout and verbose.stdout.count("S-A") == 2  # one row per unit
    # Scripts still get every unit.
    items = json.loads(run("consensus", study_target, "--as", "sue", "--list", "--format", "json").stdout)
    assert [(i["turn"], i["status"]) for i in items] == [(2, "open"), (4, "open")]


def test_accept_agreed_prints_one_total_and_the_details_with_verbose(study, study_target):
    coded(study)
    accepted = run("consensus", study_target, "--as", "sue", "--accept-agreed")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.strip().splitlines() == [
        "Accepted 1 agreed unit into the consensus layer (1 transcript of 1).",
        "1 transcript (1 in consensus): 2 open units · --verbose: each transcript",
    ]
    again = run("consensus", study_target, "--as", "sue", "--accept-agreed", "--verbose")
    assert again.stdout.strip().splitlines() == [
        "Accepted 0 agreed units into the consensus layer (0 transcripts of 1).",
        "S-A: in_consensus (2 open, 0 decided, 1 agreed)",
    ]


def test_the_consensus_report_carries_the_coders_memos(study, study_target, tmp_path):
    _detail, _ids, made = coded(study)
    sue = as_person(study, "sue")
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    coding.add_memo(bob, "coding", made["bob1"].id, "hope, said warmly")
    consensus.accept_agreed(sue)  # turn 1: ann's and bob's "Moving forward" become one consensus coding
    decisions = tmp_path / "d.csv"
    decisions.write_text("transcript,turn,decision,coder\nS-A,2,take,1\nS-A,4,none,\n")
    assert run("consensus", study_target, "--as", "sue", "--decisions", decisions).exit_code == 0
    del ann
    out = tmp_path / "report.md"
    without = run("export", "excerpts", study_target, "--as", "sue", "--out", out)
    assert without.exit_code == 0, without.output
    assert "sighs (ann)" not in out.read_text() and "said warmly" not in out.read_text()
    report = run("export", "excerpts", study_target, "--as", "sue", "--out", out, "--memos")
    assert report.exit_code == 0, report.output
    text = out.read_text()
    # ann's note on the coding taken for turn 2, and bob's memo about his coding of turn 1.
    assert "sighs (ann)" in text
    assert "hope, said warmly (bob)" in text
