"""Search across every transcript from the overview (F): the hits of each transcript in context, and enter
opening the transcript with the hit selected."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from concord.app.tui.app import make_app
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.search import SearchScreen, load_corpus, search_corpus
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.services import transcripts
from concord.storage.models import Transcript, Turn
from tests.factories import as_person, build_transcript_text, make_study
from tests.test_tui_pilot import screen_text, settle

SIZE = (120, 36)
SECOND_TEXT = [
    ("T", "therapist", "Shall we look at the week? [laughs]"),
    ("P", "client", "I forgot the Homework again, and I felt bad about it."),
    ("T", "therapist", "What got in the way?"),
]


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    text, spans = build_transcript_text(SECOND_TEXT)
    with workspace.store.session() as session:
        second = Transcript(key="S-B", kind="session", language="en", text=text, source_name="s-b.txt")
        session.add(second)
        session.flush()
        for number, (label, role, start, end) in enumerate(spans, 1):
            session.add(
                Turn(
                    transcript_id=second.id,
                    number=number,
                    speaker_role=role,
                    speaker_label=label,
                    char_start=start,
                    char_end=end,
                    nonverbal=[],
                )
            )
    yield workspace
    workspace.close()


def hit_rows(screen: SearchScreen) -> list[tuple[str, int, str, str]]:
    return [
        (h.source.summary.key, h.hit.turn_number, h.speaker, h.source.detail.text[h.hit.start : h.hit.end])
        for h in screen.hits
    ]


async def test_search_every_transcript_and_open_one_at_the_hit(study):
    ann = as_person(study, "ann")
    keys = {s.id: s.key for s in transcripts.list_transcripts(ann)}
    first, second = (transcripts.get_transcript(ann, key) for key in sorted(keys.values()))
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"homework")
        await settle(pilot)
        assert hit_rows(search) == [(first.key, 4, "P", "homework"), (second.key, 2, "P", "Homework")]
        shown = screen_text(app)
        assert "2 hits in 2 transcripts" in shown and "I did the homework" in shown and "forgot the Homework" in shown

        await pilot.press("down", "enter")
        await settle(pilot)
        coding = app.screen
        assert isinstance(coding, TranscriptScreen) and coding.summary.key == second.key
        start, end = coding.view.selection()
        assert second.text[start:end] == "Homework" and coding.view.current_turn().number == 2

        await pilot.press("q")  # back to the hits, then to the overview
        await settle(pilot)
        assert app.screen is search and search.query_one(OptionList).highlighted == 1
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)


async def test_fuzzy_search_and_user_text_is_never_markup(study):
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F", *"homewrok")
        await settle(pilot)
        search = app.screen
        assert search.hits == []
        await pilot.press("ctrl+f")
        await settle(pilot)
        assert search.fuzzy and sorted((key, turn) for key, turn, _, _ in hit_rows(search)) == [("S-A", 4), ("S-B", 2)]
        await pilot.press("ctrl+f", "ctrl+a", "ctrl+k", *"laughs")
        await settle(pilot)
        assert hit_rows(search) == [("S-B", 1, "T", "laughs")]
        assert "[laughs]" in screen_text(app)
        await pilot.press("ctrl+a", "ctrl+k")
        await settle(pilot)
        assert search.hits == []


def test_search_reads_what_the_services_list_and_orders_the_hits(study):
    ann = as_person(study, "ann")
    corpus = load_corpus(ann)
    assert [source.summary.key for source in corpus] == sorted(s.key for s in transcripts.list_transcripts(ann))
    plain = search_corpus(corpus, "the", fuzzy=False, limit=3)
    assert len(plain.hits) == 3 and plain.limited
    order = [(hit.source.summary.key, hit.hit.start) for hit in plain.hits]
    assert order == sorted(order) and {key for key, _ in order} == {"S-A", "S-B"}
    fuzzy = search_corpus(corpus, "homewrok", fuzzy=True)
    assert [hit.hit.score for hit in fuzzy.hits] == sorted((hit.hit.score for hit in fuzzy.hits), reverse=True)
