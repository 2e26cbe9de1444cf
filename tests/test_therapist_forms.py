"""The therapist's alliance forms: the WAI-SR's therapist version and the WAI-S-T, scored with their
keys against forms scored by hand, imported with --respondent therapist."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from concord.analysis.scoring import load_instrument, mean_item_score, score
from concord.app.cli import main
from concord.storage.models import QuestionnaireScore
from tests.factories import make_study

# WAI-S-T, 7-point; items 4 and 10 reversed as 8 - answer.
WAI_S_T = [7, 6, 5, 2, 6, 5, 7, 4, 6, 1, 5, 6]
# By hand: item 4 -> 6, item 10 -> 7.
#   Task 1, 2, 10, 12 = 7 + 6 + 7 + 6 = 26; Bond 3, 5, 7, 9 = 5 + 6 + 7 + 6 = 24;
#   Goal 4, 6, 8, 11 = 6 + 5 + 4 + 5 = 20; total 70.
WAI_S_T_HAND = {"Task": 26, "Bond": 24, "Goal": 20}

# WAI-SR, therapist version, 5-point, no reversed item.
WAI_SR_T = [4, 5, 3, 4, 5, 4, 5, 3, 4, 4, 5, 4]
#   Task 4 + 5 + 4 + 4 = 17; Bond 3 + 5 + 5 + 4 = 17; Goal 4 + 4 + 3 + 5 = 16; total 50.
WAI_SR_T_HAND = {"Task": 17, "Bond": 17, "Goal": 16}


def _answers(values):
    return {str(number): value for number, value in enumerate(values, 1)}


def test_wai_s_t_scores_with_its_reported_key():
    instrument = load_instrument("WAI-S-T")
    assert instrument.status == "reported" and instrument.respondent == "therapist"
    scored = score(instrument, _answers(WAI_S_T))
    assert scored.subscales == WAI_S_T_HAND and scored.total == 70
    # The worst answers everywhere are the lowest alliance on every keyed item.
    worst = score(instrument, _answers([1, 1, 1, 7, 1, 1, 1, 1, 1, 7, 1, 1]))
    assert worst.total == 12


def test_the_wai_sr_therapist_version_shares_the_client_key():
    instrument = load_instrument("WAI-SR")
    assert instrument.answered_by("therapist") and instrument.answered_by("client")
    scored = score(instrument, _answers(WAI_SR_T))
    assert scored.subscales == WAI_SR_T_HAND and scored.total == 50


def test_mean_item_scores_put_the_forms_on_one_scale():
    assert mean_item_score("WAI-SR", 50, {}) == pytest.approx(50 / 12)
    assert mean_item_score("wai_s_t", 70, None) == pytest.approx(70 / 12)
    # Not bundled: taken as a sum over the items stored with it.
    assert mean_item_score("MY-FORM", 20, {"1": 5, "2": 5, "3": 5, "4": 5}) == 5.0
    assert mean_item_score("MY-FORM", 20, {}) is None and mean_item_score("WAI-SR", None, {}) is None


def _table(path, values):
    header = "dyad,session," + ",".join(f"item{n}" for n in range(1, 13))
    path.write_text(header + "\n1,5," + ",".join(map(str, values)) + "\n")
    return path


def test_import_with_respondent_therapist(tmp_path):
    target = str(tmp_path / "s.concord")
    make_study(target).close()
    runner = CliRunner()
    sr = runner.invoke(
        main,
        ["import", "measures", target, str(_table(tmp_path / "sr-t.csv", WAI_SR_T)), "--instrument", "WAI-SR"]
        + ["--respondent", "therapist", "--as", "sue"],
    )
    assert sr.exit_code == 0, sr.output
    st = runner.invoke(
        main,
        ["import", "measures", target, str(_table(tmp_path / "s-t.csv", WAI_S_T)), "--instrument", "WAI-S-T"]
        + ["--as", "sue"],
    )
    assert st.exit_code == 0, st.output
    assert "not checked against the official scoring sheet" in st.stderr
    from concord.services.workspace import Workspace

    workspace = Workspace.open(target, "sue")
    with workspace.store.reader() as session:
        rows = {
            (r.instrument, r.respondent): (r.total, r.subscales)
            for r in session.scalars(select(QuestionnaireScore).where(QuestionnaireScore.respondent == "therapist"))
        }
    workspace.close()
    assert rows[("WAI-SR", "therapist")] == (50, WAI_SR_T_HAND)
    assert rows[("WAI-S-T", "therapist")] == (70, WAI_S_T_HAND)
    # A client form is still refused for a therapist-only instrument.
    refused = runner.invoke(
        main,
        ["import", "measures", target, str(tmp_path / "s-t.csv"), "--instrument", "WAI-S-T"]
        + ["--respondent", "client", "--as", "sue"],
    )
    assert refused.exit_code == 2 and "answered by the therapist, not the client" in refused.stderr
