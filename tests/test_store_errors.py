"""What the database refuses reaches a person as Concord's own one-line error, never as SQLAlchemy's; and the
words that name layers of codings cannot be coders' names."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.exc import SQLAlchemyError

from concord.app.cli import main
from concord.services.coding import add_memo, list_memos
from concord.services.study import add_coder, list_coders
from concord.storage.errors import ConcordError, Conflict, NotFound
from concord.storage.models import Attribute, Coder, Memo, Turn
from tests.factories import as_person, make_study


def _errors(result) -> list[str]:
    """The stderr lines that are not notes (a trusted study notes that --as is taken on trust)."""
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if not line.startswith("concord: note:")]


@pytest.fixture
def study(study_target):
    workspace = make_study(study_target)
    yield workspace
    workspace.close()


def _one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and "[SQL:" not in text and "sqlalchemy" not in text.lower(), text
    return text


def test_a_memo_on_a_target_that_is_not_there_is_one_line(study):
    ann = as_person(study, "ann")
    with pytest.raises(ConcordError) as bad_kind:
        add_memo(ann, "speaker", 1, "a memo on nothing")
    assert not isinstance(bad_kind.value, SQLAlchemyError)
    assert "not on a 'speaker'" in _one_line(bad_kind.value)
    for kind in ("turn", "transcript", "code"):
        with pytest.raises(NotFound, match=f"^no {kind} 99999 in this study: the memo was not saved$"):
            add_memo(ann, kind, 99999, "dangling")
    with pytest.raises(NotFound):
        add_memo(ann, "coding", 99999, "dangling")
    assert list_memos(ann) == []


def test_storage_turns_integrity_errors_into_conflicts(study):
    """The unit of work itself translates, whatever service wrote the row (here: none, the raw models)."""
    name = study.store.display_name
    with pytest.raises(Conflict) as check:
        with study.store.session() as session:
            session.add(Memo(coder_id=1, target_kind="speaker", target_id=1, text="x"))
    message = _one_line(check.value)
    assert message.startswith(f"{name}: nothing was saved: memos.target_kind must satisfy target_kind IN (")
    assert "'turn'" in message

    with pytest.raises(Conflict) as unique:
        with study.store.session() as session:
            session.add(Coder(name="ann", role="coder"))
    assert "coders.name must be unique" in _one_line(unique.value)

    with pytest.raises(Conflict) as multi:
        with study.store.session() as session:
            session.add(Attribute(target_kind="transcript", target_id=1, name="transcriber", value="again"))
    assert "attributes.(target_kind, target_id, name) must be unique" in _one_line(multi.value)

    with pytest.raises(Conflict) as missing:
        with study.store.session() as session:
            session.add(Memo(coder_id=1, target_kind="turn", target_id=1, text=None))
    assert "memos.text needs a value" in _one_line(missing.value)

    with pytest.raises(Conflict) as dangling:
        with study.store.session() as session:
            session.add(
                Turn(transcript_id=99999, number=1, speaker_role="client", speaker_label="P", char_start=0, char_end=1)
            )
            session.flush()
    assert "refers to something that does not exist" in _one_line(dangling.value)
    # Nothing of the refused units was kept.
    assert [c.name for c in list_coders(study)] == ["ann", "bob", "sue"]


def test_the_cli_prints_a_conflict_as_one_line(study, monkeypatch):
    from concord.services import study as study_service

    def racing_add(workspace, name, role="coder", **_):
        # Two people adding the same coder at once: the look-up passed, the insert does not.
        with workspace.store.session() as session:
            session.add(Coder(name=name, role=role))

    monkeypatch.setattr(study_service, "add_coder", racing_add)
    result = CliRunner().invoke(main, ["coder", "add", study.store.target, "ann", "--as", "sue"])
    assert result.exit_code == 2, result.output
    # PostgreSQL adds its own detail in brackets: "(Key (name)=(ann) already exists.)".
    (error,) = _errors(result)
    assert error.startswith(
        f"concord: error: {study.store.display_name}: nothing was saved: coders.name must be unique"
    )


@pytest.mark.parametrize("word", ["own", "others", "consensus", "Consensus", " OWN "])
def test_layer_words_are_not_coder_names(study, word):
    with pytest.raises(ConcordError, match="cannot be a coder's name: own, others, consensus name layers"):
        add_coder(as_person(study, "sue"), word)
    assert [c.name for c in list_coders(study)] == ["ann", "bob", "sue"]


def test_coder_add_own_fails_with_one_line(study):
    result = CliRunner().invoke(main, ["coder", "add", study.store.target, "own", "--as", "sue"])
    assert result.exit_code == 2 and result.stdout == ""
    assert _errors(result) == [
        "concord: error: 'own' cannot be a coder's name: own, others, consensus name layers of codings (--layer)"
    ]
    # A name that only contains a layer word is fine.
    assert CliRunner().invoke(main, ["coder", "add", study.store.target, "owen", "--as", "sue"]).exit_code == 0
