"""Session selection (domain.md, design A): a hand-checked therapy, a simulated trial with planted
effects, detrending, and the service on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.analysis.session_selection import select_sessions, session_alliance, session_table
from concord.app.cli import main
from concord.services.audit import list_events
from concord.services.selection import select_sessions as select_in_study
from concord.services.study import add_coder, init_study
from concord.services.workspace import Workspace
from concord.storage.errors import NotFound, PermissionDenied
from concord.storage.models import Attribute, Dyad, QuestionnaireScore, Study, TherapySession

COLUMNS = ["therapy", "session", "alliance", "outcome"]

# Therapy A, checked by hand. Next-session BDI-II = 30 - 3 x alliance, plus two planted slips:
# session 5's BDI is 1 point higher and session 7's 1 point lower than the rule gives.
#   session   1    2    3    4    5    6    7    8
ALLIANCE_A = [4.0, 5.0, 6.8, 7.0, 2.1, 2.0, 5.5, 8.0]
BDI_A = [20, 18, 15, 9.6, 10, 23.7, 23, 13.5]
# Highest alliance: 8 (final session: passed over), 4 (BDI 9.6 -> 10 does not fall), 3 (15 -> 9.6: chosen).
# Lowest alliance: 6 (BDI 23.7 -> 23 does not rise), 5 (10 -> 23.7: chosen).
# Therapy B: alliance tells nothing about next week's BDI-II.
ALLIANCE_B = [5, 3, 6, 4, 5, 3, 6, 4]
BDI_B = [20, 20, 21, 19, 20, 21, 19, 20]


def hand_checked() -> pd.DataFrame:
    rows = [("A", n, a, b) for n, (a, b) in enumerate(zip(ALLIANCE_A, BDI_A), 1)]
    rows += [("B", n, a, b) for n, (a, b) in enumerate(zip(ALLIANCE_B, BDI_B), 1)]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_hand_checked_therapy():
    result = select_sessions(hand_checked())
    fits = {fit.therapy: fit for fit in result.fits}
    assert fits["A"].kept and fits["A"].sign == "negative" and fits["A"].pairs == 7
    assert fits["A"].p_value < 1e-5
    assert not fits["B"].kept and fits["B"].p_value > 0.5
    tried = [(c.pole, c.session, c.chosen) for c in result.candidates]
    assert tried == [("high", 8, False), ("high", 4, False), ("high", 3, True), ("low", 6, False), ("low", 5, True)]
    reasons = {(c.pole, c.session): c.reason for c in result.candidates}
    assert "final session" in reasons[("high", 8)]
    assert "does not fall: outcome 9.6 -> 10 at session 5" in reasons[("high", 4)]
    assert "replaces sessions 8, 4" in reasons[("high", 3)]
    assert "replaces session 6" in reasons[("low", 5)]
    assert "does not rise: outcome 23.7 -> 23 at session 7" in reasons[("low", 6)]
    assert result.chosen_session("A", "high") == 3 and result.chosen_session("A", "low") == 5
    assert result.chosen_session("B", "high") is None


def test_regression_matches_a_direct_least_squares_fit():
    result = select_sessions(hand_checked())
    fit = next(f for f in result.fits if f.therapy == "A")
    a = np.array(ALLIANCE_A)
    b = np.array(BDI_A, dtype=float)
    x = ((a - a.mean()) / a.std(ddof=1))[:-1]
    y = ((b - b.mean()) / b.std(ddof=1))[1:]
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)


def _wrong_direction() -> pd.DataFrame:
    """Therapy P, where better alliance is followed by MORE symptoms (outcome = 10 + 3 x last alliance),
    beside the hand-checked therapy A."""
    rows = [("P", n, a, 10 + 3 * prev) for n, (a, prev) in enumerate(zip(ALLIANCE_A, [5.0] + ALLIANCE_A[:-1]), 1)]
    data = pd.DataFrame(rows, columns=COLUMNS)
    data.loc[3, "outcome"] += 0.5
    return pd.concat([hand_checked()[lambda d: d.therapy == "A"], data], ignore_index=True)


def test_a_therapy_in_the_wrong_direction_is_left_out():
    result = select_sessions(_wrong_direction())
    fits = {fit.therapy: fit for fit in result.fits}
    assert fits["P"].p_value < 0.05 and fits["P"].sign == "positive"
    assert not fits["P"].kept and fits["P"].wrong_direction
    assert "the wrong direction" in fits["P"].reason and "--include-wrong-direction" in fits["P"].reason
    assert fits["A"].kept and not fits["A"].wrong_direction
    assert {c.therapy for c in result.candidates} == {"A"}


def test_a_wrong_direction_therapy_is_kept_and_flagged_when_asked():
    result = select_sessions(_wrong_direction(), include_wrong_direction=True)
    fit = next(f for f in result.fits if f.therapy == "P")
    assert fit.kept and fit.wrong_direction and "check the data" in fit.reason
    assert "P" in {c.therapy for c in result.candidates}


def test_the_fallback_stops_after_n_candidates():
    # Therapy A's high pole needs three tries (8 is final, 4's BDI-II does not fall, 3 is chosen).
    two = select_sessions(hand_checked(), fallback=2)
    assert two.chosen_session("A", "high") is None and two.chosen_session("A", "low") == 5
    assert [(c.pole, c.session) for c in two.candidates if c.pole == "high"] == [("high", 8), ("high", 4)]
    assert (
        "A",
        "high",
        "none of the 2 highest-alliance sessions is usable (sessions 8, 4): no usable high session",
    ) in (two.unfilled)
    one = select_sessions(hand_checked(), fallback=1)
    assert one.chosen == () and {pole for _t, pole, _r in one.unfilled} == {"high", "low"}
    assert select_sessions(hand_checked()).chosen_session("A", "high") == 3  # the default, 3, reaches it
    with pytest.raises(ValueError, match="fallback must be at least 1"):
        select_sessions(hand_checked(), fallback=0)


# --------------------------------------------------------------------------------------------------
# A simulated trial with planted effects


@dataclass
class Planted:
    therapy: str
    effect: bool
    final: int
    no_fall: int  # highest-alliance non-final session, made to be followed by a BDI-II rise
    no_rise: int  # lowest-alliance non-final session, made to be followed by a BDI-II fall


def simulated_trial(seed: int = 7, patients: int = 8) -> tuple[pd.DataFrame, list[Planted]]:
    """Half the therapies: next-session BDI-II = 25 - 3 x (alliance - 5) + noise. The other half:
    BDI-II unrelated to alliance. In effect therapies the final session has the highest alliance;
    the highest non-final session comes right after a session almost as good, and its next BDI-II
    is nudged up so that it does not fall; the lowest is mirrored so that BDI-II does not rise."""
    rng = np.random.default_rng(seed)
    rows, planted = [], []
    for index in range(patients):
        therapy = f"P{index + 1:02d}"
        effect = index % 2 == 0
        while True:
            count = int(rng.integers(15, 21))
            alliance = rng.normal(5.0, 1.0, count)
            if not effect:
                bdi = rng.normal(20, 3, count)
                plant = Planted(therapy, False, count, 0, 0)
                break
            alliance[-1] = alliance.max() + 1.0
            high = int(np.argmax(alliance[:-1]))
            low = int(np.argmin(alliance[:-1]))
            if min(high, low) < 1 or abs(high - low) < 3:
                continue
            alliance[high - 1] = alliance[high] - 0.1
            alliance[low - 1] = alliance[low] + 0.1
            bdi = np.empty(count)
            bdi[0] = 25 + rng.normal(0, 0.5)
            bdi[1:] = 25 - 3 * (alliance[:-1] - 5.0) + rng.normal(0, 0.5, count - 1)
            bdi[high + 1] = max(bdi[high + 1], bdi[high] + 0.5)
            bdi[low + 1] = min(bdi[low + 1], bdi[low] - 0.5)
            plant = Planted(therapy, True, count, high + 1, low + 1)
            break
        planted.append(plant)
        rows += [(therapy, n + 1, float(alliance[n]), float(round(bdi[n], 1))) for n in range(count)]
    return pd.DataFrame(rows, columns=COLUMNS), planted


def expected_pick(data: pd.DataFrame, therapy: str, pole: str) -> int | None:
    """The procedure's step 5, written out plainly for checking."""
    rows = data[data.therapy == therapy].sort_values("session").reset_index(drop=True)
    order = rows.sort_values(["alliance", "session"], ascending=[pole == "low", True])
    for index, row in order.iterrows():
        if index == len(rows) - 1:
            continue
        change = rows.loc[index + 1, "outcome"] - row.outcome
        if (change < 0) if pole == "high" else (change > 0):
            return int(row.session)
    return None


