"""The workbench's rules without a screen: which codebook's hotkeys fire, its letters, the state file
that remembers the choice, speakers and positions in a coder's words, speaker hints, and undo/redo
that say what they did (memos included)."""

from __future__ import annotations

import json

import pytest

from concord.services import codes as code_service
from concord.services import coding, transcripts
from concord.services import workbench as wb
from concord.services.dto import CodeInfo, TurnInfo
from tests.factories import as_person, make_study


def code(code_id: int, book: str, hotkey: str | None, *, parent: int | None = None, name: str = "") -> CodeInfo:
    return CodeInfo(
        id=code_id,
        codebook=book,
        parent_id=parent,
        name=name or f"code {code_id}",
        label=None,
        definition=None,
        inclusion=None,
        exclusion=None,
        example=None,
        pole=None,
        high_pole=None,
        hotkey=hotkey,
        colour=None,
        origin="deductive",
        creator=None,
        position=code_id,
        guid=f"g{code_id}",
    )


def turn(number: int, role: str, label: str, start: int, end: int) -> TurnInfo:
    return TurnInfo(number, number, role, label, None, None, start, end, False, ())


CODES = [
    code(1, "cbt", "1"),
    code(2, "cbt", "2"),
    code(3, "mi-talk", "1"),
    code(4, "ipr-themes", "1"),
    code(5, "x", None),
]


def test_the_remembered_codebook_wins_then_ipr_for_interviews_then_the_first():
    assert wb.hotkey_books(CODES) == ["cbt", "mi-talk", "ipr-themes"]
    assert wb.choose_hotkey_book(CODES, kind="session", remembered=None) == "cbt"
    assert wb.choose_hotkey_book(CODES, kind="ipr", remembered=None) == "ipr-themes"
    assert wb.choose_hotkey_book(CODES, kind="session", remembered="mi-talk") == "mi-talk"
    # A remembered codebook the study no longer has (or that lost its hotkeys) is ignored.
    assert wb.choose_hotkey_book(CODES, kind="session", remembered="x") == "cbt"
    assert wb.choose_hotkey_book([code(9, "b", None)], kind="session", remembered=None) is None


def test_only_the_active_codebooks_hotkeys_fire_and_ctrl_b_cycles():
    assert wb.code_for_hotkey(CODES, "cbt", "1").id == 1
    assert wb.code_for_hotkey(CODES, "mi-talk", "1").id == 3
    assert wb.code_for_hotkey(CODES, "mi-talk", "2") is None
    assert wb.code_for_hotkey(CODES, None, "1") is None
    books = wb.hotkey_books(CODES)
    assert [wb.next_hotkey_book(books, b) for b in (None, "cbt", "mi-talk", "ipr-themes")] == [
        "cbt",
        "mi-talk",
        "ipr-themes",
        "cbt",
    ]
    assert wb.next_hotkey_book([], "cbt") is None


def test_each_codebook_gets_its_own_letter():
    letters = wb.book_letters(["cbt-alliance", "cbt-test", "mi-talk", "c"])
    assert letters == {"cbt-alliance": "C", "cbt-test": "B", "mi-talk": "M", "c": "A"}
    assert len(set(letters.values())) == len(letters)


def test_the_state_file_remembers_per_study_coder_and_transcript(tmp_path):
    ann = wb.WorkbenchState("uid-1", "ann", folder=tmp_path)
    bob = wb.WorkbenchState("uid-1", "bob", folder=tmp_path)
    other_study = wb.WorkbenchState("uid-2", "ann", folder=tmp_path)
    assert ann.hotkey_book(7) is None
    ann.remember_hotkey_book(7, "mi-talk")
    ann.remember_hotkey_book(8, "cbt")
    assert (ann.hotkey_book(7), ann.hotkey_book(8)) == ("mi-talk", "cbt")
    assert bob.hotkey_book(7) is None and other_study.hotkey_book(7) is None
    assert json.loads(ann.path.read_text())["coders"]["ann"]["hotkey_books"] == {"7": "mi-talk", "8": "cbt"}
    # A damaged file is no error: the workbench starts with its default codebook again.
    ann.path.write_text("{not json")
    assert ann.hotkey_book(7) is None
    ann.remember_hotkey_book(7, "cbt")
    assert ann.hotkey_book(7) == "cbt"


def test_the_state_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(wb.STATE_ENV, str(tmp_path / "state"))
    assert wb.WorkbenchState("a/b", "ann").path == tmp_path / "state" / "workbench" / "a_b.json"


TEXT = "T: How are you, today?\nC: Fine. I don't know, really.\nT: Okay."
TURNS = (
    turn(1, "therapist", "T", 3, 22),
    turn(2, "client", "counsellee", 26, 53),
    turn(3, "therapist", "Therapist", 57, 62),
)


def test_positions_are_turns_and_words():
    assert TEXT[26:53] == "Fine. I don't know, really."
    assert wb.describe_span(TEXT, TURNS, 26, 53) == "turn 2"
    assert wb.describe_span(TEXT, TURNS, 32, 39) == "turn 2, words 2–3"  # "I don't": don't is one word
    assert wb.describe_span(TEXT, TURNS, 40, 44) == "turn 2, word 4"
    assert wb.describe_span(TEXT, TURNS, 10, 30) == "turns 1–2"
    assert wb.word_at(TEXT, TURNS[1], 26) == 1
    assert wb.word_at(TEXT, TURNS[1], 35) == 3
    assert wb.count_words(TEXT, 26, 53) == 5


