"""Who is acting: the identity modes, and each claim the admin guide's "Who is acting" makes about them
(docs/admin-guide.md#who-is-acting; its PostgreSQL claims are tests/test_team_postgres.py's).

The tests run as one operating-system login (``LOGIN``, the test process's own). A second person is
simulated by binding them to another login and, where the rule itself is under test, by replacing
``identity.current_login`` in-process (never through an environment variable: those are exactly what a
person could set to pass for someone else, and one test proves that setting them changes nothing).
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import sys
from unittest import mock

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from concord.app.cli import main
from concord.services import identity
from concord.services.coding import add_memo, apply_code
from concord.services.workspace import Workspace
from concord.storage.db import create_study_store, open_study
from concord.storage.errors import NotFound, PermissionDenied
from concord.storage.models import Code, Coder, Coding, Study, Transcript
from tests.factories import make_study

LOGIN = pwd.getpwuid(os.geteuid()).pw_name


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("concord: error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture
def bound_study(tmp_path):
    """make_study's ann, bob and sue in an os-login study: this process's login is ann's."""
    target = str(tmp_path / "study.concord")
    make_study(target).close()
    store = open_study(target)
    with store.session() as session:
        session.execute(update(Study).values(identity_mode="os-login"))
        for name, login in (("ann", LOGIN), ("bob", "bob-login"), ("sue", "sue-login")):
            session.execute(update(Coder).where(Coder.name == name).values(os_login=login))
    store.close()
    return target


def as_login(login: str):
    return mock.patch("concord.services.identity.current_login", return_value=login)


def role_of(target: str, name: str) -> str:
    store = open_study(target)
    try:
        with store.reader() as session:
            return session.scalar(select(Coder.role).where(Coder.name == name))
    finally:
        store.close()


# -- the login itself ---------------------------------------------------------------------------