def test_simulated_trial_picks_what_the_procedure_prescribes():
    # The seed is fixed: with alpha 0.05 about one null therapy in twenty comes out significant by chance.
    data, planted = simulated_trial(seed=7)
    # The procedure as published tries candidates without limit; expected_pick does too.
    result = select_sessions(data, fallback=None)
    fits = {fit.therapy: fit for fit in result.fits}
    for plant in planted:
        assert fits[plant.therapy].kept == plant.effect, fits[plant.therapy].reason
    for plant in (p for p in planted if p.effect):
        assert fits[plant.therapy].sign == "negative"
        tried = {(c.pole, c.session): c for c in result.candidates if c.therapy == plant.therapy}
        high, low = result.chosen_session(plant.therapy, "high"), result.chosen_session(plant.therapy, "low")
        # The planted maximum is the final session, and it is passed over as such.
        assert tried[("high", plant.final)].rank == 1 and not tried[("high", plant.final)].chosen
        assert "final session" in tried[("high", plant.final)].reason
        # The planted non-fall and non-rise are passed over for exactly that reason.
        assert "does not fall" in tried[("high", plant.no_fall)].reason
        assert "does not rise" in tried[("low", plant.no_rise)].reason
        assert high not in (plant.final, plant.no_fall) and low != plant.no_rise
        assert high == expected_pick(data, plant.therapy, "high")
        assert low == expected_pick(data, plant.therapy, "low")
    assert len(result.chosen) == 2 * sum(p.effect for p in planted)


