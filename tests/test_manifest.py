"""Batch manifests: one row per transcript file with its study metadata and (blinded) attributes."""

from __future__ import annotations

import csv

import pytest

from concord.importers.manifest import parse_manifest_transcripts, read_manifest
from concord.storage.errors import InputError


def write_csv(path, rows, delimiter=",", encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


@pytest.fixture
def study_folder(tmp_path):
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "d4s3.txt").write_text("T: Hur mår du?\nP: Bra.\n", encoding="utf-8")
    (tmp_path / "transcripts" / "ipr_d4s3_client.txt").write_text(
        "I: Vad hände här?\n[VIDEO 00:10:00]\nT: Hm.\n[/VIDEO]\nP: Jag frös.\n", encoding="utf-8"
    )
    write_csv(
        tmp_path / "transcripts" / "turns.csv",
        [("transcript", "speaker", "text", "phase"), ("d7s5", "T", "Hej", "early"), ("d7s5", "P", "Hej", "early")],
    )
    return tmp_path


def test_manifest_rows_become_entries_with_attributes(study_folder):
    manifest_path = write_csv(
        study_folder / "manifest.csv",
        [
            ("File", "key", "kind", "dyad", "session", "perspective", "language", "therapist_id", "Blinded: group"),
            ("transcripts/d4s3.txt", "", "session", "4", "3", "", "sv", "th02", "high"),
            ("transcripts/ipr_d4s3_client.txt", "ipr-4-3-c", "IPR", "4", "3", "Patient", "sv", "th02", ""),
            ("transcripts/turns.csv", "", "", "7", "5", "", "no", "th05", "low"),
        ],
        delimiter=";",
        encoding="cp1252",
    )
    manifest = read_manifest(manifest_path)
    assert manifest.encoding == "utf-8"  # plain ASCII decodes as UTF-8
    first, second, third = manifest.entries
    assert first.file == study_folder / "transcripts" / "d4s3.txt"
    assert (first.key, first.kind, first.dyad, first.session, first.perspective, first.language) == (
        None,
        "session",
        "4",
        3,
        None,
        "sv",
    )
    assert first.attributes == {"therapist_id": "th02"}
    assert first.blinded_attributes == {"group": "high"}
    assert first.line == 2
    assert (second.key, second.kind, second.perspective) == ("ipr-4-3-c", "ipr", "client")
    assert second.blinded_attributes == {}
    assert third.kind == "session" and third.session == 5

    parsed = parse_manifest_transcripts(manifest, table_attributes=("phase",))
    assert [(entry.line, t.key) for entry, t in parsed] == [(2, "d4s3"), (3, "ipr-4-3-c"), (4, "d7s5")]
    session, interview, table = (t for _, t in parsed)
    assert session.attributes == {"therapist_id": "th02", "language": "sv"}
    assert session.blinded_attributes == {"group": "high"}
    assert [(t.speaker_role, t.replayed, t.start_time) for t in interview.turns] == [
        ("interviewer", False, None),
        ("therapist", True, 600.0),
        ("client", False, None),
    ]
    assert table.attributes == {"phase": "early", "therapist_id": "th05", "language": "no"}
    assert table.blinded_attributes == {"group": "low"}


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        (("transcripts/missing.txt", "", "session", "", "", ""), "file not found: transcripts/missing.txt"),
        (("", "k", "session", "", "", ""), "the file column is empty"),
        (("transcripts/d4s3.txt", "", "group", "", "", ""), "kind 'group' is not one of session, ipr"),
        (("transcripts/d4s3.txt", "", "session", "4", "third", ""), "session 'third' is not a session number"),
        (("transcripts/d4s3.txt", "", "ipr", "4", "3", ""), "an IPR interview needs a perspective"),
        (("transcripts/d4s3.txt", "", "ipr", "", "3", "client"), "an IPR interview needs its dyad"),
        (("transcripts/d4s3.txt", "", "ipr", "4", "3", "observer"), "perspective 'observer' is not one of"),
    ],
)
def test_bad_manifest_rows_name_the_line(study_folder, row, fragment):
    path = write_csv(
        study_folder / "manifest.csv",
        [
            ("file", "key", "kind", "dyad", "session", "perspective"),
            ("transcripts/turns.csv", "", "session", "7", "5", ""),
            row,
        ],
    )
    with pytest.raises(InputError) as caught:
        read_manifest(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: ")
    assert fragment in str(caught.value)


def test_duplicate_keys_and_files_are_refused(study_folder):
    path = write_csv(
        study_folder / "manifest.csv",
        [("file", "key"), ("transcripts/d4s3.txt", "a"), ("transcripts/ipr_d4s3_client.txt", "a")],
    )
    with pytest.raises(InputError, match="transcript key 'a' is used twice \\(also on line 2\\)") as caught:
        read_manifest(path)
    assert caught.value.line == 3
    path = write_csv(study_folder / "manifest.csv", [("file",), ("transcripts/d4s3.txt",), ("transcripts/d4s3.txt",)])
    with pytest.raises(InputError, match=r"d4s3\.txt is listed twice") as caught:
        read_manifest(path)
    assert caught.value.line == 3


def test_bad_headers(study_folder):
    no_file = write_csv(study_folder / "m1.csv", [("path", "key"), ("transcripts/d4s3.txt", "")])
    with pytest.raises(InputError, match="no 'file' column") as caught:
        read_manifest(no_file)
    assert caught.value.line == 1
    blinded_field = write_csv(study_folder / "m2.csv", [("file", "blinded:session"), ("transcripts/d4s3.txt", "3")])
    with pytest.raises(InputError, match="session is a manifest field and cannot be blinded"):
        read_manifest(blinded_field)
    twice = write_csv(study_folder / "m3.csv", [("file", "group", "blinded:Group"), ("transcripts/d4s3.txt", "a", "b")])
    with pytest.raises(InputError, match="column 'Group' appears twice"):
        read_manifest(twice)
    empty = study_folder / "m4.csv"
    empty.write_text("file,key\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows under its header"):
        read_manifest(empty)


def test_manifest_attribute_conflicting_with_the_table(study_folder):
    path = write_csv(study_folder / "manifest.csv", [("file", "phase"), ("transcripts/turns.csv", "late")])
    manifest = read_manifest(path)
    expected = "attribute 'phase' is 'late' in the manifest but 'early' in turns.csv"
    with pytest.raises(InputError, match=expected) as caught:
        parse_manifest_transcripts(manifest, table_attributes=("phase",))
    assert caught.value.line == 2


def test_parse_errors_of_a_listed_file_name_that_file(study_folder):
    (study_folder / "transcripts" / "bad.txt").write_text("T: ok\nX: who?\n", encoding="utf-8")
    manifest = read_manifest(write_csv(study_folder / "manifest.csv", [("file",), ("transcripts/bad.txt",)]))
    with pytest.raises(InputError) as caught:
        parse_manifest_transcripts(manifest)
    assert caught.value.path == str(study_folder / "transcripts" / "bad.txt")
    assert caught.value.line == 2
