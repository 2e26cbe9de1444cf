"""The leaks issue 12 found, each closed: a blind coder (or a command run without a name) learns nothing of
another coder's work, the groups or the scores through status, audit, codebook history, imports, manifests
or backups. tests/test_blind_differential.py checks every read path at once; these name each hole."""

from __future__ import annotations

import csv
import json
import os
import stat

import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.services.audit import list_events
from concord.services.codebooks import code_history, edit_code, merge_codes, split_code
from concord.services.codes import create_inductive_code
from concord.services.coding import apply_code
from concord.services.importing import import_transcripts
from concord.services.study import study_status
from concord.services.transcripts import get_transcript
from concord.storage.errors import InputError, NotFound
from tests.factories import as_person, make_study


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target)
    yield workspace
    workspace.close()


def _kim_like_work(study):
    """bob makes an inductive code and codes with it; the supervisor sue renames, splits and merges bob's codes."""
    bob, sue = as_person(study, "bob"), as_person(study, "sue")
    own = create_inductive_code(bob, "bob private code")
    apply_code(bob, 1, own.id, 0, 5)
    other = create_inductive_code(bob, "bob second code")
    edit_code(sue, own.id, name="bob renamed")
    split_code(sue, own.id, ["bob part a", "bob part b"])
    merge_codes(sue, other.id, "Stagnation")
    return own, other


def test_status_without_a_person_shows_no_ones_progress_nor_the_consensus(study):
    apply_code(as_person(study, "bob"), 1, 3, 0, 5)
    nobody = study_status(as_person(study, None))
    assert nobody["codings"] == {} and nobody["consensus_codings"] is None and nobody["transcripts_done"] is None
    ann = study_status(as_person(study, "ann"))
    assert ann["codings"] == {"ann": 0} and ann["consensus_codings"] is None
    sue = study_status(as_person(study, "sue"))
    assert sue["codings"] == {"ann": 0, "bob": 1, "sue": 0} and sue["consensus_codings"] == 0


def test_audit_hides_a_supervisors_theme_work_on_another_coders_codes(study):
    _kim_like_work(study)
    seen_by_ann = [(e.actor, e.action) for e in list_events(as_person(study, "ann"))]
    assert not [a for a in seen_by_ann if a[1].startswith("code.")]
    shown = json.dumps([e.details for e in list_events(as_person(study, "ann"))])
    assert not [name for name in ("bob private", "bob second", "bob renamed", "bob part") if name in shown]
    seen_by_sue = {e.action for e in list_events(as_person(study, "sue"))}
    assert {"code.edit", "code.split", "code.merge", "code.create"} <= seen_by_sue
    # The coder whose codes they are sees what the supervisor did with them: the codes are theirs.
    bob_sees = {(e.actor, e.action) for e in list_events(as_person(study, "bob"))}
    assert {("bob", "code.create"), ("sue", "code.split"), ("sue", "code.edit")} <= bob_sees


def test_codebook_history_answers_alike_for_not_yours_and_missing(study):
    own, other = _kim_like_work(study)
    ann = as_person(study, "ann")
    answers = set()
    for probe in (own.id, other.id, 999, "bob renamed", "bob part a"):
        with pytest.raises(NotFound) as caught:
            code_history(ann, probe)
        answers.add(str(caught.value).replace(str(probe), "X"))
    assert len(answers) == 2  # "no code with id X" and "no code named 'X'", whatever the probe
    assert answers == {"no code with id X", "no code named 'X'"}
    # The deductive code bob's code was merged into keeps no trace of bob's code's name for ann.
    assert all("bob" not in (c.new_value or "") + (c.old_value or "") for c in code_history(ann, "Stagnation"))
    assert any(c.field == "merged_from" for c in code_history(as_person(study, "sue"), "Stagnation"))


def test_a_name_shared_with_another_coders_code_is_not_ambiguous(study):
    create_inductive_code(as_person(study, "bob"), "same name")
    mine = create_inductive_code(as_person(study, "ann"), "same name")
    assert [c.code_id for c in code_history(as_person(study, "ann"), "same name")] in ([], [mine.id])


def _manifest(folder, header, rows):
    (folder / "s.txt").write_text("T: Hello.\nP: Hi.\n", encoding="utf-8")
    (folder / "i.txt").write_text("I: What happened here?\nP: I froze.\n", encoding="utf-8")
    path = folder / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_a_mistyped_blinded_prefix_is_an_error_also_in_the_dry_run(study, tmp_path):
    path = _manifest(tmp_path, ("file", "key", "blind:mi_quality"), [("s.txt", "S9", "good")])
    with pytest.raises(InputError, match=r"manifest.csv:1: column 3 \('blind:mi_quality'\): unknown prefix 'blind:'"):
        import_transcripts(as_person(study, "sue"), [], manifest=str(path), pseudonymize=False, dry_run=True)
    if "://" in study.store.target:
        return
    result = run(
        "import", "transcripts", study.store.target, "--manifest", path, "--no-pseudonymize", "--dry-run", "--as", "sue"
    )
    assert result.exit_code == 2 and "unknown prefix 'blind:'" in result.stderr and "'blinded:'" in result.stderr
    assert result.stderr.count("\n") == 2  # the trusted-study note and the error


def test_an_ipr_interview_inherits_its_sessions_blinded_attributes_blinded(study, tmp_path):
    path = _manifest(
        tmp_path,
        ("file", "key", "kind", "dyad", "session", "perspective", "blinded:group", "setting", "rater"),
        [
            ("s.txt", "S9", "session", "9", "2", "", "low", "online", "rk"),
            ("i.txt", "IPR9", "ipr", "9", "2", "client", "", "online", ""),
        ],
    )
    sue = as_person(study, "sue")
    import_transcripts(sue, [], manifest=str(path), pseudonymize=False)
    interview = {a.name: (a.value, a.blinded) for a in get_transcript(sue, "IPR9").attributes}
    assert interview["group"] == ("low", True) and interview["setting"] == ("online", False)
    # Open attributes are inherited too (issue 16), visible as on the session transcript.
    assert interview["rater"] == ("rk", False)
    assert "group" not in {a.name for a in get_transcript(as_person(study, "ann"), "IPR9").attributes}


def test_a_coder_may_not_back_up_nor_dry_run_an_import(study, tmp_path):
    target = study.store.target
    if "://" not in target:
        # Nobody else may read the file the lead's backup writes.
        dest = tmp_path / "copy.concord"
        assert run("backup", target, dest, "--as", "sue").exit_code == 0
        assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    refused = run("backup", target, tmp_path / "mine.concord", "--as", "ann")
    assert refused.exit_code == 2 and not (tmp_path / "mine.concord").exists()
    path = _manifest(tmp_path, ("file", "key", "blinded:group"), [("s.txt", "S9", "high")])
    dry = run("import", "transcripts", target, "--manifest", path, "--no-pseudonymize", "--dry-run", "--as", "ann")
    assert dry.exit_code == 2 and "high" not in dry.output
