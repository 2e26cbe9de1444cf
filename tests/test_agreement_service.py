"""Agreement through the service: studies whose turn-unit matrices equal published fixtures, checked
against the reference packages (krippendorff, scikit-learn, statsmodels) to four decimals; plus the
readings, unit kinds, filters, scopes, the blind and the `concord agreement` command."""

from __future__ import annotations

import json
import uuid

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from concord.app.cli import main
from concord.services.agreement import AgreementOptions, compute_agreement, disagreement_units
from concord.services.study import add_coder
from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import Code, Codebook, Coder, Coding, Transcript, Turn
from tests.factories import as_person, make_study

nan = np.nan


# ------------------------------------------------------------------------------------ study builders


def add_people(workspace, names):
    sue = as_person(workspace, "sue")
    for name in names:
        add_coder(sue, name)


def add_group(workspace, parent, values) -> dict[str, int]:
    """A codebook with a parent code and one child per value; returns code ids by name."""
    with workspace.store.session() as session:
        book = Codebook(key=f"fixture-{uuid.uuid4().hex[:6]}", title="Fixture", version="1", origin="test")
        session.add(book)
        session.flush()
        top = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name=parent, origin="deductive")
        session.add(top)
        session.flush()
        ids = {parent: top.id}
        for position, value in enumerate(values):
            child = Code(
                codebook_id=book.id,
                parent_id=top.id,
                guid=str(uuid.uuid4()),
                name=value,
                position=position,
                origin="deductive",
            )
            session.add(child)
            session.flush()
            ids[value] = child.id
        return ids


def add_transcript(workspace, key, speakers) -> list[tuple[int, int]]:
    """A transcript with one turn per speaker role; returns each turn's (start, end)."""
    lines, spans, offset = [], [], 0
    for number, role in enumerate(speakers, 1):
        prefix = "T: " if role == "therapist" else "P: "
        utterance = f"utterance number {number} by the {role}"
        lines.append(prefix + utterance)
        spans.append((offset + len(prefix), offset + len(prefix) + len(utterance)))
        offset += len(prefix) + len(utterance) + 1
    with workspace.store.session() as session:
        transcript = Transcript(key=key, kind="session", language="en", text="\n".join(lines))
        session.add(transcript)
        session.flush()
        for number, (role, (start, end)) in enumerate(zip(speakers, spans), 1):
            session.add(
                Turn(
                    transcript_id=transcript.id,
                    number=number,
                    speaker_role=role,
                    speaker_label="T" if role == "therapist" else "P",
                    char_start=start,
                    char_end=end,
                    nonverbal=[],
                )
            )
    return spans


def add_codings(workspace, coder, key, code_id, spans):
    with workspace.store.session() as session:
        coder_id = session.query(Coder.id).filter(Coder.name == coder).scalar()
        transcript_id = session.query(Transcript.id).filter(Transcript.key == key).scalar()
        for start, end in spans:
            session.add(
                Coding(
                    coder_id=coder_id,
                    transcript_id=transcript_id,
                    code_id=code_id,
                    start_offset=start,
                    end_offset=end,
                    phase="independent",
                    made_blind=True,
                )
            )


def code_matrix(workspace, matrix, coders, values, *, key_prefix="U", one_transcript=True, group="Rating"):
    """Code a coders x units matrix of labels (None = not rated) as turn codings.

    With ``one_transcript`` every unit is a turn of one transcript (no gaps allowed); otherwise every unit
    is a one-turn transcript of its own, so a coder can leave single units unrated."""
    ids = add_group(workspace, group, values)
    n_units = len(matrix[0])
    if one_transcript:
        spans = add_transcript(workspace, key_prefix, ["client"] * n_units)
        places = [(key_prefix, span) for span in spans]
    else:
        places = []
        for unit in range(n_units):
            key = f"{key_prefix}{unit:03d}"
            places.append((key, add_transcript(workspace, key, ["client"])[0]))
    for coder, row in zip(coders, matrix):
        by_place: dict[tuple[str, int], list] = {}
        for (key, (start, end)), label in zip(places, row):
            if label is not None:
                by_place.setdefault((key, ids[str(label)]), []).append((start + 2, end - 2))
        for (key, code_id), spans in by_place.items():
            add_codings(workspace, coder, key, code_id, spans)
    return ids


