"""The coding assistant: what it learns from (the blind), the switch, accept and reject, "more like this",
honest agreement, the CLI, and the workbench keys (pilot tests)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.analysis.suggest import Example, keyword_window, train, units_of
from concord.app.cli import main
from concord.services import assistant
from concord.services.agreement import AgreementOptions, compute_agreement
from concord.services.audit import list_events
from concord.services.codes import visible_codes
from concord.services.coding import apply_code, list_codings
from concord.services.transcripts import get_transcript, set_done
from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import SuggestionRejection, Transcript, Turn
from tests.factories import as_person, make_study

STUCK = [
    "I feel stuck, nothing is changing at all",
    "It is the same old thing again, I am stuck",
    "Nothing moves, I keep going round in circles",
    "I am stuck in the same place as last week",
    "Honestly nothing changes, same as always",
]
FORWARD = [
    "I tried the new plan and it went better",
    "This week I made real progress with the plan",
    "I did the exercise and felt better after it",
    "Something shifted, I tried a different approach",
    "It went better than I expected, real progress",
]
THERAPIST = ["What did you notice?", "Tell me more about that.", "How was the week?", "What happened next?"]


def code_id(workspace, name: str) -> int:
    return next(code.id for code in visible_codes(workspace) if code.name == name)


def add_dialogue(workspace, key: str, client_lines: list[str]) -> int:
    """A transcript alternating therapist and client turns; returns its id."""
    turns = []
    for number, line in enumerate(client_lines):
        turns.append(("therapist", THERAPIST[number % len(THERAPIST)]))
        turns.append(("client", line))
    text_parts, spans, offset = [], [], 0
    for role, utterance in turns:
        prefix = "T: " if role == "therapist" else "P: "
        text_parts.append(prefix + utterance)
        spans.append((role, offset + len(prefix), offset + len(prefix) + len(utterance)))
        offset += len(prefix) + len(utterance) + 1
    with workspace.store.session() as session:
        transcript = Transcript(key=key, kind="session", language="en", text="\n".join(text_parts))
        session.add(transcript)
        session.flush()
        for number, (role, start, end) in enumerate(spans, 1):
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
        session.flush()
        return transcript.id


def code_client_turns(workspace, key: str) -> int:
    """Code every client turn: stuck lines Stagnation, the rest Moving forward; mark the transcript done."""
    detail = get_transcript(workspace, key)
    stagnation = code_id(workspace, "Stagnation")
    forward = code_id(workspace, "Moving forward")
    count = 0
    for turn in detail.turns:
        if turn.speaker_role != "client":
            continue
        words = detail.text[turn.char_start : turn.char_end]
        code = stagnation if ("stuck" in words or "nothing" in words.lower() or "same" in words) else forward
        apply_code(workspace, detail.id, code, turn.char_start, turn.char_end)
        count += 1
    set_done(workspace, detail.id)
    return count


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target)
    lines = STUCK + FORWARD
    for index in range(3):
        add_dialogue(workspace, f"C{index}", lines[index:] + lines[:index])
    add_dialogue(workspace, "NEW", [STUCK[0] + " again", FORWARD[0] + " too", STUCK[2], FORWARD[3]])
    yield workspace
    workspace.store.close()


def switch_on(workspace, **options) -> None:
    assistant.set_assistant(as_person(workspace, "sue"), on=True, **options)


# -- the model on its own --------------------------------------------------------------------------


def test_the_model_learns_codes_and_speakers():
    turns = [
        ("How was it?", "therapist"),
        ("I am stuck", "client"),
        ("And then?", "therapist"),
        ("It went better", "client"),
    ]
    codes = [set(), {1}, set(), {2}]
    examples = []
    for _ in range(6):
        examples += [Example(unit, frozenset(found)) for unit, found in zip(units_of(turns, codes), codes)]
    model = train(examples, min_examples=5)
    assert model.code_ids == [1, 2]
    fresh = units_of([("still stuck", "client"), ("stuck?", "therapist"), ("better now", "client")])
    best = model.best(fresh)
    assert best[0] == 1 and best[2] == 2
    # Codes given only to client turns are never proposed for a therapist's.
    assert model.probabilities(fresh)[1].max() == 0.0
    assert train(examples, min_examples=7).code_ids == []


def test_keyword_in_context_picks_a_shared_long_word():
    left, word, right = keyword_window("feeling stuck again", "Well, I am stuck in the same place as before")
    assert word == "stuck" and left.endswith("I am ") and right.startswith(" in the")


# -- the switch --------------------------------------------------------------------------------------


def test_off_unless_a_supervisor_switches_it_on(study):
    ann = as_person(study, "ann")
    code_client_turns(ann, "C0")
    with pytest.raises(PermissionDenied, match="assistant is off"):
        assistant.suggest(ann, "NEW")
    with pytest.raises(PermissionDenied, match="needs a supervisor"):
        assistant.set_assistant(ann, on=True)
    switch_on(study, min_codings=5)
    events = [e for e in list_events(as_person(study, "sue")) if e.action.startswith("assistant.")]
    assert [e.action for e in events] == ["assistant.on"] and events[0].actor == "sue"
    assert events[0].details["min_codings"] == [10, 5]
    assert assistant.suggest(ann, "NEW").suggestions
    assistant.set_assistant(as_person(study, "sue"), on=False)
    with pytest.raises(PermissionDenied):
        assistant.suggest(ann, "NEW")


def test_suggestions_appear_after_enough_codings(study):
    ann = as_person(study, "ann")
    switch_on(study)
    code_client_turns(ann, "C0")  # 5 codings of each code: fewer than 10
    found = assistant.suggest(ann, "NEW")
    assert not found.suggestions and "10 turns" in found.note
    code_client_turns(ann, "C1")  # 10 of each now
    found = assistant.suggest(ann, "NEW")
    assert {code for code, _ in found.learned} == {code_id(ann, "Stagnation"), code_id(ann, "Moving forward")}
    by_turn = {s.turn: s.code_path[-1] for s in found.suggestions}
    assert by_turn == {2: "Stagnation", 4: "Moving forward", 6: "Stagnation", 8: "Moving forward"}
    assert all(0.5 <= s.confidence <= 1 for s in found.suggestions)


def test_nothing_from_another_coder_while_blind(study):
    """Only bob has coded: ann gets no suggestions. And ann's suggestions are the same with or without bob's
    work in the study."""
    switch_on(study, min_codings=5)
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    code_client_turns(bob, "C0")
    code_client_turns(bob, "C1")
    assert assistant.suggest(bob, "NEW").suggestions
    found = assistant.suggest(ann, "NEW")
    assert found.suggestions == () and found.learned == () and found.source == "own"
    code_client_turns(ann, "C2")
    with_bob = assistant.suggest(ann, "NEW")
    # Bob codes more, the other way round: nothing ann sees may change.
    detail = get_transcript(bob, "C2")
    stagnation = code_id(bob, "Stagnation")
    for turn in detail.turns:
        apply_code(bob, detail.id, stagnation, turn.char_start, turn.char_end)
    assert assistant.suggest(ann, "NEW") == with_bob


def test_the_consensus_layer_only_when_allowed_and_not_blind(study):
    sue = as_person(study, "sue")
    switch_on(study, learn_from="consensus")
    ann = as_person(study, "ann")
    assert assistant.learning_source(ann, assistant.assistant_settings(ann)) == "own"
    from concord.services.unblinding import unblind

    unblind(sue, force=True, reason="test")
    assert assistant.learning_source(ann, assistant.assistant_settings(ann)) == "consensus"
    assistant.set_assistant(sue, learn_from="own")
    assert assistant.learning_source(ann, assistant.assistant_settings(ann)) == "own"


def test_accept_and_reject(study):
    ann = as_person(study, "ann")
    switch_on(study, min_codings=5)
    code_client_turns(ann, "C0")
    code_client_turns(ann, "C1")
    first, second = assistant.suggest(ann, "NEW").suggestions[:2]
    coding = assistant.accept(ann, first)
    assert coding.assisted_by == "suggestion"
    assert [c.assisted_by for c in list_codings(ann, first.transcript_id) if c.id == coding.id] == ["suggestion"]
    assistant.reject(ann, second)
    assistant.reject(ann, second)  # twice is once
    with study.store.reader() as session:
        assert len(session.scalars(select(SuggestionRejection)).all()) == 1
    left = assistant.suggest(ann, "NEW").suggestions
    # The accepted turn is coded now, and the rejected code is not proposed there again.
    assert first.turn not in {s.turn for s in left}
    assert (second.turn, second.code_id) not in {(s.turn, s.code_id) for s in left}
    counts = assistant.assisted_counts(ann)
    assert (counts.suggestion, counts.codings) == (1, 21)
    text = assistant.methods_text(ann)
    assert "1 of your 21 codings were accepted from suggestions" in text and "own codings" in text


def test_agreement_with_and_without_suggested_codings(study):
    ann, bob = as_person(study, "ann"), as_person(study, "bob")
    switch_on(study, min_codings=5)
    for person in (ann, bob):
        code_client_turns(person, "C0")
        code_client_turns(person, "C1")
    for suggestion in assistant.suggest(ann, "NEW").suggestions:
        assistant.accept(ann, suggestion)
    sue = as_person(study, "sue")
    with_them = compute_agreement(sue, AgreementOptions(transcripts=("C0", "C1", "NEW")))
    without = compute_agreement(sue, AgreementOptions(transcripts=("C0", "C1", "NEW"), without_assisted=True))
    assert with_them.assisted == 4 and with_them.codings == 44
    assert without.codings == 40 and without.without_assisted
    assert "4 of 44 codings were accepted" in with_them.assisted_text
    result = CliRunner().invoke(
        main, ["agreement", study.store.target, "--as", "sue", "--without-suggested", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(row["codings_assisted"] == 4 and row["without_suggested"] for row in rows)


def test_more_like_this_across_transcripts(study):
    ann = as_person(study, "ann")
    switch_on(study)
    new = get_transcript(ann, "NEW")
    turn = new.turns[1]
    found = assistant.similar(
        ann, new.text[turn.char_start : turn.char_end], exclude=[(new.id, turn.char_start, turn.char_end)]
    )
    assert found and found[0].score >= found[-1].score
    assert all(not (p.transcript == "NEW" and p.turn == turn.number) for p in found)
    assert "stuck" in found[0].left + found[0].keyword + found[0].right
    coding = assistant.code_similar(ann, found[0], code_id(ann, "Stagnation"))
    assert coding.assisted_by == "similar" and assistant.assisted_counts(ann).similar == 1


# -- the command line --------------------------------------------------------------------------------


def test_concord_suggest_and_assistant(study):
    target = study.store.target
    runner = CliRunner()
    refused = runner.invoke(main, ["suggest", target, "--as", "ann", "--transcript", "NEW", "--format", "json"])
    assert refused.exit_code == 2 and "assistant is off" in refused.stderr
    assert runner.invoke(main, ["assistant", target, "--on", "--as", "ann"]).exit_code == 2
    switched = runner.invoke(main, ["assistant", target, "--on", "--min-codings", "5", "--as", "sue"])
    assert switched.exit_code == 0 and "is on" in switched.stdout
    ann = as_person(study, "ann")
    code_client_turns(ann, "C0")
    code_client_turns(ann, "C1")
    result = runner.invoke(main, ["suggest", target, "--as", "ann", "--transcript", "NEW", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["turn"], r["code_path"]) for r in rows] == [
        (2, ["Therapeutic direction", "Stagnation"]),
        (4, ["Therapeutic direction", "Moving forward"]),
        (6, ["Therapeutic direction", "Stagnation"]),
        (8, ["Therapeutic direction", "Moving forward"]),
    ]
    assert all(0.5 <= r["confidence"] <= 1 for r in rows)
    status = runner.invoke(main, ["assistant", target, "--as", "ann", "--format", "json"])
    data = json.loads(status.stdout)
    assert data["on"] and data["min_codings"] == 5 and data["codings"] == 20
    with pytest.raises(ConcordError):
        assistant.suggest(ann, "NEW", threshold=2.0)


# -- the workbench -----------------------------------------------------------------------------------


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _open(study, name: str, key: str):
    from concord.app.tui.app import make_app

    return make_app(study.store.target, name, transcript=key)


async def test_workbench_shows_suggestions_and_takes_a_and_r(study):
    ann = as_person(study, "ann")
    switch_on(study, min_codings=5)
    code_client_turns(ann, "C0")
    code_client_turns(ann, "C1")
    app = await _open(study, "ann", "NEW")
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        await _settle(pilot)
        screen = app.screen
        assert sorted(screen.suggestions) == [2, 4, 6, 8]
        # Shown dimmed in the margin with the confidence in percent.
        line = screen.view._build_line(screen.view.layout_index.turn_first_line[1], None, None)
        mark = line._segments[0]
        assert mark.style.dim and mark.text[1:].isdigit()
        await pilot.press("j")  # turn 2
        await pilot.pause()
        assert "suggests “Stagnation”" in str(screen.query_one("#status").render())
        await pilot.press("a")
        await pilot.pause()
        assert [c.assisted_by for c in list_codings(ann, screen.transcript_id)] == ["suggestion"]
        await pilot.press("j", "j")  # turn 4
        await pilot.pause()
        await pilot.press("r")
        await _settle(pilot)
        await _settle(pilot)
        with study.store.reader() as session:
            rejected = session.scalars(select(SuggestionRejection)).all()
        assert [(r.code_id, r.coder_id) for r in rejected] == [(code_id(ann, "Moving forward"), rejected[0].coder_id)]
        assert "Moving forward" not in [s.code_path[-1] for s in screen.suggestions.get(4, [])]
        await pilot.press("u")  # the accepted coding is undone like any other
        await pilot.pause()
        assert list_codings(ann, screen.transcript_id) == []


async def test_workbench_keys_do_nothing_while_the_assistant_is_off(study):
    ann = as_person(study, "ann")
    code_client_turns(ann, "C0")
    code_client_turns(ann, "C1")
    app = await _open(study, "ann", "NEW")
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert screen.suggestions == {} and not screen.assistant_on
        await pilot.press("j", "a", "s")
        await _settle(pilot)
        assert app.screen is screen and list_codings(ann, screen.transcript_id) == []
        ids = {row.binding_id for row in app.key_rows_for(screen)}
        assert "transcript.accept-suggestion" not in ids and "transcript.more-like-this" not in ids


async def test_more_like_this_in_the_workbench(study):
    ann = as_person(study, "ann")
    switch_on(study)
    new = get_transcript(ann, "NEW")
    stagnation = code_id(ann, "Stagnation")
    apply_code(ann, new.id, stagnation, new.turns[1].char_start, new.turns[1].char_end)
    app = await _open(study, "ann", "NEW")
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        screen = app.screen
        screen.view.jump_to(new.turns[1].char_start)
        await pilot.pause()
        await pilot.press("s")
        await _settle(pilot)
        similar = app.screen
        assert type(similar).__name__ == "SimilarScreen" and similar.passages
        first = similar.passages[0]
        await pilot.press("a")
        await pilot.pause()
        coded = [c for c in list_codings(ann, first.transcript_id) if c.assisted_by == "similar"]
        assert [(c.code_id, c.start) for c in coded] == [(stagnation, first.start)]
        await pilot.press("enter")
        await _settle(pilot)
        assert app.screen is not similar
        target = app.screen
        assert target.transcript_id == first.transcript_id
        assert target.view.selection() == (first.start, first.end)
