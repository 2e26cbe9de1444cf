"""Parsing transcripts of every form into ParsedTranscript: text kept verbatim, turns indexing into it."""

from __future__ import annotations

import codecs
import csv
import datetime as dt

import docx
import openpyxl
import pytest
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls

from concord.importers.parsed import ParsedTranscript, word_count
from concord.importers.speakers import SpeakerRoles, parse_clock, parse_speaker_map
from concord.importers.transcript_formats import detect_format, parse_transcript
from concord.storage.errors import InputError
from tests.mibot import mibot_missing_reason, mibot_transcripts_dir, read_mibot_utterances, write_mibot_turn_table


def only(transcripts: list[ParsedTranscript]) -> ParsedTranscript:
    assert len(transcripts) == 1
    return transcripts[0]


def spoken(transcript: ParsedTranscript) -> list[tuple[str, str, str]]:
    return [(t.speaker_label, t.speaker_role, transcript.turn_text(t)) for t in transcript.turns]


def nonverbal_texts(transcript: ParsedTranscript) -> list[str]:
    return [transcript.text[s:e] for turn in transcript.turns for s, e in turn.nonverbal]


def raises_at(path, line: int, *fragments: str):
    """Context manager asserting an InputError that names `path` and `line` and contains the fragments."""

    class _Check:
        def __enter__(self):
            self._raises = pytest.raises(InputError)
            self.info = self._raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._raises.__exit__(*exc)
            error = self.info.value
            assert error.path == str(path)
            assert error.line == line
            assert str(error).startswith(f"{path}:{line}: ")
            for fragment in fragments:
                assert fragment in str(error)
            return handled

    return _Check()


# ---------------------------------------------------------------------------------------------
# Plain text

SWEDISH_SESSION = (
    "Session 3, dyad 4\n"
    "\n"
    "T: Hur har veckan varit sedan sist? (lång paus)\n"
    "P: Um-hm. Det har varit /.../ tungt, ärligt talat. (laughs shortly)\n"
    "   Jag orkar inte gå ut. [sighs]\n"
    "\n"
    "   Min bror säger att det går över.\n"
    "T: Mm-hm. Vad tänker du själv om det? / ... /\n"
    "P: (inaudible words) jag vet inte, æ ø å ä ö.\n"
)


def test_cp1252_text_round_trips_and_turns_index_into_it(tmp_path):
    path = tmp_path / "session3.txt"
    path.write_bytes(SWEDISH_SESSION.replace("\n", "\r\n").encode("cp1252"))

    transcript = only(parse_transcript(path, unknown_speakers="error"))

    assert transcript.encoding == "cp1252"
    assert transcript.format == "txt"
    assert transcript.key == "session3"
    assert transcript.source_name == "session3.txt"
    assert transcript.text == SWEDISH_SESSION
    assert spoken(transcript) == [
        ("T", "therapist", "Hur har veckan varit sedan sist? (lång paus)"),
        (
            "P",
            "client",
            "Um-hm. Det har varit /.../ tungt, ärligt talat. (laughs shortly)\n"
            "   Jag orkar inte gå ut. [sighs]\n\n   Min bror säger att det går över.",
        ),
        ("T", "therapist", "Mm-hm. Vad tänker du själv om det? / ... /"),
        ("P", "client", "(inaudible words) jag vet inte, æ ø å ä ö."),
    ]
    assert [t.number for t in transcript.turns] == [1, 2, 3, 4]
    assert [t.source_line for t in transcript.turns] == [3, 4, 8, 9]
    assert nonverbal_texts(transcript) == ["(lång paus)", "(laughs shortly)", "[sighs]", "(inaudible words)"]
    assert "/.../" in transcript.text and "/ ... /" in transcript.text
    assert all(t.start_time is None and not t.replayed for t in transcript.turns)
    # The header line is kept in the text and reported as belonging to no turn.
    assert transcript.warnings == (
        "text outside any turn (line 1): kept in the transcript but not attributed to a speaker",
    )


