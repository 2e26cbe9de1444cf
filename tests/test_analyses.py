"""Co-occurrence, code queries, themes against scores and the memo report, on hand-built studies.

The study: two session transcripts, coded by ann (both marked done) and bob (S-A only, not done).
Codebook: theme Direction (exploring, stagnation) and theme Focus (other people). ann's codings:

    S-A (group high, online)            S-B (group low, in person)
    turn 1  T  exploring                turn 1  T  exploring
    turn 2  P  stagnation, other people turn 2  P  stagnation
    turn 3  T  exploring                turn 3  T  other people
    turn 4  P  other people             turn 4  P  -
    turn 5  T  exploring, stagnation
    turn 6  P  stagnation

In S-A turn 2, stagnation covers "I keep going round" and other people "going round in circles with
my sister": they overlap on "going round". Every expected number below is counted by hand from this
table (see the comments).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.analysis import code_query
from concord.analysis.cooccurrence import cooccurrence
from concord.analysis.scores_link import adjust, fisher_ci, link_themes, model_frame
from concord.app.cli import main
from concord.services.coding import add_memo
from concord.services.study import add_coder, init_study
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    QuestionnaireScore,
    TherapySession,
    Transcript,
    TranscriptProgress,
    Turn,
)
from tests.factories import as_person

S_A = [
    ("T", "therapist", "Shall we look at the week?"),
    ("P", "client", "I keep going round in circles with my sister."),
    ("T", "therapist", "What happens in you when that starts?"),
    ("P", "client", "She always decides for everyone."),
    ("T", "therapist", "And still you feel stuck?"),
    ("P", "client", "Nothing ever changes, it never ends."),
]
S_B = [
    ("T", "therapist", "Where would you like to start?"),
    ("P", "client", "Same as always, nothing moves."),
    ("T", "therapist", "Tell me about your colleagues."),
    ("P", "client", "Fine."),
]
# (turn, code, words inside the turn or None for the whole turn)
ANN = {
    "S-A": [
        (1, "exploring", None),
        (2, "stagnation", "I keep going round"),
        (2, "other people", "going round in circles with my sister"),
        (3, "exploring", None),
        (4, "other people", None),
        (5, "exploring", None),
        (5, "stagnation", "still you feel stuck"),
        (6, "stagnation", None),
    ],
    "S-B": [(1, "exploring", None), (2, "stagnation", None), (3, "other people", None)],
}
BOB = {"S-A": [(1, "stagnation", None), (2, "exploring", None)]}


def _text(turns):
    lines, spans, offset = [], [], 0
    for label, role, said in turns:
        start = offset + len(label) + 2
        lines.append(f"{label}: {said}")
        spans.append((label, role, start, start + len(said), said))
        offset += len(lines[-1]) + 1
    return "\n".join(lines), spans


def build(target: str, *, blind: bool = True):
    workspace = init_study(target, title="Analyses", blind=blind)
    for name, role in (("ann", "coder"), ("bob", "coder"), ("sue", "supervisor")):
        add_coder(workspace, name, role)
    with workspace.store.session() as session:
        coders = {c.name: c.id for c in session.scalars(select(Coder))}
        book = Codebook(key="test", title="Test", version="1", origin="test")
        session.add(book)
        session.flush()
        codes = {}
        for position, (theme, children) in enumerate(
            (("Direction", ("exploring", "stagnation")), ("Focus", ("other people",)))
        ):
            parent = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name=theme, position=position)
            session.add(parent)
            session.flush()
            codes[theme] = parent.id
            for index, child in enumerate(children):
                row = Code(codebook_id=book.id, parent_id=parent.id, guid=str(uuid.uuid4()), name=child, position=index)
                session.add(row)
                session.flush()
                codes[child] = row.id
        for number, (key, turns, group, modality) in enumerate(
            (("S-A", S_A, "high", "online"), ("S-B", S_B, "low", "in person")), 1
        ):
            dyad = Dyad(key=str(number))
            session.add(dyad)
            session.flush()
            therapy = TherapySession(dyad_id=dyad.id, number=1)
            session.add(therapy)
            session.flush()
            text, spans = _text(turns)
            transcript = Transcript(key=key, kind="session", session_id=therapy.id, text=text)
            session.add(transcript)
            session.flush()
            for n, (label, role, start, end, _) in enumerate(spans, 1):
                session.add(
                    Turn(
                        transcript_id=transcript.id,
                        number=n,
                        speaker_role=role,
                        speaker_label=label,
                        char_start=start,
                        char_end=end,
                        nonverbal=[],
                    )
                )
            session.add_all(
                [
                    Attribute(target_kind="session", target_id=therapy.id, name="group", value=group, blinded=True),
                    Attribute(target_kind="transcript", target_id=transcript.id, name="modality", value=modality),
                ]
            )
            for coder, plan in (("ann", ANN), ("bob", BOB)):
                for turn, code, words in plan.get(key, ()):
                    _, _, start, end, said = spans[turn - 1]
                    if words is not None:
                        start += said.index(words)
                        end = start + len(words)
                    session.add(
                        Coding(
                            coder_id=coders[coder],
                            transcript_id=transcript.id,
                            code_id=codes[code],
                            start_offset=start,
                            end_offset=end,
                            phase="independent",
                            made_blind=True,
                        )
                    )
            session.add(
                TranscriptProgress(coder_id=coders["ann"], transcript_id=transcript.id, done_at=datetime.now(UTC))
            )
    return workspace


@pytest.fixture
def study(study_target):
    workspace = build(study_target)
    yield study_target
    workspace.close()


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


# -- co-occurrence ------------------------------------------------------------------------------------


def _pairs(study, *options, who="ann"):
    rows = json.loads(ok("cooccurrence", study, "--layer", "ann", "--format", "json", "--as", who, *options).stdout)
    return {(r["code A"], r["code B"]): r for r in rows}


def test_cooccurrence_same_turn_counts_c_and_jaccard(study):
    pairs = _pairs(study)
    # Same turn: exploring and stagnation meet in S-A turn 5; stagnation and other people in S-A turn 2.
    assert set(pairs) == {("exploring", "stagnation"), ("stagnation", "other people")}
    es = pairs[("exploring", "stagnation")]
    # Codings: exploring 3 + 1 = 4, stagnation 3 + 1 = 4. c = 1 / (4 + 4 - 1).
    assert (es["codings A"], es["codings B"], es["count"]) == (4, 4, 1)
    assert es["c"] == pytest.approx(1 / 7, abs=1e-4)
    # Turns: exploring {A1, A3, A5, B1}, stagnation {A2, A5, A6, B2}: 1 shared of 7.
    assert es["jaccard"] == pytest.approx(1 / 7, abs=1e-4)
    so = pairs[("stagnation", "other people")]
    # other people: 3 codings, turns {A2, A4, B3}; stagnation: 4 codings, 4 turns; 1 shared.
    assert (so["count"], so["c"], so["jaccard"]) == (1, pytest.approx(1 / 6, abs=1e-4), pytest.approx(1 / 6, abs=1e-4))


def test_cooccurrence_within_one_turn(study):
    pairs = _pairs(study, "--within", "1")
    # S-A: E1-S1, E2-S1, E3-S2, E3-S3; S-B: E(B1)-S(B2). Five pairs of codings one turn apart or less.
    assert pairs[("exploring", "stagnation")]["count"] == 5
    # S-A: E1-O1, E2-O1, E2-O2, E3-O2; S-B: E(B1)-O(B3) is two turns apart.
    assert pairs[("exploring", "other people")]["count"] == 4
    # S-A: S1-O1, S2-O2; S-B: S(B2)-O(B3).
    assert pairs[("stagnation", "other people")]["count"] == 3
    # c = 5 / (4 + 4 - 5) = 5/3: one coding meets several of the other code, so it exceeds 1.
    assert pairs[("exploring", "stagnation")]["c"] == pytest.approx(5 / 3, abs=1e-4)
    # Jaccard: every turn of E {A1, A3, A5, B1} has S within one turn, and every turn of S {A2, A5, A6, B2} has E:
    # all 7 turns of E or S meet the other code, so 7/7.
    assert pairs[("exploring", "stagnation")]["jaccard"] == pytest.approx(1.0)


def test_cooccurrence_overlap_and_directed(study):
    pairs = _pairs(study, "--within", "overlap")
    # S-A turn 2: stagnation "I keep going round" and other people "going round in circles..."; S-A turn 5:
    # exploring (the whole turn) and stagnation "still you feel stuck" inside it.
    assert set(pairs) == {("stagnation", "other people"), ("exploring", "stagnation")}
    explored = sum(len(S_A[i][2]) for i in (0, 2, 4)) + len(S_B[0][2])
    shared = len("going round")
    stagnation = len("I keep going round") + len("still you feel stuck") + len("Nothing ever changes, it never ends.")
    stagnation += len("Same as always, nothing moves.")
    other = len("going round in circles with my sister") + len("She always decides for everyone.")
    other += len("Tell me about your colleagues.")
    assert pairs[("stagnation", "other people")]["jaccard"] == pytest.approx(
        shared / (stagnation + other - shared), abs=1e-4
    )
    stuck = len("still you feel stuck")
    assert pairs[("exploring", "stagnation")]["count"] == 1
    assert pairs[("exploring", "stagnation")]["jaccard"] == pytest.approx(
        stuck / (explored + stagnation - stuck), abs=1e-4
    )
    directed = _pairs(study, "--within", "1", "--directed")
    # Exploring followed by stagnation in the next turn: A1 -> A2, A5 -> A6, B1 -> B2 (A3 -> A4 has none): 3 of 4.
    assert directed[("exploring", "stagnation")]["A followed by B"] == 3
    assert directed[("exploring", "stagnation")]["share of A"] == 0.75
    # Stagnation followed by exploring: A2 -> A3 only.
    assert directed[("stagnation", "exploring")]["A followed by B"] == 1


def test_cooccurrence_per_group_files_and_plot(study, tmp_path):
    rows = json.loads(
        ok("cooccurrence", study, "--layer", "ann", "--by", "group", "--format", "json", "--as", "sue").stdout
    )
    by_group = {(r["group"], r["code A"], r["code B"]): r["count"] for r in rows}
    assert by_group == {("high", "exploring", "stagnation"): 1, ("high", "stagnation", "other people"): 1}
    out, plot = tmp_path / "co.xlsx", tmp_path / "co.png"
    ok("cooccurrence", study, "--layer", "ann", "--level", "theme", "--out", out, "--plot", plot, "--as", "sue")
    from openpyxl import load_workbook

    book = load_workbook(out)
    counts = list(book["counts"].values)
    # Themes: Direction (4 exploring + 4 stagnation = 8 codings) and Focus (3); they meet only in A2, where
    # stagnation meets other people.
    assert counts[0] == ("code", "Direction", "Focus")
    assert counts[1] == ("Direction", 8, 1)
    assert counts[2] == ("Focus", 1, 3)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A blind coder cannot split by the blinded group, nor read another coder's layer.
    refused = run("cooccurrence", study, "--layer", "ann", "--by", "group", "--as", "ann")
    assert refused.exit_code == 2 and "hidden from you" in refused.stderr
    refused = run("cooccurrence", study, "--layer", "bob", "--as", "ann")
    assert refused.exit_code == 2 and "blind" in refused.stderr


def test_cooccurrence_matches_a_count_made_by_hand_on_frames():
    turns = pd.DataFrame(
        {"turn_id": [1, 2, 3], "transcript_id": [1, 1, 1], "char_start": [0, 10, 20], "char_end": [8, 18, 28]}
    )
    codings = pd.DataFrame({"transcript_id": [1, 1, 1], "code_id": [7, 8, 8], "start": [0, 2, 21], "end": [5, 14, 25]})
    result = cooccurrence(codings, turns, [7, 8], "turn")
    # Code 8's first coding spans turns 1-2 and meets code 7 in turn 1; its second does not.
    assert result.counts.tolist() == [[1, 1], [1, 2]]
    assert result.c[0, 1] == pytest.approx(1 / (1 + 2 - 1))
    # Turns: 7 {1}, 8 {1, 2, 3}.
    assert result.jaccard[0, 1] == pytest.approx(1 / 3)
    overlap = cooccurrence(codings, turns, [7, 8], "overlap")
    # Characters 2-5 shared; 7 covers 5, 8 covers 12 + 4.
    assert overlap.jaccard[0, 1] == pytest.approx(3 / (5 + 16 - 3))


# -- queries --------------------------------------------------------------------------------------------


def _hits(study, query, *options, who="ann"):
    result = ok("query", study, query, "--layer", "ann", "--format", "json", "--as", who, *options)
    return [(h["transcript"], h["turn"]) for h in json.loads(result.stdout)["hits"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("exploring", ["A1", "A3", "A5", "B1"]),
        ("exploring AND stagnation", ["A5"]),
        ("stagnation AND NOT exploring", ["A2", "A6", "B2"]),
        ('exploring OR "other people"', ["A1", "A2", "A3", "A4", "A5", "B1", "B3"]),
        ("Direction AND NOT stagnation", ["A1", "A3", "B1"]),  # a theme stands for the codes below it
        ("(exploring OR stagnation) AND NOT 'other people'", ["A1", "A3", "A5", "A6", "B1", "B2"]),
        ("exploring FOLLOWED BY stagnation", ["A1", "A5", "B1"]),
        ('exploring FOLLOWED BY "Focus > other people" WITHIN 2', ["A1", "A3", "B1"]),
        ("NOT exploring FOLLOWED BY stagnation AND stagnation", ["A2", "A6", "B2"]),
    ],
)
def test_query_operators_turn_by_turn(study, query, expected):
    found = _hits(study, query)
    assert [f"{t[-1]}{n}" for t, n in found] == expected


def test_query_within_n_overlap_speaker_and_where(study):
    # Same turn: exploring and other people never meet. Within one turn they do, in the turns of either.
    assert _hits(study, 'exploring AND "other people"') == []
    within = _hits(study, 'exploring AND "other people"', "--within", "1")
    assert [f"{t[-1]}{n}" for t, n in within] == ["A1", "A2", "A3", "A4", "A5"]
    # Client turns only.
    assert [f"{t[-1]}{n}" for t, n in _hits(study, "stagnation", "--speaker", "client")] == ["A2", "A6", "B2"]
    assert [f"{t[-1]}{n}" for t, n in _hits(study, "stagnation", "--where", "modality=online")] == ["A2", "A5", "A6"]
    assert [f"{t[-1]}{n}" for t, n in _hits(study, "stagnation", "--where", "modality!=online")] == ["B2"]
    overlap = json.loads(
        ok(
            "query",
            study,
            'stagnation AND "other people"',
            "--within",
            "overlap",
            "--layer",
            "ann",
            "--format",
            "json",
            "--as",
            "ann",
        ).stdout
    )["hits"]
    assert [(h["left"], h["hit"], h["right"]) for h in overlap] == [
        ("I keep ", "going round", " in circles with my sister.")
    ]
    # Only the coded words of a turn are the hit: stagnation in A5 is "still you feel stuck".
    a5 = json.loads(
        ok("query", study, "exploring AND stagnation", "--layer", "ann", "--format", "json", "--as", "ann").stdout
    )
    assert [(h["left"], h["hit"], h["right"]) for h in a5["hits"]] == [("", "And still you feel stuck?", "")]


def test_query_errors_point_at_the_position(study):
    result = run("query", study, "exploring AND (stagnation OR", "--layer", "ann", "--as", "ann")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-3].endswith("query, column 29: the query ends where a code was expected")
    assert lines[-2] == "  exploring AND (stagnation OR"
    assert lines[-1] == "  " + " " * 28 + "^"
    unknown = run("query", study, "exploring AND stagnaton", "--layer", "ann", "--as", "ann")
    assert unknown.exit_code == 2 and "column 15: no code named 'stagnaton'" in unknown.stderr
    assert unknown.stderr.strip().splitlines()[-1] == "  " + " " * 14 + "^"
    for bad, column in (("NOT exploring", 1), ("exploring FOLLOWED stagnation", 20), ("exploring stagnation)", 21)):
        with pytest.raises(code_query.QuerySyntaxError) as caught:
            code_query.parse(bad)
        assert caught.value.position + 1 == column, bad


def test_query_report_and_blind_layers(study, tmp_path):
    out = tmp_path / "hits.md"
    result = ok(
        "query", study, "exploring AND stagnation", "--layer", "ann", "--report", out, "--context", "1", "--as", "ann"
    )
    assert "1 hits" in result.stdout
    text = out.read_text(encoding="utf-8")
    assert "**still you feel stuck**" not in text  # the hit is the coded stretch of the anchor codes
    assert "**And still you feel stuck?**" in text
    assert "She always decides for everyone" in text and "Nothing ever changes" in text  # context turns
    assert "high alliance" not in text  # the group is hidden from a blind coder
    supervisor = tmp_path / "sue.md"
    ok("query", study, "exploring AND stagnation", "--layer", "ann", "--report", supervisor, "--as", "sue")
    assert "Session S-A, high alliance" in supervisor.read_text(encoding="utf-8")
    # bob's layer covers nothing he marked done; ann may not read it at all while blind.
    assert run("query", study, "exploring", "--layer", "bob", "--as", "ann").exit_code == 2
    bob = json.loads(
        ok(
            "query", study, "exploring", "--layer", "bob", "--covered", "coded", "--format", "json", "--as", "bob"
        ).stdout
    )
    assert [(h["transcript"], h["turn"]) for h in bob["hits"]] == [("S-A", 2)]


# -- themes against scores -------------------------------------------------------------------------------


def _simulated(seed: int = 20240611) -> pd.DataFrame:
    """30 patients x 8 sessions. Theme W: rate rises with the session's deviation from the patient's mean
    score (a within-patient effect of 1.5). Theme B: rate rises with the patient's mean score only."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(30):
        mean = rng.normal(5.0, 1.0)
        for session in range(8):
            deviation = rng.normal(0.0, 0.7)
            within = 2.0 + 1.5 * deviation + rng.normal(0.0, 0.5)
            between = 2.0 + 1.5 * (mean - 5.0) + rng.normal(0.0, 0.5)
            rows.append(
                {
                    "patient": f"P{patient}",
                    "session": session + 1,
                    "score": mean + deviation,
                    "W: rate": within,
                    "W: present": float(within > 2.0),
                    "B: rate": between,
                    "B: present": float(between > 2.0),
                }
            )
    return pd.DataFrame(rows)


