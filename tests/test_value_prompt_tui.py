"""The workbench asks for the value of a code that carries one, with a small dialog (Textual pilot)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from concord.app.tui.app import make_app
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.app.tui.screens.value_prompt import ValuePrompt, parse_value
from concord.services import coding
from concord.storage.models import Code
from tests.factories import as_person, make_study

SIZE = (120, 36)


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target, blind=True)
    with workspace.store.session() as session:
        session.execute(
            update(Code).where(Code.name == "Moving forward").values(scale={"level": "ordinal", "min": 1, "max": 5})
        )
        session.execute(
            update(Code).where(Code.name == "Stagnation").values(scale={"level": "interval", "min": 0, "max": 10})
        )
    yield workspace
    workspace.close()


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_transcript(pilot) -> TranscriptScreen:
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TranscriptScreen) and screen.loaded
    return screen


async def test_a_digit_answers_on_a_single_digit_scale(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("1")
        await settle(pilot)
        assert isinstance(app.screen, ValuePrompt) and "ordinal 1-5" in str(
            app.screen.query_one("#value-scale").render()
        )
        assert coding.list_codings(ann, 1) == []  # nothing is coded before the value is given
        await pilot.press("7")  # not on the scale: the dialog stays and says so
        await settle(pilot)
        assert isinstance(app.screen, ValuePrompt)
        assert "7 is not on the scale (ordinal 1-5)" in str(app.screen.query_one("#value-error").render())
        await pilot.press("backspace", "4")
        await settle(pilot)
        assert app.screen is screen
        assert [c.value for c in coding.list_codings(ann, 1)] == [4.0]
        assert "Coded “Moving forward” = 4 on turn 1" in screen.message.plain


async def test_a_number_is_typed_and_checked_and_escape_codes_nothing(study):
    ann = as_person(study, "ann")
    app = make_app(study.store.target, "ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_transcript(pilot)
        await pilot.press("2")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, ValuePrompt) and not prompt.quick
        await pilot.press("1", "2", "enter")
        await settle(pilot)
        assert app.screen is prompt and "12 is not on the scale" in str(prompt.query_one("#value-error").render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen and coding.list_codings(ann, 1) == []
        assert "Not coded: no value given" in screen.message.plain
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("2", ",", "5", "enter")
        await settle(pilot)
        assert [c.value for c in coding.list_codings(ann, 1)] == [2.5]


def test_parse_value():
    assert parse_value(" 2,5 ") == 2.5 and parse_value("-1") == -1.0
    assert parse_value("") is None and parse_value("nan") is None and parse_value("inf") is None