def test_word_count_leaves_out_nonverbal_annotations_and_elisions(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(SWEDISH_SESSION, encoding="utf-8")
    transcript = only(parse_transcript(path))
    client = transcript.turns[1]
    # Um-hm Det har varit tungt ärligt talat | Jag orkar inte gå ut | Min bror säger att det går över
    assert transcript.turn_word_count(client) == 7 + 5 + 7
    assert word_count("Ja (skrattar) /.../ nej [00:12:03] um-hm", [(3, 13)]) == 3
    assert transcript.word_count() == 6 + 19 + 7 + 8


def test_utf16_word_unicode_text_export(tmp_path):
    text = "T: Välkommen tillbaka.\nP: Tack, det känns bra att vara här.\n"
    path = tmp_path / "word-export.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.replace("\n", "\r\n").encode("utf-16-le"))
    transcript = only(parse_transcript(path))
    assert transcript.encoding == "utf-16-le"
    assert transcript.text == text
    assert spoken(transcript) == [
        ("T", "therapist", "Välkommen tillbaka."),
        ("P", "client", "Tack, det känns bra att vara här."),
    ]


def test_sha256_is_of_the_raw_bytes(tmp_path):
    import hashlib

    raw = "T: Hej.\r\nP: Hej då.\r\n".encode("cp1252")
    path = tmp_path / "hash.txt"
    path.write_bytes(raw)
    transcript = only(parse_transcript(path))
    assert transcript.sha256 == hashlib.sha256(raw).hexdigest()


def test_timestamps_before_and_after_the_speaker(tmp_path):
    path = tmp_path / "timed.txt"
    path.write_text(
        "[00:12:03] T: First.\n"
        "00:12:05 P: Second.\n"
        "(12:07) T: Third.\n"
        "P [12:09]: Fourth.\n"
        "T: [00:12:11.500] Fifth.\n"
        "P (01:02:03): Sixth.\n"
        "[00:13:00 - 00:13:04] T: Seventh.\n"
        "[00:14:00]\n"
        "P: Eighth.\n"
        "T: Ninth.\n",
        encoding="utf-8",
    )
    transcript = only(parse_transcript(path))
    assert [(t.start_time, t.end_time) for t in transcript.turns] == [
        (723.0, None),
        (725.0, None),
        (727.0, None),
        (729.0, None),
        (731.5, None),
        (3723.0, None),
        (780.0, 784.0),
        (840.0, None),
        (None, None),
    ]
    assert [transcript.turn_text(t) for t in transcript.turns] == [
        "First.",
        "Second.",
        "Third.",
        "Fourth.",
        "Fifth.",
        "Sixth.",
        "Seventh.",
        "Eighth.",
        "Ninth.",
    ]
    # Timestamps stay in the text as typed.
    assert transcript.text.startswith("[00:12:03] T: First.\n00:12:05 P: Second.\n")


def test_role_words_in_english_and_scandinavian_languages(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(
        "Therapist: a\nClient: b\nPatient: c\nInterviewer: d\nTerapeut: e\nKlient: f\nPasient: g\n"
        "Intervjuer: h\nintervjuare: i\nK: j\nC: k\nI: l\n",
        encoding="utf-8",
    )
    transcript = only(parse_transcript(path))
    assert [t.speaker_role for t in transcript.turns] == [
        "therapist",
        "client",
        "client",
        "interviewer",
        "therapist",
        "client",
        "client",
        "interviewer",
        "interviewer",
        "client",
        "client",
        "interviewer",
    ]


def test_name_prefixes_with_a_speaker_map(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text(
        "Anna Lind: Hur mår du idag?\n"
        "Bo: Sådär. Jag sa till honom: nej.\n"
        "anna lind: Berätta mer.\n"
        "So this line: is a continuation\n",
        encoding="utf-8",
    )
    transcript = only(parse_transcript(path, speaker_map="Anna Lind=therapist, BO=client"))
    assert spoken(transcript) == [
        ("Anna Lind", "therapist", "Hur mår du idag?"),
        ("Bo", "client", "Sådär. Jag sa till honom: nej."),
        ("anna lind", "therapist", "Berätta mer.\nSo this line: is a continuation"),
    ]


def test_header_lines_above_the_first_speaker_are_not_turns(tmp_path):
    path = tmp_path / "header.txt"
    text = "Datum: 2021-03-04\nTranskriberat av: AB\n\nT: Välkommen.\nP: Tack.\n"
    path.write_text(text, encoding="utf-8")
    transcript = only(parse_transcript(path))
    assert spoken(transcript) == [("T", "therapist", "Välkommen."), ("P", "client", "Tack.")]
    assert transcript.text == text
    assert transcript.warnings == (
        # "Transkriberat av" is no label (not all words capitalised): it continues the Datum line.
        "kept as header text, not turns: 'Datum' (line 1) (unknown labels above the first known speaker)",
    )


def test_label_alone_on_its_line_and_exported_speaker_headers(tmp_path):
    alone = tmp_path / "alone.txt"
    alone.write_text("T:\nHur mår du?\nP:\n  Bra.\n", encoding="utf-8")
    assert spoken(only(parse_transcript(alone))) == [("T", "therapist", "Hur mår du?"), ("P", "client", "Bra.")]
    tabbed = tmp_path / "tabbed.txt"
    tabbed.write_text("T\tHur mår du?\nP\t[00:00:09]\tBra.\nAnna\tnot a label without a map\n", encoding="utf-8")
    transcript = only(parse_transcript(tabbed))
    assert spoken(transcript) == [
        ("T", "therapist", "Hur mår du?"),
        ("P", "client", "Bra.\nAnna\tnot a label without a map"),
    ]
    assert [t.start_time for t in transcript.turns] == [None, 9.0]
    otter = tmp_path / "otter.txt"
    otter.write_text("Speaker 1  0:03\nHi, how are you?\n\nSpeaker 2  1:05:09\nFine.\n", encoding="utf-8")
    transcript = only(parse_transcript(otter, speaker_map="Speaker 1=therapist,Speaker 2=client"))
    assert spoken(transcript) == [("Speaker 1", "therapist", "Hi, how are you?"), ("Speaker 2", "client", "Fine.")]
    assert [t.start_time for t in transcript.turns] == [3.0, 3909.0]


def test_speaker_map_parsing_and_overrides():
    assert parse_speaker_map("T=therapist,P=client,I=interviewer") == {
        "T": "therapist",
        "P": "client",
        "I": "interviewer",
    }
    assert parse_speaker_map("Dr Berg = Therapist; Eva=patient") == {"Dr Berg": "therapist", "Eva": "client"}
    roles = SpeakerRoles("P=interviewer,Maja=other")
    assert roles.role_for("p") == "interviewer"  # the map wins over the default P=client
    assert roles.role_for("MAJA") == "other"
    assert roles.role_for("T") == "therapist"
    assert roles.role_for("Olle") is None
    with pytest.raises(InputError, match="unknown role 'boss'"):
        parse_speaker_map("T=boss")
    with pytest.raises(InputError, match="is not LABEL=ROLE"):
        parse_speaker_map("T therapist")
    with pytest.raises(InputError, match="two roles"):
        parse_speaker_map("T=therapist,t=client")


def test_unknown_speakers_are_an_error_listing_each_label_and_line(tmp_path):
    path = tmp_path / "unknown.txt"
    path.write_text("T: Hej.\nAnna: Hej.\nT: Och?\nBo Ek: Ja.\nAnna: Nej.\n", encoding="utf-8")
    with raises_at(path, 2, "'Anna' (lines 2, 5)", "'Bo Ek' (line 4)", "speaker map"):
        parse_transcript(path)


def test_unknown_speakers_as_other_with_a_warning(tmp_path):
    path = tmp_path / "unknown.txt"
    path.write_text("T: Hej.\nAnna: Hej.\nT: Och?\nAnna: Nej.\n", encoding="utf-8")
    transcript = only(parse_transcript(path, unknown_speakers="other"))
    assert [t.speaker_role for t in transcript.turns] == ["therapist", "other", "therapist", "other"]
    assert transcript.warnings == ("speaker label(s) without a role, recorded as 'other': 'Anna' (lines 2, 4)",)


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("T: Hej.\n[00:75:99] P: Hej.\n", 2, "minutes must be two digits 00-59"),
        ("T: Hej.\nP: Ja.\n[1:2] T: Nej.\n", 3, "seconds must be two digits 00-59"),
        ("T: Hej.\nP [00:12:7x]: Ja.\n", None, None),  # not a timestamp at all: an unknown... continuation
        ("T: [00:61:00] Hej.\n", 1, "minutes must be two digits"),
        ("T: Hej.\n[1:2]\nP: Ja.\n", 2, "seconds must be two digits"),
    ],
)
def test_malformed_timestamps_name_the_line(tmp_path, content, line, fragment):
    path = tmp_path / "badtime.txt"
    path.write_text(content, encoding="utf-8")
    if line is None:
        transcript = only(parse_transcript(path))
        assert spoken(transcript) == [("T", "therapist", "Hej.\nP [00:12:7x]: Ja.")]
        return
    with raises_at(path, line, "malformed timestamp", fragment):
        parse_transcript(path)


def test_markdown_labels_and_headings(tmp_path):
    path = tmp_path / "notes.md"
    text = "# Session 5\n\n**T:** Hur var det?\n**P**: Bra *faktiskt*.\n## Del 2\nT: Fortsätt.\n"
    path.write_text(text, encoding="utf-8")
    transcript = only(parse_transcript(path))
    assert transcript.format == "md"
    assert transcript.text == text
    assert spoken(transcript) == [
        ("T", "therapist", "Hur var det?"),
        ("P", "client", "Bra *faktiskt*."),
        ("T", "therapist", "Fortsätt."),
    ]


def test_empty_and_blank_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as caught:
        parse_transcript(empty)
    assert str(caught.value) == f"{empty}: empty file"
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="empty file"):
        parse_transcript(blank)


