"""Codebook YAML: the bundled codebooks, the round trip, and validation errors with line numbers."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from concord.codebooks.loader import (
    NAMED_COLOURS,
    RESERVED_HOTKEYS,
    bundled_ids,
    colour_hex,
    dump_codebook,
    load_bundled,
    load_codebook,
)
from concord.codebooks.spec import CodebookSpec, CodeSpec
from concord.storage.errors import InputError, NotFound

REPO = Path(__file__).resolve().parents[1]
HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _shared_file(relative: str) -> Path:
    for base in (REPO.parent / "shared", Path("/work/shared")):
        if (base / relative).exists():
            return base / relative
    pytest.skip(f"shared/{relative} is not beside the repository")


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        load_codebook(textwrap.dedent(text), source_name="test.yaml")
    return caught.value


# --------------------------------------------------------------------------------------------------
# Bundled codebooks


def test_four_codebooks_are_bundled_and_named_after_their_files():
    assert bundled_ids() == ["alliance-ruptures", "cbt-alliance-themes", "inductive", "ipr-relationship-formation"]
    for codebook_id in bundled_ids():
        assert load_bundled(codebook_id).id == codebook_id


def test_unknown_bundled_codebook_lists_the_known_ones():
    with pytest.raises(NotFound, match="cbt-alliance-themes"):
        load_bundled("cbt")


def test_cbt_codebook_has_four_two_pole_themes_with_hotkeys_one_to_eight():
    spec = load_bundled("cbt-alliance-themes")
    assert "Ekeblad" in spec.source and "2022" in spec.source
    themes = spec.codes[:4]
    assert [theme.name for theme in themes] == [
        "therapist style",
        "person in focus",
        "content focus",
        "therapeutic direction",
    ]
    poles = [pole for theme in themes for pole in theme.children]
    assert [pole.name for pole in poles] == [
        "exploring",
        "expert role",
        "focus on the patient",
        "focus on other people and external events",
        "focus on a problem area",
        "absence of focus",
        "moving forward",
        "stagnation",
    ]
    assert [pole.hotkey for pole in poles] == [str(digit) for digit in range(1, 9)]
    for theme in themes:
        high, low = theme.children
        assert (high.pole, high.high_pole, low.pole, low.high_pole) == ("high", True, "low", False)
    starter = spec.find("starter codes")
    assert [code.name for code in starter.children] == [
        "client expresses negative feelings",
        "client expresses positive feelings",
        "therapist and client talk about goals",
    ]
    assert spec.code_count() == 16
    assert spec.hotkeys()["7"] == ("therapeutic direction", "moving forward")


def test_ipr_codebook_has_five_themes_each_facilitating_then_hindering():
    spec = load_bundled("ipr-relationship-formation")
    assert len(spec.codes) == 5
    assert spec.codes[2].name == "the paradox of therapist competence"
    keys = []
    for theme in spec.codes:
        facilitating, hindering = theme.children
        assert (facilitating.pole, facilitating.high_pole) == ("facilitating", True)
        assert (hindering.pole, hindering.high_pole) == ("hindering", False)
        keys += [facilitating.hotkey, hindering.hotkey]
    assert keys == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
    assert spec.find("consolidation", "relationship and work split apart").high_pole is False


def test_alliance_ruptures_codebook_structure():
    spec = load_bundled("alliance-ruptures")
    assert [code.name for code in spec.find("working alliance components").children] == [
        "goal agreement",
        "task agreement",
        "bond",
    ]
    assert [code.name for code in spec.find("rupture markers").children] == ["withdrawal", "confrontation"]
    assert len(spec.find("repair steps").children) == 4
    influence = spec.find("what the therapist does to the alliance")
    strengthens, damages = influence.children
    assert (strengthens.high_pole, damages.high_pole) == (True, False)
    assert len(strengthens.children) == len(damages.children) == 4
    assert spec.find("what the therapist does to the alliance", "damages the alliance", "unrepaired rupture")
    assert spec.hotkeys()["5"] == ("rupture markers", "withdrawal")


def test_inductive_codebook_is_empty():
    spec = load_bundled("inductive")
    assert spec.codes == ()
    assert spec.title


@pytest.mark.parametrize("codebook_id", ["cbt-alliance-themes", "ipr-relationship-formation", "alliance-ruptures"])
def test_every_bundled_code_is_documented_and_coloured(codebook_id):
    for path, code in load_bundled(codebook_id).walk():
        for field in ("definition", "inclusion", "exclusion", "example"):
            assert getattr(code, field), f"{' > '.join(path)} has no {field}"
        assert code.colour and HEX.match(code.colour), path


def test_bundled_texts_are_our_own_words():
    """No run of six words from the domain notes appears in a definition, rule or example.

    Theme and code names are facts from the studies and may repeat; they are removed first.
    """
    domain_words = re.findall(r"[a-z0-9']+", _shared_file("domain.md").read_text(encoding="utf-8").lower())
    domain_runs = {tuple(domain_words[i : i + 6]) for i in range(len(domain_words) - 5)}
    for codebook_id in bundled_ids():
        spec = load_bundled(codebook_id)
        names = sorted((code.name.lower() for _, code in spec.walk()), key=len, reverse=True)
        texts = [spec.description or ""]
        for _, code in spec.walk():
            texts += [code.definition or "", code.inclusion or "", code.exclusion or "", code.example or ""]
        for text in texts:
            lowered = text.lower()
            for name in names:
                lowered = lowered.replace(name, " | ")
            words = re.findall(r"[a-z0-9'|]+", lowered)
            runs = {tuple(words[i : i + 6]) for i in range(len(words) - 5)}
            assert not runs & domain_runs, f"{codebook_id}: {text!r}"


# --------------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize(
    "codebook_id", ["cbt-alliance-themes", "ipr-relationship-formation", "alliance-ruptures", "inductive"]
)
def test_yaml_round_trip_is_lossless_for_bundled(codebook_id):
    spec = load_bundled(codebook_id)
    text = dump_codebook(spec)
    again = load_codebook(text)
    assert again == spec
    assert dump_codebook(again) == text


def test_round_trip_keeps_every_field_of_a_deep_tree():
    leaf = CodeSpec(
        name="leaf: with colon",
        label="Leaf",
        definition="First line.\nSecond line with 'quotes' and \"double\" ones.",
        inclusion="# not a comment",
        exclusion="yes",
        example="T: Um-hm. /.../ P: (laughs shortly) [laughter]",
        pole="hindering",
        high_pole=False,
        hotkey="7",
        colour="teal",
        guid="{0B6B8D0E-5F38-4D6F-8A53-7C1F54A1E9A0}",
    )
    deep = CodeSpec(name="level 3", children=(leaf,))
    spec = CodebookSpec(
        id="custom.book_1",
        title="Custom: book",
        version="1.10",
        source=None,
        description="Línea con acentos — and a dash",
        codes=(
            CodeSpec(
                name="level 1",
                high_pole=True,
                pole="facilitating",
                children=(CodeSpec(name="level 2", children=(deep,)),),
            ),
            CodeSpec(name="null", hotkey="A", colour="#a1B2c3"),
        ),
    )
    text = dump_codebook(spec)
    assert load_codebook(text) == spec
    assert "version: '1.10'" in text


def test_codes_key_is_accepted_for_sub_codes_and_scalars_keep_what_was_written():
    spec = load_codebook(
        textwrap.dedent(
            """\
            id: demo
            title: Demo
            version: 2.0
            codes:
              - name: theme
                colour: Navy
                codes:
                  - name: yes
                    hotkey: 1
                    high_pole: yes
                    definition: >
                      Folded text
                      over two lines.
            """
        )
    )
    assert spec.version == "2.0"
    theme = spec.codes[0]
    assert theme.colour == "navy" and colour_hex(theme.colour) == "#000080"
    child = theme.children[0]
    assert (child.name, child.hotkey, child.high_pole) == ("yes", "1", True)
    assert child.definition == "Folded text over two lines."
    assert spec.version == "2.0" and spec.source is None and spec.description is None


def test_load_from_a_path_names_the_file_in_errors(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("id: mine\ntitle: Mine\ncodes:\n  - name: one\n", encoding="utf-8")
    assert load_codebook(good).codes == (CodeSpec(name="one"),)
    assert load_codebook(str(good)).id == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ntitle: Bad\ncodes:\n  - name: one\n    hotkey: q\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_codebook(bad)
    assert str(caught.value) == f"{bad}:5: hotkey 'q' is reserved for 'quit' (code 'one')"
    assert caught.value.line == 5 and caught.value.path == str(bad)


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(InputError, match="no such codebook file"):
        load_codebook(tmp_path / "absent.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"id: x\ntitle: caf\xe9\n")
    with pytest.raises(InputError) as caught:
        load_codebook(latin)
    assert caught.value.line == 2 and "UTF-8" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Validation


def test_unknown_field_is_named_with_the_closest_known_one():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - name: a
            defintion: typo
        """
    )
    assert error.line == 5
    assert error.detail == "unknown code field 'defintion' (did you mean 'definition'?)"
    assert _error("id: x\ntitle: T\ncodes:\n  - name: a\n    color: red\n").detail.endswith("(did you mean 'colour'?)")
    assert _error("id: x\ntitel: T\n").detail == "unknown codebook field 'titel' (did you mean 'title'?)"


