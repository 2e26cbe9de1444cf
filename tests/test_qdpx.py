"""REFI-QDA project exchange: schema-valid exports, the real samples, offset models, a lossless round trip."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from pathlib import Path

import pytest
import xmlschema
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import func, select

from concord.app.cli import ConcordGroup
from concord.app.commands.qdpx import qdpx_export, qdpx_import
from concord.importers.qdpx import (
    CODE_POINTS,
    CODE_POINTS_LF,
    UTF16,
    OffsetMap,
    canonical_guid,
    read_qdpx,
    turns_from_text,
)
from concord.services.codes import create_inductive_code, visible_codes
from concord.services.coding import add_memo, apply_code
from concord.services.qdpx_export import export_qdpx
from concord.services.qdpx_import import import_qdpx
from concord.services.study import add_coder, init_study
from concord.services.transcripts import get_transcript
from concord.services.workspace import Workspace
from concord.storage.errors import InputError, PermissionDenied
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    Memo,
    Participant,
    Study,
    TherapySession,
    Transcript,
    Turn,
)
from tests.conftest import drop_pg_database, fresh_pg_url
from tests.factories import as_person, make_study

REFI = Path("/work/shared/refi-qda")
SAMPLES = REFI / "samples"
NS = "urn:QDA-XML:project:1.0"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(REFI / "Project.xsd"))


@pytest.fixture(scope="module")
def lxml_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(REFI / "Project.xsd")))


@pytest.fixture
def second_target(study_target, tmp_path):
    """A second, empty place for a study on the same backend as study_target."""
    if "://" not in study_target:
        yield str(tmp_path / "second.concord")
        return
    url = fresh_pg_url()
    yield url
    drop_pg_database(url)


def project_xml(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("project.qde")


def assert_valid(xml: bytes, schema, lxml_schema) -> None:
    schema.validate(xml)
    assert lxml_schema.validate(etree.fromstring(xml)), lxml_schema.error_log


# --------------------------------------------------------------------------------------------------
# A study with something of everything


EMOJI_TEXT_TURN = ("P", "client", "I felt 😞 then, (laughs) but ok & <fine>.")


def rich_study(target: str) -> Workspace:
    """make_study plus codings by two coders, an inductive code, a consensus coding, memos on every
    kind of target, dyad and transcript attributes, and a second transcript with an emoji."""
    from tests.factories import build_transcript_text

    workspace = make_study(target)
    ann, bob, sue = (as_person(workspace, name) for name in ("ann", "bob", "sue"))
    codes = {code.name: code for code in visible_codes(sue)}
    transcript = get_transcript(sue, "S-A")
    turn2 = transcript.turns[1]
    first = apply_code(
        ann,
        transcript.id,
        codes["Moving forward"].id,
        turn2.char_start,
        turn2.char_start + 4,
        memo="hard week\nsecond line",
    )
    apply_code(bob, transcript.id, codes["Moving forward"].id, turn2.char_start, turn2.char_start + 4)
    apply_code(bob, transcript.id, codes["Stagnation"].id, turn2.char_start + 55, turn2.char_end)
    hopeless = create_inductive_code(bob, "Hopelessness", "the client sees no way out")
    third = apply_code(bob, transcript.id, hopeless.id, turn2.char_start + 6, turn2.char_start + 13)
    add_memo(ann, "transcript", transcript.id, "transcript memo")
    add_memo(bob, "coding", third.id, "why hopeless")
    add_memo(ann, "code", codes["Stagnation"].id, "code memo")
    add_memo(ann, "turn", turn2.id, "turn memo on the client's turn")
    add_memo(sue, "study", None, "study memo")
    text, spans = build_transcript_text([("T", "therapist", "And now?"), EMOJI_TEXT_TURN])
    with workspace.store.session() as session:
        dyad = session.scalar(select(Dyad))
        therapy = TherapySession(dyad_id=dyad.id, number=6)
        session.add(therapy)
        session.flush()
        second = Transcript(key="S-B", kind="session", session_id=therapy.id, text=text)
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
                    start_time=1.5 * number,
                    end_time=None,
                    nonverbal=[[start + 10, start + 18]] if number == 2 else [],
                )
            )
        session.add_all(
            [
                Attribute(target_kind="dyad", target_id=dyad.id, name="therapy", value="CBT", blinded=False),
                Attribute(target_kind="session", target_id=therapy.id, name="group", value="low", blinded=True),
                Attribute(
                    target_kind="session",
                    target_id=therapy.id,
                    name="WAI mean",
                    value_type="number",
                    value="4.25",
                    blinded=True,
                ),
                Attribute(
                    target_kind="transcript",
                    target_id=second.id,
                    name="reviewed",
                    value_type="boolean",
                    value="true",
                    blinded=False,
                ),
            ]
        )
        moving = session.get(Code, codes["Moving forward"].id)
        moving.label, moving.definition, moving.inclusion = "MF", "Goals, hope, agency.", "talk about goals"
        moving.exclusion, moving.example, moving.pole, moving.high_pole = "mere plans", "P: I'll try", "high", True
        moving.colour = "#2E8B57"
        sue_id = session.scalar(select(Coder.id).where(Coder.name == "sue"))
        session.add(
            Coding(
                coder_id=sue_id,
                transcript_id=first.transcript_id,
                code_id=codes["Moving forward"].id,
                start_offset=first.start,
                end_offset=first.end,
                phase="consensus",
                made_blind=False,
            )
        )
    emoji_start = text.index("😞")
    apply_code(ann, second.id, codes["Stagnation"].id, emoji_start, emoji_start + 8)
    return workspace


def study_state(workspace: Workspace) -> dict:
    """Everything the round trip must keep, keyed by what stays the same across studies."""
    with workspace.store.reader() as session:
        coders = dict(session.execute(select(Coder.id, Coder.name)).all())
        codes = {row.id: row for row in session.scalars(select(Code))}
        books = dict(session.execute(select(Codebook.id, Codebook.key)).all())
        transcripts = {row.id: row for row in session.scalars(select(Transcript))}
        turns = {row.id: row for row in session.scalars(select(Turn))}
        places = {
            row.id: (session.get(Dyad, row.dyad_id).key, row.number) for row in session.scalars(select(TherapySession))
        }
        codings = {row.id: row for row in session.scalars(select(Coding).where(Coding.deleted_at.is_(None)))}

        def coding_ident(row):
            return (
                transcripts[row.transcript_id].key,
                coders[row.coder_id],
                codes[row.code_id].guid,
                row.start_offset,
                row.end_offset,
                row.phase,
            )

        def target(kind, target_id):
            if kind == "transcript":
                return transcripts[target_id].key
            if kind == "turn":
                return (transcripts[turns[target_id].transcript_id].key, turns[target_id].number)
            if kind == "coding":
                return coding_ident(codings[target_id])
            if kind == "code":
                return codes[target_id].guid
            if kind == "session":
                return places[target_id]
            if kind == "dyad":
                return session.get(Dyad, target_id).key
            return None

        return {
            "coders": sorted(coders.values()),
            "transcripts": sorted(
                (
                    row.key,
                    row.kind,
                    row.perspective,
                    row.language,
                    row.phase,
                    row.text,
                    row.source_name,
                    places.get(row.session_id),
                    tuple(
                        (
                            t.number,
                            t.speaker_role,
                            t.speaker_label,
                            t.char_start,
                            t.char_end,
                            t.start_time,
                            t.end_time,
                            t.replayed,
                            tuple(map(tuple, t.nonverbal)),
                        )
                        for t in sorted(
                            (t for t in turns.values() if t.transcript_id == row.id), key=lambda t: t.number
                        )
                    ),
                )
                for row in transcripts.values()
            ),
            "codes": sorted(
                (
                    books[row.codebook_id],
                    row.guid,
                    row.name,
                    codes[row.parent_id].guid if row.parent_id else None,
                    row.label,
                    row.definition,
                    row.inclusion,
                    row.exclusion,
                    row.example,
                    row.pole,
                    row.high_pole,
                    row.hotkey,
                    row.colour,
                    row.origin,
                    coders.get(row.creator_id),
                    row.position,
                )
                for row in codes.values()
            ),
            "codings": sorted(
                coding_ident(row) + (row.memo, row.created_at.replace(microsecond=0, tzinfo=None))
                for row in codings.values()
            ),
            "attributes": sorted(
                (
                    row.target_kind,
                    str(target(row.target_kind, row.target_id)),
                    row.name,
                    row.value_type,
                    row.value,
                    row.blinded,
                )
                for row in session.scalars(select(Attribute))
            ),
            "memos": sorted(
                (coders[row.coder_id], row.target_kind, str(target(row.target_kind, row.target_id)), row.text)
                for row in session.scalars(select(Memo).where(Memo.deleted_at.is_(None)))
            ),
            "sessions": sorted(places.values()),
            "codebooks": sorted(
                session.execute(
                    select(
                        Codebook.key,
                        Codebook.title,
                        Codebook.version,
                        Codebook.source,
                        Codebook.description,
                        Codebook.origin,
                    )
                ).all()
            ),
            "participants": sorted(session.execute(select(Participant.pseudonym, Participant.role)).all()),
        }


# --------------------------------------------------------------------------------------------------
# Export


def test_export_is_schema_valid_and_offsets_count_code_points(study_target, tmp_path, schema, lxml_schema):
    workspace = rich_study(study_target)
    out = tmp_path / "study.qdpx"
    result = export_qdpx(as_person(workspace, "sue"), out)
    xml = project_xml(out)
    assert_valid(xml, schema, lxml_schema)
    assert result.transcripts == 2 and result.codings == 6
    assert any("questionnaire score" in item for item in result.report.lost)

    root = etree.fromstring(xml)
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        texts = {}
        for source in root.iter(f"{{{NS}}}TextSource"):
            path = source.get("plainTextPath")
            assert path == f"internal://{source.get('guid')}.txt"
            data = archive.read(f"sources/{source.get('guid')}.txt")
            assert not data.startswith(b"\xef\xbb\xbf")
            texts[source.get("name")] = data.decode("utf-8")
    assert names[0] == "project.qde" and len(names) == 3 and all(n.startswith("sources/") for n in names[1:])
    # The emoji counts as one position: the coding after it covers exactly the coded words.
    second = texts["S-B"]
    selection = next(
        s
        for s in root.iter(f"{{{NS}}}PlainTextSelection")
        if s.getparent().get("name") == "S-B" and s.find(f"{{{NS}}}Coding") is not None
    )
    start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
    assert second[start:end] == "😞 then, "
    # One selection holds both coders' codings of the same span, each with its own creatingUser.
    users = {u.get("name"): u.get("guid") for u in root.iter(f"{{{NS}}}User")}
    shared = [s for s in root.iter(f"{{{NS}}}PlainTextSelection") if len(s.findall(f"{{{NS}}}Coding")) == 3]
    assert len(shared) == 1
    assert {c.get("creatingUser") for c in shared[0].findall(f"{{{NS}}}Coding")} == {
        users["ann"],
        users["bob"],
        users["Consensus"],
    }
    assert texts["S-A"][int(shared[0].get("startPosition")) : int(shared[0].get("endPosition"))] == "Hard"
    # Blinded session attributes are case variables, flagged as blinded for Concord.
    variables = {v.get("name"): v for v in root.iter(f"{{{NS}}}Variable")}
    assert variables["WAI mean"].get("typeOfVariable") == "Float"
    assert "Blinded: yes" in variables["group"].findtext(f"{{{NS}}}Description")


def test_export_guids_are_stable_across_exports(study_target, tmp_path):
    workspace = as_person(rich_study(study_target), "sue")
    export_qdpx(workspace, tmp_path / "one.qdpx")
    export_qdpx(workspace, tmp_path / "two.qdpx")
    guids = [
        sorted(etree.fromstring(project_xml(tmp_path / name)).xpath("//@guid")) for name in ("one.qdpx", "two.qdpx")
    ]
    assert guids[0] == guids[1] and len(guids[0]) > 30


def test_a_coder_may_not_export_while_blind_but_may_in_an_open_study(study_target, tmp_path):
    workspace = make_study(study_target, blind=True)
    with pytest.raises(PermissionDenied, match="blind"):
        export_qdpx(as_person(workspace, "ann"), tmp_path / "x.qdpx")
    with pytest.raises(PermissionDenied):
        export_qdpx(as_person(workspace, None), tmp_path / "x.qdpx")
    assert not (tmp_path / "x.qdpx").exists()
    with workspace.store.session() as session:
        session.get(Study, 1).blind = False
    result = export_qdpx(as_person(workspace, "ann"), tmp_path / "x.qdpx")
    assert result.path.exists()
    root = etree.fromstring(project_xml(result.path))
    assert [v.get("name") for v in root.iter(f"{{{NS}}}Variable")] == ["group", "transcriber"]


# --------------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_loses_nothing(study_target, second_target, tmp_path, schema, lxml_schema):
    original = as_person(rich_study(study_target), "sue")
    first = tmp_path / "first.qdpx"
    export_qdpx(original, first)

    fresh = init_study(second_target, title="Test study")
    add_coder(fresh, "sue", "supervisor")
    fresh = as_person(fresh, "sue")
    result = import_qdpx(fresh, first, pseudonymize=False)
    assert result.concord_file
    assert result.report.lost == () and result.report.adjusted == ()
    assert result.transcripts == ("S-A", "S-B") and result.codings == 6 and result.memos == 5
    assert set(result.codebooks) == {"cbt-test", "inductive"}

    before, after = study_state(original), study_state(fresh)
    for part in before:
        assert after[part] == before[part], part
    # Coder roles come back with the coders.
    with fresh.store.reader() as session:
        assert dict(session.execute(select(Coder.name, Coder.role)).all()) == {
            "ann": "coder",
            "bob": "coder",
            "sue": "supervisor",
        }

    second = tmp_path / "second.qdpx"
    export_qdpx(fresh, second)
    assert_valid(project_xml(second), schema, lxml_schema)

    def comparable(path):
        root = etree.fromstring(project_xml(path))
        del root.attrib["creationDateTime"]
        return etree.tostring(root)

    assert comparable(second) == comparable(first)


def test_importing_twice_into_the_same_study_changes_nothing(study_target, tmp_path):
    workspace = as_person(rich_study(study_target), "sue")
    out = tmp_path / "study.qdpx"
    export_qdpx(workspace, out)
    before = study_state(workspace)
    with pytest.raises(InputError, match="already has transcript"):
        import_qdpx(workspace, out, pseudonymize=False)
    assert study_state(workspace) == before


def test_dry_run_stores_nothing(study_target, second_target, tmp_path):
    out = tmp_path / "study.qdpx"
    export_qdpx(as_person(rich_study(study_target), "sue"), out)
    fresh = init_study(second_target, title="fresh")
    result = import_qdpx(fresh, out, dry_run=True, pseudonymize=False)
    assert result.dry_run and result.codings == 6
    with fresh.store.reader() as session:
        assert session.scalar(select(func.count()).select_from(Transcript)) == 0
        assert session.scalar(select(func.count()).select_from(Code)) == 0
        assert session.scalar(select(func.count()).select_from(Coder)) == 0


# --------------------------------------------------------------------------------------------------
# The real samples


def import_sample(target: str, name: str):
    workspace = init_study(target, title="samples")
    result = import_qdpx(workspace, SAMPLES / name, pseudonymize=False)
    return workspace, result


def coded_strings(workspace: Workspace) -> dict[str, set[str]]:
    with workspace.store.reader() as session:
        rows = session.execute(
            select(Coding, Code.name, Transcript.text)
            .join(Code, Code.id == Coding.code_id)
            .join(Transcript, Transcript.id == Coding.transcript_id)
        ).all()
    found: dict[str, set[str]] = {}
    for coding, code, text in rows:
        found.setdefault(code, set()).add(text[coding.start_offset : coding.end_offset])
    return found


def test_qc_sample_codings_land_on_their_lines(study_target):
    workspace, result = import_sample(study_target, "qc-1.3.2_demo.qdpx")
    assert result.offset_model == CODE_POINTS
    assert set(result.transcripts) == {"board_2017", "admin-1"}
    assert result.codings == 205 and result.codes_created == 262 and result.coders_created == ("cp",)
    coded = coded_strings(workspace)
    assert "This district goal is engage every student in joyful, purposeful learning that \n" in coded["fun"]
    assert (
        "maximizes each student's opportunity to excel academically. Action step five \n"
        in coded["learning_opportunities"]
    )
    assert "similar equity issues [inaudible 00:54:11] access to that curriculum, which we \n" in coded["equity"]
    assert "issue with introducing computer science through our math programs is precisely \n" in coded["math"]
    with workspace.store.reader() as session:
        text = session.scalar(select(Transcript.text).where(Transcript.key == "board_2017"))
        lines = text.split("\n")
        # qc names each selection after its line: every coding covers one whole line.
        for coding in session.scalars(select(Coding)):
            covered = text[coding.start_offset : coding.end_offset]
            assert covered.endswith("\n") and covered[:-1] in lines
        # Foreign codings are independent codings of the user who made them.
        assert set(session.scalars(select(Coding.phase))) == {"independent"}
        assert set(session.scalars(select(Coder.name).join(Coding, Coding.coder_id == Coder.id))) == {"cp"}
        # Turns: every paragraph opens with "Speaker 2:", "Moderator:", "Mr. Dabor:"...; the labels name
        # no role, so the role is "other".
        turns = session.scalars(
            select(Turn).join(Transcript).where(Transcript.key == "board_2017").order_by(Turn.number)
        ).all()
        assert len(turns) == len([p for p in re.split(r"\n\s*\n", text) if p.strip()]) == 131
        assert {t.speaker_role for t in turns} == {"other"}
        assert sum(1 for t in turns if t.speaker_label == "Moderator") == 16
        assert (turns[0].speaker_label, turns[1].speaker_label) == ("Speaker 1", "Speaker 2")
        assert text[turns[0].char_start : turns[0].char_end] == (
            "Thank you. Let's move on to the preK-12 computer science \ncurriculum."
        )
        # Same-named codes under different parents stay apart, keyed by GUID.
        assert session.scalar(select(func.count()).select_from(Code).where(Code.name == "programming")) == 2
        code = session.scalar(select(Code).where(Code.guid == "36636563-3863-6264-3638-303637613863"))
        parent = session.get(Code, code.parent_id)
        assert (code.name, parent.name) == ("programming", "competencies")


def test_maxqda_sample_keeps_codes_colours_descriptions_and_reports_sets(study_target):
    workspace, result = import_sample(study_target, "maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx")
    assert len(result.transcripts) == 10 and "ICLS 2024 3-10" in result.transcripts
    assert result.codes_created == 307 and result.codings == 0
    # MAXQDA's document groups are sets of sources: each transcript's 'document group' attribute.
    assert any(
        "set 'ICLS 2024' was read as the attribute 'document group'" in item and "of its 5 transcript(s)" in item
        for item in result.report.adjusted
    )
    assert not any("set 'ICLS" in item for item in result.report.lost)
    with workspace.store.reader() as session:
        code = session.scalar(select(Code).where(Code.name == "THEME - Affinity Spaces (Gee)"))
        assert code.colour == "#ef8256"
        assert code.definition == "Apply this code when a study uses Gee's concept of affinity spaces."
        assert session.get(Code, code.parent_id).name == "Additional Themes and Ideas"
        text = session.scalar(select(Transcript.text).where(Transcript.key == "ICLS 2024 3-10"))
        raw = (
            zipfile.ZipFile(SAMPLES / "maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx")
            .read("sources/C5E4C960-5296-4FDE-8C63-DEABA4E17F92.txt")
            .decode("utf-8")
        )
        assert text == raw
        assert set(session.scalars(select(Transcript.kind))) == {"session"}


def test_nvivo_mac_and_atlas_samples(study_target, second_target):
    _workspace, result = import_sample(study_target, "nvivo-mac-15.0.0_qc-project.qdpx")
    assert result.codes_created == 262 and len(result.transcripts) == 2
    assert set(result.coders_created) == {"chrisp", "cp"}
    assert any("rich-text copy" in remark for remark in result.report.remarks)

    atlas, result = import_sample(second_target, "atlasti-win-23.2.3_target-atlas-project.qdpx")
    assert result.offset_model == CODE_POINTS_LF
    assert result.coders_created == ("Enric Llagostera",)
    with atlas.store.reader() as session:
        parent = session.scalar(select(Code).where(Code.name == "Commits"))
        assert parent.guid == "A182CD3A-D83C-4D8C-BC80-26D9103EC6D6"
        children = sorted(session.scalars(select(Code.name).where(Code.parent_id == parent.id)))
        assert children == ["2022-02-11T10:39:25Z cdbfd92", "2022-05-10T02:05:59Z 19e4dce"]


def test_blank_atlas_sample_imports_nothing_but_its_user(study_target):
    workspace, result = import_sample(study_target, "atlasti-win-23.2.3_blank-atlas-project.qdpx")
    assert result.transcripts == () and result.codebooks == () and result.report.lost == ()
    with workspace.store.reader() as session:
        assert list(session.scalars(select(Coder.name))) == ["Enric Llagostera"]


@pytest.mark.parametrize(
    "name",
    [
        "qc-1.3.2_demo.qdpx",
        "maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx",
        "nvivo-mac-15.0.0_qc-project.qdpx",
        "atlasti-win-23.2.3_target-atlas-project.qdpx",
    ],
)
def test_imported_samples_export_valid_and_keep_their_guids(name, tmp_path, schema, lxml_schema):
    workspace = init_study(str(tmp_path / "s.concord"), title="samples", blind=False)
    import_qdpx(workspace, SAMPLES / name, pseudonymize=False)
    out = tmp_path / "again.qdpx"
    export_qdpx(workspace, out)
    xml = project_xml(out)
    assert_valid(xml, schema, lxml_schema)
    original = etree.fromstring(project_xml(SAMPLES / name))
    code_guids = {canonical_guid(g) for g in original.xpath("//*[local-name()='Code']/@guid")}
    again = etree.fromstring(xml)
    assert {canonical_guid(g) for g in again.xpath("//*[local-name()='Code']/@guid")} == code_guids

    # Each coding comes back on the same text (sources are LF-only in these samples).
    def quotes(root, texts):
        found = set()
        for source in root.xpath("//*[local-name()='TextSource']"):
            text = texts(source)
            for sel in source.xpath("*[local-name()='PlainTextSelection']"):
                codes = sel.xpath("*[local-name()='Coding']/*[local-name()='CodeRef']/@targetGUID")
                found |= {
                    (canonical_guid(c), text[int(sel.get("startPosition")) : int(sel.get("endPosition"))])
                    for c in codes
                }
        return found

    def texts_in(path):
        archive = zipfile.ZipFile(path)
        entries = {n.lower().rsplit("/", 1)[-1]: n for n in archive.namelist()}
        return lambda source: archive.read(entries[source.get("plainTextPath").rsplit("/", 1)[-1].lower()]).decode()

    assert quotes(again, texts_in(out)) == quotes(original, texts_in(SAMPLES / name))


def test_samples_pass_the_schema(schema):
    for path in SAMPLES.glob("*.qdpx"):
        schema.validate(project_xml(path))


# --------------------------------------------------------------------------------------------------
# Foreign projects built here: offset models, memos, what cannot be kept


def foreign_project(body: str, sources: dict[str, bytes], origin: str = "SomeTool 1.0") -> bytes:
    xml = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Project xmlns="{NS}" name="Foreign" origin="{origin}">'
        f"{body}</Project>"
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("project.qde", xml)
        for name, data in sources.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def guid() -> str:
    return str(uuid.uuid4()).upper()


USER = guid()
CODE_A = guid()
CODE_B = guid()
CODEBOOK = (
    f'<Users><User guid="{USER}" name="Ola"/></Users><CodeBook><Codes>'
    f'<Code guid="{CODE_A}" name="Rupture" isCodable="true"/>'
    f'<Code guid="{CODE_B}" name="Repair" isCodable="true"/></Codes></CodeBook>'
)


def selection(text_units: tuple[int, int], code: str, name: str = "") -> str:
    return (
        f'<PlainTextSelection guid="{guid()}" name="{name}" startPosition="{text_units[0]}" '
        f'endPosition="{text_units[1]}" creatingUser="{USER}"><Coding guid="{guid()}" creatingUser="{USER}">'
        f'<CodeRef targetGUID="{code}"/></Coding></PlainTextSelection>'
    )


def utf16_span(text: str, part: str) -> tuple[int, int]:
    before = text[: text.index(part)]
    start = len(before.encode("utf-16-le")) // 2
    return start, start + len(part.encode("utf-16-le")) // 2


LINES = ["T: How was it? 🙂", "P: It was 😞 hard, really hard.", "T: Tell me more."]


def import_bytes(target: str, data: bytes, tmp_path: Path, name: str = "foreign.qdpx"):
    path = tmp_path / name
    path.write_bytes(data)
    workspace = init_study(target, title="foreign")
    return workspace, import_qdpx(workspace, path, pseudonymize=False)


def test_nvivo_windows_offsets_utf16_crlf_and_bom(study_target, tmp_path):
    raw = "\r\n".join(LINES) + "\r\n"
    source = guid()
    selections = selection(utf16_span(raw, "hard, really hard."), CODE_A, name="") + selection(
        utf16_span(raw, "Tell me more."), CODE_B, name=""
    )
    body = CODEBOOK + (
        f'<Sources><TextSource guid="{source}" name="Session 3" '
        f'plainTextPath="internal://{source}.txt">{selections}</TextSource></Sources>'
    )
    data = foreign_project(body, {f"Sources/{source}.txt": b"\xef\xbb\xbf" + raw.encode("utf-8")}, origin="NVivo 12.6")
    workspace, result = import_bytes(study_target, data, tmp_path)
    assert result.offset_model == UTF16
    assert coded_strings(workspace) == {"Rupture": {"hard, really hard."}, "Repair": {"Tell me more."}}
    with workspace.store.reader() as session:
        assert session.scalar(select(Transcript.text)) == "\n".join(LINES) + "\n"
        turns = session.scalars(select(Turn).order_by(Turn.number)).all()
        assert [(t.speaker_role, t.speaker_label) for t in turns] == [
            ("therapist", "T"),
            ("client", "P"),
            ("therapist", "T"),
        ]
        text = session.scalar(select(Transcript.text))
        assert text[turns[1].char_start : turns[1].char_end] == "It was 😞 hard, really hard."


def test_atlas_offsets_count_crlf_once(study_target, tmp_path):
    raw = "\r\n".join(LINES)
    canonical = "\n".join(LINES)
    start = canonical.index("Tell me more.")
    source = guid()
    body = CODEBOOK + (
        f'<Sources><TextSource guid="{source}" name="S" plainTextPath="internal://{source}.txt">'
        f"{selection((start, start + 13), CODE_B)}</TextSource></Sources>"
    )
    data = foreign_project(body, {f"sources/{source}.txt": raw.encode("utf-8")}, origin="ATLAS.ti for Windows 23.2.3")
    workspace, result = import_bytes(study_target, data, tmp_path)
    assert result.offset_model == CODE_POINTS_LF
    assert coded_strings(workspace) == {"Repair": {"Tell me more."}}


def test_offset_model_switches_when_selection_names_say_so(tmp_path):
    # The producer is unknown (spec model: code points over CRLF text), but every quoted name
    # matches only when a line break counts once.
    raw = "\r\n".join(LINES * 3)
    canonical = "\n".join(LINES * 3)
    source = guid()
    spans = []
    for part in ("It was", "Tell me more.", "How was it?"):
        at = canonical.rindex(part)
        spans.append(selection((at, at + len(part)), CODE_A, name=part))
    body = CODEBOOK + (
        f'<Sources><TextSource guid="{source}" name="S" plainTextPath="internal://{source}.txt">'
        f"{''.join(spans)}</TextSource></Sources>"
    )
    project = read_qdpx(foreign_project(body, {f"sources/{source}.txt": raw.encode("utf-8")}))
    assert project.offset_model == CODE_POINTS_LF
    assert any("3 of 3 quoted selection names" in remark for remark in project.remarks)
    text = project.sources[0].text
    assert [text[s.start : s.end] for s in project.sources[0].selections] == ["It was", "Tell me more.", "How was it?"]


def test_offset_map_units():
    offsets = OffsetMap("a😞\r\nb")
    # canonical text "a😞\nb": 4 code points
    assert offsets.convert(UTF16, 3, 6) == (2, 4, False)  # "\r\nb" in UTF-16 units
    assert offsets.convert(CODE_POINTS, 2, 5) == (2, 4, False)
    assert offsets.convert(CODE_POINTS_LF, 3, 4) == (3, 4, False)
    assert offsets.convert(CODE_POINTS, 4, 9) == (3, 4, True)
    assert offsets.convert(CODE_POINTS, 9, 10) is None


def test_data_loss_report_lists_what_concord_cannot_keep(study_target, tmp_path):
    text = "T: We start.\nP: Fine.\n\nA line without speaker\n"
    source, pdf, note, link_note, variable, dtvar = guid(), guid(), guid(), guid(), guid(), guid()
    memo_selection = guid()
    fine = text.index("Fine.")
    body = CODEBOOK + (
        f'<Variables><Variable guid="{variable}" name="age" typeOfVariable="Integer"/>'
        f'<Variable guid="{dtvar}" name="seen" typeOfVariable="DateTime"/></Variables>'
        f'<Cases><Case guid="{guid()}" name="Client 7"><VariableValue><VariableRef targetGUID="{variable}"/>'
        f'<IntegerValue>34</IntegerValue></VariableValue><VariableValue><VariableRef targetGUID="{dtvar}"/>'
        f"<DateTimeValue>2024-01-02T10:00:00Z</DateTimeValue></VariableValue>"
        f'<SourceRef targetGUID="{source}"/><SelectionRef targetGUID="{memo_selection}"/></Case></Cases>'
        f'<Sources><TextSource guid="{source}" name="Interview" plainTextPath="internal://{source}.txt">'
        f"{selection((fine, fine + 5), CODE_A, name='Fine.')}"
        f"{selection((3, 3), CODE_A)}"
        f"{selection((0, 2), guid())}"
        f'<PlainTextSelection guid="{memo_selection}" startPosition="{text.index("A line")}" endPosition="{len(text) - 1}">'
        f"<Description>an in-text memo</Description></PlainTextSelection>"
        f'<NoteRef targetGUID="{note}"/></TextSource>'
        f'<PDFSource guid="{pdf}" name="Scan" path="internal://{pdf}.pdf"><PDFSelection guid="{guid()}" page="1" '
        f'firstX="1" firstY="1" secondX="5" secondY="5"><Coding guid="{guid()}"><CodeRef targetGUID="{CODE_A}"/>'
        f"</Coding></PDFSelection></PDFSource></Sources>"
        f'<Notes><Note guid="{note}" name="Doc memo" creatingUser="{USER}"><PlainTextContent>about the interview'
        f'</PlainTextContent></Note><Note guid="{link_note}" name="Annotation"><PlainTextContent>an annotation'
        f"</PlainTextContent></Note></Notes>"
        f'<Links><Link guid="{guid()}" originGUID="{CODE_A}" targetGUID="{CODE_B}"/></Links>'
        f'<Sets><Set guid="{guid()}" name="Group 1"><MemberSource targetGUID="{source}"/></Set>'
        f'<Set guid="{guid()}" name="gender: female"><MemberSource targetGUID="{source}"/></Set></Sets>'
        f'<Graphs><Graph guid="{guid()}"/></Graphs>'
    )
    data = foreign_project(body, {f"sources/{source}.txt": text.encode("utf-8")})
    workspace, result = import_bytes(study_target, data, tmp_path)
    lost = "\n".join(result.report.lost)
    assert "PDF source 'Scan' with 1 selection(s) and 1 coding(s)" in lost
    assert "1 graph(s)" in lost
    assert "set 'Group 1' was read as the attribute 'document group'" in "\n".join(result.report.adjusted)
    assert "1 link(s) between codes" in lost
    assert "1 zero-length selections with codings" in lost
    assert "1 codings of codes the project does not define" in lost
    assert "case 'Client 7': 1 text-range" in lost
    adjusted = "\n".join(result.report.adjusted)
    assert "variable 'seen' (date and time) was kept as text" in adjusted
    assert "set 'gender: female' was read as the attribute 'gender' = 'female'" in adjusted
    assert "a memo on uncoded text in 'Interview' was attached to turn 3" in adjusted
    assert "1 note(s) attached to nothing became study memos" in adjusted
    assert coded_strings(workspace) == {"Rupture": {"Fine."}}
    with workspace.store.reader() as session:
        attributes = dict(session.execute(select(Attribute.name, Attribute.value)).all())
        assert attributes == {
            "age": "34",
            "seen": "2024-01-02T10:00:00Z",
            "gender": "female",
            "document group": "Group 1",  # the set of sources 'Group 1'
        }
        memos = {row.text: (row.target_kind, row.coder_id) for row in session.scalars(select(Memo))}
        ola = session.scalar(select(Coder.id).where(Coder.name == "Ola"))
        assert memos["about the interview"] == ("transcript", ola)
        assert memos["an in-text memo"][0] == "turn"
        assert memos["an annotation"][0] == "study"
        turn = session.get(Turn, session.scalar(select(Memo.target_id).where(Memo.text == "an in-text memo")))
        assert (turn.number, turn.speaker_role, turn.speaker_label) == (3, "other", "")


def test_a_failed_import_leaves_the_study_untouched(study_target, tmp_path):
    workspace = make_study(study_target)
    source = guid()
    body = CODEBOOK + (
        f'<Sources><TextSource guid="{source}" name="S-A" plainTextPath="internal://{source}.txt">'
        f"{selection((0, 3), CODE_A)}</TextSource></Sources>"
    )
    path = tmp_path / "clash.qdpx"
    path.write_bytes(foreign_project(body, {f"sources/{source}.txt": b"T: hi there"}))
    before = study_state(workspace)
    with pytest.raises(InputError, match="already has transcript\\(s\\) S-A"):
        import_qdpx(as_person(workspace, "sue"), path, pseudonymize=False)
    assert study_state(workspace) == before


def test_turns_from_speaker_prefixes():
    text = "T: Hello there.\nP: Hi.\n   and more words\n\nno speaker here\n[00:01:02] Anna: Yes.\n"
    turns = turns_from_text(text)
    shown = [(t.speaker_role, t.speaker_label, text[t.char_start : t.char_end]) for t in turns]
    assert shown == [
        ("therapist", "T", "Hello there."),
        ("client", "P", "Hi.\n   and more words"),
        ("other", "", "no speaker here"),
        ("other", "Anna", "Yes."),
    ]


def test_guid_canonical_form():
    assert canonical_guid(" {A182CD3A-D83C-4D8C-BC80-26D9103EC6D6} ") == "a182cd3a-d83c-4d8c-bc80-26d9103ec6d6"
    assert canonical_guid("A182CD3AD83C4D8CBC8026D9103EC6D6") is None


def test_not_a_qdpx_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.qdpx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match=r"broken\.qdpx: not a readable \.qdpx"):
        read_qdpx(path)
    path.write_bytes(b"<Project name='x'><Sources>")
    with pytest.raises(InputError, match="not well-formed XML"):
        read_qdpx(path)


# --------------------------------------------------------------------------------------------------
# Command line


def test_cli_export_and_import_with_report_on_stderr(tmp_path):
    target = str(tmp_path / "cli.concord")
    rich_study(target).close()
    group = ConcordGroup(
        name="concord",
        commands={
            "export": ConcordGroup(name="export", commands={"qdpx": qdpx_export}),
            "import": ConcordGroup(name="import", commands={"qdpx": qdpx_import}),
        },
    )
    runner = CliRunner()
    out = tmp_path / "cli.qdpx"
    refused = runner.invoke(group, ["export", "qdpx", target, "--out", str(out), "--as", "ann"])
    assert refused.exit_code == 2 and "blind" in refused.output
    done = runner.invoke(group, ["export", "qdpx", target, "--out", str(out), "--as", "sue", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert '"codings": 6' in done.stdout and "questionnaire score" in done.stderr

    fresh = str(tmp_path / "fresh.concord")
    init_study(fresh, title="fresh").close()
    imported = runner.invoke(
        group, ["import", "qdpx", fresh, str(SAMPLES / "maxqda-24.7.0_ICLS-Conf-Themes-just10.qdpx")]
    )
    assert imported.exit_code == 0, imported.output
    assert "set 'ICLS 2025' was read as the attribute 'document group'" in imported.stderr
    assert "codes_created" in imported.stdout and "307" in imported.stdout