def test_text_without_any_speaker_is_refused(tmp_path):
    path = tmp_path / "prose.txt"
    path.write_text("this is a letter\nwith no speakers at all\n", encoding="utf-8")
    with pytest.raises(InputError, match="no speaker turns found") as caught:
        parse_transcript(path)
    assert str(caught.value).startswith(str(path))


def test_binary_garbage_and_mixed_encodings_through_parse_transcript(tmp_path):
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"T: hej\n\x00\x01\x02\xff\xfe\x00\x13")
    with raises_at(garbage, 2, "binary data"):
        parse_transcript(garbage)
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes("T: Hur mår du?\n".encode() + "P: Det är svårt.\n".encode("cp1252"))
    with raises_at(mixed, 2, "mixed encodings"):
        parse_transcript(mixed)


# ---------------------------------------------------------------------------------------------
# IPR interviews

IPR_INTERVIEW = (
    "I: Vad hände här, tänker du?\n"
    "P: Jag minns att jag blev nervös.\n"
    "[VIDEO 00:12:30]\n"
    "T: Hur kändes det när han sa så?\n"
    "P: (tyst) Jag vet inte.\n"
    "   Det var jobbigt.\n"
    "[00:13:05] T: Um-hm.\n"
    "[/VIDEO]\n"
    "I: Vad tänkte du där?\n"
    "P: Att jag inte ville svara. [skrattar]\n"
    "[VIDEO]\n"
    "T: Okej.\n"
    "[/VIDEO]\n"
)