def test_missing_name_points_at_the_code():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - name: fine
          - definition: no name here
        """
    )
    assert (error.line, error.detail) == (5, "this code has no name")
    assert _error("id: x\ntitle: T\ncodes:\n  - name:\n").detail == "this code has no name"


def test_duplicate_hotkey_names_both_lines():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - name: a
            hotkey: "1"
            children:
              - name: b
                hotkey: 1
        """
    )
    assert error.line == 8
    assert error.detail == "hotkey '1' is used twice: line 5 ('a') and line 8 ('b')"


def test_duplicate_sibling_names_are_refused_but_cousins_may_share_a_name():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - name: theme
            children:
              - name: Hope
              - name: hope
        """
    )
    assert error.line == 7
    assert error.detail == "duplicate code name 'hope' under 'theme': lines 6 and 7 ('Hope' and 'hope')"
    spec = load_codebook(
        "id: x\ntitle: T\ncodes:\n  - name: a\n    codes: [{name: same}]\n  - name: b\n    codes: [{name: same}]\n"
    )
    assert [code.children[0].name for code in spec.codes] == ["same", "same"]


def test_alias_that_makes_the_tree_cyclic_is_refused():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - &loop
            name: outer
            children:
              - name: inner
                children:
                  - *loop
        """
    )
    assert error.line == 9
    assert "alias *loop" in error.detail and "cyclic" in error.detail and "'outer'" in error.detail