def test_the_models_are_statsmodels_on_the_same_frame():
    import statsmodels.api as sm

    sessions = _simulated()
    results = link_themes(sessions, ["W", "B"]).set_index("theme")
    frame = model_frame(sessions)
    exog = sm.add_constant(frame[["score_within", "score_between"]])
    for theme in ("W", "B"):
        direct = sm.MixedLM(frame[f"{theme}: rate"], exog, groups=frame["patient"]).fit(reml=True)
        assert results.at[theme, "LMM within b"] == pytest.approx(direct.params["score_within"], rel=1e-9)
        assert results.at[theme, "LMM within SE"] == pytest.approx(direct.bse["score_within"], rel=1e-9)
        assert results.at[theme, "LMM between b"] == pytest.approx(direct.params["score_between"], rel=1e-9)
        assert results.at[theme, "LMM within p"] == pytest.approx(direct.pvalues["score_within"], rel=1e-6)
        gee = sm.GEE(
            frame[f"{theme}: present"],
            exog,
            groups=frame["patient"],
            family=sm.families.Binomial(),
            cov_struct=sm.cov_struct.Exchangeable(),
        ).fit()
        assert results.at[theme, "GEE within b"] == pytest.approx(gee.params["score_within"], rel=1e-9)
        assert results.at[theme, "GEE within p"] == pytest.approx(gee.pvalues["score_within"], rel=1e-6)
    # The correction across themes is statsmodels' Holm.
    from statsmodels.stats.multitest import multipletests

    raw = results["LMM within p"].to_numpy()
    assert results["LMM within p adjusted"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    # Benjamini-Hochberg over the known p-values only: 0.01 * 2/1 and 0.04 * 2/2; the unknown one stays unknown.
    corrected = adjust([0.01, float("nan"), 0.04], "fdr_bh")
    assert corrected[0] == pytest.approx(0.02) and math.isnan(corrected[1]) and corrected[2] == pytest.approx(0.04)


def test_a_planted_within_patient_effect_is_found_and_a_between_one_is_not_taken_for_it():
    results = link_themes(_simulated(), ["W", "B"]).set_index("theme")
    # W: the within coefficient recovers the planted 1.5; the between one is near 0.
    assert results.at["W", "LMM within b"] == pytest.approx(1.5, abs=0.15)
    assert results.at["W", "LMM within p adjusted"] < 0.001
    assert abs(results.at["W", "LMM between b"]) < 0.5
    # B: the pooled correlation is strong, yet the within coefficient is near 0 and not significant,
    # while the between coefficient carries the planted 1.5.
    assert results.at["B", "r"] > 0.6
    assert abs(results.at["B", "LMM within b"]) < 0.2
    assert results.at["B", "LMM within p adjusted"] > 0.05
    assert results.at["B", "LMM between b"] == pytest.approx(1.5, abs=0.25)
    assert results.at["W", "r within"] > 0.8 and abs(results.at["B", "r within"]) < 0.2


def test_fisher_interval():
    low, high = fisher_ci(0.5, 28)
    spread = 1.959963984540054 / math.sqrt(25)
    assert (low, high) == (
        pytest.approx(math.tanh(math.atanh(0.5) - spread)),
        pytest.approx(math.tanh(math.atanh(0.5) + spread)),
    )
    assert all(math.isnan(v) for v in fisher_ci(0.5, 3))


def build_scored(target: str):
    """Four patients x three sessions, each with a transcript of four turns; ann codes exploring in
    session s of patient p (s + p) % 3 times, and the client's WAI-SR total is 40 + p + s."""
    workspace = init_study(target, title="Scored", blind=True)
    for name, role in (("ann", "coder"), ("sue", "supervisor")):
        add_coder(workspace, name, role)
    expected = []
    with workspace.store.session() as session:
        ann = session.scalar(select(Coder.id).where(Coder.name == "ann"))
        book = Codebook(key="test", title="Test", version="1", origin="test")
        session.add(book)
        session.flush()
        theme = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name="Direction", position=0)
        session.add(theme)
        session.flush()
        exploring = Code(codebook_id=book.id, parent_id=theme.id, guid=str(uuid.uuid4()), name="exploring", position=0)
        session.add(exploring)
        session.flush()
        text, spans = _text(S_B)
        for p in range(4):
            dyad = Dyad(key=f"D{p}")
            session.add(dyad)
            session.flush()
            for s in range(1, 4):
                therapy = TherapySession(dyad_id=dyad.id, number=s)
                session.add(therapy)
                session.flush()
                transcript = Transcript(key=f"D{p}-{s}", kind="session", session_id=therapy.id, text=text)
                session.add(transcript)
                session.flush()
                for n, (label, role, start, end, _) in enumerate(spans, 1):
                    session.add(
                        Turn(
                            transcript_id=transcript.id,
                            number=n,
                            speaker_role=role,
                            speaker_label=label,
                            char_start=start,
                            char_end=end,
                            nonverbal=[],
                        )
                    )
                count = (s + p) % 3
                for k in range(count):
                    _, _, start, end, _ = spans[k]
                    session.add(
                        Coding(
                            coder_id=ann,
                            transcript_id=transcript.id,
                            code_id=exploring.id,
                            start_offset=start,
                            end_offset=end,
                            phase="independent",
                            made_blind=True,
                        )
                    )
                session.add(TranscriptProgress(coder_id=ann, transcript_id=transcript.id, done_at=datetime.now(UTC)))
                session.add(
                    QuestionnaireScore(
                        session_id=therapy.id,
                        instrument="WAI-SR",
                        respondent="client",
                        items={},
                        subscales={"bond": 3.0 + s},
                        total=40.0 + p + s,
                    )
                )
                expected.append((f"D{p}", s, count, 40.0 + p + s))
    return workspace, expected


