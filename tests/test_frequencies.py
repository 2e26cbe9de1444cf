"""Frequency, group-summary and representativeness tables on small studies with known codings.

Every expected number below is counted by hand from the transcripts and codings built here.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from concord.analysis.scoring import load_instrument, score
from concord.exporters.frequencies import (
    ALLIANCE,
    ALLIANCE_Z,
    GATHER_FOR,
    code_counts,
    count_words,
    frequency_table,
    representativeness_table,
)
from concord.services.results import gather
from concord.services.study import add_coder, init_study
from concord.storage.errors import PermissionDenied
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    Memo,
    Participant,
    QuestionnaireScore,
    Study,
    TherapySession,
    Transcript,
    TranscriptProgress,
    Turn,
)
from tests.conftest import BACKENDS, drop_pg_database, fresh_pg_url
from tests.factories import as_person, build_transcript_text, make_study

TD = "Therapeutic direction"
MF = "Therapeutic direction > Moving forward"
HOPE = "Therapeutic direction > Moving forward > hope"
GOALS = "Therapeutic direction > Moving forward > talk about goals"
ST = "Therapeutic direction > Stagnation"
TS = "Therapist style"
EX = "Therapist style > Exploring"
ER = "Therapist style > Expert role"

S_B = [
    ("T", "therapist", "What would you like to focus on today?"),
    ("P", "client", "I don't know. Nothing works anyway."),
    ("T", "therapist", "Tell me about your mother's visit. Did she stay long?"),
    ("P", "client", "She stayed <b>two</b> days & said *nothing* kind."),
]
S_C = [
    ("T", "therapist", "Did your husband help with the move?"),
    ("P", "client", "No. He never helps."),
]
S_D = [
    ("T", "therapist", "So the week felt heavy already on Sunday?"),
    ("P", "client", "Yes, but I want to try the plan again. [laughter] I can do it."),
]


def _wai_sr(responses: dict[int, int]) -> dict:
    scored = score(load_instrument("WAI-SR"), {str(k): v for k, v in responses.items()})
    return {
        "items": {str(k): v for k, v in responses.items()},
        "total": scored.total,
        "subscales": dict(scored.subscales),
    }


def _add_transcript(session, key, turns, therapy_id, nonverbal=None):
    text, spans = build_transcript_text(turns)
    row = Transcript(key=key, kind="session", session_id=therapy_id, language="en", text=text, source_name=key)
    session.add(row)
    session.flush()
    for number, (label, role, start, end) in enumerate(spans, 1):
        marks = []
        if nonverbal and number in nonverbal:
            mark_start = text.index(nonverbal[number], start)
            marks = [[mark_start, mark_start + len(nonverbal[number])]]
        session.add(
            Turn(
                transcript_id=row.id,
                number=number,
                speaker_role=role,
                speaker_label=label,
                char_start=start,
                char_end=end,
                nonverbal=marks,
            )
        )
    session.flush()
    return row


def _span(transcript: Transcript, text: str, after: str | None = None) -> tuple[int, int]:
    base = transcript.text.index(after) if after else 0
    start = transcript.text.index(text, base)
    return start, start + len(text)


def build_session_study(target: str, *, blind: bool = True):
    """Design A in miniature: dyad 1 (sessions 2 low, 3 without transcript, 5 high) and dyad 2
    (sessions 1 low, 4 high), client WAI-SR and therapist WAI-S-T scores, two themes."""
    workspace = make_study(target, blind=blind)
    with workspace.store.session() as session:
        sue = session.scalar(select(Coder).where(Coder.name == "sue"))
        ann = session.scalar(select(Coder).where(Coder.name == "ann"))
        book = session.scalar(select(Codebook).where(Codebook.key == "cbt-test"))
        codes = {c.name: c for c in session.scalars(select(Code))}
        forward, stagnation = codes["Moving forward"], codes["Stagnation"]

        def code(name, parent, position, **more):
            row = Code(
                codebook_id=book.id,
                parent_id=parent.id if parent else None,
                guid=str(uuid.uuid4()),
                name=name,
                position=position,
                origin="deductive",
                **more,
            )
            session.add(row)
            session.flush()
            return row

        goals = code("talk about goals", forward, 0, definition="Client and therapist talk about goals.")
        hope = code("hope", forward, 1)
        old_hope = code("old hope", forward, 2)
        old_hope.merged_into_id = hope.id
        discarded = code("discarded", stagnation, 0, retired_at=datetime.now(UTC))
        style = code("Therapist style", None, 1)
        exploring = code(
            "Exploring",
            style,
            0,
            pole="high",
            high_pole=True,
            definition="The therapist asks open follow-up questions.",
        )
        expert = code(
            "Expert role",
            style,
            1,
            pole="low",
            high_pole=False,
            definition="The therapist collects facts and gives advice.",
        )

        s_a = session.scalar(select(Transcript).where(Transcript.key == "S-A"))
        dyad1 = session.scalar(select(Dyad).where(Dyad.key == "1"))
        turn2 = session.scalar(select(Turn).where(Turn.transcript_id == s_a.id, Turn.number == 2))
        sighs = s_a.text.index("(sighs)")
        turn2.nonverbal = [[sighs, sighs + len("(sighs)")]]
        s5 = s_a.session_id
        client2 = Participant(pseudonym="C02", role="client")
        therapist2 = Participant(pseudonym="T02", role="therapist")
        session.add_all([client2, therapist2])
        session.flush()
        dyad2 = Dyad(key="2", client_id=client2.id, therapist_id=therapist2.id)
        session.add(dyad2)
        session.flush()
        sessions = {}
        for dyad, number in ((dyad1, 2), (dyad1, 3), (dyad2, 1), (dyad2, 4)):
            row = TherapySession(dyad_id=dyad.id, number=number)
            session.add(row)
            session.flush()
            sessions[(dyad.key, number)] = row.id
        s_b = _add_transcript(session, "S-B", S_B, sessions[("1", 2)])
        s_c = _add_transcript(session, "S-C", S_C, sessions[("2", 1)])
        s_d = _add_transcript(session, "S-D", S_D, sessions[("2", 4)], nonverbal={2: "[laughter]"})
        for key, group in ((("1", 2)), "low"), ((("2", 1)), "low"), ((("2", 4)), "high"):
            session.add(
                Attribute(target_kind="session", target_id=sessions[key], name="group", value=group, blinded=True)
            )
        # Client WAI-SR answers scored by the instrument definition; therapist totals as stored.
        clients = {
            ("1", 2): dict.fromkeys(range(1, 13), 2),  # 24
            ("1", 3): dict.fromkeys(range(1, 13), 3),  # 36
            ("2", 1): {i: (3 if i in (1, 2, 10, 3, 5, 7) else 2) for i in range(1, 13)},  # 30
            ("2", 4): {i: (5 if i in (4, 6) else 4) for i in range(1, 13)},  # 50
        }
        for key, responses in clients.items():
            scored = _wai_sr(responses)
            session.add(
                QuestionnaireScore(session_id=sessions[key], instrument="WAI-SR", respondent="client", **scored)
            )
        therapists = {("1", 2): 36, ("1", 3): 48, ("2", 1): 40, ("2", 4): 60}
        for key, total in list(therapists.items()) + [(("1", 5), 60)]:
            session_id = s5 if key == ("1", 5) else sessions[key]
            session.add(
                QuestionnaireScore(
                    session_id=session_id,
                    instrument="WAI-S-T",
                    respondent="therapist",
                    items={},
                    subscales={"task": total / 3, "bond": total / 3, "goal": total / 3},
                    total=total,
                )
            )

        def coded(transcript, code_row, span, coder=sue, phase="consensus", **more):
            session.add(
                Coding(
                    coder_id=coder.id,
                    transcript_id=transcript.id,
                    code_id=code_row.id,
                    start_offset=span[0],
                    end_offset=span[1],
                    phase=phase,
                    made_blind=True,
                    **more,
                )
            )

        coded(s_a, stagnation, _span(s_a, S_A_TURN2))
        coded(s_a, hope, _span(s_a, "But I did the homework, um-hm, some of it."), memo="hope despite doubt")
        coded(s_a, goals, _span(s_a, "That I wanted to give up. But I did the homework"))
        coded(s_a, exploring, _span(s_a, "What did you notice in yourself when that thought came?"))
        coded(s_a, forward, (s_a.text.index("when that thought came?"), _span(s_a, "That I wanted")[1]))
        coded(s_b, stagnation, _span(s_b, "I don't know. Nothing works anyway."))
        coded(s_b, expert, _span(s_b, "Tell me about your mother's visit."))
        coded(s_b, expert, _span(s_b, "Did she stay long?"))
        coded(s_c, stagnation, _span(s_c, "No. He never helps."))
        coded(s_c, forward, _span(s_c, "No. He never helps."), deleted_at=datetime.now(UTC))
        coded(s_c, discarded, _span(s_c, "He never helps."))
        coded(s_c, expert, _span(s_c, "Did your husband help with the move?"))
        coded(s_d, old_hope, _span(s_d, "but I want to try the plan again"))
        coded(s_d, forward, _span(s_d, S_D[1][2]))
        coded(s_d, exploring, _span(s_d, S_D[0][2]))
        # ann's independent layer: not part of the consensus counts.
        coded(s_a, stagnation, _span(s_a, "it never ends."), coder=ann, phase="independent")
        coded(s_a, forward, _span(s_a, "But I did the homework"), coder=ann, phase="independent")
        # The consensus is finished on every transcript, and ann marked S-A done: all of it is covered.
        for transcript in (s_a, s_b, s_c, s_d):
            transcript.phase = "consensus_done"
        session.add(TranscriptProgress(coder_id=ann.id, transcript_id=s_a.id, done_at=datetime.now(UTC)))
        session.flush()
        hope_coding = session.scalar(select(Coding.id).where(Coding.code_id == hope.id))
        session.add_all(
            [
                Memo(coder_id=sue.id, target_kind="code", target_id=exploring.id, text="Often right after a summary."),
                Memo(coder_id=ann.id, target_kind="code", target_id=exploring.id, text="Look for open questions."),
                Memo(coder_id=sue.id, target_kind="coding", target_id=hope_coding, text="Agency despite doubt."),
            ]
        )
    return workspace


S_A_TURN2 = "Hard. (sighs) I kept thinking about what Anna said /.../ it never ends."


def unblind(workspace) -> None:
    with workspace.store.session() as session:
        session.get(Study, 1).unblinded_at = datetime.now(UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_study(request, tmp_path_factory):
    """One study per backend for the tests that only read it (building one takes a while)."""
    target = str(tmp_path_factory.mktemp("shared") / "study.concord") if request.param == "sqlite" else fresh_pg_url()
    workspace = build_session_study(target)
    yield workspace
    workspace.close()
    if request.param != "sqlite":
        drop_pg_database(target)


@pytest.fixture
def study(shared_study):
    return shared_study


@pytest.fixture
def own_study(study_target):
    """A study of its own, for tests that change it (unblinding)."""
    workspace = build_session_study(study_target)
    yield workspace
    workspace.close()


def _row(tables, unit):
    return tables.wide.set_index("unit").loc[unit]


def test_words_are_letter_runs_with_inner_apostrophes_and_hyphens():
    assert count_words("I don't know, um-hm /.../ well-being 42") == 6
    assert count_words("(sighs) [laughter]") == 2
    assert count_words("/ ... /") == 0


def test_segment_counts_roll_up_the_tree(study):
    tables = frequency_table(gather(as_person(study, "sue")), measure="segments")
    wide = tables.wide.set_index("unit")
    assert tables.code_columns == [TD, MF, GOALS, HOPE, ST, TS, EX, ER]
    assert wide.loc["S-A", [TD, MF, GOALS, HOPE, ST, TS, EX, ER]].tolist() == [4, 3, 1, 1, 1, 1, 1, 0]
    assert wide.loc["S-B", [TD, MF, ST, TS, ER]].tolist() == [1, 0, 1, 2, 2]
    # The deleted coding and the retired code do not count; the merged code counts for "hope".
    assert wide.loc["S-C", [TD, MF, ST, TS, ER]].tolist() == [1, 0, 1, 1, 1]
    assert wide.loc["S-D", [TD, MF, HOPE, TS, EX]].tolist() == [2, 2, 1, 1, 1]


def test_turn_counts_are_distinct_turns(study):
    data = gather(as_person(study, "sue"), **GATHER_FOR["turns"])
    wide = frequency_table(data, measure="turns").wide.set_index("unit")
    assert wide.loc["S-A", [TD, MF, GOALS, HOPE, ST, TS]].tolist() == [3, 2, 1, 1, 1, 1]
    assert wide.loc["S-B", [TS, ER]].tolist() == [1, 1]
    assert wide.loc["S-D", [TD, MF]].tolist() == [1, 1]


def test_word_counts_leave_out_nonverbal_labels_and_double_coding(study):
    data = gather(as_person(study, "sue"), **GATHER_FOR["words"])
    wide = frequency_table(data, measure="words").wide.set_index("unit")
    # Stagnation: "Hard. (sighs) I kept ... it never ends." is 11 words without "(sighs)".
    assert wide.at["S-A", ST] == 11
    assert wide.at["S-A", GOALS] == 11 and wide.at["S-A", HOPE] == 9
    # Moving forward: the union of three overlapping spans, minus the "P:" label between turns:
    # "when that thought came?" (4) + all of turn 4 (15).
    assert wide.at["S-A", MF] == 19
    assert wide.at["S-A", TD] == 30
    assert wide.at["S-B", ER] == 10 and wide.at["S-B", ST] == 6
    # "[laughter]" is a non-verbal annotation: 13 words, not 14.
    assert wide.at["S-D", MF] == 13 and wide.at["S-D", HOPE] == 8


def test_presence_is_zero_or_one(study):
    wide = frequency_table(gather(as_person(study, "sue")), measure="presence").wide.set_index("unit")
    assert wide.loc["S-A", [TD, MF, ER]].tolist() == [1, 1, 0]
    assert wide.loc["S-B", [TS, ER, MF]].tolist() == [1, 1, 0]


def test_rows_carry_scores_alliance_and_groups(study):
    tables = frequency_table(gather(as_person(study, "sue")))
    wide = tables.wide.set_index("unit")
    assert wide.at["S-A", "dyad"] == "1" and wide.at["S-A", "session"] == 5
    assert wide.at["S-A", "group"] == "high" and wide.at["S-B", "group"] == "low"
    assert wide.at["S-A", "WAI-SR client total"] == 48 and wide.at["S-A", "WAI-SR client task"] == 16
    assert wide.at["S-B", "WAI-SR client total"] == 24 and wide.at["S-B", "WAI-SR client bond"] == 8
    assert wide.at["S-C", "WAI-SR client total"] == 30 and wide.at["S-C", "WAI-SR client goal"] == 8
    assert wide.at["S-D", "WAI-SR client goal"] == 18
    assert wide.at["S-A", "WAI-S-T therapist total"] == 60
    # Alliance means on the mean item score (every form has 12 items): dyad 1 sessions 2, 3, 5 ->
    # (24 + 36) / 24 = 2.5, (36 + 48) / 24 = 3.5, (48 + 60) / 24 = 4.5 (mean 3.5, SD 1); dyad 2 -> 35 / 12, 55 / 12.
    assert wide.at["S-A", ALLIANCE] == 4.5 and wide.at["S-B", ALLIANCE] == 2.5
    assert wide.at["S-C", ALLIANCE] == pytest.approx(35 / 12)
    assert wide.at["S-A", ALLIANCE_Z] == pytest.approx(1.0)
    assert wide.at["S-B", ALLIANCE_Z] == pytest.approx(-1.0)
    assert wide.at["S-C", ALLIANCE_Z] == pytest.approx(-1 / math.sqrt(2))
    assert wide.at["S-D", ALLIANCE_Z] == pytest.approx(1 / math.sqrt(2))
    # No perspective column: nobody in a session study has one.
    assert tables.id_columns == ["unit", "transcript", "kind", "dyad", "session"]


def test_measures_option_keeps_only_the_named_questionnaires(study):
    tables = frequency_table(gather(as_person(study, "sue")), measures=["wai_s_t"])
    assert [c for c in tables.score_columns if c.endswith("total")] == ["WAI-S-T therapist total"]
    assert ALLIANCE not in tables.score_columns


def test_rows_per_dyad_and_group_add_up(study):
    data = gather(as_person(study, "sue"))
    dyads = frequency_table(data, by="dyad").wide.set_index("unit")
    assert dyads.loc["dyad 1", [TD, TS, "sessions", "transcripts"]].tolist() == [5, 3, 2, 2]
    assert dyads.at["dyad 1", "group"] == "high; low"
    # Scores of a dyad: the mean over its sessions with transcripts (2 and 5).
    assert dyads.at["dyad 1", "WAI-SR client total"] == 36 and dyads.at["dyad 1", ALLIANCE] == 3.5
    assert ALLIANCE_Z not in dyads.columns
    groups = frequency_table(data, by="group").wide.set_index("unit")
    assert groups.loc["high", [TD, MF, TS]].tolist() == [6, 5, 2]
    assert groups.loc["low", [TD, MF, TS]].tolist() == [2, 0, 3]
    sessions = frequency_table(data, by="session").wide
    assert sessions["unit"].tolist() == [
        "dyad 1, session 2",
        "dyad 1, session 5",
        "dyad 2, session 1",
        "dyad 2, session 4",
    ]


def test_group_summary_with_exploratory_tests(study):
    summary = frequency_table(gather(as_person(study, "sue"))).summary.set_index("code path")
    assert summary.loc[TD, ["high: N", "high: n", "high: %", "high: mean segments"]].tolist() == [2, 2, 100.0, 3.0]
    assert summary.loc[ST, ["high: n", "high: %", "low: n", "low: mean segments"]].tolist() == [1, 50.0, 2, 1.0]
    # [4, 2] against [1, 1]: the most extreme of the 6 equally likely splits at either end -> p = 2/6.
    assert summary.at[TD, "test"] == "Mann-Whitney U (exact permutation)"
    assert summary.at[TD, "p (exploratory)"] == pytest.approx(1 / 3)
    presence = frequency_table(gather(as_person(study, "sue")), measure="presence").summary.set_index("code path")
    assert presence.at[ER, "test"] == "Fisher's exact"
    assert presence.at[ER, "p (exploratory)"] == pytest.approx(1 / 3)
    assert presence.at[ST, "p (exploratory)"] == pytest.approx(1.0)


def test_long_form_has_one_row_per_unit_and_code(study):
    tables = frequency_table(gather(as_person(study, "sue")))
    long = tables.long()
    assert len(long) == 4 * 8
    row = long[(long["unit"] == "S-A") & (long["code path"] == MF)].iloc[0]
    assert (row["count"], row["level"], row["code"], row["measure"]) == (3, "subtheme", "Moving forward", "segments")
    assert row[ALLIANCE] == 4.5 and row["group"] == "high"
    assert long[long["code path"] == HOPE]["level"].unique().tolist() == ["code"]


def test_layer_rules_under_the_blind(study):
    ann = as_person(study, "ann")
    with pytest.raises(PermissionDenied):
        gather(ann)
    with pytest.raises(PermissionDenied):
        gather(ann, layer="bob")
    with pytest.raises(PermissionDenied):
        gather(as_person(study, None))
    with pytest.raises(PermissionDenied):
        gather(as_person(study, None), layer="ann")
    own = gather(ann, layer="ann")
    assert own.blind and own.scores.empty
    tables = frequency_table(own)
    wide = tables.wide.set_index("unit")
    assert wide.loc["S-A", [TD, MF, ST]].tolist() == [2, 1, 1]
    assert "group" not in wide.columns and not tables.score_columns
    assert tables.id_columns == ["unit", "transcript", "kind"] and tables.summary is None
    with pytest.raises(PermissionDenied):
        frequency_table(own, by="session")
    with pytest.raises(PermissionDenied):
        frequency_table(own, by="group")
    # A supervisor may read a coder's layer.
    bobs = gather(as_person(study, "sue"), layer="ann")
    assert frequency_table(bobs).wide.set_index("unit").at["S-A", TD] == 2


def test_after_unblinding_coders_see_consensus_and_groups(own_study):
    unblind(own_study)
    tables = frequency_table(gather(as_person(own_study, "ann")))
    wide = tables.wide.set_index("unit")
    assert wide.at["S-A", "group"] == "high" and wide.at["S-A", ALLIANCE] == 4.5
    assert tables.summary is not None


def test_counting_words_or_turns_without_them_gathered_is_refused(study):
    data = gather(as_person(study, "sue"))
    with pytest.raises(ValueError, match="coded text"):
        frequency_table(data, measure="words")
    with pytest.raises(ValueError, match="needs the turns"):
        frequency_table(data, measure="turns")


def test_code_counts_without_codings_is_empty(study):
    data = gather(as_person(study, "sue"), spans=True, turns="bounds")
    empty = code_counts(data.codes, data.codings.iloc[0:0], data.turns, "words")
    assert empty.empty and list(empty.columns) == ["transcript_id", "code_id", "value"]


# -- representativeness (design B) --------------------------------------------------------------

IPR_THEMES = {
    "Relational safety": ["Safety replaces fear", "Fear stays"],
    "Equal partners": ["Equality", "No common ground"],
    "Togetherness": [],
}


def build_ipr_study(target: str):
    """Four dyads, session 3 each, a client and a therapist IPR interview (dyad 4: client only);
    dyads 1-2 positive and 3-4 frail outcome (a blinded dyad attribute)."""
    workspace = init_study(target, title="IPR study", blind=True)
    for name, role in (("ann", "coder"), ("sue", "supervisor")):
        add_coder(workspace, name, role)
    with workspace.store.session() as session:
        sue = session.scalar(select(Coder).where(Coder.name == "sue"))
        book = Codebook(key="ipr-test", title="IPR themes", version="1", origin="test")
        session.add(book)
        session.flush()
        codes = {}
        for position, (theme, poles) in enumerate(IPR_THEMES.items()):
            row = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name=theme, position=position)
            session.add(row)
            session.flush()
            codes[theme] = row
            for pole_position, pole in enumerate(poles):
                child = Code(
                    codebook_id=book.id, parent_id=row.id, guid=str(uuid.uuid4()), name=pole, position=pole_position
                )
                session.add(child)
                session.flush()
                codes[pole] = child
        transcripts = {}
        for number, outcome in ((1, "positive"), (2, "positive"), (3, "frail"), (4, "frail")):
            dyad = Dyad(key=str(number))
            session.add(dyad)
            session.flush()
            session.add(Attribute(target_kind="dyad", target_id=dyad.id, name="outcome", value=outcome, blinded=True))
            therapy = TherapySession(dyad_id=dyad.id, number=3)
            session.add(therapy)
            session.flush()
            for perspective in ("client", "therapist"):
                if number == 4 and perspective == "therapist":
                    continue
                text = "I: What happened there?\nR: I felt something shift."
                row = Transcript(
                    key=f"D{number}-S3-{perspective[0].upper()}",
                    kind="ipr",
                    perspective=perspective,
                    session_id=therapy.id,
                    text=text,
                    phase="consensus_done",
                )
                session.add(row)
                session.flush()
                session.add(
                    Turn(
                        transcript_id=row.id,
                        number=1,
                        speaker_role="interviewer",
                        speaker_label="I",
                        char_start=3,
                        char_end=23,
                        nonverbal=[],
                    )
                )
                session.add(
                    Turn(
                        transcript_id=row.id,
                        number=2,
                        speaker_role="client" if perspective == "client" else "therapist",
                        speaker_label="R",
                        char_start=27,
                        char_end=len(text),
                        nonverbal=[],
                    )
                )
                transcripts[(number, perspective)] = row
        for (number, perspective), code in (
            ((1, "client"), "Safety replaces fear"),
            ((1, "therapist"), "Fear stays"),
            ((2, "therapist"), "Equality"),
            ((3, "client"), "Togetherness"),
            ((3, "therapist"), "Togetherness"),
            ((4, "client"), "No common ground"),
        ):
            session.add(
                Coding(
                    coder_id=sue.id,
                    transcript_id=transcripts[(number, perspective)].id,
                    code_id=codes[code].id,
                    start_offset=29,
                    end_offset=40,
                    phase="consensus",
                    made_blind=True,
                )
            )
    return workspace


@pytest.fixture
def ipr_study(study_target):
    workspace = build_ipr_study(study_target)
    yield workspace
    workspace.close()


def test_representativeness_by_theme(ipr_study):
    table = representativeness_table(gather(as_person(ipr_study, "sue")), group_attribute="outcome")
    wide = table.wide
    assert list(wide.columns) == ["dyad", "outcome", "Relational safety", "Equal partners", "Togetherness"]
    assert wide.iloc[:4].values.tolist() == [
        ["1", "positive", "C+T", "", ""],
        ["2", "positive", "", "T", ""],
        ["3", "frail", "", "", "C+T"],
        ["4", "frail", "", "C", ""],
    ]
    totals = wide.iloc[4:].set_index("dyad")
    assert totals.loc["Total, all dyads", ["Relational safety", "Equal partners", "Togetherness"]].tolist() == [
        "1/4",
        "2/4",
        "1/4",
    ]
    assert totals.loc["Total, frail dyads", ["Relational safety", "Equal partners", "Togetherness"]].tolist() == [
        "0/2",
        "1/2",
        "1/2",
    ]
    assert totals.loc["Total, positive dyads", ["Relational safety", "Equal partners"]].tolist() == ["1/2", "1/2"]
    long = table.long
    row = long[(long["dyad"] == "1") & (long["code path"] == "Relational safety")].iloc[0]
    assert (row["client"], row["therapist"], row["contribution"]) == (1, 1, "C+T")


def test_representativeness_by_subtheme(ipr_study):
    table = representativeness_table(gather(as_person(ipr_study, "sue")), level="subtheme", group_attribute="outcome")
    first = table.wide.set_index("dyad").loc["1"]
    assert first["Relational safety > Safety replaces fear"] == "C"
    assert first["Relational safety > Fear stays"] == "T"
    assert "Togetherness" not in table.wide.columns


def test_representativeness_is_hidden_from_blind_coders(ipr_study):
    with pytest.raises(PermissionDenied):
        representativeness_table(gather(as_person(ipr_study, "ann"), layer="ann"))
    unblind(ipr_study)
    table = representativeness_table(gather(as_person(ipr_study, "ann")), group_attribute="outcome")
    assert table.wide.iloc[0].tolist()[:3] == ["1", "positive", "C+T"]
