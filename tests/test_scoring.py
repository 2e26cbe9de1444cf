"""Instrument definitions and scoring: bundled keys against hand-computed scores, user
definitions, templates, and malformed YAML reported with file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from concord.analysis.scoring import Instrument, list_instruments, load_instrument, score
from concord.storage.errors import InputError, NotFound


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def answers(*values: float | None) -> dict[str, float | None]:
    return {str(number): value for number, value in enumerate(values, start=1)}


# ----------------------------------------------------------------------------- bundled


def test_bundled_definitions_are_the_confirmed_ones_and_the_templates():
    by_id = {instrument.id: instrument for instrument in list_instruments()}
    assert set(by_id) == {"wai-sr", "bdi-ii", "phq-9", "gad-7", "srs", "care", "wai-s-t", "rri-c-sf", "ses"}
    assert {name for name, item in by_id.items() if item.status == "confirmed"} == {
        "wai-sr",
        "bdi-ii",
        "phq-9",
        "gad-7",
        "srs",
        "care",
    }
    # CARE's authors publish a missing-answer rule: up to two answers replaced by the others' mean.
    care = by_id["care"]
    assert (care.missing.rule, care.missing.max_missing, care.missing_values) == ("prorate", 2, (0.0,))
    prorated = score(care, {str(n): 4 for n in range(1, 9)} | {"9": 0, "10": None})
    assert (prorated.total, prorated.prorated, prorated.missing) == (40, True, ["9", "10"])
    assert score(care, {str(n): 4 for n in range(1, 8)} | {"8": 0, "9": 0, "10": 0}).total is None
    # The WAI-S-T scores with the key reported for the WAI-S; its status says that key is second-hand.
    assert by_id["wai-s-t"].status == "reported" and by_id["wai-s-t"].respondent == "therapist"
    assert by_id["wai-s-t"].reverse == ("4", "10") and by_id["wai-s-t"].to_complete == ()
    # The WAI-SR's therapist version shares its key: both respondents, the client by default.
    assert by_id["wai-sr"].respondents == ("client", "therapist") and by_id["wai-sr"].respondent == "client"
    assert by_id["rri-c-sf"].to_complete == ("scale", "scoring", "reverse", "subscales")
    assert by_id["ses"].to_complete == ("scale", "scoring", "reverse")
    assert [len(by_id[name].items) for name in ("wai-sr", "bdi-ii", "phq-9", "gad-7", "srs")] == [12, 21, 9, 7, 4]


def test_bundled_lookup_ignores_case_and_punctuation():
    assert load_instrument("WAI-SR").id == "wai-sr"
    assert load_instrument("wai_sr").id == "wai-sr"
    assert load_instrument("PHQ9").id == "phq-9"
    with pytest.raises(NotFound, match=r"no bundled instrument 'wai-36'.*bdi-ii"):
        load_instrument("wai-36")


def test_wai_sr_subscales_follow_the_confirmed_key():
    wai = load_instrument("wai-sr")
    assert wai.subscale_items == {
        "Task": ("1", "2", "10", "12"),
        "Bond": ("3", "5", "7", "9"),
        "Goal": ("4", "6", "8", "11"),
    }
    assert wai.reverse == () and wai.respondent == "client" and wai.total_range == (12, 60)
    # items 1..12 answered 1,2,3,4,5,1,2,3,4,5,1,2
    result = score(wai, answers(1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2))
    assert result.subscales == {"Task": 1 + 2 + 5 + 2, "Bond": 3 + 5 + 2 + 4, "Goal": 4 + 1 + 3 + 1}
    assert result.total == 33
    assert (result.band, result.missing, result.prorated) == (None, [], False)


def test_wai_sr_out_of_range_names_item_value_and_range():
    wai = load_instrument("wai-sr")
    with pytest.raises(ValueError, match=r"WAI-SR item 7: 6 is outside the allowed range 1–5"):
        score(wai, answers(5, 5, 5, 5, 5, 5, 6, 5, 5, 5, 5, 5))
    with pytest.raises(ValueError, match=r"item 2: 2.5 is not a point of the scale 1–5"):
        score(wai, {"1": 3, "2": 2.5})
    with pytest.raises(ValueError, match=r"has no item '13'"):
        score(wai, {"13": 3})
    with pytest.raises(ValueError, match=r"item 1: 'often' is not a number"):
        score(wai, {"1": "often"})


def test_wai_sr_seven_point_and_mean_scoring_by_extension(tmp_path):
    seven = load_instrument(
        write(
            tmp_path,
            "wai7.yaml",
            """
        id: wai-sr-7
        extends: wai-sr
        scale: {min: 1, max: 7}
        scoring: mean
    """,
        )
    )
    assert (seven.status, seven.title, seven.scale.max, seven.total_range) == ("user", "WAI-SR", 7, (1, 7))
    assert seven.subscale_items["Bond"] == ("3", "5", "7", "9")
    result = score(seven, answers(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2))
    # Task 1,2,10,12 = 7,7,3,2; Bond 3,5,7,9 = 6,5,4,3; Goal 4,6,8,11 = 6,5,4,2
    assert result.subscales == {"Task": 19 / 4, "Bond": 18 / 4, "Goal": 17 / 4}
    assert result.total == pytest.approx(54 / 12)


def test_bdi_ii_sum_variants_bands_and_review_item():
    bdi = load_instrument("bdi-ii")
    values = [1] * 21
    values[15] = "2b"  # item 16: 2a and 2b both count 2
    values[17] = "3a"  # item 18
    result = score(bdi, answers(*values))
    assert result.total == 19 + 2 + 3
    assert result.band == "moderate"
    assert result.review == ["9"]
    with pytest.raises(ValueError, match=r"item 3: '2b' is not a number"):
        score(bdi, {"3": "2b"})
    with pytest.raises(ValueError, match=r"item 16: '2c' is not a number \(item 16 also accepts"):
        score(bdi, {"16": "2c"})


@pytest.mark.parametrize(
    ("instrument_id", "total", "band"),
    [
        ("bdi-ii", 0, "minimal"),
        ("bdi-ii", 13, "minimal"),
        ("bdi-ii", 14, "mild"),
        ("bdi-ii", 19, "mild"),
        ("bdi-ii", 20, "moderate"),
        ("bdi-ii", 28, "moderate"),
        ("bdi-ii", 29, "severe"),
        ("bdi-ii", 63, "severe"),
        ("phq-9", 4, "none/minimal"),
        ("phq-9", 5, "mild"),
        ("phq-9", 9, "mild"),
        ("phq-9", 10, "moderate"),
        ("phq-9", 14, "moderate"),
        ("phq-9", 15, "moderately severe"),
        ("phq-9", 19, "moderately severe"),
        ("phq-9", 20, "severe"),
        ("phq-9", 27, "severe"),
        ("gad-7", 0, "none/minimal"),
        ("gad-7", 4, "none/minimal"),
        ("gad-7", 5, "mild"),
        ("gad-7", 9, "mild"),
        ("gad-7", 10, "moderate"),
        ("gad-7", 14, "moderate"),
        ("gad-7", 15, "severe"),
        ("gad-7", 21, "severe"),
    ],
)
def test_band_boundaries(instrument_id, total, band):
    instrument = load_instrument(instrument_id)
    item_count = len(instrument.items)
    # spread the total over the items, 3 at most per item
    values = [min(3, max(0, total - 3 * index)) for index in range(item_count)]
    assert sum(values) == total
    result = score(instrument, answers(*values))
    assert (result.total, result.band) == (total, band)


def test_phq_9_item_9_flags_review_only_when_positive():
    phq = load_instrument("phq-9")
    assert score(phq, answers(0, 0, 0, 0, 0, 0, 0, 0, 1)).review == ["9"]
    assert score(phq, answers(3, 3, 3, 3, 3, 3, 3, 3, 0)).review == []


def test_srs_tenth_of_a_centimetre_and_the_cutoff(tmp_path):
    srs = load_instrument("srs")
    below = score(srs, answers(8.9, 9.0, 9.0, 9.0))
    at = score(srs, answers(9.1, 9.0, 8.9, 9.0))
    assert (below.total, below.band) == (35.9, "below cutoff")
    assert (at.total, at.band) == (36.0, "at or above cutoff")
    assert score(srs, answers(10, 10, 10, 10)).total == 40
    with pytest.raises(ValueError, match=r"SRS item 2: 9.05 is not a point of the scale 0–10 in steps of 0.1"):
        score(srs, answers(9, 9.05, 9, 9))
    # the "36 or less" reading of the cutoff, as a user definition
    inclusive = load_instrument(
        write(
            tmp_path,
            "srs36.yaml",
            """
        id: srs-36-inclusive
        extends: srs
        bands:
          - {name: at or below cutoff, min: 0, max: 36}
          - {name: above cutoff, min: 36.1, max: 40}
    """,
        )
    )
    assert score(inclusive, answers(9.1, 9.0, 8.9, 9.0)).band == "at or below cutoff"
    assert score(inclusive, answers(9.1, 9.1, 8.9, 9.0)).band == "above cutoff"


# ----------------------------------------------------------------------------- missing answers


def test_bundled_definitions_refuse_incomplete_forms():
    result = score(load_instrument("gad-7"), answers(3, 3, None, 3, 3, 3, 3))
    assert (result.total, result.band, result.missing, result.prorated) == (None, None, ["3"], False)
    wai = score(load_instrument("wai-sr"), {"1": 4, "2": 4})
    assert wai.total is None and wai.subscales == {"Task": None, "Bond": None, "Goal": None}
    assert wai.missing == ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]


def user_scale(tmp_path: Path, missing: str, scoring: str = "sum") -> Instrument:
    return load_instrument(
        write(
            tmp_path,
            "six.yaml",
            f"""
        id: six
        title: Six items
        respondent: client
        items: 6
        scale: {{min: 1, max: 5}}
        scoring: {scoring}
        reverse: [2, 5]
        subscales:
          A: [1, 2, 3]
          B: [4, 5, 6]
        missing: {missing}
    """,
        )
    )


def test_reverse_keyed_items_in_a_user_instrument(tmp_path):
    six = user_scale(tmp_path, "{rule: refuse}")
    # answers 1..6 = 2,1,4,5,2,3; items 2 and 5 reversed as 6 - x: 1 -> 5, 2 -> 4
    result = score(six, answers(2, 1, 4, 5, 2, 3))
    assert result.subscales == {"A": 2 + 5 + 4, "B": 5 + 4 + 3}
    assert result.total == 23
    mean = score(user_scale(tmp_path, "{rule: refuse}", scoring="mean"), answers(2, 1, 4, 5, 2, 3))
    assert mean.subscales == {"A": 11 / 3, "B": 4.0}
    assert mean.total == pytest.approx(23 / 6)


def test_prorating_up_to_the_allowed_number_of_missing_items(tmp_path):
    six = user_scale(tmp_path, "{rule: prorate, max_missing: 2, max_missing_per_subscale: 1}")
    # item 3 missing: A from items 1,2 = 2 + 5 -> mean 3.5 -> 10.5; total from 5 answers
    one = score(six, answers(2, 1, None, 5, 2, 3))
    assert one.subscales == {"A": 10.5, "B": 12}
    assert one.total == pytest.approx((2 + 5 + 5 + 4 + 3) / 5 * 6)
    assert one.prorated and one.missing == ["3"]
    # two missing in subscale A: A refused, total still allowed (2 missing overall)
    two = score(six, answers(2, None, None, 5, 2, 3))
    assert two.subscales == {"A": None, "B": 12}
    assert two.total == pytest.approx((2 + 5 + 4 + 3) / 4 * 6)
    # three missing: over max_missing, no total
    three = score(six, answers(None, None, 4, None, 2, 3))
    # B misses only item 4: (4 + 3) / 2 * 3
    assert three.total is None and three.subscales == {"A": None, "B": 10.5}
    complete = score(six, answers(2, 1, 4, 5, 2, 3))
    assert not complete.prorated


def test_a_prorated_total_between_adjacent_bands_stays_in_the_lower_one(tmp_path):
    bdi = load_instrument(
        write(
            tmp_path,
            "bdi-prorated.yaml",
            """
        id: bdi-ii-prorated
        extends: bdi-ii
        missing: {rule: prorate, max_missing: 4}
    """,
        )
    )
    values = [0] * 21
    for index in range(12):
        values[index] = 1
    values[19] = values[20] = None
    # 12 over 19 answered items, scaled to 21: 13.26 has not reached 14
    result = score(bdi, answers(*values))
    assert result.total == pytest.approx(12 / 19 * 21)
    assert result.band == "minimal" and result.prorated
    values[12] = 1
    assert score(bdi, answers(*values)).band == "mild"  # 13 / 19 * 21 = 14.37


def test_a_wide_gap_between_bands_is_left_unlabelled(tmp_path):
    gad = load_instrument(
        write(
            tmp_path,
            "gad-screen.yaml",
            """
        id: gad-screen
        extends: gad-7
        bands:
          - {name: low, min: 0, max: 4}
          - {name: probable, min: 10, max: 21}
    """,
        )
    )
    assert score(gad, answers(1, 1, 1, 1, 1, 1, 1)).band is None
    assert score(gad, answers(3, 3, 3, 1, 0, 0, 0)).band == "probable"


def test_missing_value_codes_count_as_missing(tmp_path):
    care = load_instrument(
        write(
            tmp_path,
            "care.yaml",
            """
        id: care
        items: 10
        scale: {min: 1, max: 5}
        missing_values: [0]
        missing: {rule: prorate, max_missing: 2}
    """,
        )
    )
    result = score(care, answers(5, 4, 5, 4, 5, 5, 5, 4, 0, 0))
    assert result.missing == ["9", "10"]
    assert result.total == pytest.approx(37 / 8 * 10)
    with pytest.raises(ValueError, match=r"item 1: 6 is outside the allowed range 1–5, or the missing-value code 0"):
        score(care, {"1": 6})


# ----------------------------------------------------------------------------- templates


def test_a_template_is_refused_for_scoring_naming_the_fields_to_complete():
    with pytest.raises(InputError, match=r"rri-c-sf.yaml: .*template.*complete scale, scoring, reverse, subscales"):
        load_instrument("rri-c-sf")
    template = load_instrument("ses", allow_template=True)
    assert template.scale is None and template.is_template
    with pytest.raises(InputError, match=r"SES \(ses\) is a template.*complete scale, scoring, reverse"):
        score(template, {"1": 3})


def test_completing_a_template_by_extension(tmp_path):
    # An artificial key standing in for a licensed scoring sheet: not the RRI-C-SF key.
    partial = write(
        tmp_path,
        "partial.yaml",
        """
        id: my-rri
        extends: rri-c-sf
        scale: {min: 1, max: 5}
        scoring: sum
        reverse: []
    """,
    )
    with pytest.raises(InputError) as raised:
        load_instrument(partial)
    assert raised.value.line == 2
    assert "extends the template 'rri-c-sf' but does not complete subscales" in str(raised.value)

    complete = load_instrument(
        write(
            tmp_path,
            "complete.yaml",
            """
        id: my-rri
        extends: rri-c-sf
        scale: {min: 1, max: 5}
        scoring: sum
        reverse: [2]
        subscales:
          First: [1, 2, 3, 4]
          Second: [5, 6, 7, 8]
    """,
        )
    )
    assert (complete.status, complete.respondent, complete.scale.max) == ("user", "client", 5)
    result = score(complete, answers(5, 5, 5, 5, 1, 1, 1, 1))
    # item 2 reversed as 6 - 5 = 1
    assert result.subscales == {"First": 5 + 1 + 5 + 5, "Second": 4}
    assert result.total == 20


# ----------------------------------------------------------------------------- malformed definitions


def problem_of(path: Path) -> InputError:
    with pytest.raises(InputError) as raised:
        load_instrument(path)
    return raised.value


def test_unknown_field_names_file_line_and_suggestion(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 3
        scale: {min: 1, max: 5}
        reverse_items: [1]
    """,
        )
    )
    assert (error.path, error.line) == (str(tmp_path / "bad.yaml"), 4)
    assert "unknown field 'reverse_items'; did you mean 'review_items' or 'reverse'?" in str(error)


