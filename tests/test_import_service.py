"""Importing into a study: whole or not at all, pseudonymised, linked to sessions; scores and codings."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from concord.app.cli import main
from concord.services import coding, transcripts
from concord.services.importing import import_codings, import_measures, import_transcripts
from concord.storage.errors import ConcordError, InputError
from concord.storage.models import Attribute, Coding, QuestionnaireScore, TherapySession, Transcript, Turn
from tests.factories import as_person, make_study
from tests.mibot import mibot_missing_reason, read_mibot_utterances, write_mibot_turn_table

SESSION = "T: Good to see you again, Anna.\nP: (sighs) It has been a hard week.\nT: Tell me more.\n"


def _counts(workspace) -> dict:
    with workspace.store.reader() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Transcript, Turn, Attribute, TherapySession, QuestionnaireScore, Coding)
        }


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    # Once a study has a supervisor, importing is theirs to do.
    yield as_person(workspace, "sue")
    workspace.close()


def test_one_bad_file_rolls_back_the_whole_import(study, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(SESSION)
    bad = tmp_path / "bad.txt"
    bad.write_text("T: fine\nX: who is this?\n")
    before = _counts(study)
    with pytest.raises(InputError) as error:
        import_transcripts(study, [str(good), str(bad)], pseudonymize=False)
    assert "bad.txt" in str(error.value) and ":2" in str(error.value)
    assert _counts(study) == before


def test_import_links_sessions_keeps_text_and_refuses_duplicates(study, tmp_path):
    path = tmp_path / "s12-5.txt"
    path.write_text(SESSION)
    report = import_transcripts(study, [str(path)], session="12:5", pseudonymize=False)
    assert [p.parsed.key for p in report.transcripts] == ["s12-5"]
    sue = as_person(study, "sue")
    detail = transcripts.get_transcript(sue, "s12-5")
    assert (detail.dyad, detail.session_number) == ("12", 5)
    assert detail.text == SESSION.rstrip("\n") or detail.text == SESSION
    second = detail.turns[1]
    assert detail.text[second.char_start : second.char_end] == "(sighs) It has been a hard week."
    assert second.nonverbal and detail.text[second.nonverbal[0][0] : second.nonverbal[0][1]] == "(sighs)"
    copy = tmp_path / "copy.txt"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="imported before"):
        import_transcripts(study, [str(copy)], key="other", pseudonymize=False)


def test_dry_run_writes_nothing(study, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(SESSION)
    before = _counts(study)
    report = import_transcripts(study, [str(path)], dry_run=True, pseudonymize=False)
    assert report.dry_run and report.turns == 3
    assert _counts(study) == before


def test_pseudonymised_before_storage_with_register_outside_the_study(study, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(SESSION)
    register = tmp_path / "names.csv"
    register.write_text("real,pseudonym,kind\nAnna,Maria,person\n")
    register.chmod(0o600)
    import_transcripts(study, [str(path)], register_path=str(register))
    text = transcripts.get_transcript(as_person(study, "sue"), "s").text
    assert "Anna" not in text and "Good to see you again, Maria." in text
    assert study.settings().pseudonym_register == str(register)
    with study.store.reader() as session:
        stored = " ".join(session.scalars(select(Attribute.value)).all())
    assert "Anna" not in stored


def test_ipr_interview_with_replayed_stretch(study, tmp_path):
    path = tmp_path / "ipr.txt"
    path.write_text(
        "I: What happened here?\n[VIDEO 00:12:30]\nT: How are you?\nP: Fine.\n[/VIDEO]\nC: I was not fine at all.\n"
    )
    import_transcripts(study, [str(path)], kind="ipr", perspective="client", session="3:5", pseudonymize=False)
    detail = transcripts.get_transcript(as_person(study, "sue"), "ipr")
    assert detail.kind == "ipr" and detail.perspective == "client"
    assert [(t.speaker_role, t.replayed) for t in detail.turns] == [
        ("interviewer", False),
        ("therapist", True),
        ("client", True),
        ("client", False),
    ]
    assert detail.turns[1].start_time == 750.0
    with pytest.raises(ConcordError, match="perspective"):
        import_transcripts(study, [str(path)], kind="ipr", key="x", pseudonymize=False)


def test_turn_table_with_blinded_attribute_hidden_from_coders(study, tmp_path):
    table = tmp_path / "turns.csv"
    table.write_text(
        "transcript,turn,speaker,text,group,site\nA,1,T,Hello.,high,Oslo\nA,2,P,Hi.,high,Oslo\n"
        "B,1,T,Welcome.,low,Lund\n"
    )
    import_transcripts(study, [str(table)], attributes=("group", "site"), blinded=("group",), pseudonymize=False)
    ann_view = transcripts.get_transcript(as_person(study, "ann"), "A")
    sue_view = transcripts.get_transcript(as_person(study, "sue"), "A")
    assert {a.name for a in ann_view.attributes} == {"site"}
    assert {a.name: a.value for a in sue_view.attributes} == {"group": "high", "site": "Oslo"}


def test_measures_scored_and_refused_whole_on_bad_values(study, tmp_path):
    good = tmp_path / "wai.csv"
    items = ",".join(f"WAI{i}" for i in range(1, 13))
    good.write_text(f"dyad,session,{items}\n1,5,{','.join(['4'] * 12)}\n1,6,{','.join(['5'] * 12)}\n")
    with pytest.raises(InputError, match="no session 1:6"):
        import_measures(study, str(good), "WAI-SR", respondent="client")
    with pytest.raises(InputError, match="already has WAI-SR"):
        import_measures(study, str(good), "WAI-SR", respondent="client", create_sessions=True)
    with study.store.session() as session:
        session.query(QuestionnaireScore).delete()
    report = import_measures(study, str(good), "WAI-SR", respondent="client", create_sessions=True)
    assert report.rows == 2 and report.sessions_created == 1
    with study.store.reader() as session:
        totals = sorted(session.scalars(select(QuestionnaireScore.total)))
    assert totals == [48, 60]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"dyad,session,{items}\n1,5,{','.join(['4'] * 11)},9\n")
    before = _counts(study)
    with pytest.raises(InputError) as error:
        import_measures(study, str(bad), "WAI-SR", respondent="client")
    assert "WAI12" in str(error.value) and "bad.csv:2" in str(error.value)
    assert _counts(study) == before


def test_codings_import_creates_coders_and_refuses_unknown_codes(study, tmp_path):
    table = tmp_path / "codings.csv"
    table.write_text(
        "transcript,turn,coder,code,group,start,end,memo\n"
        "S-A,2,cai,hopeless talk,Stagnation themes,,,\n"
        "S-A,1,cai,Moving forward,,0,3,first words\n"
    )
    before = _counts(study)
    with pytest.raises(InputError, match="hopeless talk"):
        import_codings(study, str(table))
    assert _counts(study) == before
    report = import_codings(study, str(table), create_codes=True)
    assert report.codings == 2 and report.coders_created == ("cai",)
    assert set(report.codes_created) == {"Stagnation themes", "Stagnation themes > hopeless talk"}
    detail = transcripts.get_transcript(as_person(study, "sue"), "S-A")
    made = coding.list_codings(as_person(study, "sue"), detail.id, layer="cai")
    spans = sorted((c.start, c.end, c.memo) for c in made)
    assert spans[0] == (detail.turns[0].char_start, detail.turns[0].char_start + 3, "first words")
    assert spans[1][:2] == (detail.turns[1].char_start, detail.turns[1].char_end)


def _truncated_docx(path):
    from docx import Document

    Document().save(path)
    path.write_bytes(path.read_bytes()[:300])


BAD_FILES = {
    "truncated.docx": _truncated_docx,
    "garbage.txt": lambda p: p.write_bytes(bytes(range(256)) * 8),
    "empty.txt": lambda p: p.write_bytes(b""),
    "mixed.txt": lambda p: p.write_bytes("T: Hej Åsa\n".encode() + "P: Vi ses på måndag\n".encode("cp1252")),
    "speakers.txt": lambda p: p.write_text("T: Hello\nZed: who?\n"),
    "timestamps.txt": lambda p: p.write_text("[00:75:99] T: Hello\n"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_a_clear_error_and_leave_the_study_unchanged(study, tmp_path, name):
    good = tmp_path / "good.txt"
    good.write_text(SESSION)
    bad = tmp_path / name
    BAD_FILES[name](bad)
    before = _counts(study)
    with pytest.raises(InputError) as error:
        import_transcripts(study, [str(good), str(bad)], pseudonymize=False)
    assert name in str(error.value)
    assert _counts(study) == before


def test_import_cli_reports_and_errors(tmp_path):
    study = tmp_path / "s.concord"
    runner = CliRunner()
    runner.invoke(main, ["init", str(study)])
    path = tmp_path / "a.txt"
    path.write_text(SESSION)
    result = runner.invoke(
        main,
        ["import", "transcripts", str(study), str(path), "--no-pseudonymize", "--dry-run", "--format-output", "json"],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["transcripts"][0]["turns"] == 3
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    failed = runner.invoke(main, ["import", "transcripts", str(study), str(empty)])
    assert failed.exit_code == 2 and "empty.txt" in failed.stderr and "empty file" in failed.stderr


CARE = """\
id: care
title: CARE
citation: CARE measure as collected in the MIBot data (Mahmood et al., 2025)
status: user
respondent: client
items: [CAREQ1, CAREQ2, CAREQ3, CAREQ4, CAREQ5, CAREQ6, CAREQ7, CAREQ8, CAREQ9, CAREQ10]
scale: {min: 1, max: 5}
missing_values: [0]
scoring: sum
"""


@pytest.mark.skipif(mibot_missing_reason() is not None, reason=mibot_missing_reason() or "")
def test_real_mibot_conversations_import_with_exact_turn_counts_and_care_scores(tmp_path):
    import csv

    from tests.mibot import mibot_dir

    raw = tmp_path / "mibot-raw.csv"
    expected = write_mibot_turn_table(raw)
    table = tmp_path / "mibot.csv"
    with raw.open(newline="", encoding="utf-8") as source, table.open("w", newline="", encoding="utf-8") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=[*reader.fieldnames, "dyad", "session"])
        writer.writeheader()
        for row in reader:
            writer.writerow({**row, "dyad": row["transcript"], "session": 1})
    workspace = as_person(make_study(str(tmp_path / "m.concord"), blind=False), "sue")
    try:
        report = import_transcripts(workspace, [str(table)], pseudonymize=False, attributes=("dyad", "session"))
        assert len(report.transcripts) == 106
        with workspace.store.reader() as session:
            counts = dict(
                session.execute(
                    select(Transcript.key, func.count(Turn.id))
                    .join(Turn, Turn.transcript_id == Transcript.id)
                    .group_by(Transcript.key)
                ).all()
            )
        # An empty utterance is no turn (one in the real data): the counts are of the spoken ones.
        spoken = {
            key: sum(
                1 for _, text in read_mibot_utterances(mibot_dir() / "transcripts" / f"{key}.json")[1] if text.strip()
            )
            for key in expected
        }
        assert sum(expected.values()) - sum(spoken.values()) == 1
        assert {k: counts[k] for k in expected} == spoken
        care = tmp_path / "care.yaml"
        care.write_text(CARE)
        scores = import_measures(
            workspace,
            str(mibot_dir() / "data.csv"),
            str(care),
            respondent="client",
            columns={"dyad": "ParticipantID", "session": "=1"},
        )
        assert scores.rows == 106 and scores.sessions_created == 0
        some = next(iter(expected))
        detail = transcripts.get_transcript(workspace, some)
        assert detail.scores[0].instrument == "CARE" and detail.scores[0].total is not None
    finally:
        workspace.close()