def test_the_login_comes_from_the_user_id_not_the_environment(monkeypatch):
    monkeypatch.setenv("USER", "sue-login")
    monkeypatch.setenv("LOGNAME", "sue-login")
    monkeypatch.setenv("USERNAME", "sue-login")
    assert identity.current_login() == LOGIN


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="changing the user id needs root")
def test_the_login_follows_the_effective_user_id():
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(read)
        try:
            os.seteuid(nobody.pw_uid)
            os.write(write, identity.current_login().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "nobody"


# -- init and coder add -------------------------------------------------------------------------


def test_a_new_study_file_binds_its_creator_as_the_first_admin(tmp_path):
    study = tmp_path / "s.concord"
    created = run("init", study)
    assert created.exit_code == 0, created.output
    assert f"You are its admin {LOGIN}, bound to the login {LOGIN}." in created.stdout
    assert created.stderr == ""
    listed = json.loads(run("coder", "list", study, "--format", "json").stdout)
    assert [(c["name"], c["role"]) for c in listed] == [(LOGIN, "admin")]
    audit = json.loads(run("audit", study, "--format", "json").stdout)
    assert audit[0]["details"]["identity"] == "os-login"
    assert {e["actor"] for e in audit} == {LOGIN}

    named = tmp_path / "n.concord"
    assert run("init", named, "--admin", "lee").exit_code == 0
    assert json.loads(run("coder", "list", named, "--format", "json").stdout)[0]["name"] == "lee"
    # Without --as the command acts as lee; naming lee agrees.
    assert run("coder", "add", named, "sam", "--role", "supervisor").exit_code == 0
    assert run("coder", "add", named, "kim", "--as", "lee").exit_code == 0


def test_init_refuses_to_make_someone_else_the_admin(tmp_path):
    study = tmp_path / "s.concord"
    one_line_error(run("init", study, "--as", "zed"), f"logged in as {LOGIN}", "--as zed refused")
    assert not study.exists()
    one_line_error(run("init", tmp_path / "t.concord", "--identity", "trusted", "--admin", "lee"), "--admin")


def test_os_login_needs_a_study_file_and_database_mode_postgresql(tmp_path):
    one_line_error(run("init", "postgresql+psycopg://u@127.0.0.1:1/x", "--identity", "os-login"), "needs a study file")
    one_line_error(run("init", tmp_path / "s.concord", "--identity", "database"), "needs a PostgreSQL study")
    assert identity.default_mode("pilot.concord") == "os-login"
    assert identity.default_mode("postgresql+psycopg://u@host/db") == "trusted"


def test_coder_add_binds_the_login_of_the_same_name_or_the_one_given(tmp_path):
    study = tmp_path / "s.concord"
    run("init", study)
    added = run("coder", "add", study, "ann")
    assert added.stdout.strip() == "Added coder ann, bound to the login ann."
    assert run("coder", "add", study, "bob", "--login", "robert").stdout.strip() == (
        "Added coder bob, bound to the login robert."
    )
    one_line_error(run("coder", "add", study, "rob", "--login", "robert"), "already bound to coder bob")
    store = open_study(str(study))
    with store.reader() as session:
        bindings = dict(session.execute(select(Coder.name, Coder.os_login)).all())
    store.close()
    assert bindings == {LOGIN: LOGIN, "ann": "ann", "bob": "robert"}


def test_a_trusted_study_binds_nobody_unless_asked(tmp_path):
    study = tmp_path / "s.concord"
    run("init", study, "--identity", "trusted")
    assert run("coder", "add", study, "ann").stdout.strip() == "Added coder ann."
    assert run("coder", "add", study, "bob", "--login").stdout.strip() == "Added coder bob, bound to the login bob."


# -- impersonation ------------------------------------------------------------------------------


def test_a_coder_cannot_become_a_supervisor_by_naming_one(bound_study):
    one_line_error(
        run("coder", "role", bound_study, "ann", "supervisor", "--as", "sue"),
        f"you are logged in as {LOGIN}, bound to coder ann; --as sue refused",
    )
    one_line_error(
        run("coder", "role", bound_study, "ann", "supervisor", env={"CONCORD_CODER": "sue"}), "--as sue refused"
    )
    # Without a name the command acts as ann, who is a coder.
    one_line_error(run("coder", "role", bound_study, "ann", "supervisor"), "ann is a coder")
    # Saying one is sue in the environment's login variables changes nothing either.
    env = {"USER": "sue-login", "LOGNAME": "sue-login"}
    one_line_error(run("coder", "role", bound_study, "ann", "supervisor", env=env), "ann is a coder")
    assert role_of(bound_study, "ann") == "coder"


def test_a_coder_cannot_read_or_code_as_another_coder(bound_study):
    for args in (("status", bound_study, "--as", "bob"), ("audit", bound_study, "--as", "bob")):
        one_line_error(run(*args), "--as bob refused")
    # Even a command that needs no person refuses a false name.
    one_line_error(run("coder", "list", bound_study, env={"CONCORD_CODER": "bob"}), "--as bob refused")
    with pytest.raises(identity.IdentityRefused, match="--as bob refused"):
        Workspace.open(bound_study, "bob")
    with pytest.raises(identity.IdentityRefused):
        Workspace.open(bound_study, "no-such-person")


def test_every_command_acts_as_the_person_bound_to_the_login(bound_study):
    with Workspace.open(bound_study) as workspace:
        assert workspace.actor.name == "ann"
        with workspace.store.reader() as session:
            transcript = session.scalar(select(Transcript.id))
            code = session.scalar(select(Code.id).where(Code.name == "Moving forward"))
        apply_code(workspace, transcript, code, 10, 20)
        with workspace.store.reader() as session:
            coder = session.scalar(select(Coder.name).join(Coding, Coding.coder_id == Coder.id))
    assert coder == "ann"
    status = json.loads(run("status", bound_study, "--format", "json").stdout)
    assert status["codings"] == {"ann": 1}


def test_the_login_bound_to_a_supervisor_acts_as_the_supervisor(bound_study):
    with as_login("sue-login"):
        assert run("coder", "role", bound_study, "ann", "supervisor").exit_code == 0
        assert run("coder", "role", bound_study, "ann", "coder", "--as", "sue").exit_code == 0
        one_line_error(run("status", bound_study, "--as", "ann"), "bound to coder sue; --as ann refused")
    with as_login("bob-login"):
        one_line_error(run("coder", "role", bound_study, "bob", "admin", "--as", "sue"), "--as sue refused")
    assert role_of(bound_study, "bob") == "coder"


def test_a_login_bound_to_nobody_is_nobody_in_particular(bound_study):
    with as_login("stranger"):
        assert run("coder", "list", bound_study).exit_code == 0
        assert run("codebook", "list", bound_study).exit_code == 0
        status = run("status", bound_study, "--format", "json")
        assert status.exit_code == 0 and json.loads(status.stdout)["codings"] == {}
        assert run("audit", bound_study).exit_code == 0
        one_line_error(run("status", bound_study, "--as", "ann"), "bound to no coder", "--as ann refused")
        one_line_error(run("coder", "add", bound_study, "eve"))
        one_line_error(run("backup", bound_study, bound_study + ".copy"))
        one_line_error(run("agreement", bound_study))
        one_line_error(run("consensus", bound_study, "--list"))
        one_line_error(run("export", "frequencies", bound_study, "--out", bound_study + ".csv", "--layer", "ann"))
        with Workspace.open(bound_study) as workspace:
            assert workspace.actor is None
            with pytest.raises(PermissionDenied, match="bound to no coder"):
                workspace.require_actor()
            with workspace.store.reader() as session:
                transcript = session.scalar(select(Transcript.id))
                code = session.scalar(select(Code.id).where(Code.name == "Moving forward"))
            with pytest.raises(PermissionDenied, match="bound to no coder"):
                apply_code(workspace, transcript, code, 0, 5)
            with pytest.raises(PermissionDenied, match="bound to no coder"):
                add_memo(workspace, "transcript", transcript, "a note")


def test_what_os_login_does_not_protect_against(bound_study):
    """The admin guide's limits, shown: the file itself is readable, and writable bindings are trust."""
    with Workspace.open(bound_study) as ann:
        with ann.store.reader() as session:
            transcript = session.scalar(select(Transcript.id))
            code = session.scalar(select(Code.id).where(Code.name == "Moving forward"))
        apply_code(ann, transcript, code, 0, 5)
    # Anyone who can read the file reads everything, bypassing Concord.
    with sqlite3.connect(bound_study) as raw:
        assert raw.execute("SELECT count(*) FROM codings").fetchone() == (1,)
        assert raw.execute("SELECT value FROM attributes WHERE blinded").fetchall() == [("high",)]
        # Anyone who can write it can move a binding: the login running this is now sue's.
        raw.execute("UPDATE coders SET os_login = NULL WHERE name = 'ann'")
        raw.execute("UPDATE coders SET os_login = ? WHERE name = 'sue'", (LOGIN,))
    assert run("coder", "role", bound_study, "ann", "admin").exit_code == 0
    assert role_of(bound_study, "ann") == "admin"


# -- trusted ------------------------------------------------------------------------------------


def test_a_trusted_study_believes_as_and_says_so_once(tmp_path):
    study = str(tmp_path / "s.concord")
    make_study(study).close()
    changed = run("coder", "role", study, "ann", "supervisor", "--as", "sue")
    assert changed.exit_code == 0
    assert changed.stderr == identity.TRUSTED_NOTICE + "\n"
    assert role_of(study, "ann") == "supervisor"
    shown = run("status", study, "--as", "bob", "--format", "json")
    assert shown.exit_code == 0 and shown.stderr.count("does not check identities") == 1
    with pytest.raises(NotFound):
        Workspace.open(study, "nobody-here").require_actor()


def test_a_checked_study_says_nothing_about_trust(bound_study):
    assert run("status", bound_study).stderr == ""


def test_a_study_made_before_identity_modes_is_trusted(tmp_path):
    target = str(tmp_path / "old.concord")
    store = create_study_store(target, revision="0002")
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO study (id, title, language, blind, anonymous_consensus, created_at)"
                " VALUES (1, 'Old', 'en', 1, 0, '2024-01-01 00:00:00')"
            )
        )
    store.close()
    with Workspace.open(target) as workspace:
        assert workspace.identity_mode == "trusted"


# -- database mode (PostgreSQL) -----------------------------------------------------------------


def test_database_mode_acts_as_the_coder_bound_to_the_connected_login(study_target, backend):
    if backend != "postgresql":
        pytest.skip("database mode is PostgreSQL's")
    make_study(study_target).close()
    store = open_study(study_target)
    with store.session() as session:
        me = session.scalar(text("SELECT current_user"))
        session.execute(update(Study).values(identity_mode="database"))
        session.execute(update(Coder).where(Coder.name == "ann").values(db_role=me))
    store.close()
    with Workspace.open(study_target) as workspace:
        assert workspace.actor.name == "ann"
    with pytest.raises(identity.IdentityRefused, match=f"connected to the database as {me}, bound to coder ann"):
        Workspace.open(study_target, "sue")
    one_line_error(
        run("coder", "role", study_target, "ann", "supervisor", env={"CONCORD_CODER": "sue"}), "--as sue refused"
    )
