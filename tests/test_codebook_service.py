"""Codebooks in a study: add, round trips, theme development, history, merge suggestions."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from concord.app.cli import main
from concord.codebooks.loader import dump_codebook, load_bundled, load_codebook
from concord.codebooks.qdc import import_qdc
from concord.services import codebooks, codes, coding, transcripts
from concord.services.audit import list_events
from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from tests.factories import as_person, make_study


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    codebooks.add_codebook(as_person(workspace, "sue"), "cbt-alliance-themes")
    yield workspace
    workspace.close()


def _strip_guids(spec):
    from dataclasses import replace

    def strip(node):
        return replace(node, guid=None, children=tuple(strip(c) for c in node.children))

    return replace(spec, codes=tuple(strip(c) for c in spec.codes))


def test_yaml_and_qdc_round_trips_lose_nothing(study, tmp_path):
    sue = as_person(study, "sue")
    original = load_bundled("cbt-alliance-themes")
    assert _strip_guids(codebooks.codebook_spec(sue, "cbt-alliance-themes")) == _strip_guids(original)
    yaml_out = codebooks.export_codebook(sue, "cbt-alliance-themes", tmp_path / "cbt.yaml")
    assert _strip_guids(load_codebook(yaml_out)) == _strip_guids(original)
    qdc_out = codebooks.export_codebook(sue, "cbt-alliance-themes", tmp_path / "cbt.qdc")
    again = import_qdc(qdc_out)
    assert _strip_guids(again) == _strip_guids(codebooks.codebook_spec(sue, "cbt-alliance-themes"))
    # The GUIDs are stable: exporting again writes the same file.
    assert (
        codebooks.export_codebook(sue, "cbt-alliance-themes", tmp_path / "again.qdc").read_bytes()
        == qdc_out.read_bytes()
    )


def test_rename_and_move_keep_codings_and_history(study):
    ann, sue = as_person(study, "ann"), as_person(study, "sue")
    detail = transcripts.get_transcript(ann, "S-A")
    exploring = next(c for c in codes.visible_codes(ann) if c.name == "exploring")
    made = coding.apply_code(ann, detail.id, exploring.id, 0, 10)
    codebooks.edit_code(sue, exploring.id, name="exploring stance", definition="Reworded by the team.")
    category = codebooks.create_category(sue, "cbt-alliance-themes", "Stances")
    moved = codebooks.move_code(sue, exploring.id, category.id)
    assert moved.path == ("Stances", "exploring stance")
    assert coding.list_codings(ann, detail.id)[0].code_id == made.code_id == exploring.id
    fields = [c.field for c in codebooks.code_history(sue, exploring.id)]
    assert fields == ["name", "definition", "parent"]
    assert len(codebooks.codebook_versions(sue, "cbt-alliance-themes")) == 4
    with pytest.raises(ConcordError, match="descendant"):
        codebooks.move_code(sue, category.id, exploring.id)
    with pytest.raises(PermissionDenied):
        codebooks.edit_code(ann, exploring.id, name="mine now")


def test_merge_moves_codings_and_is_audited(study):
    ann, bob, sue = (as_person(study, n) for n in ("ann", "bob", "sue"))
    detail = transcripts.get_transcript(ann, "S-A")
    worry = codes.create_inductive_code(ann, "client expresses negative feelings")
    worried = codes.create_inductive_code(bob, "expressing negative feeling")
    hope = codes.create_inductive_code(bob, "client expresses positive feelings")
    coding.apply_code(bob, detail.id, worried.id, 5, 9)
    suggestions = codebooks.merge_suggestions(sue)
    assert [set(s.names) for s in suggestions] == [{worry.name, worried.name}]
    assert hope.name not in suggestions[0].names
    codebooks.merge_codes(sue, worried.id, worry.id)
    assert coding.list_codings(bob, detail.id)[0].code_id == worry.id
    assert worried.id not in {c.id for c in codes.visible_codes(sue)}
    event = next(e for e in list_events(sue) if e.action == "code.merge")
    assert event.details["codings_moved"] == 1 and event.details["source"] == worried.name


def test_split_keeps_the_original_and_its_codings(study):
    ann, sue = as_person(study, "ann"), as_person(study, "sue")
    detail = transcripts.get_transcript(ann, "S-A")
    stagnation = next(c for c in codes.visible_codes(ann) if c.name == "stagnation")
    coding.apply_code(ann, detail.id, stagnation.id, 0, 4)
    made = codebooks.split_code(sue, stagnation.id, ["resignation", "resistance to change"])
    assert [m.name for m in made] == ["resignation", "resistance to change"]
    assert all(m.parent_id == stagnation.parent_id for m in made)
    assert coding.list_codings(ann, detail.id)[0].code_id == stagnation.id


def test_blind_coder_sees_only_own_inductive_codes_in_the_codebook(study):
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    codes.create_inductive_code(ann, "ann's idea")
    codes.create_inductive_code(bob, "bob's idea")
    names = [c.name for c in codebooks.codebook_spec(ann, "inductive").codes]
    assert names == ["ann's idea"]
    bobs = next(c for c in codes.visible_codes(as_person(study, "sue")) if c.name == "bob's idea")
    with pytest.raises(NotFound):
        codebooks.code_history(ann, bobs.id)
    with pytest.raises(PermissionDenied):
        codebooks.codebook_version_text(ann, "inductive", 1)
    with pytest.raises(PermissionDenied):
        codebooks.codebook_versions(ann, "cbt-alliance-themes")


def test_cli_codebook_commands(tmp_path):
    study = tmp_path / "s.concord"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(study), "--codebook", "ipr-relationship-formation"]).exit_code == 0
    shown = runner.invoke(main, ["codebook", "show", str(study), "ipr-relationship-formation"])
    assert shown.exit_code == 0 and "definition:" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: X\nversion: '1'\ncodes:\n  - name: a\n    colr: red\n")
    result = runner.invoke(main, ["codebook", "import", str(study), str(bad)])
    assert result.exit_code == 2 and "bad.yaml:6" in result.stderr
    listed = runner.invoke(main, ["codebook", "list", str(study), "--format", "json"])
    assert '"x"' not in listed.stdout
    out = tmp_path / "out.yaml"
    assert (
        runner.invoke(
            main, ["codebook", "export", str(study), "ipr-relationship-formation", "--out", str(out)]
        ).exit_code
        == 0
    )
    assert load_codebook(out).code_count() == load_bundled("ipr-relationship-formation").code_count()
    assert dump_codebook(load_codebook(out)) == out.read_text()