def test_subscale_item_that_does_not_exist(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5}
        subscales:
          A: [1, 2]
          B: [3, 5]
    """,
        )
    )
    assert error.line == 6
    assert "subscale 'B' names item 5, which is not among the items (1–4)" in str(error)


def test_scale_min_not_below_max(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale:
          min: 5
          max: 1
    """,
        )
    )
    assert error.line == 4
    assert "scale min 5 must be below max 1" in str(error)


def test_duplicate_item_ids_and_duplicate_keys(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: [a1, a2, A1]
        scale: {min: 1, max: 5}
    """,
        )
    )
    assert error.line == 2 and "duplicate item id 'A1' (first at line 2)" in str(error)
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5}
        subscales:
          A: [1, 2]
          A: [3, 4]
    """,
        )
    )
    assert error.line == 6 and "duplicate key 'A' in subscales (first at line 5)" in str(error)
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5}
        items: 5
    """,
        )
    )
    assert error.line == 4 and "duplicate field 'items' (first at line 2)" in str(error)


def test_every_problem_is_listed_with_its_line(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5}
        reverse: [1, 1]
        missing_values: [3]
        missing: {rule: prorate, max_missing: 4}
        bands:
          - {name: low, min: 4, max: 12}
          - {name: high, min: 10, max: 25}
        to_complete: [reverse]
    """,
        )
    )
    text = str(error)
    assert text.startswith(f"{tmp_path / 'bad.yaml'}:4: 6 problems")
    for expected in (
        ":4: item 1 appears twice in reverse",
        ":5: missing value 3 is also an answer on the scale 1–5",
        ":6: max_missing 4 would allow a form with no answer",
        ":9: band 'high' starts at 10, not above the end of 'low' (12)",
        ":9: band 'high' (10–25) lies outside the possible totals 4–20",
        ":10: to_complete belongs in templates only",
    ):
        assert expected in text