def test_ipr_replayed_stretches_keep_their_speakers_and_session_time(tmp_path):
    path = tmp_path / "ipr_dyad4_client.txt"
    path.write_text(IPR_INTERVIEW, encoding="utf-8")
    transcript = only(parse_transcript(path, kind="ipr"))
    assert transcript.text == IPR_INTERVIEW
    assert [(t.speaker_role, t.replayed, t.start_time) for t in transcript.turns] == [
        ("interviewer", False, None),
        ("client", False, None),
        ("therapist", True, 750.0),  # the marker's time is where the replay starts
        ("client", True, None),  # not when every replayed turn was said
        ("therapist", True, 785.0),  # a timestamp inside the stretch is that turn's own
        ("interviewer", False, None),
        ("client", False, None),
        ("therapist", True, None),
    ]
    assert transcript.turn_text(transcript.turns[3]) == "(tyst) Jag vet inte.\n   Det var jobbigt."
    # The marker lines stay in the text but belong to no turn.
    marker = transcript.text.index("[VIDEO 00:12:30]")
    closing = transcript.text.index("[/VIDEO]")
    for turn in transcript.turns:
        assert not (turn.text_start <= marker < turn.text_end)
        assert not (turn.text_start <= closing < turn.text_end)
    assert transcript.turn_text(transcript.turns[4]) == "Um-hm."


def test_video_markers_are_plain_text_in_a_session_transcript(tmp_path):
    path = tmp_path / "session.txt"
    path.write_text("T: Hej.\n[VIDEO]\nP: Hej.\n", encoding="utf-8")
    transcript = only(parse_transcript(path))
    assert transcript.turn_text(transcript.turns[0]) == "Hej.\n[VIDEO]"
    assert not any(t.replayed for t in transcript.turns)


def test_unclosed_video_marker_names_the_opening_line(tmp_path):
    path = tmp_path / "ipr.txt"
    path.write_text("I: Här?\nP: Ja.\n[VIDEO 00:01:00]\nT: Hm.\nP: Ja.\n", encoding="utf-8")
    with raises_at(path, 3, "[VIDEO] marker is never closed"):
        parse_transcript(path, kind="ipr")


def test_video_marker_errors(tmp_path):
    stray = tmp_path / "stray.txt"
    stray.write_text("I: Här?\n[/VIDEO]\n", encoding="utf-8")
    with raises_at(stray, 2, "[/VIDEO] without an opening"):
        parse_transcript(stray, kind="ipr")
    badtime = tmp_path / "badtime.txt"
    badtime.write_text("I: Här?\n[VIDEO 00:99:00]\nT: x\n[/VIDEO]\n", encoding="utf-8")
    with raises_at(badtime, 2, "malformed timestamp"):
        parse_transcript(badtime, kind="ipr")


# ---------------------------------------------------------------------------------------------
# Word documents


def _write_docx_with_speaker_table(path):
    document = docx.Document()
    document.add_paragraph("Transkript: session 5, dyad 12")
    table = document.add_table(rows=1, cols=3)
    for cell, name in zip(table.rows[0].cells, ("Talare", "Tid", "Text")):
        cell.text = name
    rows = [
        ("T", "00:00:05", "Välkommen. Hur har du haft det?"),
        ("P", "00:00:09", "Um-hm, ganska bra. (skrattar till)"),
        ("", "", "Fast det var /.../ jobbigt i tisdags."),
        ("T:", "00:01:10.500", "Berätta, æ ø å."),
    ]
    for speaker, time, text in rows:
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = speaker, time, text
    document.add_paragraph("P: Och sen en rad utanför tabellen.\nMed radbrytning.")
    document.save(path)


def test_docx_speaker_table_becomes_turns(tmp_path):
    path = tmp_path / "session5.docx"
    _write_docx_with_speaker_table(path)
    transcript = only(parse_transcript(path))
    assert transcript.format == "docx"
    assert transcript.encoding is None
    assert spoken(transcript) == [
        ("T", "therapist", "Välkommen. Hur har du haft det?"),
        ("P", "client", "Um-hm, ganska bra. (skrattar till)\nFast det var /.../ jobbigt i tisdags."),
        ("T", "therapist", "Berätta, æ ø å."),
        ("P", "client", "Och sen en rad utanför tabellen.\nMed radbrytning."),
    ]
    assert [t.start_time for t in transcript.turns] == [5.0, 9.0, 70.5, None]
    assert nonverbal_texts(transcript) == ["(skrattar till)"]
    assert transcript.warnings == (
        "kept as header text, not turns: 'Transkript' (paragraph 1) (unknown labels above the first known speaker)",
    )
    assert transcript.text == (
        "Transkript: session 5, dyad 12\n"
        "Talare\tTid\tText\n"
        "T: Välkommen. Hur har du haft det?\n"
        "P: Um-hm, ganska bra. (skrattar till)\n"
        "Fast det var /.../ jobbigt i tisdags.\n"
        "T: Berätta, æ ø å.\n"
        "P: Och sen en rad utanför tabellen.\n"
        "Med radbrytning."
    )


