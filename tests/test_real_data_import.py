"""Real data in, as it comes (issue 16): JSON conversations with their scores, --lenient, design columns,
wide codings, attributes and scores you can see and fix, speaker roles, IPR links, REFI-QDA sets.

The core runs on tests/data/conversations (made-up chats in the MIBot files' shape); the same two
commands run on the real MIBot conversations where ../shared/data/mibot is present.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from concord.app.cli import main
from concord.services.ipr_links import list_links
from concord.services.transcripts import get_transcript
from concord.storage.models import AuditEvent, Code, Memo, Transcript, Turn, TurnLink
from tests.factories import make_study
from tests.mibot import mibot_dir, mibot_missing_reason, read_mibot_utterances

CONVERSATIONS = Path(__file__).parent / "data" / "conversations"


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args) -> object:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def refused(*args) -> object:
    result = run(*args)
    assert result.exit_code == 2, result.stdout
    assert "Traceback" not in result.output + result.stderr
    return result


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("concord: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield study_target
    workspace.close()


def _turn_counts(target: str) -> dict[str, int]:
    workspace = _open(target)
    try:
        with workspace.store.reader() as session:
            return dict(
                session.execute(
                    select(Transcript.key, func.count(Turn.id))
                    .join(Turn, Turn.transcript_id == Transcript.id)
                    .group_by(Transcript.key)
                ).all()
            )
    finally:
        workspace.close()


def _open(target: str, person: str = "sue"):
    from concord.services.workspace import Workspace

    return Workspace.open(target, person)


# -- JSON conversations and their CARE scores, in two commands ---------------------------------------


def test_json_conversations_and_their_care_scores_in_two_commands(study, tmp_path):
    files = sorted(CONVERSATIONS.glob("*.json"))
    imported = ok(
        "import",
        "transcripts",
        study,
        *files,
        "--columns",
        "dyad=participant_id,session==1",
        "--nlp",
        "none",
        "--register",
        tmp_path / "names.yaml",
        "--as",
        "sue",
    )
    # One turn per spoken utterance; p02's empty one is left out and said so, with its place.
    assert "Imported 3 transcript(s), 14 turns." in imported.stdout
    assert "empty utterance(s) left out, not turns: turn 4 ('client')" in imported.stderr
    # What every file has and Concord does not read is said once for the batch, not per file.
    assert imported.stderr.count("keys not read: stats") == 1 and "note (3 transcripts)" in imported.stderr
    counts = _turn_counts(study)
    assert {k: counts[k] for k in ("p01", "p02", "p03")} == {"p01": 5, "p02": 5, "p03": 4}

    scores = ok(
        "import",
        "measures",
        study,
        CONVERSATIONS / "data.csv",
        "--instrument",
        "care",
        "--columns",
        "session==1",
        "--as",
        "sue",
    )
    assert "Imported 3 CARE response(s)." in scores.stdout
    listed = json.loads(ok("scores", study, "--instrument", "CARE", "--format", "json", "--as", "sue").stdout)
    by_dyad = {row["dyad"]: row for row in listed}
    assert by_dyad["p01"]["total"] == 44 and not by_dyad["p01"]["prorated"] and by_dyad["p01"]["missing"] == []
    # p02: item 3 "not applicable" (0): the nine others' mean stands in for it.
    assert by_dyad["p02"]["total"] == pytest.approx(40) and by_dyad["p02"]["prorated"]
    assert by_dyad["p02"]["missing"] == ["3"] and by_dyad["p02"]["answered"] == 9
    # p03: three missing, more than CARE's two: not scored, and the table says so.
    assert by_dyad["p03"]["total"] is None and by_dyad["p03"]["missing"] == ["2", "3", "4"]
    assert {row["transcripts"][0] for row in listed} == {"p01", "p02", "p03"}
    table = ok("scores", study, "--as", "sue").stdout
    # The study also has the factory's one WAI-SR form.
    assert "p02:1" in table and "4 form(s); 1 prorated; 1 not scored (too many missing items)." in table
    # Coders never see scores while the study is blind.
    blind = refused("scores", study, "--as", "ann")
    assert "blind" in error_line(blind) and "40" not in blind.stdout


@pytest.mark.skipif(mibot_missing_reason() is not None, reason=mibot_missing_reason() or "")
def test_real_mibot_conversations_and_care_scores_in_two_commands(tmp_path):
    target = str(tmp_path / "mibot.concord")
    ok("init", target, "--title", "MIBot", "--open", "--identity", "trusted")
    ok("coder", "add", target, "sue", "--role", "supervisor")
    files = sorted((mibot_dir() / "transcripts").glob("*.json"))
    imported = ok(
        "import",
        "transcripts",
        target,
        *files,
        "--columns",
        "dyad=participant_id,session==1",
        "--nlp",
        "none",
        "--register",
        tmp_path / "names.yaml",
        "--as",
        "sue",
    )
    expected = {}
    for path in files:
        participant, utterances = read_mibot_utterances(path)
        expected[participant] = sum(1 for _, text in utterances if text.strip())
    assert sum(expected.values()) == 8554  # 8,555 utterances, one of them empty
    assert f"Imported 106 transcript(s), {sum(expected.values())} turns." in imported.stdout
    assert _turn_counts(target) == expected
    scores = ok(
        "import",
        "measures",
        target,
        mibot_dir() / "data.csv",
        "--instrument",
        "care",
        "--columns",
        "session==1",
        "--as",
        "sue",
    )
    assert "Imported 106 CARE response(s)." in scores.stdout
    with (mibot_dir() / "data.csv").open(encoding="utf-8", newline="") as handle:
        records = {row["ParticipantID"]: row for row in csv.DictReader(handle)}
    listed = json.loads(ok("scores", target, "--format", "json", "--as", "sue").stdout)
    assert len(listed) == 106
    for row in listed:
        answers = [int(records[row["dyad"]][f"CAREQ{n}"]) for n in range(1, 11)]
        answered = [a for a in answers if a != 0]
        assert row["total"] == pytest.approx(sum(answered) / len(answered) * 10)
        assert row["prorated"] == (len(answered) < 10)
    assert sum(row["prorated"] for row in listed) == 5
    assert listed[0]["total"] is not None and listed[0]["transcripts"] == [listed[0]["dyad"]]


# -- JSON shapes and their errors ---------------------------------------------------------------------


def test_json_shapes_nested_paths_other_keys_and_json_lines(study, tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text(
        json.dumps(
            {
                "meta": {"id": "N1", "visit": 3, "pair": "44"},
                "data": {
                    "session": {
                        "turns": [
                            {"who": "T", "said": "Welcome back.", "t0": "00:00:01"},
                            {"who": "P", "said": "Thank you.", "t0": 4.5},
                        ]
                    }
                },
            }
        )
    )
    mapping = (
        "turns=data.session.turns,speaker=who,text=said,start=t0,transcript=meta.id,dyad=meta.pair,session=meta.visit"
    )
    report = json.loads(
        ok(
            "import",
            "transcripts",
            study,
            nested,
            "--columns",
            mapping,
            "--no-pseudonymize",
            "--format-output",
            "json",
            "--as",
            "sue",
        ).stdout
    )
    (item,) = report["transcripts"]
    assert (item["key"], item["session"], item["turns"], item["format"]) == ("N1", "44:3", 2, "json")
    detail = get_transcript(_open(study), "N1")
    assert [t.start_time for t in detail.turns] == [1.0, 4.5]

    lines = tmp_path / "chat.jsonl"
    lines.write_text(
        '{"conversation_id": "L1", "speaker": "therapist", "text": "Hi."}\n'
        '{"conversation_id": "L1", "speaker": "client", "text": "Hello."}\n\n'
        '{"conversation_id": "L2", "speaker": "therapist", "text": "Again?"}\n'
    )
    out = ok(
        "import",
        "transcripts",
        study,
        lines,
        "--columns",
        "transcript=conversation_id",
        "--no-pseudonymize",
        "--as",
        "sue",
    ).stdout
    assert "Imported 2 transcript(s), 3 turns." in out

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"id": "W", "talk": [{"speaker": "T", "text": "x"}]}))
    line = error_line(refused("import", "transcripts", study, wrong, "--as", "sue"))
    assert f"{wrong}: $: no list of turns in this object (its keys: id, talk)" in line
    assert "--columns turns=PATH" in line
    no_text = tmp_path / "notext.json"
    no_text.write_text(json.dumps({"turns": [{"speaker": "T", "text": "a"}, {"speaker": "P"}]}))
    assert f"{no_text}: $.turns[1]: the turn has no 'text'" in error_line(
        refused("import", "transcripts", study, no_text, "--as", "sue")
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"turns": [\n  {"speaker": "T", "text": "a"},\n  oops\n]}')
    assert f"{broken}:3: not valid JSON" in error_line(refused("import", "transcripts", study, broken, "--as", "sue"))
    deep = tmp_path / "deep.json"
    deep.write_text('{"turns": []' + ', "x": ' + "[" * 100 + "]" * 100 + "}")
    assert "nested more than 64 levels deep" in error_line(refused("import", "transcripts", study, deep, "--as", "sue"))
    constant_text = refused("import", "transcripts", study, nested, "--columns", "speaker==T", "--as", "sue")
    assert "--columns speaker==T: a value for every transcript ('=...') is for dyad, session" in error_line(
        constant_text
    )


# -- strict by default, tolerant on request ----------------------------------------------------------


TABLE = (
    "transcript,turn,speaker,start,group,text\n"
    "a,1,T,00:00:01,high,Hello there.\n"
    "a,2,P,00:09:025,high,Hi.\n"
    "a,3,T,00:00:12,low,How are you?\n"
    "b,1,T,00:00:02,low,Welcome.\n"
)


def test_one_malformed_timestamp_is_refused_once_and_kept_empty_with_lenient(study, tmp_path):
    table = tmp_path / "turns.csv"
    table.write_text(TABLE)
    line = error_line(refused("import", "transcripts", study, table, "--attributes", "group", "--as", "sue"))
    assert line == (
        f"concord: error: {table}:3: column 'start': malformed timestamp '00:09:025': seconds must be two digits 00-59"
    )
    result = ok(
        "import",
        "transcripts",
        study,
        table,
        "--attributes",
        "group",
        "--lenient",
        "--no-pseudonymize",
        "--format-output",
        "json",
        "--as",
        "sue",
    )
    report = json.loads(result.stdout)
    a = next(item for item in report["transcripts"] if item["key"] == "a")
    # The turn stays, its time is empty; the attribute that disagrees with itself is left empty too.
    assert a["turns"] == 3 and "group" not in a["attributes"]
    assert a["dropped"] == [
        {
            "file": str(table),
            "line": 3,
            "column": "column 'start'",
            "value": "00:09:025",
            "reason": "malformed timestamp '00:09:025': seconds must be two digits 00-59",
        },
        {
            "file": str(table),
            "line": 4,
            "column": "column 'group'",
            "value": "low",
            "reason": "'high' on line 2; the attribute is left empty",
        },
        {
            "file": str(table),
            "line": 2,
            "column": "column 'group'",
            "value": "high",
            "reason": "the attribute is left empty",
        },
    ]
    detail = get_transcript(_open(study), "a")
    assert [(t.number, t.start_time) for t in detail.turns] == [(1, 1.0), (2, None), (3, 12.0)]
    assert detail.text.split("\n")[1] == "P: Hi."  # text never guessed
    assert {a.name: a.value for a in get_transcript(_open(study), "b").attributes}["group"] == "low"

    # The table form says each dropped value on its own line.
    again = tmp_path / "again.csv"
    again.write_text(TABLE.replace("a,", "c,").replace("b,", "d,"))
    table_out = ok("import", "transcripts", study, again, "--lenient", "--no-pseudonymize", "--as", "sue").stdout
    assert f"left empty (--lenient): {again}:3: column 'start' '00:09:025'" in table_out


def test_turn_table_carries_the_design_and_empty_utterances_are_reported(study, tmp_path):
    table = tmp_path / "design.csv"
    table.write_text(
        "transcript,dyad,session,kind,perspective,about,speaker,text\n"
        "s5,12,5,session,,,T,How was the week?\n"
        "s5,12,5,session,,,P,\n"
        "s5,12,5,session,,,P,Hard.\n"
        "i5,12,,ipr,client,5,I,What happened there?\n"
        "i5,12,,ipr,client,5,P,I froze.\n"
    )
    report = json.loads(
        ok("import", "transcripts", study, table, "--no-pseudonymize", "--format-output", "json", "--as", "sue").stdout
    )
    by_key = {item["key"]: item for item in report["transcripts"]}
    assert (by_key["s5"]["kind"], by_key["s5"]["session"], by_key["s5"]["turns"]) == ("session", "12:5", 2)
    assert (by_key["i5"]["kind"], by_key["i5"]["perspective"], by_key["i5"]["session"]) == ("ipr", "client", "12:5")
    assert by_key["s5"]["warnings"] == ["empty utterance(s) left out, not turns: line 3 ('P')"]
    # Turn 2 was the empty one: a codings table naming it is told so, in the user's terms.
    codings = tmp_path / "codings.csv"
    codings.write_text("transcript,turn,coder,code\ns5,2,ann,rupture\n")
    line = error_line(refused("import", "codings", study, codings, "--create-codes", "--as", "sue"))
    assert "transcript 's5' has no turn 2" in line

    clash = tmp_path / "clash.csv"
    clash.write_text("transcript,session,speaker,text\nx,1,T,a\nx,2,T,b\n")
    assert f"{clash}:3: column 'session': session '2' differs from '1' on line 2" in error_line(
        refused("import", "transcripts", study, clash, "--session", "9:1", "--as", "sue")
    )
    given = tmp_path / "given.csv"
    given.write_text("transcript,dyad,session,speaker,text\ng,3,1,T,a\n")
    assert "its session is 1 in the file but 2 by --session DYAD:NUMBER" in error_line(
        refused("import", "transcripts", study, given, "--session", "3:2", "--no-pseudonymize", "--as", "sue")
    )


# -- codings under other names, and wide -------------------------------------------------------------


def test_codings_with_column_mapping_and_wide_dimensions(study, tmp_path):
    chat = tmp_path / "c1.json"
    chat.write_text(
        json.dumps(
            {
                "id": "C1",
                "turns": [
                    {"speaker": "counsellor", "text": "What brings you here?"},
                    {"speaker": "client", "text": "I want to stop smoking."},
                ],
            }
        )
    )
    ok("import", "transcripts", study, chat, "--no-pseudonymize", "--as", "sue")
    table = tmp_path / "labels.csv"
    table.write_text("transcript_id,utterance_id,annotator_id,MISC,Topic\nC1,1,auto,Q,\nC1,2,auto,C,smoking\n")
    done = ok("import", "codings", study, table, "--wide", "MISC,Topic", "--create-codes", "--as", "sue")
    assert "Imported 3 coding(s). New coders: auto." in done.stdout
    assert "MISC > Q" in done.output and "Topic > smoking" in done.stdout
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("doc,utt,who,label\nC1,2,kim2,C\n")
    mapped = ok(
        "import",
        "codings",
        study,
        narrow,
        "--columns",
        "transcript=doc,turn=utt,coder=who,code=label,group==MISC",
        "--as",
        "sue",
    )
    assert "Imported 1 coding(s)." in mapped.output and "New codes" not in mapped.stdout
    missing = refused("import", "codings", study, narrow, "--as", "sue")
    assert "name them with --columns transcript=COLUMN --columns turn=COLUMN" in error_line(missing)
    wrong = refused("import", "codings", study, table, "--wide", "MISC,Nope", "--as", "sue")
    assert "--wide Nope: no column 'Nope' in the header" in error_line(wrong)


# -- attributes, scores and speakers you can see and fix ---------------------------------------------


def test_attributes_listed_set_unset_audited_blinded_and_inherited(study, tmp_path):
    session_file = tmp_path / "s9.txt"
    session_file.write_text("T: Hello.\nP: Hi.\n")
    interview_file = tmp_path / "i9.txt"
    interview_file.write_text("I: What happened?\nP: Not sure.\n")
    ok("import", "transcripts", study, session_file, "--session", "9:2", "--no-pseudonymize", "--as", "sue")
    ok(
        "import",
        "transcripts",
        study,
        interview_file,
        "--kind",
        "ipr",
        "--perspective",
        "client",
        "--session",
        "9:2",
        "--no-pseudonymize",
        "--as",
        "sue",
    )
    changed = ok("attribute", "set", study, "s9", "modality", "online", "--as", "sue").stdout
    assert "Set modality of s9 to 'online'." in changed and "Inherited by the IPR interview(s): i9." in changed
    ok("attribute", "set", study, "s9", "group", "low", "--blinded", "--as", "sue")
    listed = json.loads(ok("attribute", "list", study, "--format", "json", "--as", "sue").stdout)
    rows = {(r["transcript"], r["name"]): (r["value"], r["blinded"]) for r in listed}
    assert rows[("s9", "modality")] == ("online", False) and rows[("i9", "modality")] == ("online", False)
    assert rows[("s9", "group")] == ("low", True) and rows[("i9", "group")] == ("low", True)
    # A coder may not change them, nor list them, nor see blinded values anywhere.
    assert "supervisor" in error_line(refused("attribute", "set", study, "s9", "modality", "x", "--as", "ann"))
    refused("attribute", "list", study, "--as", "ann")
    assert "group" not in {a.name for a in get_transcript(_open(study, "ann"), "i9").attributes}
    # A blinded value stays blinded when changed, and cannot be opened one by one.
    ok("attribute", "set", study, "s9", "group", "high", "--as", "sue")
    # Changed values follow to the interview; removing one removes the inherited copy.
    removed = ok("attribute", "unset", study, "s9", "modality", "--as", "sue").stdout
    assert "Removed modality from s9." in removed and "Also from the IPR interview(s): i9." in removed
    assert "has no attribute 'modality' (it has: group)" in error_line(
        refused("attribute", "unset", study, "s9", "modality", "--as", "sue")
    )
    workspace = _open(study)
    with workspace.store.reader() as session:
        events = session.execute(
            select(AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.action.like("attribute.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [action for action, _ in events] == ["attribute.set", "attribute.set", "attribute.set", "attribute.unset"]
    # The blinded values are not written into the log.
    assert "low" not in json.dumps([details for _, details in events]) and "high" not in json.dumps(
        [details for _, details in events]
    )
    assert {a.name: (a.value, a.blinded) for a in get_transcript(workspace, "i9").attributes}["group"] == ("high", True)


def test_speakers_listed_and_fixed_after_import(study, tmp_path):
    path = tmp_path / "named.txt"
    path.write_text("Interviewer: Hello.\nAnna: Hi.\nInterviewer: Tell me.\n")
    ok("import", "transcripts", study, path, "--unknown-speakers", "other", "--no-pseudonymize", "--as", "sue")
    before = json.loads(ok("speakers", study, "named", "--format", "json", "--as", "sue").stdout)
    assert before == [
        {"label": "Anna", "role": "other", "turns": 1},
        {"label": "Interviewer", "role": "interviewer", "turns": 2},
    ]
    fixed = ok("speakers", study, "named", "--map", "anna=client", "--as", "sue").stdout
    assert "named: Anna other -> client (1 turn(s))." in fixed
    assert {t.speaker_role for t in get_transcript(_open(study), "named").turns} == {"interviewer", "client"}
    assert "has no speaker 'Bo'" in error_line(refused("speakers", study, "named", "--map", "Bo=client", "--as", "sue"))
    refused("speakers", study, "named", "--map", "Anna=therapist", "--as", "ann")


# -- IPR interviews linked to their session ----------------------------------------------------------

SESSION = """\
[00:00:01] T: Good to see you again. How was the week?
[00:00:06] P: It was hard. I did not sleep much and I kept thinking about work.
[00:00:14] T: That sounds exhausting. What kept you awake?
[00:00:20] P: Mostly the meeting with my boss on Friday.
[00:00:27] T: Let us look at that meeting together.
"""
INTERVIEW = """\
I: What was happening for you here?
[VIDEO 00:00:06]
P: It was hard. I did not sleep much, and I kept thinking about work.
T: That sounds exhausting. What kept you awake?
[/VIDEO]
P: I felt he understood me.
I: And here?
[VIDEO]
P: Mostly the meeting with my boss on friday
T: Something nobody said in the session at all.
[/VIDEO]
"""


def test_ipr_replayed_turns_link_to_the_session_turns_they_replay(study, tmp_path):
    interview = tmp_path / "ipr7.txt"
    interview.write_text(INTERVIEW)
    session_file = tmp_path / "s7.txt"
    session_file.write_text(SESSION)
    # The interview first: nothing to link to yet, and the report says so.
    first = ok(
        "import",
        "transcripts",
        study,
        interview,
        "--kind",
        "ipr",
        "--perspective",
        "client",
        "--session",
        "7:3",
        "--no-pseudonymize",
        "--as",
        "sue",
    ).stdout
    assert "ipr7: 4 replayed turn(s) not linked yet: the session it is about has no transcript" in first
    second = ok(
        "import", "transcripts", study, session_file, "--session", "7:3", "--no-pseudonymize", "--as", "sue"
    ).stdout
    assert (
        "IPR links: ipr7: 3 of 4 replayed turn(s) linked to s7 (1 by time, 2 by text); not linked: turn(s) 7" in second
    )
    workspace = _open(study)
    with workspace.store.reader() as session:
        interview_id = session.scalar(select(Transcript.id).where(Transcript.key == "ipr7"))
        links = list_links(session, interview_id)
        assert session.scalar(select(func.count()).select_from(TurnLink)) == 3
    assert [(link.interview_turn, link.session_turn, link.method) for link in links] == [
        (2, 2, "time"),  # [VIDEO 00:00:06] is the session turn said at 00:00:06
        (3, 3, "text"),  # the next replayed turn has no time of its own: found by its words
        (6, 4, "text"),  # "friday" in lower case and no full stop: still the same words
    ]
    assert all(link.score is None or link.score >= 80 for link in links)


def test_representativeness_explains_a_study_without_interviews(study, tmp_path):
    out = tmp_path / "r.csv"
    done = ok("export", "representativeness", study, "--out", out, "--layer", "ann", "--as", "sue")
    assert "No IPR interviews found, so the table has no dyads" in done.output + done.stderr
    assert "--kind ipr --perspective client|therapist --session DYAD:N" in done.output + done.stderr


# -- REFI-QDA: speaker map and sets ------------------------------------------------------------------


def test_qdpx_speaker_map_sets_and_memos_kept_once(tmp_path):
    from tests.test_qdpx import CODE_A, CODE_B, CODEBOOK, foreign_project, guid, selection

    text = "Interviewer: How was it?\nAnna: Hard, really hard.\nInterviewer: Tell me more.\n"
    source, note = guid(), guid()
    body = CODEBOOK + (
        f'<Sources><TextSource guid="{source}" name="Talk 1" plainTextPath="internal://{source}.txt">'
        f"{selection((text.index('Hard'), text.index('Hard') + 4), CODE_A)}"
        f'<NoteRef targetGUID="{note}"/></TextSource></Sources>'
        f'<Notes><Note guid="{note}" name="Memo"><PlainTextContent>about the talk</PlainTextContent></Note></Notes>'
        f'<Links><Link guid="{guid()}" originGUID="{note}" targetGUID="{source}"/></Links>'
        f'<Sets><Set guid="{guid()}" name="Alliance codes"><MemberCode targetGUID="{CODE_A}"/>'
        f'<MemberCode targetGUID="{CODE_B}"/></Set>'
        f'<Set guid="{guid()}" name="Wave 1"><MemberSource targetGUID="{source}"/></Set></Sets>'
    )
    path = tmp_path / "talk.qdpx"
    path.write_bytes(foreign_project(body, {f"sources/{source}.txt": text.encode()}, origin="ATLAS.ti 24"))
    target = str(tmp_path / "q.concord")
    ok("init", target, "--title", "Q", "--identity", "trusted")
    ok("coder", "add", target, "sue", "--role", "supervisor")
    bad = refused("import", "qdpx", target, path, "--speaker-map", "Bo=client", "--no-pseudonymize", "--as", "sue")
    assert "--speaker-map: no speaker 'Bo' in the project's texts" in error_line(bad)
    done = ok(
        "import",
        "qdpx",
        target,
        path,
        "--speaker-map",
        "Interviewer=interviewer,Anna=client",
        "--no-pseudonymize",
        "--format",
        "json",
        "--as",
        "sue",
    )
    summary = json.loads(done.stdout)
    assert summary["memos"] == 1  # the note is referred to twice (NoteRef and a link): one memo
    assert "set 'Alliance codes' became the category 'Alliance codes' above its 2 code(s)" in done.stderr
    assert "set 'Wave 1' was read as the attribute 'document group' = 'Wave 1' of its 1 transcript(s)" in done.stderr
    workspace = _open(target)
    talk = get_transcript(workspace, "Talk 1")
    assert [t.speaker_role for t in talk.turns] == ["interviewer", "client", "interviewer"]
    assert {a.name: a.value for a in talk.attributes}["document group"] == "Wave 1"
    with workspace.store.reader() as session:
        assert session.scalar(select(func.count()).select_from(Memo)) == 1
        category = session.scalar(select(Code).where(Code.name == "Alliance codes"))
        children = set(session.scalars(select(Code.name).where(Code.parent_id == category.id)))
    assert children == {"Rupture", "Repair"}

    # Without a map the labels that got no role are named with the command that fixes them.
    second = str(tmp_path / "q2.concord")
    ok("init", second, "--title", "Q2", "--identity", "trusted")
    plain = ok("import", "qdpx", second, path, "--no-pseudonymize")
    assert "turn(s) of 'Anna' have no role ('other'); give them one with --speaker-map Anna=client" in plain.stderr
    ok("speakers", second, "Talk 1", "--map", "Anna=client")
    assert "client" in {t.speaker_role for t in get_transcript(_open(second, None), "Talk 1").turns}
