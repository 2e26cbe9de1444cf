"""Agreement that fits the design: speaker-specific groups (applies_to, the never-applied rule, --speaker),
unit counts per group, Brennan-Prediger's q, and codes that carry a value on a rating scale, from the codebook
through coding, import and the workbench to alpha at the scale's level and weighted kappa.

Every expected figure is computed here by hand or by the reference packages (krippendorff, scikit-learn) from
the same table the study holds, never read back from Concord.
"""

from __future__ import annotations

import sqlite3

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score

from concord.app.cli import main
from concord.codebooks.loader import load_codebook
from concord.services.agreement import AgreementOptions, compute_agreement
from concord.services.codebooks import add_codebook_spec, codebook_spec
from concord.services.coding import apply_code, change_coding, list_codings, undo
from concord.services.importing import import_codings
from concord.storage.db import create_study_store, open_study
from concord.storage.errors import ConcordError, InputError
from concord.storage.models import Code, Coder, Coding, Transcript
from concord.storage.revisions import head_revision
from tests.factories import as_person, make_study
from tests.test_agreement_service import add_people, add_transcript, rows_by

nan = np.nan

DESIGN_BOOK = """
id: design
title: Two sides of the conversation
codes:
  - name: therapist behaviour
    {therapist_applies}
    children:
      - name: warm
      - name: cold
  - name: client talk
    {client_applies}
    children:
      - name: open
      - name: closed
  - name: warmth rating
    scale: {{min: 1, max: 5, level: ordinal}}
  - name: minutes
    scale: {{min: 0, max: 60, level: interval}}
"""

# Ten turns, therapist and client in turn. ann and bob code the therapist behaviour on the therapist turns
# only and the client talk on the client turns only (None: the coder left the turn uncoded).
ROLES = ["therapist", "client"] * 5
THERAPIST = {"ann": ["warm", "warm", "cold", "warm", "cold"], "bob": ["warm", "cold", "cold", "warm", None]}
CLIENT = {"ann": ["open", "closed", "open", "open", "closed"], "bob": ["open", "closed", "closed", "open", "closed"]}


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def add_book(workspace, *, declared: bool) -> dict[str, int]:
    text = DESIGN_BOOK.format(
        therapist_applies="applies_to: therapist" if declared else "",
        client_applies="applies_to: client" if declared else "",
    )
    add_codebook_spec(as_person(workspace, "sue"), load_codebook(text))
    with workspace.store.reader() as session:
        return {name: code_id for code_id, name in session.query(Code.id, Code.name).all()}


def code_turns(workspace, coder, key, spans, codes, labels, *, values=None):
    with workspace.store.session() as session:
        coder_id = session.query(Coder.id).filter(Coder.name == coder).scalar()
        transcript_id = session.query(Transcript.id).filter(Transcript.key == key).scalar()
        for index, (span, label) in enumerate(zip(spans, labels)):
            if label is None:
                continue
            session.add(
                Coding(
                    coder_id=coder_id,
                    transcript_id=transcript_id,
                    code_id=codes[label],
                    start_offset=span[0],
                    end_offset=span[1],
                    value=None if values is None else values[index],
                    phase="independent",
                    made_blind=True,
                )
            )


def two_sided_study(workspace, *, declared: bool):
    codes = add_book(workspace, declared=declared)
    spans = add_transcript(workspace, "D", ROLES)
    therapist_turns, client_turns = spans[0::2], spans[1::2]
    for coder in ("ann", "bob"):
        code_turns(workspace, coder, "D", therapist_turns, codes, THERAPIST[coder])
        code_turns(workspace, coder, "D", client_turns, codes, CLIENT[coder])
    return codes


def nominal_alpha(rows: dict[str, list[str | None]], empty: str = "(none)") -> float:
    labels = sorted({v for row in rows.values() for v in row if v is not None} | {empty})
    data = [[labels.index(v if v is not None else empty) for v in row] for row in rows.values()]
    return krippendorff.alpha(data, level_of_measurement="nominal")


# --------------------------------------------------------------------------------- speakers and units