def test_docx_paragraphs_keep_tracked_insertions(tmp_path):
    path = tmp_path / "tracked.docx"
    document = docx.Document()
    document.add_paragraph("T: Hur mår du?")
    paragraph = document.add_paragraph()
    paragraph._p.append(parse_xml(f'<w:r {nsdecls("w")}><w:t xml:space="preserve">P: Jag mår </w:t></w:r>'))
    paragraph._p.append(
        parse_xml(
            f'<w:ins {nsdecls("w")} w:id="1" w:author="A" w:date="2024-01-01T00:00:00Z">'
            "<w:r><w:t>ganska </w:t></w:r></w:ins>"
        )
    )
    paragraph._p.append(
        parse_xml(
            f'<w:del {nsdecls("w")} w:id="2" w:author="A" w:date="2024-01-01T00:00:00Z">'
            "<w:r><w:delText>inte </w:delText></w:r></w:del>"
        )
    )
    paragraph._p.append(parse_xml(f"<w:r {nsdecls('w')}><w:t>bra.</w:t><w:tab/><w:t>[suckar]</w:t></w:r>"))
    document.save(path)
    transcript = only(parse_transcript(path))
    assert spoken(transcript) == [
        ("T", "therapist", "Hur mår du?"),
        ("P", "client", "Jag mår ganska bra.\t[suckar]"),
    ]
    assert nonverbal_texts(transcript) == ["[suckar]"]


def test_docx_ipr_markers_in_paragraphs(tmp_path):
    path = tmp_path / "ipr.docx"
    document = docx.Document()
    for line in ("I: Vad hände?", "[VIDEO 00:05:00]", "T: Hur känns det?", "P: Tungt.", "[/VIDEO]", "P: Jag frös."):
        document.add_paragraph(line)
    document.save(path)
    transcript = only(parse_transcript(path, kind="ipr"))
    assert [(t.speaker_role, t.replayed, t.start_time, t.source_line) for t in transcript.turns] == [
        ("interviewer", False, None, 1),
        ("therapist", True, 300.0, 3),
        ("client", True, None, 4),
        ("client", False, None, 6),
    ]


def test_docx_ipr_table_with_marker_rows_merged_across(tmp_path):
    path = tmp_path / "ipr_table.docx"
    document = docx.Document()
    table = document.add_table(rows=0, cols=2)

    def add(speaker, text):
        cells = table.add_row().cells
        cells[0].text, cells[1].text = speaker, text

    def add_merged(text):
        first, second = table.add_row().cells
        first.merge(second).text = text

    add("Speaker", "Text")
    add("I", "Vad tänkte du?")
    add_merged("[VIDEO 00:12:30]")
    add("T", "Inne i videon.")
    add("", "Fortsatt\nrad två.")
    add_merged("[/VIDEO]")
    add("P", "Efteråt.")
    document.save(path)
    transcript = only(parse_transcript(path, kind="ipr"))
    assert transcript.text == (
        "Speaker\tText\nI: Vad tänkte du?\n[VIDEO 00:12:30]\nT: Inne i videon.\nFortsatt\nrad två.\n"
        "[/VIDEO]\nP: Efteråt."
    )
    assert [(t.speaker_role, transcript.turn_text(t), t.start_time, t.replayed) for t in transcript.turns] == [
        ("interviewer", "Vad tänkte du?", None, False),
        ("therapist", "Inne i videon.\nFortsatt\nrad två.", 750.0, True),
        ("client", "Efteråt.", None, False),
    ]


def test_truncated_docx_is_not_a_readable_word_document(tmp_path):
    good = tmp_path / "good.docx"
    _write_docx_with_speaker_table(good)
    broken = tmp_path / "broken.docx"
    broken.write_bytes(good.read_bytes()[:700])
    with pytest.raises(InputError) as caught:
        parse_transcript(broken)
    assert caught.value.path == str(broken)
    assert str(caught.value).startswith(f"{broken}: not a readable Word document")
    assert caught.value.line is None  # a broken archive has no line to point at


def test_docx_unknown_speaker_names_the_paragraph(tmp_path):
    path = tmp_path / "who.docx"
    document = docx.Document()
    for line in ("T: Hej.", "Mystery Person: Hallå.", "P: Hej."):
        document.add_paragraph(line)
    document.save(path)
    with raises_at(path, 2, "'Mystery Person' (paragraph 2)"):
        parse_transcript(path)