def test_detrending_changes_the_choice_where_a_time_trend_was_planted():
    # Alliance climbs 0.4 a session and BDI-II falls with time; on top, session 5 is unusually good
    # and session 12 unusually poor for where the therapy stands.
    wobble = [0.3, -0.3] * 8
    wobble[4], wobble[11] = 2.5, -2.5
    alliance = [0.4 * n + wobble[n - 1] for n in range(1, 17)]
    bdi = [30.0] + [30 - 0.8 * n - 2 * wobble[n - 1] + (0.2 if n % 3 == 0 else -0.1) for n in range(1, 16)]
    data = pd.DataFrame([("T", n, alliance[n - 1], bdi[n - 1]) for n in range(1, 17)], columns=COLUMNS)
    plain = select_sessions(data)
    detrended = select_sessions(data, detrend=True)
    assert plain.fits[0].kept and detrended.fits[0].kept
    # Without detrending the trend decides: a late session is "high", an early one "low".
    assert plain.chosen_session("T", "high") == 15 and plain.chosen_session("T", "low") == 2
    # Detrended, the sessions that stand out for their point in therapy are chosen.
    assert detrended.chosen_session("T", "high") == 5 and detrended.chosen_session("T", "low") == 12
    assert detrended.detrended and not plain.detrended


def test_too_few_sessions_and_flat_scores_are_reported_not_fitted():
    data = pd.DataFrame(
        [
            ("S", 1, 4.0, 20),
            ("S", 2, 5.0, 18),
            ("S", 3, 3.0, 22),
            ("F", 1, 4.0, 20),
            ("F", 2, 4.0, 18),
            ("F", 3, 4.0, 22),
            ("F", 4, 4.0, 21),
        ],
        columns=COLUMNS,
    )
    fits = {fit.therapy: fit for fit in select_sessions(data).fits}
    assert not fits["S"].kept and "too few" in fits["S"].reason and fits["S"].pairs == 2
    assert not fits["F"].kept and "alliance does not vary" in fits["F"].reason


def test_alliance_is_the_mean_of_client_and_therapist_or_the_one_there_is():
    scores = pd.DataFrame(
        [
            ("A", 1, "client", 50.0),
            ("A", 1, "therapist", 70.0),
            ("A", 2, "client", 40.0),
            ("A", 3, "therapist", 60.0),
            ("A", 3, "therapist", 64.0),
        ],
        columns=["therapy", "session", "respondent", "total"],
    )
    found = {(a.therapy, a.session): a for a in session_alliance(scores)}
    assert found[("A", 1)].alliance == 60.0 and found[("A", 1)].note == "client and therapist"
    assert found[("A", 2)].alliance == 40.0 and found[("A", 2)].note == "client only"
    assert found[("A", 3)].alliance == 62.0 and found[("A", 3)].note == "therapist only"
    table = session_table(
        found.values(),
        pd.DataFrame([("A", 2, "client", 12.0)], columns=["therapy", "session", "respondent", "total"]),
        [("A", 1), ("A", 2), ("A", 3), ("A", 4)],
    )
    assert table["session"].tolist() == [1, 2, 3, 4]
    assert table["outcome"].isna().tolist() == [True, False, True, True]