def test_two_speaker_specific_groups_equal_the_per_speaker_computation_without_any_option(study):
    two_sided_study(study, declared=False)
    sue = as_person(study, "sue")
    groups = ("therapist behaviour", "client talk")
    plain = compute_agreement(sue, AgreementOptions(groups=groups))
    therapist = compute_agreement(sue, AgreementOptions(groups=groups[:1], speaker="therapist"))
    client = compute_agreement(sue, AgreementOptions(groups=groups[1:], speaker="client"))
    for statistic in ("krippendorff_alpha", "cohen_kappa", "percent", "brennan_prediger"):
        for group, alone in (("therapist behaviour", therapist), ("client talk", client)):
            mine = rows_by(plain, "group", statistic, group=group)
            assert mine.value == rows_by(alone, "group", statistic, group=group).value, (group, statistic)
            assert mine.units_total == 5
    # The same by hand: bob left therapist turn 5 uncoded, a "(none)" of his against ann's "cold".
    assert rows_by(plain, "group", "krippendorff_alpha", group="therapist behaviour").value == pytest.approx(
        nominal_alpha(THERAPIST)
    )
    assert rows_by(plain, "group", "cohen_kappa", group="client talk").value == pytest.approx(
        cohen_kappa_score(CLIENT["ann"], CLIENT["bob"])
    )
    # Each group was never applied to the other side's turns: left out, and said.
    assert len(plain.warnings) == 2
    assert any("group 'therapist behaviour' was never applied to client turns" in w for w in plain.warnings)
    assert any("(5 therapist)" in w for w in plain.warnings)
    # The headline never folds the two groups' units into one figure.
    assert plain.units_total == 10
    assert "units per code or group: therapist behaviour 5 (therapist turns); client talk 5 (client turns)" in (
        plain.headline
    )
    assert {s.name: s.speakers for s in plain.summaries} == {
        "therapist behaviour": ("therapist",),
        "client talk": ("client",),
    }


def test_speaker_all_counts_the_other_sides_turns_as_agreement_on_none(study):
    two_sided_study(study, declared=False)
    sue = as_person(study, "sue")
    everything = compute_agreement(sue, AgreementOptions(groups=("therapist behaviour",), speaker="all"))
    inflated = {coder: [x for pair in zip(row, [None] * 5) for x in pair] for coder, row in THERAPIST.items()}
    alpha = rows_by(everything, "group", "krippendorff_alpha", group="therapist behaviour")
    assert alpha.units_total == 10 and alpha.value == pytest.approx(nominal_alpha(inflated))
    assert alpha.value > nominal_alpha(THERAPIST)
    assert everything.warnings == () and "every speaker's turns" in everything.unit_description


def test_declared_applies_to_gives_the_same_figures_without_warnings(study):
    two_sided_study(study, declared=True)
    sue = as_person(study, "sue")
    declared = compute_agreement(sue, AgreementOptions(groups=("therapist behaviour", "client talk")))
    assert declared.warnings == ()
    alpha = rows_by(declared, "group", "krippendorff_alpha", group="therapist behaviour")
    assert alpha.value == pytest.approx(nominal_alpha(THERAPIST)) and alpha.speakers == ("therapist",)
    # A code under a declared group inherits its speakers (presence reading).
    warm = compute_agreement(sue, AgreementOptions(codes=("warm",), statistics=("percent",)))
    row = rows_by(warm, "code", "percent", code="warm")
    assert row.speakers == ("therapist",) and row.units_total == 5
    assert codebook_spec(sue, "design").find("client talk").applies_to == ("client",)


def test_brennan_prediger_counts_the_codes_and_none_only_where_given(study):
    two_sided_study(study, declared=True)
    sue = as_person(study, "sue")
    report = compute_agreement(sue, AgreementOptions(groups=("therapist behaviour", "client talk")))
    # Client talk: every turn got a value from both, so q = 2 codes: (pa - 1/2) / (1 - 1/2).
    client = rows_by(report, "group", "brennan_prediger", group="client talk")
    agree = np.mean([a == b for a, b in zip(CLIENT["ann"], CLIENT["bob"])])
    assert client.note == "q = 2 categories available" and client.value == pytest.approx((agree - 0.5) / 0.5)
    # Therapist behaviour: bob left one turn without a value, so "(none)" is a category here: q = 3.
    therapist = rows_by(report, "group", "brennan_prediger", group="therapist behaviour")
    agree = np.mean([a == b for a, b in zip(THERAPIST["ann"], THERAPIST["bob"])])
    assert therapist.note == "q = 3 categories available"
    assert therapist.value == pytest.approx((agree - 1 / 3) / (1 - 1 / 3))