def test_speakers_by_role_with_the_transcripts_label_when_it_says_more():
    assert [wb.speaker_text(t) for t in TURNS] == ["therapist (T)", "client (counsellee)", "therapist"]
    assert wb.role_name("interviewer") == "interviewer"


def test_a_code_meant_for_client_turns_hints_on_a_therapist_turn_only():
    group = code(10, "cbt", None, name="client feelings")
    leaf = code(11, "cbt", "1", parent=10, name="negative feelings")
    codes = {10: group, 11: leaf}
    declared = {10: ("client",)}
    assert wb.speakers_for(leaf, codes, declared) == ("client",)  # declared on the group, inherited
    hint = wb.speaker_hint(leaf, codes, declared, [TURNS[0]])
    assert hint == "note: “negative feelings” is meant for client turns; this is therapist"
    assert wb.speaker_hint(leaf, codes, declared, [TURNS[1]]) is None
    assert wb.speaker_hint(leaf, codes, declared, [TURNS[0], TURNS[1]]) is None  # a client turn is in it
    assert wb.speaker_hint(leaf, codes, {}, [TURNS[0]]) is None  # nothing declared: no hint
    assert wb.declared_speakers([group, leaf]) == {}  # CodeInfo.applies_to unset


def test_names_shorten_in_the_middle():
    name = "focus on other people and external events"
    assert wb.truncate_middle(name, 100) == name
    short = wb.truncate_middle(name, 20)
    assert len(short) <= 20 and short.startswith("focus on") and short.endswith("events") and "…" in short
    assert wb.truncate_middle(name, 1) == "…"
    assert wb.truncate_middle(name, 0) == ""


# -- undo and redo that say what they did ------------------------------------------------------------


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    yield workspace
    workspace.close()


def test_undo_and_redo_name_the_coding_and_the_memo(study):
    ann = as_person(study, "ann")
    ids = {c.name: c.id for c in code_service.visible_codes(ann)}
    detail = transcripts.get_transcript(ann, "S-A")
    second = detail.turns[1]
    applied = coding.apply_code(ann, detail.id, ids["Stagnation"], second.char_start, second.char_end)
    memo = coding.add_memo(ann, "turn", second.id, "she sounds tired")
    upcoming = coding.peek_step(ann, detail.id)
    assert (upcoming.action, upcoming.what, upcoming.memo_lost) == ("memo", "memo on turn 2", "she sounds tired")
    undone = coding.undo_step(ann, detail.id)
    assert undone.what == "memo on turn 2" and undone.target_id == memo.id
    assert coding.list_memos(ann, transcript_id=detail.id) == []
    # Undoing the coding takes no memo text with it.
    step = coding.undo_step(ann, detail.id)
    assert (step.what, step.memo_lost, step.target_id) == ("“Stagnation” on turn 2", None, applied.id)
    assert coding.undo_step(ann, detail.id) is None
    assert coding.redo_step(ann, detail.id).what == "“Stagnation” on turn 2"
    redone = coding.redo_step(ann, detail.id)
    assert redone.what == "memo on turn 2"
    assert [m.text for m in coding.list_memos(ann, transcript_id=detail.id)] == ["she sounds tired"]


def test_a_memo_on_a_coding_is_named_with_its_words(study):
    ann = as_person(study, "ann")
    ids = {c.name: c.id for c in code_service.visible_codes(ann)}
    detail = transcripts.get_transcript(ann, "S-A")
    second = detail.turns[1]
    applied = coding.apply_code(ann, detail.id, ids["Stagnation"], second.char_start, second.char_start + 5)
    coding.change_coding(ann, applied.id, memo="resignation")
    step = coding.peek_step(ann, detail.id)
    assert (step.what, step.memo_lost) == ("memo on “Stagnation” (turn 2, word 1)", "resignation")
    # The coding with its memo: undoing the apply would take the memo away too.
    coding.undo_step(ann, detail.id)
    coding.change_coding(ann, applied.id, memo="again")
    assert coding.peek_step(ann, detail.id).memo_lost == "again"


def test_editing_and_removing_a_memo_are_undoable(study):
    ann = as_person(study, "ann")
    detail = transcripts.get_transcript(ann, "S-A")
    memo = coding.add_memo(ann, "transcript", detail.id, "first reading")
    coding.update_memo(ann, memo.id, "second reading")
    coding.update_memo(ann, memo.id, "")
    assert coding.list_memos(ann, transcript_id=detail.id) == []
    assert coding.undo_step(ann, detail.id).what == "memo on the transcript"
    assert [m.text for m in coding.list_memos(ann, transcript_id=detail.id)] == ["second reading"]
    assert coding.peek_step(ann, detail.id).memo_lost == "second reading"
    coding.undo_step(ann, detail.id)
    assert [m.text for m in coding.list_memos(ann, transcript_id=detail.id)] == ["first reading"]
    # Another coder has no steps here.
    assert coding.peek_step(as_person(study, "bob"), detail.id) is None
