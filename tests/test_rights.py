"""services.rights: each "may this person do this" rule lets the right people through and refuses the others
with a sentence they can act on; the blind rules open up after unblinding."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from concord.services import rights
from concord.services.dto import Actor
from concord.services.study import add_coder, backup, init_study
from concord.services.unblinding import unblind
from concord.storage.errors import PermissionDenied
from tests.factories import as_person, make_study

ROOT = Path(__file__).resolve().parents[1]
NOT_LEAD = "ann is a coder; this needs a supervisor or admin"


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target)
    yield workspace
    workspace.close()


def unblinded(study):
    unblind(as_person(study, "sue"), force=True, reason="testing the rights after unblinding")
    return study


def test_setup_is_open_until_the_study_has_a_lead(tmp_path):
    workspace = init_study(str(tmp_path / "s.concord"))
    try:
        rights.require_setup_rights(workspace)  # nobody in particular, no supervisor yet
        add_coder(workspace, "ann")
        rights.require_setup_rights(as_person(workspace, "ann"))
        add_coder(workspace, "sue", "supervisor")
        with pytest.raises(
            PermissionDenied, match=r"^this study has a supervisor: setting it up takes --as SUPERVISOR$"
        ):
            rights.require_setup_rights(workspace)
        with pytest.raises(PermissionDenied, match=f"^{NOT_LEAD}$"):
            rights.require_setup_rights(as_person(workspace, "ann"))
        rights.require_setup_rights(as_person(workspace, "sue"))
    finally:
        workspace.close()


def test_backup_takes_the_lead_once_there_is_one(study, tmp_path):
    with pytest.raises(PermissionDenied, match=f"^{NOT_LEAD}$"):
        backup(as_person(study, "ann"), str(tmp_path / "by-ann.concord"))
    with pytest.raises(PermissionDenied, match="takes --as SUPERVISOR"):
        backup(as_person(study, None), str(tmp_path / "by-nobody.concord"))
    assert not (tmp_path / "by-ann.concord").exists() and not (tmp_path / "by-nobody.concord").exists()
    assert backup(as_person(study, "sue"), str(tmp_path / "by-sue.concord")).exists()


@pytest.mark.parametrize(
    "rule", [rights.require_consensus_rights, rights.require_theme_rights, rights.require_unblinding_rights]
)
def test_lead_rights(study, rule):
    assert rule(as_person(study, "sue")).name == "sue"
    with pytest.raises(PermissionDenied, match=f"^{NOT_LEAD}$"):
        rule(as_person(study, "ann"))
    with pytest.raises(PermissionDenied, match=r"^say who you are: --as NAME \(or set CONCORD_CODER\)$"):
        rule(as_person(study, None))
    # Unblinding opens what coders may see, not what they may do.
    with pytest.raises(PermissionDenied, match=f"^{NOT_LEAD}$"):
        rule(as_person(unblinded(study), "ann"))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (rights.require_agreement_rights, "agreement compares the coders' work: while the study is blind"),
        (
            rights.require_results_rights,
            r"the study is blind: results by group are for supervisors and admins until it is unblinded"
            r" \(ann may not see them\)",
        ),
        (rights.require_project_export_rights, "the study is blind: a project export holds everyone's codings"),
        (rights.require_selection_rights, "the study is blind: questionnaire scores are hidden from coders"),
        (rights.require_codebook_history_rights, f"^{NOT_LEAD}$"),
    ],
)
def test_blind_rights_open_after_unblinding(study, rule, message):
    rule(as_person(study, "sue"))
    with pytest.raises(PermissionDenied, match=message):
        rule(as_person(study, "ann"))
    with pytest.raises(PermissionDenied):
        rule(as_person(study, None))
    unblinded(study)
    rule(as_person(study, "ann"))
    rule(as_person(study, None))


def test_results_refusal_names_a_caller_without_a_name(study):
    with pytest.raises(PermissionDenied, match=r"\(a caller without --as may not see them\)"):
        rights.require_results_rights(as_person(study, None))


def test_storing_a_selection_takes_the_lead_even_unblinded(study):
    unblinded(study)
    rights.require_selection_rights(as_person(study, "ann"))
    with pytest.raises(PermissionDenied, match=f"^{NOT_LEAD}$"):
        rights.require_selection_rights(as_person(study, "ann"), apply=True)
    rights.require_selection_rights(as_person(study, "sue"), apply=True)


def test_an_open_study_hides_nothing(tmp_path):
    workspace = make_study(str(tmp_path / "open.concord"), blind=False)
    try:
        ann = as_person(workspace, "ann")
        rights.require_agreement_rights(ann)
        rights.require_results_rights(ann)
        assert rights.require_export_layer_rights(ann, "bob", blind=False) == "bob"
    finally:
        workspace.close()


def test_coding_layers_under_the_blind(study):
    ann = as_person(study, "ann")
    assert rights.require_coding_layer_rights(ann, "own", blind=True).name == "ann"
    assert rights.require_coding_layer_rights(ann, "ann", blind=True).name == "ann"
    for layer in ("bob", "others", "consensus"):
        with pytest.raises(PermissionDenied, match=r"^the study is blind: you can see only your own codings$"):
            rights.require_coding_layer_rights(ann, layer, blind=True)
    with pytest.raises(PermissionDenied, match="say who you are"):
        rights.require_coding_layer_rights(as_person(study, None), "own", blind=False)
    assert rights.require_coding_layer_rights(ann, "bob", blind=False).name == "ann"
    assert rights.require_coding_layer_rights(as_person(study, None), "consensus", blind=False) is None


def test_export_layers_under_the_blind(study):
    ann = as_person(study, "ann")
    assert rights.require_export_layer_rights(ann, " ann ", blind=True) == "ann"
    with pytest.raises(PermissionDenied, match=r"^the study is blind: ann may not export the consensus layer \("):
        rights.require_export_layer_rights(ann, "", blind=True)
    with pytest.raises(PermissionDenied, match="a caller without --as may not export 'ann''s codings"):
        rights.require_export_layer_rights(as_person(study, None), "ann", blind=True)
    assert rights.require_export_layer_rights(as_person(study, "sue"), "", blind=False) == "consensus"


def test_ownership():
    ann = Actor(id=1, name="ann", role="coder")
    rights.require_own_coding(ann, coder_id=1, phase="independent")
    with pytest.raises(PermissionDenied, match=r"^you can change only your own codings$"):
        rights.require_own_coding(ann, coder_id=2, phase="independent")
    with pytest.raises(PermissionDenied, match=r"^you can change only your own codings$"):
        rights.require_own_coding(ann, coder_id=1, phase="consensus")
    rights.require_own_memo(ann, coder_id=1)
    with pytest.raises(PermissionDenied, match=r"^you can change only your own memos$"):
        rights.require_own_memo(ann, coder_id=2)


def test_no_rule_lives_in_the_app():
    """The CLI and the TUI ask services.rights; they never decide a refusal themselves."""
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and "PermissionDenied" in ast.unparse(node.exc or node):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "supervises":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} (reads Actor.supervises)")
    assert not offenders, offenders