def test_cli_prints_warnings_on_stderr_and_units_per_group(study):
    two_sided_study(study, declared=False)
    study.close()
    runner = CliRunner()
    target = study.store.target
    args = ["agreement", target, "--as", "sue", "--group", "therapist behaviour", "--group", "client talk"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "warning: group 'therapist behaviour' was never applied to client turns" in result.stderr
    assert "units per code or group: therapist behaviour 5 (therapist turns)" in result.stdout
    assert "turns of" in result.stdout
    result = runner.invoke(main, [*args, "--speaker", "all", "--format", "json"])
    assert result.exit_code == 0 and "warning:" not in result.stderr
    result = runner.invoke(main, [*args, "--speaker", "all", "--speaker", "client"])
    assert result.exit_code == 2 and "give it alone" in result.stderr


# ------------------------------------------------------------------------------------- values on a scale

K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_k2011_values_on_an_ordinal_scale_give_815_and_interval_849(study):
    codes = add_book(study, declared=False)
    add_people(study, ["cai", "dee"])
    coders = ["ann", "bob", "cai", "dee"]
    for unit in range(12):
        key = f"V{unit:02d}"
        span = add_transcript(study, key, ["client"])
        for coder, row in zip(coders, K2011):
            if row[unit] is not None:
                code_turns(study, coder, key, span, codes, ["warmth rating"], values=[row[unit]])
    sue = as_person(study, "sue")
    report = compute_agreement(sue, AgreementOptions(codes=("warmth rating",)))
    data = [[nan if v is None else v for v in row] for row in K2011]
    ordinal = rows_by(report, "scale", "krippendorff_alpha_ordinal", code="warmth rating")
    assert round(ordinal.value, 3) == 0.815
    assert round(ordinal.value, 4) == round(krippendorff.alpha(data, level_of_measurement="ordinal"), 4)
    assert ordinal.units == 11 and ordinal.units_total == 12 and ordinal.coders == 4
    # Four coders: weighted kappa comes per pair.
    pair = rows_by(report, "coder_pair", "weighted_kappa_quadratic", code="warmth rating", coder_pair=("ann", "dee"))
    both = [u for u in range(12) if K2011[0][u] is not None and K2011[3][u] is not None]
    assert round(pair.value, 4) == round(
        cohen_kappa_score(
            [K2011[0][u] for u in both], [K2011[3][u] for u in both], labels=[1, 2, 3, 4, 5], weights="quadratic"
        ),
        4,
    )
    # Presence and value readings rest on the same twelve turns: one figure in the headline.
    assert [(s.reading, s.units) for s in report.summaries] == [("code", 12), ("scale", 12)]
    assert report.headline.startswith("12 units in 12 transcript(s)")

    # The same values on an interval scale.
    with study.store.session() as session:
        session.get(Code, codes["warmth rating"]).scale = {"level": "interval", "min": 1, "max": 5}
    interval = compute_agreement(sue, AgreementOptions(codes=("warmth rating",), statistics=("alpha",)))
    row = rows_by(interval, "scale", "krippendorff_alpha_interval", code="warmth rating")
    assert round(row.value, 3) == 0.849
    assert round(row.value, 4) == round(krippendorff.alpha(data, level_of_measurement="interval"), 4)


def test_two_coders_weighted_kappa_matches_scikit_learn(study):
    codes = add_book(study, declared=False)
    rng = np.random.default_rng(4)
    ann = rng.integers(1, 6, 30)
    bob = np.clip(ann + rng.integers(-1, 2, 30), 1, 5)
    spans = add_transcript(study, "W", ["client"] * 30)
    code_turns(study, "ann", "W", spans, codes, ["warmth rating"] * 30, values=ann.tolist())
    code_turns(study, "bob", "W", spans, codes, ["warmth rating"] * 30, values=bob.tolist())
    report = compute_agreement(as_person(study, "sue"), AgreementOptions(codes=("warmth rating",)))
    for weights in ("linear", "quadratic"):
        row = rows_by(report, "scale", f"weighted_kappa_{weights}", code="warmth rating")
        expected = cohen_kappa_score(ann, bob, labels=[1, 2, 3, 4, 5], weights=weights)
        assert round(row.value, 4) == round(expected, 4)
    statistics = {r.statistic for r in report.rows if r.scope == "scale"}
    assert statistics == {
        "percent",
        "krippendorff_alpha_ordinal",
        "weighted_kappa_linear",
        "weighted_kappa_quadratic",
    }
    with pytest.raises(ConcordError, match="does not fit"):
        compute_agreement(as_person(study, "sue"), AgreementOptions(groups=("client talk",), statistics=("wkappa",)))


def test_one_coder_giving_two_values_on_a_unit_is_left_out_and_said(study):
    codes = add_book(study, declared=False)
    spans = add_transcript(study, "C", ["client"] * 3)
    code_turns(study, "ann", "C", spans, codes, ["warmth rating"] * 3, values=[1, 2, 3])
    code_turns(study, "bob", "C", spans, codes, ["warmth rating"] * 3, values=[1, 2, 4])
    code_turns(study, "bob", "C", spans[:1], codes, ["warmth rating"], values=[5])
    report = compute_agreement(as_person(study, "sue"), AgreementOptions(codes=("warmth rating",)))
    row = rows_by(report, "scale", "percent", code="warmth rating")
    assert row.units == 2 and "1 rating(s) left out" in row.note


# ----------------------------------------------------------------------------- entering values


def test_apply_code_checks_the_value_against_the_scale(study):
    codes = add_book(study, declared=False)
    spans = add_transcript(study, "E", ["client", "therapist"])
    ann = as_person(study, "ann")
    with study.store.reader() as session:
        transcript_id = session.query(Transcript.id).filter(Transcript.key == "E").scalar()
    with pytest.raises(ConcordError, match=r"needs a value on its scale \(ordinal 1-5\)"):
        apply_code(ann, transcript_id, codes["warmth rating"], *spans[0])
    with pytest.raises(ConcordError, match="7 is not on the scale"):
        apply_code(ann, transcript_id, codes["warmth rating"], *spans[0], value=7)
    with pytest.raises(ConcordError, match="carries no value"):
        apply_code(ann, transcript_id, codes["warm"], *spans[1], value=2)
    coding = apply_code(ann, transcript_id, codes["warmth rating"], *spans[0], value=4)
    assert coding.value == 4.0
    assert change_coding(ann, coding.id, value=2).value == 2.0
    undo(ann, transcript_id)
    assert [c.value for c in list_codings(ann, transcript_id)] == [4.0]
    minutes = apply_code(ann, transcript_id, codes["minutes"], *spans[1], value=12.5)
    assert minutes.value == 12.5
    # Moved to a code without a scale, a coding drops its value.
    assert change_coding(ann, minutes.id, code_id=codes["warm"]).value is None


def test_import_codings_reads_the_value_column(study, tmp_path):
    add_book(study, declared=False)
    add_transcript(study, "I", ["client", "therapist"])
    sheet = tmp_path / "codings.csv"
    sheet.write_text(
        'transcript,turn,coder,code,value\nI,1,ann,warmth rating,3\nI,1,bob,warmth rating,"4,0"\nI,2,ann,warm,\n',
        encoding="utf-8",
    )
    report = import_codings(as_person(study, "sue"), str(sheet))
    assert report.codings == 3
    with study.store.reader() as session:
        values = sorted(v for (v,) in session.query(Coding.value).filter(Coding.value.is_not(None)).all())
    assert values == [3.0, 4.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("transcript,turn,coder,code,value\nI,1,ann,warmth rating,9\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.csv:2: column value: 9 is not on the scale"):
        import_codings(as_person(study, "sue"), str(bad))
    missing = tmp_path / "missing.csv"
    missing.write_text("transcript,turn,coder,code\nI,1,ann,warmth rating\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing\.csv:2: column value: code 'warmth rating' needs a value"):
        import_codings(as_person(study, "sue"), str(missing))
    word = tmp_path / "word.csv"
    word.write_text("transcript,turn,coder,code,value\nI,1,ann,warmth rating,high\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: column value: 'high' is not a number"):
        import_codings(as_person(study, "sue"), str(word))


def test_a_study_from_before_values_is_migrated(tmp_path):
    target = str(tmp_path / "old.concord")
    create_study_store(target, revision="0003").close()
    with sqlite3.connect(target) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(codings)")}
    assert "value" not in columns
    open_study(target).close()
    with sqlite3.connect(target) as connection:
        codings = {row[1] for row in connection.execute("PRAGMA table_info(codings)")}
        codes = {row[1] for row in connection.execute("PRAGMA table_info(codes)")}
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert "value" in codings and {"applies_to", "scale"} <= codes and revision == head_revision()