def rows_by(report, scope, statistic, **where):
    found = [
        r
        for r in report.rows
        if r.scope == scope and r.statistic == statistic and all(getattr(r, k) == v for k, v in where.items())
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


# --------------------------------------------------------------------------- reference-package matches


def test_k2011_group_on_one_turn_transcripts_matches_krippendorff(study):
    k2011 = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    add_people(study, ["cai", "dee"])
    coders = ["ann", "bob", "cai", "dee"]
    code_matrix(study, k2011, coders, [str(v) for v in range(1, 6)], one_transcript=False)
    sue = as_person(study, "sue")
    report = compute_agreement(sue, AgreementOptions(groups=("Rating",), coders=tuple(coders)))
    data = [[nan if v is None else v for v in row] for row in k2011]
    alpha = rows_by(report, "group", "krippendorff_alpha", group="Rating")
    assert round(alpha.value, 4) == round(krippendorff.alpha(data, level_of_measurement="nominal"), 4) == 0.7434
    # Units rated once (unit 12) cannot be paired; 11 of the 12 transcripts count.
    assert alpha.units == 11 and alpha.units_total == 12 and alpha.coders == 4
    assert round(rows_by(report, "group", "percent", group="Rating").value, 4) == 0.8182
    # Brennan-Prediger counts the group's 5 codes: nobody rated a unit "(none)", so it is no category of
    # the design (irrCAC's BP on these data: 0.773, pa .818, pe .200).
    bp = rows_by(report, "group", "brennan_prediger", group="Rating")
    assert bp.note == "q = 5 categories available"
    assert round(bp.value, 4) == round((0.818182 - 1 / 5) / (1 - 1 / 5), 4) == 0.7727
    fleiss = rows_by(report, "group", "fleiss_kappa", group="Rating")
    assert fleiss.value is None and "same number of coders on every unit" in fleiss.note
    cohen = rows_by(report, "group", "cohen_kappa", group="Rating")
    assert cohen.value is None and cohen.note.startswith("skipped: cohen_kappa needs exactly 2 coders")
    assert "a speaker turn" in report.unit_description and report.units_total == 12


def test_cohen_1960_table_on_one_transcript_matches_sklearn_and_statsmodels(study):
    table = [[88, 14, 18], [10, 40, 10], [2, 6, 12]]
    first, second = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            first += ["a", "b", "c"][i : i + 1] * count
            second += ["a", "b", "c"][j : j + 1] * count
    code_matrix(study, [first, second], ["ann", "bob"], ["a", "b", "c"])
    report = compute_agreement(as_person(study, "sue"), AgreementOptions(groups=("Rating",)))
    cohen = rows_by(report, "group", "cohen_kappa", group="Rating")
    assert round(cohen.value, 4) == round(cohen_kappa_score(first, second), 4) == 0.4915
    assert cohen.units == 200 and cohen.coders == 2
    assert round(rows_by(report, "group", "percent", group="Rating").value, 4) == 0.70
    ratings = np.array([[ord(x) - 97 for x in first], [ord(x) - 97 for x in second]])
    assert round(rows_by(report, "group", "krippendorff_alpha", group="Rating").value, 4) == round(
        krippendorff.alpha(ratings, level_of_measurement="nominal"), 4
    )
    assert round(rows_by(report, "group", "fleiss_kappa", group="Rating").value, 4) == round(
        fleiss_kappa(aggregate_raters(ratings.T)[0]), 4
    )


def test_fleiss_1971_six_coders_match_statsmodels_and_krippendorff(study):
    raw = [
        "444444",
        "222555",
        "233335",
        "555555",
        "222444",
        "113333",
        "333355",
        "113334",
        "114444",
        "555555",
        "144444",
        "124444",
        "222333",
        "144444",
        "224445",
        "333335",
        "111455",
        "111112",
        "224444",
        "133555",
        "555555",
        "244444",
        "224555",
        "114444",
        "144445",
        "222224",
        "111155",
        "224444",
        "133333",
        "555555",
    ]
    coders = ["ann", "bob", "cai", "dee", "eve", "fay"]
    add_people(study, coders[2:])
    matrix = [[subject[c] for subject in raw] for c in range(6)]
    code_matrix(study, matrix, coders, ["1", "2", "3", "4", "5"])
    report = compute_agreement(
        as_person(study, "sue"), AgreementOptions(groups=("Rating",), statistics=("fleiss", "alpha"))
    )
    subjects = np.array([[int(ch) for ch in subject] for subject in raw])
    fleiss = rows_by(report, "group", "fleiss_kappa", group="Rating")
    assert round(fleiss.value, 4) == round(fleiss_kappa(aggregate_raters(subjects)[0]), 4) == 0.4302
    alpha = rows_by(report, "group", "krippendorff_alpha", group="Rating")
    assert round(alpha.value, 4) == round(krippendorff.alpha(subjects.T, level_of_measurement="nominal"), 4)
    # Six coders: one coder-pair row per pair and statistic.
    pairs = [r for r in report.rows if r.scope == "coder_pair"]
    assert len(pairs) == 15 * 2
    assert {r.statistic for r in report.rows} == {"fleiss_kappa", "krippendorff_alpha"}
    # Brennan-Prediger over six coders is Randolph's free-marginal kappa with q = the 5 diagnoses.
    everything = compute_agreement(as_person(study, "sue"), AgreementOptions(groups=("Rating",)))
    bp = rows_by(everything, "group", "brennan_prediger", group="Rating")
    randolph = fleiss_kappa(aggregate_raters(subjects - 1, n_cat=5)[0], method="randolph")
    assert round(bp.value, 4) == round(randolph, 4) == 0.4444 and bp.note == "q = 5 categories available"
    pair = rows_by(everything, "coder_pair", "cohen_kappa", coder_pair=("ann", "dee"))
    assert round(pair.value, 4) == round(cohen_kappa_score(matrix[0], matrix[3]), 4)


def test_k2004_dichotomy_as_a_present_absent_code_matches_references(study):
    coder1 = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    coder2 = [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
    ids = add_group(study, "Pole", ["X", "Y"])
    spans = add_transcript(study, "D", ["client"] * 10)
    for coder, row in (("ann", coder1), ("bob", coder2)):
        add_codings(study, coder, "D", ids["X"], [s for s, v in zip(spans, row) if v])
    report = compute_agreement(as_person(study, "sue"), AgreementOptions(codes=("X",), transcripts=("D",)))
    assert (
        round(rows_by(report, "code", "krippendorff_alpha", code="X").value, 4)
        == round(krippendorff.alpha([coder1, coder2], level_of_measurement="nominal"), 4)
        == 0.0952
    )
    assert (
        round(rows_by(report, "code", "cohen_kappa", code="X").value, 4)
        == round(cohen_kappa_score(coder1, coder2), 4)
        == 0.0909
    )
    assert rows_by(report, "code", "percent", code="X").value == pytest.approx(0.6)
    assert rows_by(report, "code", "percent", code="X").disagreements == 4


# ------------------------------------------------------------------------------- readings and filters


def test_speaker_filter_and_uncoded_both_ways(study):
    ids = add_group(study, "Pole", ["X", "Y"])
    roles = ["therapist", "client"] * 5
    spans = add_transcript(study, "D", roles)
    # ann and bob code X; turns 9 and 10 nobody codes.
    ann = [1, 1, 0, 1, 1, 0, 0, 1, 0, 0]
    bob = [1, 0, 0, 1, 0, 0, 1, 1, 0, 0]
    add_codings(study, "ann", "D", ids["X"], [s for s, v in zip(spans, ann) if v])
    add_codings(study, "bob", "D", ids["X"], [s for s, v in zip(spans, bob) if v])
    sue = as_person(study, "sue")

    def alpha(**options):
        report = compute_agreement(sue, AgreementOptions(codes=("X",), statistics=("alpha",), **options))
        return report, rows_by(report, "code", "krippendorff_alpha", code="X")

    report, kept = alpha(uncoded="category")
    assert kept.units == 10 and round(kept.value, 4) == round(
        krippendorff.alpha([ann, bob], level_of_measurement="nominal"), 4
    )
    report, dropped = alpha(uncoded="exclude")
    coded = [i for i in range(10) if ann[i] or bob[i]]
    assert dropped.units == 6 and "left out" in report.unit_description
    assert round(dropped.value, 4) == round(
        krippendorff.alpha([[ann[i] for i in coded], [bob[i] for i in coded]], level_of_measurement="nominal"), 4
    )
    report, client = alpha(speaker="client")
    odd = range(1, 10, 2)
    assert client.units == 5 and "only client turns" in report.unit_description
    assert round(client.value, 4) == round(
        krippendorff.alpha([[ann[i] for i in odd], [bob[i] for i in odd]], level_of_measurement="nominal"), 4
    )


def test_group_as_one_categorical_variable_with_units_coded_by_one_coder(study):
    ids = add_group(study, "Direction", ["forward", "stuck"])
    spans = add_transcript(study, "D", ["client"] * 6)
    # ann: forward stuck forward  -     -   forward
    # bob: forward stuck stuck    stuck -   -
    for coder, labels in (
        ("ann", ["forward", "stuck", "forward", None, None, "forward"]),
        ("bob", ["forward", "stuck", "stuck", "stuck", None, None]),
    ):
        for span, label in zip(spans, labels):
            if label:
                add_codings(study, coder, "D", ids[label], [span])
    sue = as_person(study, "sue")
    report = compute_agreement(sue, AgreementOptions(groups=("Direction",)))
    data = [[0, 1, 0, 2, 2, 0], [0, 1, 1, 1, 2, 2]]  # (none) = 2
    alpha = rows_by(report, "group", "krippendorff_alpha", group="Direction")
    assert round(alpha.value, 4) == round(krippendorff.alpha(data, level_of_measurement="nominal"), 4)
    assert alpha.disagreements == 3
    units = disagreement_units(sue, AgreementOptions(groups=("Direction",)), "group", "Direction")
    assert [(u.turn, [r.category for r in u.ratings]) for u in units] == [
        (3, ["forward", "stuck"]),
        (4, ["(none)", "stuck"]),
        (6, ["forward", "(none)"]),
    ]
    assert units[0].text == "utterance number 3 by the client" and units[0].speaker == "client"
    # The per-code reading of the same codings: each value present or absent.
    per_code = compute_agreement(sue, AgreementOptions(codes=("forward", "stuck"), statistics=("cohen",)))
    forward = rows_by(per_code, "code", "cohen_kappa", code="forward")
    assert round(forward.value, 4) == round(cohen_kappa_score([1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0]), 4)
    pooled = rows_by(per_code, "pooled", "cohen_kappa")
    assert pooled.units_total == 12


def test_span_units_with_overlap_thresholds(study):
    ids = add_group(study, "Pole", ["X", "Y"])
    spans = add_transcript(study, "D", ["client"] * 3)
    (s1, _e1), (s2, _e2), _ = spans
    add_codings(study, "ann", "D", ids["X"], [(s1, s1 + 10), (s2, s2 + 10)])
    add_codings(study, "bob", "D", ids["X"], [(s1 + 1, s1 + 10), (s2 + 6, s2 + 20)])
    sue = as_person(study, "sue")
    loose = compute_agreement(sue, AgreementOptions(unit="span", overlap=0.3, codes=("X",)))
    strict = compute_agreement(sue, AgreementOptions(unit="span", overlap=0.5, codes=("X",)))
    assert rows_by(loose, "code", "percent", code="X").value == 1.0
    percent = rows_by(strict, "code", "percent", code="X")
    assert (percent.units, percent.disagreements, round(percent.value, 4)) == (3, 2, 0.3333)
    assert "50% of the shorter" in strict.unit_description


def test_transcript_units_per_transcript_and_pooled_scopes(study):
    ids = add_group(study, "Pole", ["X", "Y"])
    for key in ("A", "B", "C"):
        add_transcript(study, key, ["client"] * 2)
    for coder, coded in (
        ("ann", {"A": ["X"], "B": ["X", "Y"], "C": ["Y"]}),
        ("bob", {"A": ["X"], "B": ["Y"], "C": ["Y"]}),
    ):
        for key, names in coded.items():
            for name in names:
                add_codings(study, coder, key, ids[name], [(3, 8)])
    report = compute_agreement(
        as_person(study, "sue"), AgreementOptions(unit="transcript", codes=("X", "Y"), transcripts=("A", "B", "C"))
    )
    x = rows_by(report, "code", "percent", code="X")
    assert (x.units, x.disagreements, round(x.value, 4)) == (3, 1, 0.6667)
    pooled = rows_by(report, "pooled", "percent")
    assert (pooled.units, round(pooled.value, 4)) == (6, 0.8333)
    per_transcript = {
        r.transcript: r.value for r in report.rows if r.scope == "transcript" and r.statistic == "percent"
    }
    assert per_transcript == {"A": 1.0, "B": 0.5, "C": 1.0}


def test_bootstrap_intervals_and_consensus_phase(study):
    ids = add_group(study, "Pole", ["X", "Y"])
    spans = add_transcript(study, "D", ["client"] * 40)
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 40)
    for coder, noise in (("ann", 0.1), ("bob", 0.2)):
        flips = rng.random(40) < noise
        add_codings(study, coder, "D", ids["X"], [s for s, v in zip(spans, truth ^ flips) if v])
    sue = as_person(study, "sue")
    report = compute_agreement(sue, AgreementOptions(codes=("X",), transcripts=("D",), bootstrap=200, seed=1))
    alpha = rows_by(report, "code", "krippendorff_alpha", code="X")
    assert alpha.ci_low <= alpha.value <= alpha.ci_high and alpha.ci_low < alpha.ci_high
    again = compute_agreement(sue, AgreementOptions(codes=("X",), transcripts=("D",), bootstrap=200, seed=1))
    assert rows_by(again, "code", "krippendorff_alpha", code="X").ci_low == alpha.ci_low
    with study.store.session() as session:
        transcript = session.query(Transcript).filter(Transcript.key == "D").one()
        transcript.phase = "consensus_done"
    add_codings(study, "sue", "D", ids["X"], [s for s, v in zip(spans, truth) if v])
    with study.store.session() as session:
        session.query(Coding).filter(
            Coding.coder_id == session.query(Coder.id).filter(Coder.name == "sue").scalar_subquery()
        ).update({"phase": "consensus"}, synchronize_session=False)
    versus = compute_agreement(
        sue, AgreementOptions(codes=("X",), transcripts=("D",), phase="consensus", statistics=("cohen", "alpha"))
    )
    assert versus.coders == ("ann", "bob", "(consensus)")
    ann_vs = rows_by(versus, "coder_pair", "cohen_kappa", coder_pair=("ann", "(consensus)"))
    bob_vs = rows_by(versus, "coder_pair", "cohen_kappa", coder_pair=("bob", "(consensus)"))
    assert ann_vs.value > bob_vs.value


# ------------------------------------------------------------------------------------- rules, the CLI


def test_blind_study_keeps_agreement_from_coders(study_target):
    workspace = make_study(study_target, blind=True)
    try:
        with pytest.raises(PermissionDenied, match="supervisors and admins"):
            compute_agreement(as_person(workspace, "ann"))
        with pytest.raises(ConcordError, match="at least 2 coders"):
            compute_agreement(as_person(workspace, "sue"))
    finally:
        workspace.close()
    # The same question in an open study is anyone's to ask.
    open_target = study_target + ("-open" if "://" not in study_target else "")
    if "://" in study_target:
        return
    workspace = make_study(open_target, blind=False)
    try:
        ids = add_group(workspace, "Pole", ["X", "Y"])
        add_codings(workspace, "ann", "S-A", ids["X"], [(3, 9)])
        add_codings(workspace, "bob", "S-A", ids["X"], [(3, 9)])
        report = compute_agreement(as_person(workspace, "ann"), AgreementOptions(codes=("X",)))
        assert rows_by(report, "code", "percent", code="X").value == 1.0
    finally:
        workspace.close()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_agreement_command_json_csv_table_and_errors(study, study_target):
    add_people(study, ["cai"])
    matrix = [["a", "b", "a", "b", "a"], ["a", "b", "b", "b", "a"], ["a", "a", "a", "b", "a"]]
    code_matrix(study, matrix, ["ann", "bob", "cai"], ["a", "b"])
    result = run("agreement", study_target, "--as", "sue", "--group", "Rating", "--format", "json", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    first = rows[0]
    for field in (
        "scope",
        "statistic",
        "value",
        "units",
        "coders",
        "ci_low",
        "ci_high",
        "unit",
        "group",
        "transcript",
        "coder_pair",
        "note",
    ):
        assert field in first
    alpha = next(r for r in rows if r["scope"] == "group" and r["statistic"] == "krippendorff_alpha")
    data = [[0 if v == "a" else 1 for v in row] for row in matrix]
    assert round(alpha["value"], 4) == round(krippendorff.alpha(data, level_of_measurement="nominal"), 4)
    assert alpha["unit"] == "turn" and alpha["units"] == 5 and alpha["coders"] == 3
    cohen = next(r for r in rows if r["scope"] == "group" and r["statistic"] == "cohen_kappa")
    assert cohen["value"] is None and "exactly 2 coders" in cohen["note"]
    pair = next(
        r
        for r in rows
        if r["scope"] == "coder_pair" and r["statistic"] == "cohen_kappa" and r["coder_pair"] == ["ann", "bob"]
    )
    assert round(pair["value"], 4) == round(cohen_kappa_score(matrix[0], matrix[1]), 4)

    alone = run("agreement", study_target, "--as", "sue", "--group", "Rating", "--statistic", "cohen")
    assert alone.exit_code == 2 and "cohen_kappa needs exactly 2 coders" in alone.stderr
    two = run(
        "agreement",
        study_target,
        "--as",
        "sue",
        "--group",
        "Rating",
        "--statistic",
        "cohen",
        "--coders",
        "ann,bob",
        "--format",
        "csv",
    )
    assert two.exit_code == 0
    lines = two.stdout.splitlines()
    assert lines[0].startswith("scope,statistic,value") and len(lines) == 2
    table = run("agreement", study_target, "--as", "sue", "--group", "Rating")
    assert table.exit_code == 0
    assert table.stdout.startswith("5 units in 1 transcript(s), rated by 3 coder(s) (ann, bob, cai)")
    assert "ann / bob" in table.stdout and "note: skipped: cohen_kappa needs exactly 2 coders" in table.stdout
    refused = run("agreement", study_target, "--as", "ann")
    assert refused.exit_code == 2 and "supervisors and admins" in refused.stderr
    bad = run("agreement", study_target, "--as", "sue", "--overlap", "2", "--unit", "span")
    assert bad.exit_code == 2 and "overlap must be a share" in bad.stderr
