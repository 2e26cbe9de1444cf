"""REFI-QDA .qdc export and import: schema validity, lossless round trip, and other tools' files."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from concord.codebooks.loader import load_bundled, load_codebook
from concord.codebooks.qdc import CODE_FIELDS_MARKER, export_qdc, import_qdc, read_qdc, stable_guid
from concord.codebooks.spec import CodebookSpec, CodeSpec
from concord.storage.errors import ConcordError, InputError

REPO = Path(__file__).resolve().parents[1]
NS = {"c": "urn:QDA-XML:codebook:1.0"}
FILLED = ["cbt-alliance-themes", "ipr-relationship-formation", "alliance-ruptures"]


def _refi_dir() -> Path:
    for base in (REPO.parent / "shared", Path("/work/shared")):
        if (base / "refi-qda" / "Codebook.xsd").exists():
            return base / "refi-qda"
    pytest.skip("shared/refi-qda is not beside the repository")


@pytest.fixture(scope="module")
def codebook_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(_refi_dir() / "Codebook.xsd"))


def _sample(name: str) -> Path:
    return _refi_dir() / "samples" / name


def _inductive_with_codes() -> CodebookSpec:
    spec = load_bundled("inductive")
    return replace(
        spec,
        codes=(
            CodeSpec(name="worry about work", colour="orange", children=(CodeSpec(name="night-time rumination"),)),
            CodeSpec(name="laughter", hotkey="z"),
        ),
    )


# --------------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("codebook_id", FILLED)
def test_export_validates_against_the_codebook_schema(codebook_id, codebook_schema):
    data = export_qdc(load_bundled(codebook_id))
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<CodeBook')
    assert not data.startswith(b"\xef\xbb\xbf")
    codebook_schema.validate(data.decode("utf-8"))
    etree.XMLSchema(etree.parse(str(_refi_dir() / "Codebook.xsd"))).assertValid(etree.fromstring(data))


@pytest.mark.parametrize("codebook_id", FILLED)
def test_bundled_round_trip_through_qdc_loses_nothing(codebook_id):
    spec = load_bundled(codebook_id)
    result = read_qdc(export_qdc(spec), "export.qdc")
    assert result.spec == spec
    assert result.warnings == ()


def test_the_empty_inductive_codebook_cannot_be_a_qdc_but_round_trips_once_it_has_codes(codebook_schema):
    with pytest.raises(ConcordError, match="at least one code"):
        export_qdc(load_bundled("inductive"))
    spec = _inductive_with_codes()
    data = export_qdc(spec)
    codebook_schema.validate(data.decode("utf-8"))
    assert import_qdc(data) == spec


def test_guids_are_stable_and_kept_when_given():
    spec = load_bundled("cbt-alliance-themes")
    first, second = export_qdc(spec), export_qdc(spec)
    assert first == second
    root = etree.fromstring(first)
    exploring = root.find(".//c:Code[@name='therapist style']/c:Code[@name='exploring']", NS)
    assert exploring.get("guid") == stable_guid("cbt-alliance-themes", ("therapist style", "exploring"))
    guids = [code.get("guid") for code in root.iter("{urn:QDA-XML:codebook:1.0}Code")]
    assert len(set(guids)) == len(guids) == spec.code_count()
    pinned = replace(
        spec, codes=(replace(spec.codes[0], guid="{ABCDEF01-2345-4678-89AB-CDEF01234567}"), *spec.codes[1:])
    )
    pinned_root = etree.fromstring(export_qdc(pinned))
    assert pinned_root.find("c:Codes/c:Code", NS).get("guid") == "{ABCDEF01-2345-4678-89AB-CDEF01234567}"
    assert import_qdc(export_qdc(pinned)).codes[0].guid == "{ABCDEF01-2345-4678-89AB-CDEF01234567}"


def test_description_carries_definition_then_a_readable_field_block():
    root = etree.fromstring(export_qdc(load_bundled("cbt-alliance-themes")))
    stagnation = root.find(".//c:Code[@name='stagnation']", NS)
    assert stagnation.get("color") == "#CDB5EB"
    assert stagnation.get("isCodable") == "true"
    text = stagnation.find("c:Description", NS).text
    definition, block = text.split(f"\n\n{CODE_FIELDS_MARKER}\n")
    assert definition.startswith("The conversation circles around hardship")
    lines = block.split("\n")
    assert lines[0].startswith("Label: Stagnation")
    assert "Pole: low" in lines and "High pole: no" in lines and "Hotkey: 8" in lines
    codebook_set = root.find("c:Sets/c:Set", NS)
    assert codebook_set.get("name") == "CBT alliance themes (high vs low alliance sessions)"
    assert len(codebook_set.findall("c:MemberCode", NS)) == 16


def test_named_colour_travels_as_hex_and_comes_back_as_its_name():
    spec = _inductive_with_codes()
    root = etree.fromstring(export_qdc(spec))
    assert root.find("c:Codes/c:Code", NS).get("color") == "#FFA500"
    assert import_qdc(export_qdc(spec)).codes[0].colour == "orange"


def test_multi_line_text_and_a_code_without_definition_survive():
    spec = load_codebook(
        "id: t\ntitle: T\ncodes:\n"
        "  - name: a\n    inclusion: |\n      line one\n\n      line three after a blank\n    pole: high\n"
        "  - name: b\n    definition: Only a definition.\n"
        "  - name: c\n"
    )
    data = export_qdc(spec)
    assert import_qdc(data) == spec
    root = etree.fromstring(data)
    assert root.find("c:Codes/c:Code[@name='c']/c:Description", NS) is None
    assert root.find("c:Codes/c:Code[@name='b']/c:Description", NS).text == "Only a definition."
    assert root.find("c:Codes/c:Code[@name='a']/c:Description", NS).text.startswith(CODE_FIELDS_MARKER)


def test_the_yaml_qdc_yaml_chain_is_stable_for_a_file(tmp_path):
    from concord.codebooks.loader import dump_codebook

    spec = load_bundled("alliance-ruptures")
    path = tmp_path / "ruptures.qdc"
    path.write_bytes(export_qdc(spec))
    assert dump_codebook(import_qdc(path)) == dump_codebook(spec)


# --------------------------------------------------------------------------------------------------
# Other tools' files


def test_taguette_codebook_with_empty_sets_imports_leniently():
    result = read_qdc(_sample("taguette-1.5.2_codebook_reconstructed-from-tests.qdc"))
    spec = result.spec
    assert [code.name for code in spec.codes] == ["interesting", "people", "interesting\\places"]
    assert spec.codes[0].guid == "0D62985D-B147-5D01-A9B5-CAE5DCD98342"
    assert spec.source == "REFI-QDA codebook from Taguette 1.5.2"
    assert any("<Sets/>" in warning for warning in result.warnings)


def test_taguette_flattened_names_can_be_split_into_a_hierarchy():
    result = read_qdc(_sample("taguette-1.5.2_codebook_reconstructed-from-tests.qdc"), split_flattened_names=True)
    interesting, people = result.spec.codes
    assert (interesting.name, people.name) == ("interesting", "people")
    assert [child.name for child in interesting.children] == ["places"]
    assert interesting.children[0].guid == "55BB6892-6F30-5129-8CB8-557A1B12137B"
    assert interesting.guid == "0D62985D-B147-5D01-A9B5-CAE5DCD98342"


def _expected_from_project(path: Path) -> tuple[int, int, int]:
    """Codes, top-level codes and deepest nesting, counted straight from the project XML."""
    with zipfile.ZipFile(path) as archive:
        root = etree.fromstring(archive.read("project.qde"))
    codes = [element for element in root.iter() if etree.QName(element).localname == "Code"]
    top = [code for code in codes if etree.QName(code.getparent()).localname == "Codes"]

    def depth(code):
        return 1 + max((depth(child) for child in code if etree.QName(child).localname == "Code"), default=0)

    return len(codes), len(top), max((depth(code) for code in top), default=0)


def _depth(codes: tuple[CodeSpec, ...]) -> int:
    return max((1 + _depth(code.children) for code in codes), default=0)


@pytest.mark.parametrize(
    ("sample", "codes", "top_level", "depth", "title"),
    [
        ("atlasti-win-23.2.3_blank-atlas-project.qdpx", 0, 0, 0, "blank-atlas-project"),
        ("atlasti-win-23.2.3_target-atlas-project.qdpx", 3, 1, 2, "target-atlas-project"),
        ("maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx", 307, 18, 2, "2025-06-16_ICLS_Conf_Themes_ALL_just10"),
        ("nvivo-mac-15.0.0_qc-project.qdpx", 262, 3, 7, "qc project"),
        ("qc-1.3.2_demo.qdpx", 262, 3, 7, "qc project"),
    ],
)
def test_codebook_of_each_sample_project_imports_with_its_hierarchy(sample, codes, top_level, depth, title):
    path = _sample(sample)
    assert _expected_from_project(path) == (codes, top_level, depth)
    spec = import_qdc(path)
    assert (spec.code_count(), len(spec.codes), _depth(spec.codes), spec.title) == (codes, top_level, depth, title)
    assert all(code.guid for _, code in spec.walk())


def test_maxqda_descriptions_and_colours_are_kept():
    spec = import_qdc(_sample("maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx"))
    parent = spec.find("Additional Themes and Ideas")
    assert parent.colour == "#ef8256"
    assert parent.definition.startswith("This category encompasses a range of specific theoretical concepts")
    assert parent.children[0].name == "THEME - Affinity Spaces (Gee)"
    assert parent.children[0].definition == "Apply this code when a study uses Gee's concept of affinity spaces."
    assert parent.inclusion is None and parent.hotkey is None


def test_nvivo_duplicate_names_under_different_parents_are_kept_apart():
    spec = import_qdc(_sample("nvivo-mac-15.0.0_qc-project.qdpx"))
    paths = [path for path, _ in spec.walk()]
    leaf_names = [path[-1] for path in paths]
    assert len(leaf_names) > len(set(leaf_names))
    assert len(paths) == len(set(paths))
    assert spec.source == "REFI-QDA codebook from NVivo for Mac 15.0.0"


def test_a_bare_project_qde_and_foreign_namespaces_are_read():
    data = (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>"
        b'<CodeBook xmlns="urn:QDA-XML:codebook:0:4" origin="ATLAS.ti">'
        b'<Codes><Code guid="{A182CD3A-D83C-4D8C-BC80-26D9103EC6D6}" name=" Coke " isCodable="false" color="#f00">'
        b'<Code guid="2D2466F0-D77F-4F8C-BDF9-628966B6B74D" name="diet" isCodable="true" color="rgb(0, 128, 255)"/>'
        b"</Code></Codes></CodeBook>"
    )
    result = read_qdc(data, "atlas.qdc")
    coke = result.spec.codes[0]
    assert (coke.name, coke.colour, coke.guid) == ("Coke", "#FF0000", "{A182CD3A-D83C-4D8C-BC80-26D9103EC6D6}")
    assert coke.children[0].colour == "#0080FF"
    assert any("not codable" in warning for warning in result.warnings)
    project = (
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="P"><CodeBook><Codes>'
        b'<Code guid="2D2466F0-D77F-4F8C-BDF9-628966B6B74D" name="x" isCodable="true"/>'
        b"</Codes></CodeBook></Project>"
    )
    assert import_qdc(project, "project.qde").codes == (
        CodeSpec(name="x", guid="2D2466F0-D77F-4F8C-BDF9-628966B6B74D"),
    )


def test_unreadable_colour_and_guid_are_reported_not_fatal():
    data = (
        b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes>'
        b'<Code guid="nope" name="a" isCodable="true" color="blueish"/></Codes></CodeBook>'
    )
    result = read_qdc(data, "odd.qdc")
    assert result.spec.codes == (CodeSpec(name="a"),)
    assert any("odd.qdc:1:" in warning and "colour 'blueish'" in warning for warning in result.warnings)
    assert any("no valid guid" in warning for warning in result.warnings)


@pytest.mark.parametrize(
    ("data", "fragment", "line"),
    [
        (
            b'<?xml version="1.0"?>\n<CodeBook xmlns="urn:QDA-XML:codebook:1.0">\n<Codes><Code name="a"',
            "not well-formed XML",
            3,
        ),
        (b"<Sources/>", "expected a REFI-QDA CodeBook", 1),
        (b"PK\x03\x04broken", "not a readable .qdpx", None),
    ],
)
def test_broken_files_raise_with_location(data, fragment, line):
    with pytest.raises(InputError) as caught:
        import_qdc(data, "broken.qdc")
    assert fragment in str(caught.value)
    assert caught.value.path == "broken.qdc" and caught.value.line == line


def test_qdpx_without_a_project_file_is_refused(tmp_path):
    path = tmp_path / "empty.qdpx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sources/readme.txt", "no project here")
    with pytest.raises(InputError, match=r"no project\.qde"):
        import_qdc(path)
    with pytest.raises(InputError, match="no such file"):
        import_qdc(tmp_path / "absent.qdc")