def test_syntax_errors_and_wrong_shapes(tmp_path):
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5
        scoring: sum
    """,
        )
    )
    assert error.line == 4 and "not valid YAML" in str(error)
    error = problem_of(write(tmp_path, "bad.yaml", "- id: x\n"))
    assert error.line == 1 and "mapping of fields" in str(error)
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        items: 4
        scale: {min: 1, max: 5, steps: 1}
        scoring: median
    """,
        )
    )
    assert "3: unknown field 'steps' in scale" in str(error)
    assert "4: scoring must be one of sum, mean, not 'median'" in str(error)
    error = problem_of(
        write(
            tmp_path,
            "bad.yaml",
            """
        id: x
        scale: {min: 1, max: 5}
    """,
        )
    )
    assert error.line == 1 and "missing required field 'items'" in str(error)


def test_extension_problems(tmp_path):
    error = problem_of(write(tmp_path, "a.yaml", "id: a\nextends: b.yaml\n"))
    assert error.line == 2 and "extends 'b.yaml', but there is no such file" in str(error)
    write(tmp_path, "b.yaml", "id: b\nextends: c.yaml\nitems: 3\nscale: {min: 0, max: 1}\n")
    write(tmp_path, "c.yaml", "id: c\nextends: b.yaml\n")
    error = problem_of(tmp_path / "b.yaml")
    assert "extends 'b.yaml', which extends this file again" in str(error)
    error = problem_of(write(tmp_path, "d.yaml", "id: d\nextends: wai-36\n"))
    assert "no bundled instrument 'wai-36'" in str(error)
    # a field the user overrides can break an inherited one: the inherited line is named
    error = problem_of(write(tmp_path, "short.yaml", "id: wai-short\nextends: wai-sr\nitems: 10\n"))
    assert "wai-sr.yaml:" in str(error) and "subscale 'Task' names item 12" in str(error)


def test_listing_a_folder_refuses_duplicate_ids(tmp_path):
    write(tmp_path, "one.yaml", "id: Care\nitems: 2\nscale: {min: 1, max: 5}\n")
    assert [instrument.id for instrument in list_instruments(tmp_path)] == ["Care"]
    write(tmp_path, "two.yaml", "id: care\nitems: 3\nscale: {min: 1, max: 5}\n")
    with pytest.raises(InputError, match=r"two.yaml: duplicate instrument id 'care'.*one.yaml"):
        list_instruments(tmp_path)