def test_alias_that_repeats_a_code_elsewhere_is_refused():
    error = _error(
        """\
        id: x
        title: T
        codes:
          - &shared
            name: shared
          - name: other
            children:
              - *shared
        """
    )
    assert error.line == 8
    assert "appears a second time" in error.detail


def test_scalar_aliases_are_fine():
    spec = load_codebook(
        "id: x\ntitle: T\ncodes:\n  - name: a\n    definition: &d Same text\n  - name: b\n    definition: *d\n"
    )
    assert spec.codes[0].definition == spec.codes[1].definition == "Same text"


@pytest.mark.parametrize(
    ("colour", "accepted"),
    [("#1F77B4", "#1F77B4"), ("#abcdef", "#abcdef"), ("Teal", "teal"), ("grey", "grey")],
)
def test_good_colours(colour, accepted):
    spec = load_codebook(f"id: x\ntitle: T\ncodes:\n  - name: a\n    colour: '{colour}'\n")
    assert spec.codes[0].colour == accepted


@pytest.mark.parametrize("colour", ["#12345", "#GGGGGG", "rgb(1,2,3)", "tael", "#1234567"])
def test_bad_colours(colour):
    error = _error(f"id: x\ntitle: T\ncodes:\n  - name: a\n    colour: '{colour}'\n")
    assert error.line == 5 and "neither #RRGGBB nor a known colour name" in error.detail
    if colour == "tael":
        assert "did you mean 'teal'?" in error.detail