def test_scores_link_per_session_and_models(study_target, tmp_path):
    from concord.services.analyses import scores_link

    workspace, expected = build_scored(study_target)
    try:
        link = scores_link(as_person(workspace, "sue"), instrument="wai sr", layer="ann")
        table = link.sessions.set_index(["patient", "session"])
        for patient, session, count, score in expected:
            row = table.loc[(patient, session)]
            assert row["Direction: count"] == count
            # Four turns per transcript: per 100 turns, count * 25.
            assert row["Direction: rate"] == pytest.approx(count * 25.0)
            assert row["Direction: present"] == int(count > 0)
            assert row["score"] == score
        direct = link_themes(link.sessions, ["Direction"])
        assert link.results["LMM within b"].iloc[0] == pytest.approx(direct["LMM within b"].iloc[0])
        words = scores_link(as_person(workspace, "sue"), instrument="WAI-SR", layer="ann", per="words", subscale="bond")
        # S-B's turns say 6 + 5 + 5 + 1 = 17 words.
        first = words.sessions.iloc[0]
        assert first["words"] == 17 and first["Direction: rate"] == pytest.approx(first["Direction: count"] / 17 * 1000)
        assert first["score"] == 3.0 + first["session"]
    finally:
        workspace.close()
    for suffix in (".docx", ".md", ".html", ".xlsx", ".csv", ".json"):
        out = tmp_path / f"link{suffix}"
        ok(
            "export",
            "scores-link",
            study_target,
            "--instrument",
            "WAI-SR",
            "--layer",
            "ann",
            "--out",
            out,
            "--as",
            "sue",
        )
        assert out.exists()
    assert (tmp_path / "link.figure-1.png").exists()
    assert "Exploratory" in (tmp_path / "link.md").read_text(encoding="utf-8")
    refused = run(
        "export",
        "scores-link",
        study_target,
        "--instrument",
        "WAI-SR",
        "--layer",
        "ann",
        "--out",
        tmp_path / "x.md",
        "--as",
        "ann",
    )
    assert refused.exit_code == 2 and "blind" in refused.stderr
    missing = run(
        "export",
        "scores-link",
        study_target,
        "--instrument",
        "BDI",
        "--layer",
        "ann",
        "--out",
        tmp_path / "x.md",
        "--as",
        "sue",
    )
    assert missing.exit_code == 2 and "no instrument 'BDI'" in missing.stderr