# ---------------------------------------------------------------------------------------------
# Subtitles


def test_vtt_voice_tags_and_cue_times(tmp_path):
    path = tmp_path / "teams.vtt"
    path.write_text(
        "WEBVTT\n"
        "Kind: captions\n"
        "\n"
        "NOTE exported from Teams\n"
        "\n"
        "a1b2/1-0\n"
        "00:00:01.000 --> 00:00:04.500\n"
        "<v Anna Lind>Hur har veckan varit?</v>\n"
        "\n"
        "00:00:05.000 --> 00:00:07.000\n"
        "<v Bo Ek>Ganska tung. &lt;paus&gt; [sighs]</v>\n"
        "\n"
        "00:00:07.000 --> 00:00:09.250\n"
        "<v Bo Ek>Jag sov dåligt.</v>\n"
        "\n"
        "01:02.000 --> 01:03.000\n"
        "<v.loud Anna Lind>Um-hm.</v>\n"
        "<v Bo Ek>Ja.</v>\n",
        encoding="utf-8",
    )
    transcript = only(parse_transcript(path, speaker_map="Anna Lind=therapist,Bo Ek=client"))
    assert transcript.format == "vtt"
    assert spoken(transcript) == [
        ("Anna Lind", "therapist", "Hur har veckan varit?"),
        ("Bo Ek", "client", "Ganska tung. <paus> [sighs]\nJag sov dåligt."),
        ("Anna Lind", "therapist", "Um-hm."),
        ("Bo Ek", "client", "Ja."),
    ]
    assert [(t.start_time, t.end_time) for t in transcript.turns] == [
        (1.0, 4.5),
        (5.0, 9.25),
        (62.0, 63.0),
        (62.0, 63.0),
    ]
    assert [t.source_line for t in transcript.turns] == [7, 10, 16, 16]
    assert nonverbal_texts(transcript) == ["[sighs]"]
    assert transcript.text.startswith("Anna Lind: Hur har veckan varit?\nBo Ek: Ganska tung.")


def test_vtt_speaker_prefixes_and_bad_timing(tmp_path):
    path = tmp_path / "zoom.txt"  # content decides: a .txt that is really WebVTT
    path.write_text(
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nT: Hej.\n\n2\n00:00:02.000 --> 00:00:03.000\nP: Hej hej.\n",
        encoding="utf-8",
    )
    transcript = only(parse_transcript(path))
    assert transcript.format == "vtt"
    assert spoken(transcript) == [("T", "therapist", "Hej."), ("P", "client", "Hej hej.")]
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nT: ok\n\n00:00:61.000 --> 00:01:02.000\nP: x\n")
    with raises_at(bad, 6, "cue timing", "seconds must be two digits"):
        parse_transcript(bad)


def test_srt_numbered_cues_with_speaker_prefixes(tmp_path):
    path = tmp_path / "session.srt"
    path.write_bytes(
        (
            "1\r\n00:00:01,000 --> 00:00:03,000\r\nT: Hur mår du?\r\n\r\n"
            "2\r\n00:00:03,500 --> 00:00:06,000\r\nP: <i>Sådär</i>, (suckar)\r\n\r\n"
            "3\r\n00:00:06,000 --> 00:00:08,000\r\nmen det blir bättre.\r\n\r\n"
            "4\r\n00:00:08,000 --> 00:00:09,000\r\n- T: Bra.\r\n- P: Ja.\r\n"
        ).encode()
    )
    transcript = only(parse_transcript(path))
    assert transcript.format == "srt"
    assert spoken(transcript) == [
        ("T", "therapist", "Hur mår du?"),
        ("P", "client", "Sådär, (suckar)\nmen det blir bättre."),
        ("T", "therapist", "Bra."),
        ("P", "client", "Ja."),
    ]
    assert [(t.start_time, t.end_time) for t in transcript.turns] == [
        (1.0, 3.0),
        (3.5, 8.0),
        (8.0, 9.0),
        (8.0, 9.0),
    ]
    assert nonverbal_texts(transcript) == ["(suckar)"]


def test_srt_cue_without_a_speaker(tmp_path):
    path = tmp_path / "plain.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello there.\n", encoding="utf-8")
    with raises_at(path, 2, "(no speaker label) (line 2)"):
        parse_transcript(path)
    transcript = only(parse_transcript(path, unknown_speakers="other"))
    assert spoken(transcript) == [("", "other", "Hello there.")]


# ---------------------------------------------------------------------------------------------
# Turn tables