# --------------------------------------------------------------------------------------------------
# Through the service, on SQLite and PostgreSQL


def scored_study(target: str, *, blind: bool = True) -> Workspace:
    """Therapies A and B of the hand-checked case as dyads with WAI-SR (client), WAI-S-T (therapist)
    and BDI-II scores; session 1 of A has only the client's WAI-SR."""
    workspace = init_study(target, title="Selection", blind=blind)
    for name, role in (("ann", "coder"), ("sue", "supervisor")):
        add_coder(workspace, name, role)
    with workspace.store.session() as session:
        for key, alliance, bdi in (("A", ALLIANCE_A, BDI_A), ("B", ALLIANCE_B, BDI_B)):
            dyad = Dyad(key=key)
            session.add(dyad)
            session.flush()
            for number, (a, b) in enumerate(zip(alliance, bdi), 1):
                therapy = TherapySession(dyad_id=dyad.id, number=number)
                session.add(therapy)
                session.flush()
                # WAI-SR and WAI-S-T totals sit 6 points either side of the planned mean (x 10).
                scores = [("bdi-ii", "client", b)]
                if key == "A" and number == 1:
                    scores.append(("wai-sr", "client", 10 * a))
                else:
                    scores += [("wai-sr", "client", 10 * a - 6), ("wai-s-t", "therapist", 10 * a + 6)]
                for instrument, respondent, total in scores:
                    session.add(
                        QuestionnaireScore(
                            session_id=therapy.id,
                            instrument=instrument,
                            respondent=respondent,
                            items={},
                            subscales={},
                            total=total,
                        )
                    )
        # An earlier run's mark on a session that will not be chosen again.
        stale = session.scalar(select(TherapySession.id).join(Dyad).where(Dyad.key == "B", TherapySession.number == 2))
        session.add(
            Attribute(target_kind="session", target_id=stale, name="alliance group", value="high", blinded=True)
        )
    return workspace


def test_service_selects_and_applies_a_blinded_attribute(study_target):
    workspace = scored_study(study_target)
    sue = Workspace(workspace.store, "sue")
    selection = select_in_study(sue, alliance=["WAI-SR", "WAI-S-T"], outcome="BDI-II")
    assert [(c.therapy, c.pole, c.session) for c in selection.result.chosen] == [("A", "high", 3), ("A", "low", 5)]
    assert selection.single_respondent == (("A", 1, "client"),)
    assert selection.applied == ()

    applied = select_in_study(sue, alliance=["WAI-SR", "WAI-S-T"], outcome="BDI-II", apply="alliance group")
    assert applied.applied == (("A", 3, "high"), ("A", 5, "low"))
    assert applied.cleared == (("B", 2, "high"),)
    with workspace.store.reader() as session:
        marks = session.execute(
            select(Dyad.key, TherapySession.number, Attribute.value, Attribute.blinded)
            .join(TherapySession, TherapySession.id == Attribute.target_id)
            .join(Dyad, Dyad.id == TherapySession.dyad_id)
            .where(Attribute.target_kind == "session", Attribute.name == "alliance group")
            .order_by(TherapySession.number)
        ).all()
    assert [tuple(row) for row in marks] == [("A", 3, "high", True), ("A", 5, "low", True)]
    event = [e for e in list_events(sue) if e.action == "selection.apply"][-1]
    assert event.actor == "sue" and event.details["chosen"] == ["A:3=high", "A:5=low"]
    assert event.details["cleared"] == ["B:2"]