# -- memos ---------------------------------------------------------------------------------------------------


def test_memo_report_blind_coder_gets_only_their_own(study, tmp_path):
    workspace = build_memos(study)
    try:
        ann_out, sue_out = tmp_path / "ann.md", tmp_path / "sue.html"
        ok("export", "memos", study, "--out", ann_out, "--as", "ann")
        text = ann_out.read_text(encoding="utf-8")
        assert "ANN code memo" in text and "ANN turn memo" in text and "ANN coding note" in text
        assert "BOB" not in text
        assert "Direction \\> exploring" in text  # a coding's memo is filed under its code's path
        ok("export", "memos", study, "--out", sue_out, "--by", "coder", "--as", "sue")
        html_text = sue_out.read_text(encoding="utf-8")
        assert "ANN code memo" in html_text and "BOB transcript memo" in html_text
        docx = tmp_path / "memos.docx"
        ok("export", "memos", study, "--out", docx, "--by", "transcript", "--as", "bob")
        from docx import Document

        body = "\n".join(p.text for p in Document(str(docx)).paragraphs)
        assert "BOB transcript memo" in body and "ANN" not in body
    finally:
        workspace.close()


def build_memos(target: str):
    from concord.services.workspace import Workspace

    ann = Workspace.open(target, "ann")
    bob = as_person(ann, "bob")
    with ann.store.reader() as session:
        code = session.scalar(select(Code.id).where(Code.name == "exploring"))
        transcript = session.scalar(select(Transcript.id).where(Transcript.key == "S-A"))
        turn = session.scalar(select(Turn.id).where(Turn.transcript_id == transcript, Turn.number == 3))
        coding = session.scalar(
            select(Coding.id)
            .join(Coder, Coder.id == Coding.coder_id)
            .where(Coder.name == "ann", Coding.code_id == code)
        )
    add_memo(ann, "code", code, "ANN code memo")
    add_memo(ann, "turn", turn, "ANN turn memo")
    add_memo(bob, "transcript", transcript, "BOB transcript memo")
    with ann.store.session() as session:
        session.get(Coding, coding).memo = "ANN coding note"
    return ann