def test_csv_turn_table_with_attributes_and_blinded_attributes(tmp_path):
    path = tmp_path / "turns.csv"
    rows = [
        ("Transcript_ID", "Turn", "Role", "Begin", "End_Time", "Utterance", "dyad", "group"),
        ("d4s3", "1", "T", "00:00:05", "00:00:09", "Hur mår du?", "4", "high"),
        ("d4s3", "2", "P", "9.5", "12,25", "Um-hm. (skrattar) Det är /.../ svårt,\näh.", "4", ""),
        ("d7s5", "1", "Therapist", "", "", "Välkommen.", "7", "low"),
        ("d4s3", "3", "T", "01:00", "", "Berätta.", "", "high"),
        ("d7s5", "2", "Client", "", "", "Tack.", "7", "low"),
    ]
    with open(path, "w", encoding="cp1252", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)

    first, second = parse_transcript(path, attributes=["dyad", "group"], blinded=["group"])

    assert (first.key, second.key) == ("d4s3", "d7s5")
    assert first.format == "csv" and first.encoding == "cp1252"
    assert first.attributes == {"dyad": "4"}
    assert first.blinded_attributes == {"group": "high"}
    assert second.attributes == {"dyad": "7"}
    assert second.blinded_attributes == {"group": "low"}
    assert first.text == ("T: Hur mår du?\nP: Um-hm. (skrattar) Det är /.../ svårt,\näh.\nT: Berätta.\n")
    assert spoken(first) == [
        ("T", "therapist", "Hur mår du?"),
        ("P", "client", "Um-hm. (skrattar) Det är /.../ svårt,\näh."),
        ("T", "therapist", "Berätta."),
    ]
    assert [(t.number, t.start_time, t.end_time, t.source_line) for t in first.turns] == [
        (1, 5.0, 9.0, 2),
        (2, 9.5, 12.25, 3),
        (3, 60.0, None, 6),  # CSV lines: the quoted line break makes row 3 span lines 3-4
    ]
    assert nonverbal_texts(first) == ["(skrattar)"]
    assert [t.source_line for t in second.turns] == [5, 7]
    assert first.sha256 == second.sha256


def test_csv_conflicting_attribute_names_the_row(tmp_path):
    path = tmp_path / "turns.csv"
    path.write_text("transcript,speaker,text,group\ns1,T,Hej,high\ns1,P,Hej,\ns1,T,Nå,low\n", encoding="utf-8")
    with raises_at(path, 4, "attribute 'group' of transcript 's1' is 'low' here but 'high' on line 2"):
        parse_transcript(path, attributes=["group"])


def test_csv_table_errors_name_the_row(tmp_path):
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("speaker,text\nT,Hej\nX,Hallå\nX,Igen\n", encoding="utf-8")
    with raises_at(unknown, 3, "'X' (lines 3, 4)"):
        parse_transcript(unknown)
    bad_time = tmp_path / "badtime.csv"
    bad_time.write_text("speaker,start,text\nT,00:00:01,Hej\nP,00:75:00,Hallå\n", encoding="utf-8")
    with raises_at(bad_time, 3, "column 'start': malformed timestamp '00:75:00'", "minutes must be two digits"):
        parse_transcript(bad_time)
    # The line is named once, by the file:line prefix, not again in the message.
    with pytest.raises(InputError) as once:
        parse_transcript(bad_time)
    assert "line 3" not in str(once.value) and str(once.value).count(":3:") == 1
    bad_turn = tmp_path / "badturn.csv"
    bad_turn.write_text("turn,speaker,text\n1,T,Hej\nzwei,P,Hallå\n", encoding="utf-8")
    with raises_at(bad_turn, 3, "turn number 'zwei' is not a whole number"):
        parse_transcript(bad_turn)
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("turn,speaker,text\n1,T,Hej\n1,P,Hallå\n", encoding="utf-8")
    with raises_at(duplicate, 3, "turn number 1 appears twice (also at line 2)"):
        parse_transcript(duplicate)
    no_text = tmp_path / "notext.csv"
    no_text.write_text("speaker,words\nT,Hej\n", encoding="utf-8")
    with raises_at(no_text, 1, "no text column"):
        parse_transcript(no_text)


def test_csv_without_transcript_column_uses_the_file_stem_and_explicit_columns(tmp_path):
    path = tmp_path / "dyad12_session3.csv"
    path.write_text("vem\ttid\tsagt\nT\t0:05\tHej.\nP\t00:00:07\tHej!\n", encoding="utf-8")
    transcript = only(parse_transcript(path, columns={"speaker": "Vem", "start": "TID", "text": "sagt"}))
    assert transcript.key == "dyad12_session3"
    assert spoken(transcript) == [("T", "therapist", "Hej."), ("P", "client", "Hej!")]
    assert [t.start_time for t in transcript.turns] == [5.0, 7.0]