def test_service_respects_the_blind_and_roles(study_target):
    workspace = scored_study(study_target)
    with pytest.raises(PermissionDenied, match="blind"):
        select_in_study(Workspace(workspace.store, "ann"), alliance=["WAI-SR"], outcome="BDI-II")
    with pytest.raises(PermissionDenied, match="blind"):
        select_in_study(Workspace(workspace.store, None), alliance=["WAI-SR"], outcome="BDI-II")
    with workspace.store.session() as session:
        session.get(Study, 1).blind = False
    ann = Workspace(workspace.store, "ann")
    assert select_in_study(ann, alliance=["WAI-SR"], outcome="BDI-II").result.fits
    with pytest.raises(PermissionDenied, match="supervisor"):
        select_in_study(ann, alliance=["WAI-SR"], outcome="BDI-II", apply="group")
    with pytest.raises(NotFound, match=r"no scores for instrument 'PHQ-9'.*bdi-ii, wai-s-t, wai-sr"):
        select_in_study(ann, alliance=["WAI-SR"], outcome="PHQ-9")


def test_cli_prints_choices_and_reasons(tmp_path):
    target = str(tmp_path / "cli.concord")
    scored_study(target).close()
    runner = CliRunner()
    table = runner.invoke(
        main, ["select-sessions", target, "--alliance", "WAI-SR,WAI-S-T", "--outcome", "BDI-II", "--as", "sue"]
    )
    assert table.exit_code == 0, table.output
    assert "Chosen: 1 high and 1 low session(s) from 1 of 2 therapies." in table.output
    assert "final session (no next session)" in table.output
    assert "Alliance from one respondent only: A:1 (client)." in table.output
    as_json = runner.invoke(
        main,
        [
            "select-sessions",
            target,
            "--alliance",
            "WAI-SR,WAI-S-T",
            "--outcome",
            "BDI-II",
            "--as",
            "sue",
            "--format",
            "json",
            "--detrend",
        ],
    )
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["detrended"] is True and {t["therapy"] for t in document["therapies"]} == {"A", "B"}
    refused = runner.invoke(
        main, ["select-sessions", target, "--alliance", "WAI-SR", "--outcome", "BDI-II", "--as", "ann"]
    )
    assert refused.exit_code == 2 and "blind" in refused.output


def test_alliance_on_a_common_scale(study_target):
    """A 5-point WAI-SR (12 items, sums 12-60) and a 7-point WAI-S-T (12-84): averaged as raw totals the
    therapist's would weigh more; on the mean item score, and on z within the patient, they weigh alike."""
    workspace = scored_study(study_target)
    sue = Workspace(workspace.store, "sue")
    items = select_in_study(sue, alliance=["WAI-SR", "WAI-S-T"], outcome="BDI-II")
    assert items.alliance_scale == "items"
    a3 = next(c for c in items.result.candidates if c.therapy == "A" and c.session == 3)
    # Session A3: WAI-SR total 62, WAI-S-T total 74, each over 12 items: (62 / 12 + 74 / 12) / 2.
    assert a3.alliance == pytest.approx((62 / 12 + 74 / 12) / 2)
    z = select_in_study(sue, alliance=["WAI-SR", "WAI-S-T"], outcome="BDI-II", alliance_scale="z")
    a3z = next(c for c in z.result.candidates if c.therapy == "A" and c.session == 3)
    client = np.array([10 * a for a in ALLIANCE_A[:1]] + [10 * a - 6 for a in ALLIANCE_A[1:]])
    therapist = np.array([10 * a + 6 for a in ALLIANCE_A[1:]])
    expected = (
        (client[2] - client.mean()) / client.std(ddof=1) + (therapist[1] - therapist.mean()) / therapist.std(ddof=1)
    ) / 2
    assert a3z.alliance == pytest.approx(expected)
    # The same therapy and the same choices either way here: the two forms move together.
    assert [(c.therapy, c.pole, c.session) for c in z.result.chosen] == [("A", "high", 3), ("A", "low", 5)]


def test_cli_states_the_scale_and_lists_each_candidate(tmp_path):
    target = str(tmp_path / "cli.concord")
    scored_study(target).close()
    run = CliRunner().invoke(
        main,
        ["select-sessions", target, "--alliance", "WAI-SR,WAI-S-T", "--outcome", "BDI-II", "--as", "sue"]
        + ["--alliance-scale", "z", "--fallback", "2"],
    )
    assert run.exit_code == 0, run.output
    assert "Alliance on a common scale: each form's total as a z-score within the patient" in run.output
    assert "at most 2 candidates per pole" in run.output
    assert "No high session for therapy A: none of the 2 highest-alliance sessions is usable" in run.output
    listed = [line for line in run.output.splitlines() if line.startswith("A ")]
    assert any("passed over" in line and "final session" in line for line in listed)
    assert any("chosen" in line for line in listed)