@pytest.mark.parametrize(
    ("yaml_value", "problem"),
    [
        ("j", "reserved for 'next turn'"),
        ("'?'", "reserved for 'help'"),
        ("ab", "one printable character"),
        ("' '", "one printable character"),
        ('"\\t"', "one printable character"),
    ],
)
def test_bad_hotkeys(yaml_value, problem):
    error = _error(f"id: x\ntitle: T\ncodes:\n  - name: a\n    hotkey: {yaml_value}\n")
    assert error.line == 5 and problem in error.detail


def test_reserved_keys_cover_navigation_but_not_digits():
    for key in ("q", "?", "/", "j", "k", "h", "l", "up", "down", "left", "right", "escape"):
        assert key in RESERVED_HOTKEYS
    assert not any(str(digit) in RESERVED_HOTKEYS for digit in range(10))
    assert all(re.match(r"^#[0-9A-F]{6}$", value) for value in NAMED_COLOURS.values())


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "the codebook is empty"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("title: T\n", 1, "this codebook has no id"),
        ("id: x\n", 1, "this codebook has no title"),
        ("id: Not Valid\ntitle: T\n", 1, "must be lower-case letters"),
        ("id: x\ntitle: T\ntitle: again\n", 3, "given twice in this codebook (first on line 2)"),
        ("id: x\ntitle: T\ncodes: oops\n", 3, "codes must be a list"),
        ("id: x\ntitle: T\ncodes:\n  - plain text\n", 4, "not bare text"),
        ("id: x\ntitle: T\ncodes:\n  - name: a\n    high_pole: 'true'\n", 5, "true or false"),
        ("id: x\ntitle: T\ncodes:\n  - name: a\n    definition: [a, b]\n", 5, "must be text"),
        ("id: x\ntitle: T\ncodes:\n  - name: a\n    children: []\n    codes: []\n", 6, "both 'children' and 'codes'"),
        ("id: x\ntitle: T\ncodes:\n  - name: a\n    guid: 1234\n", 5, "is not a GUID"),
        ("id: x\ntitle: T\ncodes:\n  - name: a\n    description: x\n", 5, "unknown code field 'description'"),
        ("id: x\ntitle: T\ncodes:\n  - name: |\n      two\n      lines\n", 4, "must fit on one line"),
        ("id: x\ntitle: [unclosed\n", 3, "not valid YAML"),
        ("id: x\ntitle: T\ncodes:\n  - <<: {name: a}\n", 4, "merge keys"),
    ],
)
def test_structural_errors_have_lines(text, line, fragment):
    error = _error(text)
    assert error.line == line, error
    assert fragment in error.detail
    assert str(error).startswith(f"test.yaml:{line}: ")


def test_duplicate_guid_names_both_lines():
    guid = "0b6b8d0e-5f38-4d6f-8a53-7c1f54a1e9a0"
    error = _error(
        f"id: x\ntitle: T\ncodes:\n  - name: a\n    guid: {guid}\n  - name: b\n    guid: '{{{guid.upper()}}}'\n"
    )
    assert error.line == 7 and "line 5 ('a') and line 7 ('b')" in error.detail


def test_format_document_covers_every_field_reserved_key_and_colour_name():
    from concord.codebooks.loader import CODE_FIELDS, CODEBOOK_FIELDS

    document = (REPO / "docs" / "codebook-format.md").read_text(encoding="utf-8")
    for field in (*CODEBOOK_FIELDS, *CODE_FIELDS, "codes"):
        assert f"`{field}`" in document, field
    for key in RESERVED_HOTKEYS:
        assert f"`{key}`" in document, key
    for name in NAMED_COLOURS:
        assert f"`{name}`" in document, name