def test_turn_table_key_picks_one_transcript(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("transcript,speaker,text\na,T,x\nb,T,y\n", encoding="utf-8")
    assert [t.key for t in parse_transcript(path, key="b")] == ["b"]
    with pytest.raises(InputError, match="transcript 'c' is not in this table"):
        parse_transcript(path, key="c")


def test_xlsx_turn_table_with_attributes(tmp_path):
    path = tmp_path / "turns.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Session_Key", "turn_number", "Who", "start_time", "end", "Content", "Language", "WAI"])
    sheet.append(["s1", 1, "T", dt.time(0, 0, 5), 9.5, "Hur mår du? [skratt]", "sv", 5.5])
    sheet.append(["s1", 2, "P", "00:00:10", "00:00:12.5", "Bra, æ ø å.", "sv", 5.5])
    sheet.append([None, None, None, None, None, None, None, None])
    sheet.append(["s2", 1, "I", None, None, 42, "no", 3])
    sheet.append(["s2", 2, "K", None, None, "Ja", None, None])
    workbook.save(path)

    first, second = parse_transcript(path, attributes=["Language", "WAI"], blinded=["WAI"])

    assert first.format == "xlsx" and first.encoding is None
    assert first.key == "s1" and second.key == "s2"
    assert spoken(first) == [("T", "therapist", "Hur mår du? [skratt]"), ("P", "client", "Bra, æ ø å.")]
    assert [(t.start_time, t.end_time, t.source_line) for t in first.turns] == [(5.0, 9.5, 2), (10.0, 12.5, 3)]
    assert first.attributes == {"Language": "sv"}
    assert first.blinded_attributes == {"WAI": "5.5"}
    assert spoken(second) == [("I", "interviewer", "42"), ("K", "client", "Ja")]
    assert second.blinded_attributes == {"WAI": "3"}
    assert [t.source_line for t in second.turns] == [5, 6]


def test_corrupt_xlsx(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(InputError, match="not a readable Excel workbook") as caught:
        parse_transcript(path)
    assert caught.value.path == str(path)


# ---------------------------------------------------------------------------------------------
# Format detection and options


def test_detect_format_from_content_and_extension(tmp_path):
    assert detect_format(tmp_path / "a.txt", b"WEBVTT\n\n") == "vtt"
    assert detect_format(tmp_path / "a.txt", b"1\n00:00:01,000 --> 00:00:02,000\nT: x\n") == "srt"
    assert detect_format(tmp_path / "a.txt", b"speaker;text\nT;x\n") == "csv"
    assert detect_format(tmp_path / "a.txt", b"T: x\n") == "txt"
    assert detect_format(tmp_path / "a.md", b"T: x\n") == "md"
    assert detect_format(tmp_path / "a", b"T: x\n") == "txt"
    with pytest.raises(InputError, match="old binary Office file"):
        detect_format(tmp_path / "a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 10)


def test_invalid_options_are_refused(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("T: x\n", encoding="utf-8")
    with pytest.raises(InputError, match="kind must be one of session, ipr"):
        parse_transcript(path, kind="group")
    with pytest.raises(InputError, match="unknown_speakers must be one of error, other"):
        parse_transcript(path, unknown_speakers="ignore")
    with pytest.raises(InputError, match="unknown transcript format 'pdf'"):
        parse_transcript(path, format="pdf")


def test_language_becomes_an_attribute(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("T: x\n", encoding="utf-8")
    assert only(parse_transcript(path, language="sv")).attributes == {"language": "sv"}


def test_parse_clock_forms():
    assert parse_clock("00:12:03") == 723.0
    assert parse_clock("1:02:03.5") == 3723.5
    assert parse_clock("75:10") == 4510.0  # minute-only clocks may pass the hour
    assert parse_clock("00:00:01,250") == 1.25
    for bad in ("00:75:99", "1:2", "00:12:3", "12"):
        with pytest.raises(ValueError):
            parse_clock(bad)


# ---------------------------------------------------------------------------------------------
# Real data: the MIBot counselling conversations as one turn table


def test_mibot_turn_table_round_trips_every_utterance(tmp_path):
    reason = mibot_missing_reason()
    if reason:
        pytest.skip(reason)
    table = tmp_path / "mibot_turns.csv"
    counts = write_mibot_turn_table(table)

    transcripts = parse_transcript(table)

    assert len(transcripts) == 106
    assert sum(counts.values()) == 8555
    assert min(counts.values()) == 36 and max(counts.values()) == 163
    # One client utterance of the real data is empty (7ab90d39..., the 44th): it is no turn, and the
    # report says where it was; every other utterance is one turn, numbered by its place.
    empty = "7ab90d390617f6f4f6c91cf991a551f901cdde1c9429bbc63c248975f6f72075"
    assert {t.key: len(t.turns) for t in transcripts} == {**counts, empty: counts[empty] - 1}
    for transcript in transcripts:
        _, utterances = read_mibot_utterances(mibot_transcripts_dir() / f"{transcript.key}.json")
        kept = [(n, role, text.strip()) for n, (role, text) in enumerate(utterances, start=1) if text.strip()]
        assert [(t.number, t.speaker_role, transcript.turn_text(t)) for t in transcript.turns] == kept
        notes = [w for w in transcript.warnings if w.startswith("empty utterance")]
        if transcript.key == empty:
            line = next(t.source_line for t in transcript.turns if t.number == 45) - 1
            assert notes == [f"empty utterance(s) left out, not turns: line {line} ('client')"]
        else:
            assert notes == []
