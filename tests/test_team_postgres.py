"""PostgreSQL team mode: the database itself keeps the blind, whatever program a person connects with.

One study (the demo, plus planted work of kim's) is set up with `concord team setup`; alex, kim and
sam get logins of their own. The checks then connect AS EACH LOGIN WITH PSYCOPG DIRECTLY, with no
Concord code in between, and compare what each login reads with what the superuser knows is there.
The admin guide's "PostgreSQL team mode" section cites these tests for each claim it makes.

Roles are cluster-wide: every login and group made here carries this run's suffix, and the teardown
drops them after the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from concord.app.cli import main as concord_cli
from concord.storage.errors import PermissionDenied
from concord.storage.team_sql import PROTECTED_TABLES, team_roles

PG_URL = os.environ.get("CONCORD_TEST_PG")

PASSWORD = "correct horse 7"
# Planted where only kim (and the leads) may look: none may reach alex's login while the study is blind.
KIM_CODE = "KIMSECRET inductive code"
KIM_RENAMED = "KIMSECRET renamed by sam"
KIM_MEMO = "KIMSECRET memo about turn two"
BLINDED_VALUE = "KIMSECRET blinded group"
MARKER = "KIMSECRET"


# -- the study -------------------------------------------------------------------------------------


class Team:
    def __init__(self, url: str, suffix: str):
        self.url = url
        self.database = make_url(url).database
        self.suffix = suffix
        self.roles = team_roles(self.database)
        self.logins = {name: f"{name}_{suffix}" for name in ("alex", "kim", "sam")}
        self.extra_logins: list[str] = []

    def dsn(self, login: str | None = None) -> str:
        base = make_url(PG_URL)
        user = login or base.username or "postgres"
        return psycopg.conninfo.make_conninfo(
            host=base.host or "127.0.0.1",
            port=base.port or 5432,
            dbname=self.database,
            user=user,
            password=PASSWORD if login else (base.password or ""),
        )

    def url_for(self, name: str) -> str:
        """A Concord study URL with that person's own login (and password) in it."""
        base = make_url(PG_URL)
        login = self.logins.get(name, name)
        return (
            base.set(drivername="postgresql+psycopg", username=login, password=PASSWORD, database=self.database)
        ).render_as_string(hide_password=False)

    def connect(self, name: str | None = None) -> psycopg.Connection:
        """psycopg straight to the server, as the person's login (or as the superuser for None)."""
        return psycopg.connect(self.dsn(self.logins.get(name, name) if name else None), autocommit=True)


def _admin():
    base = make_url(PG_URL)
    return psycopg.connect(
        psycopg.conninfo.make_conninfo(
            host=base.host or "127.0.0.1",
            port=base.port or 5432,
            dbname="postgres",
            user=base.username or "postgres",
            password=base.password or "",
        ),
        autocommit=True,
    )


def _drop_roles(names) -> None:
    with _admin() as conn:
        for name in names:
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _build(team: Team) -> None:
    from concord.app.demo.build import build_study
    from concord.services import codebooks, codes, coding, consensus, transcripts
    from concord.services.workspace import Workspace

    build_study(team.url)
    lead = Workspace.open(team.url, "sam")
    kim = Workspace.open(team.url, "kim")
    try:
        # kim's own work, with marker strings: an inductive code, a coding with it (an undo step), a memo.
        made = codes.create_inductive_code(kim, KIM_CODE)
        detail = transcripts.get_transcript(kim, "S01")
        second = detail.turns[1]
        coding.apply_code(kim, detail.id, made.id, second.char_start, second.char_end)
        coding.add_memo(kim, "turn", second.id, KIM_MEMO)
        transcripts.record_progress(kim, detail.id, turns_reviewed=2, last_offset=second.char_start)
        # sam's theme work on kim's code: its history (code_changes) and a codebook version naming it.
        codebooks.edit_code(lead, made.id, name=KIM_RENAMED)
        alex = Workspace.open(team.url, "alex")
        try:
            alexs = codes.create_inductive_code(alex, "alex's own idea")
        finally:
            alex.close()
        codebooks.edit_code(lead, alexs.id, definition="what alex meant, written down by sam")
        consensus.accept_agreed(lead, transcripts=("S01",))
    finally:
        kim.close()
        lead.close()
    with psycopg.connect(team.dsn(), autocommit=True) as conn:
        # A blinded session attribute carrying a marker, beside the demo's own blinded groups.
        session_id = conn.execute("SELECT min(id) FROM sessions").fetchone()[0]
        conn.execute(
            "INSERT INTO attributes (target_kind, target_id, name, value_type, value, blinded)"
            " VALUES ('session', %s, 'planted', 'text', %s, true)",
            (session_id, BLINDED_VALUE),
        )
        # A suggestion each coder turned down: private to that coder, like their codings.
        turn_id, transcript_id = conn.execute("SELECT id, transcript_id FROM turns ORDER BY id LIMIT 1").fetchone()
        code_id = conn.execute("SELECT min(id) FROM codes").fetchone()[0]
        for coder in ("alex", "kim"):
            conn.execute(
                "INSERT INTO suggestion_rejections (coder_id, transcript_id, turn_id, code_id, confidence, created_at)"
                " SELECT id, %s, %s, %s, 0.5, now() FROM coders WHERE name = %s",
                (transcript_id, turn_id, code_id, coder),
            )


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    from tests.conftest import drop_pg_database, fresh_pg_url

    if not PG_URL:
        pytest.skip("needs a PostgreSQL server (CONCORD_TEST_PG)")
    team = Team(fresh_pg_url(), uuid.uuid4().hex[:8])
    try:
        _build(team)
        runner = CliRunner()
        result = runner.invoke(concord_cli, ["team", "setup", team.url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        for name, login in team.logins.items():
            result = runner.invoke(
                concord_cli,
                ["team", "login", team.url, name, "--login", login],
                env={"CONCORD_PASSWORD": PASSWORD},
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
        yield team
    finally:
        drop_pg_database(team.url)
        _drop_roles([*team.logins.values(), *team.extra_logins, *team.roles.all])


# -- what the superuser knows is there --------------------------------------------------------------


def _ids(conn, sql: str, params=()) -> set:
    return {row[0] for row in conn.execute(sql, params).fetchall()}


def _coder_id(conn, name: str) -> int:
    return conn.execute("SELECT id FROM coders WHERE name = %s", (name,)).fetchone()[0]


def _key(table: str) -> str:
    # consensus_sources has a composite key; every other protected table has an id.
    return "consensus_coding_id::text || '-' || independent_coding_id::text" if table == "consensus_sources" else "id"


def _blind_view(su, table: str, me: int, name: str) -> str:
    """The rows of ``table`` a blind coder may read, as a WHERE clause over the superuser's view."""
    return {
        "codings": f"coder_id = {me}",
        "memos": f"coder_id = {me}",
        "transcript_progress": f"coder_id = {me}",
        "edit_steps": f"coder_id = {me}",
        "suggestion_rejections": f"coder_id = {me}",
        "codes": f"origin <> 'inductive' OR creator_id = {me}",
        "code_changes": f"code_id IN (SELECT id FROM codes WHERE origin <> 'inductive' OR creator_id = {me})",
        "codebook_versions": "false",
        "codebooks": "true",
        "consensus_decisions": "false",
        "consensus_sources": "false",
        "attributes": "NOT blinded",
        "questionnaire_scores": "false",
        "sessions": "false",
        "dyads": "false",
        "participants": "false",
        "audit_log": (
            f"actor = '{name}' OR (entity IN ('study', 'coder', 'codebook', 'transcript')"
            " AND actor NOT IN (SELECT name FROM coders WHERE role = 'coder'))"
        ),
    }[table]


def _key_expr(table: str) -> str:
    if table == "transcript_progress":
        return "coder_id::text || '-' || transcript_id::text"
    return _key(table)


# -- the blind, straight through psycopg ------------------------------------------------------------


@pytest.mark.parametrize("name", ["alex", "kim"])
def test_blind_coder_login_reads_only_own_rows_in_every_protected_table(team, name):
    with team.connect() as su, team.connect(name) as me_conn:
        me = _coder_id(su, name)
        other = _coder_id(su, "kim" if name == "alex" else "alex")
        for table in PROTECTED_TABLES:
            key = _key_expr(table)
            everything = _ids(su, f"SELECT {key} FROM {table}")
            allowed = _ids(su, f"SELECT {key} FROM {table} WHERE {_blind_view(su, table, me, name)}")
            seen = _ids(me_conn, f"SELECT {key} FROM {table}")
            assert seen == allowed, f"{name} reads the wrong rows of {table}"
            if table not in ("codebooks",):
                # Each table holds something the login must not see, so each check can fail.
                assert everything - allowed, f"the test study has nothing hidden in {table}"
        for table in ("codings", "memos", "transcript_progress", "edit_steps"):
            assert not _ids(me_conn, f"SELECT 1 FROM {table} WHERE coder_id = %s", (other,))
        assert me_conn.execute("SELECT count(*) FROM attributes WHERE blinded").fetchone()[0] == 0


def test_no_planted_marker_reaches_a_blind_coder_in_any_table(team):
    with team.connect() as su, team.connect("alex") as alex:
        tables = [r[0] for r in su.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        planted = 0
        for table in tables:
            planted += su.execute(f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s", (f"%{MARKER}%",)).fetchone()[
                0
            ]
            leaked = alex.execute(f"SELECT t::text FROM {table} t WHERE t::text LIKE %s", (f"%{MARKER}%",)).fetchall()
            assert not leaked, f"alex's login reads {table}: {leaked[0][0][:120]}"
        # The code, its history, the memo, a codebook version and the blinded attribute at least.
        assert planted >= 5
    # kim herself reads her code and its history.
    with team.connect("kim") as kim:
        own = kim.execute(
            "SELECT c.name FROM codes c JOIN code_changes h ON h.code_id = c.id WHERE c.name = %s", (KIM_RENAMED,)
        )
        assert own.fetchall()


def test_coder_login_cannot_read_history_or_versions_of_another_coders_inductive_code(team):
    with team.connect() as su, team.connect("alex") as alex:
        kim_code = su.execute("SELECT id FROM codes WHERE name = %s", (KIM_RENAMED,)).fetchone()[0]
        assert su.execute("SELECT count(*) FROM code_changes WHERE code_id = %s", (kim_code,)).fetchone()[0] >= 1
        assert su.execute("SELECT count(*) FROM codebook_versions WHERE snapshot LIKE %s", (f"%{MARKER}%",)).fetchone()[
            0
        ]
        assert alex.execute("SELECT count(*) FROM code_changes WHERE code_id = %s", (kim_code,)).fetchone()[0] == 0
        assert alex.execute("SELECT count(*) FROM codebook_versions").fetchone()[0] == 0
        assert alex.execute("SELECT count(*) FROM codes WHERE id = %s", (kim_code,)).fetchone()[0] == 0


def test_supervisor_login_reads_everything(team):
    with team.connect() as su, team.connect("sam") as sam:
        for table in PROTECTED_TABLES:
            key = _key_expr(table)
            assert _ids(sam, f"SELECT {key} FROM {table}") == _ids(su, f"SELECT {key} FROM {table}"), table


def test_after_unblinding_a_coder_reads_what_the_unblinded_study_shows(team):
    with team.connect() as su, team.connect("sam") as sam, team.connect("alex") as alex:
        me = _coder_id(su, "alex")
        sam.execute("UPDATE study SET unblinded_at = now(), unblinded_by = 'sam' WHERE id = 1")
        try:
            for table in PROTECTED_TABLES:
                key = _key_expr(table)
                everything = _ids(su, f"SELECT {key} FROM {table}")
                if table in ("edit_steps", "suggestion_rejections"):
                    # Undo history and turned-down suggestions are private to their coder, blind or not.
                    assert _ids(alex, f"SELECT {key} FROM {table}") == _ids(
                        su, f"SELECT {key} FROM {table} WHERE coder_id = {me}"
                    )
                    continue
                assert _ids(alex, f"SELECT {key} FROM {table}") == everything, table
        finally:
            su.execute("UPDATE study SET unblinded_at = NULL, unblinded_by = NULL WHERE id = 1")
        assert alex.execute("SELECT count(*) FROM questionnaire_scores").fetchone()[0] == 0


# -- what no person's login can do -------------------------------------------------------------------


def _refused(conn, sql: str, params=()) -> str:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, params)
    return str(caught.value)


@pytest.mark.parametrize("name", ["alex", "sam"])
def test_no_login_can_change_or_empty_the_audit_log(team, name):
    with team.connect() as su, team.connect(name) as conn:
        before = su.execute("SELECT count(*), max(id) FROM audit_log").fetchone()
        assert "permission denied" in _refused(conn, "UPDATE audit_log SET actor = 'nobody'")
        assert "permission denied" in _refused(conn, "DELETE FROM audit_log")
        assert "permission denied" in _refused(conn, "TRUNCATE audit_log")
        assert "must be owner" in _refused(conn, "ALTER TABLE audit_log DISABLE TRIGGER ALL")
        assert "must be owner" in _refused(conn, "ALTER TABLE audit_log DISABLE ROW LEVEL SECURITY")
        assert "must be owner" in _refused(conn, "DROP TRIGGER audit_log_no_change ON audit_log")
        assert "permission denied" in _refused(conn, "SET session_replication_role = replica")
        assert su.execute("SELECT count(*), max(id) FROM audit_log").fetchone() == before


def test_session_replication_role_is_for_superusers_only(team):
    with team.connect() as su:
        for name in team.logins:
            row = su.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (team.logins[name],))
            assert row.fetchone() == (False, False)
        assert (
            su.execute("SELECT context FROM pg_settings WHERE name = 'session_replication_role'").fetchone()[0]
            == "superuser"
        )


def test_coder_login_cannot_write_in_another_coders_name(team):
    with team.connect() as su, team.connect("alex") as alex:
        kim = _coder_id(su, "kim")
        me = _coder_id(su, "alex")
        transcript, code = su.execute(
            "SELECT transcript_id, code_id FROM codings WHERE coder_id = %s LIMIT 1", (me,)
        ).fetchone()
        refusal = _refused(
            alex,
            "INSERT INTO codings (coder_id, transcript_id, code_id, start_offset, end_offset, phase, made_blind,"
            " created_at, changed_at) VALUES (%s, %s, %s, 0, 5, 'independent', true, now(), now())",
            (kim, transcript, code),
        )
        assert "row-level security" in refusal
        own = su.execute("SELECT id FROM codings WHERE coder_id = %s LIMIT 1", (me,)).fetchone()[0]
        assert "row-level security" in _refused(alex, "UPDATE codings SET coder_id = %s WHERE id = %s", (kim, own))
        kims = su.execute("SELECT count(*) FROM codings WHERE coder_id = %s AND deleted_at IS NULL", (kim,)).fetchone()
        assert alex.execute("UPDATE codings SET deleted_at = now() WHERE coder_id = %s", (kim,)).rowcount == 0
        assert alex.execute("DELETE FROM memos WHERE coder_id = %s", (kim,)).rowcount == 0
        assert (
            su.execute("SELECT count(*) FROM codings WHERE coder_id = %s AND deleted_at IS NULL", (kim,)).fetchone()
            == kims
        )
        assert "row-level security" in _refused(
            alex,
            "INSERT INTO memos (coder_id, target_kind, text, made_blind, created_at, changed_at)"
            " VALUES (%s, 'study', 'x', true, now(), now())",
            (kim,),
        )
        assert "row-level security" in _refused(
            alex,
            "INSERT INTO audit_log (id, at, actor, action, details) VALUES (999999, now(), 'kim', 'x', '{}')",
        )
        kims_code = su.execute("SELECT id FROM codes WHERE name = %s", (KIM_RENAMED,)).fetchone()[0]
        assert "row-level security" in _refused(
            alex,
            "INSERT INTO codings (coder_id, transcript_id, code_id, start_offset, end_offset, phase, made_blind,"
            " created_at, changed_at) VALUES (%s, %s, %s, 0, 5, 'independent', true, now(), now())",
            (me, transcript, kims_code),
        )
        book = su.execute("SELECT id FROM codebooks WHERE key = 'inductive'").fetchone()[0]
        assert "row-level security" in _refused(
            alex,
            "INSERT INTO codes (codebook_id, guid, name, origin, creator_id, position, created_at)"
            " VALUES (%s, %s, 'x', 'inductive', %s, 0, now())",
            (book, str(uuid.uuid4()), kim),
        )


def test_coder_login_cannot_promote_itself_or_lift_the_blind(team):
    with team.connect("alex") as alex, team.connect("sam") as sam:
        assert "permission denied" in _refused(alex, "UPDATE coders SET role = 'supervisor' WHERE name = 'alex'")
        assert "permission denied" in _refused(alex, "UPDATE study SET unblinded_at = now()")
        assert "permission denied" in _refused(alex, "UPDATE transcripts SET phase = 'consensus_done'")
        assert "permission denied" in _refused(alex, "CREATE TABLE public.mine (x int)")
        assert "permission denied" in _refused(alex, "SELECT last_value FROM codings_id_seq")
        # Even a supervisor may not rebind a login to another person or switch the identity check off.
        assert "permission denied" in _refused(
            sam, "UPDATE coders SET db_role = %s WHERE name = 'sam'", (team.logins["alex"],)
        )
        assert "permission denied" in _refused(sam, "UPDATE study SET identity_mode = 'trusted'")


def test_the_study_database_admits_only_its_own_groups(team):
    with team.connect() as su:
        allowed = su.execute(
            "SELECT array(SELECT grantee::regrole::text FROM aclexplode((SELECT datacl FROM pg_database"
            " WHERE datname = current_database())) WHERE privilege_type = 'CONNECT')"
        ).fetchone()[0]
        assert "-" not in allowed and "public" not in [a.lower() for a in allowed]  # PUBLIC shows as "-"
        assert set(team.roles.groups) <= set(allowed)
        owners = _ids(su, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert owners == {team.roles.owner}
        flags = su.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
        secured = {name for name, enabled, forced in flags if enabled and forced}
        assert secured == set(PROTECTED_TABLES)
        assert su.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (team.roles.owner,)).fetchone() == (
            False,
        )
        assert su.execute("SELECT identity_mode FROM study").fetchone() == ("database",)


# -- Concord itself, under a coder's login ------------------------------------------------------------


def test_concord_cli_with_a_coders_login_url(team):
    runner = CliRunner()
    url = team.url_for("alex")
    status = runner.invoke(concord_cli, ["status", url, "--format", "json"])
    assert status.exit_code == 0, status.output
    assert '"alex"' in status.stdout and '"kim"' not in status.stdout
    same = runner.invoke(concord_cli, ["status", url, "--as", "alex"])
    assert same.exit_code == 0, same.output
    pretend = runner.invoke(concord_cli, ["status", url, "--as", "kim"])
    assert pretend.exit_code == 2
    assert pretend.stderr.count("\n") == 1 and "--as kim refused" in pretend.stderr
    pretend_env = runner.invoke(concord_cli, ["status", url], env={"CONCORD_CODER": "sam"})
    assert pretend_env.exit_code == 2 and "--as sam refused" in pretend_env.stderr
    audit = runner.invoke(concord_cli, ["audit", url, "--format", "csv"])
    assert audit.exit_code == 0 and MARKER not in audit.stdout


def test_concord_cli_in_a_subprocess_with_libpq_settings(team, tmp_path):
    """The password from ~/.pgpass, the user from PGUSER: the URL names neither, as the guide advises."""
    import subprocess
    import sys

    base = make_url(PG_URL)
    host, port = base.host or "127.0.0.1", base.port or 5432
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{host}:{port}:{team.database}:{team.logins['kim']}:{PASSWORD}\n")
    pgpass.chmod(0o600)
    env = {**os.environ, "PGPASSFILE": str(pgpass), "PGUSER": team.logins["kim"]}
    env.pop("CONCORD_CODER", None)
    url = f"postgresql+psycopg://{host}:{port}/{team.database}"
    result = subprocess.run(
        [sys.executable, "-m", "concord", "status", url, "--format", "json"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert '"kim"' in result.stdout and '"alex"' not in result.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "concord", "status", url, "--as", "alex"], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0


def test_concord_services_work_under_row_level_security(team):
    from concord.services import audit, codes, coding, study, transcripts
    from concord.services.workspace import Workspace

    alex = Workspace.open(team.url_for("alex"))
    try:
        assert alex.actor.name == "alex"
        detail = transcripts.get_transcript(alex, "S03")
        turn = detail.turns[0]
        usable = codes.visible_codes(alex)
        assert all(MARKER not in c.name for c in usable)
        made = coding.apply_code(alex, detail.id, usable[0].id, turn.char_start, turn.char_end)
        coding.change_coding(alex, made.id, memo="checked under row-level security")
        assert coding.undo(alex, detail.id) is not None
        memo = coding.add_memo(alex, "turn", turn.id, "a memo under RLS")
        coding.update_memo(alex, memo.id, "a memo under RLS, changed")
        transcripts.record_progress(alex, detail.id, turns_reviewed=1, last_offset=turn.char_start)
        transcripts.set_done(alex, detail.id)
        codes.create_inductive_code(alex, "made under row-level security")
        assert set(study.study_status(alex)["codings"]) == {"alex"}
        assert all(e.actor != "kim" for e in audit.list_events(alex))
        assert [t.key for t in transcripts.list_transcripts(alex)]
    finally:
        alex.close()
    sam = Workspace.open(team.url_for("sam"))
    try:
        # Every coder wrote onto one hash chain although each reads only part of the log.
        assert audit.verify(sam).events > 0
    finally:
        sam.close()


def test_a_refused_write_is_one_line_permission_denied(team):
    from concord.storage.db import open_study

    store = open_study(team.url_for("alex"))
    try:
        with pytest.raises(PermissionDenied, match="your database login may not do this"):
            with store.session() as session:
                session.execute(text("UPDATE coders SET role = 'admin'"))
    finally:
        store.close()
    runner = CliRunner()
    result = runner.invoke(concord_cli, ["team", "setup", team.url_for("alex")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "needs a database administrator" in result.stderr


async def test_workbench_codes_under_a_coders_login(team):
    from concord.app.tui.app import make_app
    from concord.app.tui.screens.transcript import TranscriptScreen

    with team.connect() as su:
        me = _coder_id(su, "alex")
        before = su.execute("SELECT count(*) FROM codings WHERE coder_id = %s", (me,)).fetchone()[0]
    app = make_app(team.url_for("alex"), None)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        await pilot.press("enter")
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        assert isinstance(app.screen, TranscriptScreen) and app.screen.loaded
        await pilot.press("1")
        await pilot.pause()
    with team.connect() as su:
        assert su.execute("SELECT count(*) FROM codings WHERE coder_id = %s", (me,)).fetchone()[0] == before + 1


# -- logins and passwords ---------------------------------------------------------------------------


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier was made from ``password`` (RFC 5802 / 7677)."""
    found = re.match(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$", verifier)
    iterations, salt, stored_key = int(found[1]), base64.b64decode(found[2]), base64.b64decode(found[3])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest() == stored_key


def _password_of(team: Team, login: str) -> str | None:
    with team.connect() as su:
        row = su.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (login,)).fetchone()
    return row[0] if row else None


def test_coder_add_login_takes_the_password_from_a_file_the_environment_or_a_prompt(team, tmp_path):
    runner = CliRunner()
    people = {
        "ann": ("--password-file", "from a file 1"),
        "ben": ("env", "from the environment 2"),
        "cat": ("prompt", "from the prompt 3"),
    }
    for name, (how, password) in people.items():
        login = f"{name}_{team.suffix}"
        team.extra_logins.append(login)
        args = ["coder", "add", team.url, name, "--role", "coder", "--login", login]
        env, given = {}, None
        if how == "--password-file":
            secret = tmp_path / f"{name}.pw"
            secret.write_text(password + "\n")
            secret.chmod(0o644)
            loose = runner.invoke(concord_cli, [*args, "--password-file", str(secret)])
            assert loose.exit_code == 2 and "chmod 600" in loose.stderr
            secret.chmod(0o600)
            args += ["--password-file", str(secret)]
        elif how == "env":
            env = {"CONCORD_PASSWORD": password}
        else:
            given = f"{password}\n{password}\n"
        result = runner.invoke(concord_cli, args, env=env, input=given)
        assert result.exit_code == 0, result.output
        assert f"connects with a new login {login}" in result.stdout
        verifier = _password_of(team, login)
        assert verifier.startswith("SCRAM-SHA-256$") and password not in verifier
        assert _scram_matches(verifier, password) and not _scram_matches(verifier, "wrong")
        with team.connect() as su:
            assert su.execute("SELECT db_role FROM coders WHERE name = %s", (name,)).fetchone() == (login,)
            assert su.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (login, team.roles.coders)).fetchone() == (True,)
            assert su.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (login, team.roles.supervisors)).fetchone() == (
                False,
            )
    # No option takes a password on the command line.
    assert runner.invoke(concord_cli, ["coder", "add", team.url, "dan", "--login", "--password", "x"]).exit_code == 2
    # The new person is a coder under the same rules: ann's login reads no one else's codings.
    with team.connect() as su:
        ann_login = f"ann_{team.suffix}"
        with psycopg.connect(team.dsn(ann_login), autocommit=True) as ann:
            assert ann.execute("SELECT count(*) FROM codings").fetchone() == (0,)
        assert su.execute("SELECT count(*) FROM codings").fetchone()[0] > 0


def test_a_role_change_moves_the_login_between_groups_when_setup_runs_again(team):
    runner = CliRunner()
    kim = team.logins["kim"]

    def member(group: str) -> bool:
        with team.connect() as su:
            return su.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (kim, group)).fetchone()[0]

    try:
        changed = runner.invoke(concord_cli, ["coder", "role", team.url_for("sam"), "kim", "supervisor"])
        assert changed.exit_code == 0, changed.output
        again = runner.invoke(concord_cli, ["team", "setup", team.url])
        assert again.exit_code == 0, again.output
        assert "roles already there" in again.stdout and f"{kim} -> {team.roles.supervisors}" in again.stdout
        assert member(team.roles.supervisors) and not member(team.roles.coders)
    finally:
        with team.connect() as su:
            su.execute("UPDATE coders SET role = 'coder' WHERE name = 'kim'")
        assert runner.invoke(concord_cli, ["team", "setup", team.url]).exit_code == 0
    assert member(team.roles.coders) and not member(team.roles.supervisors)


def test_team_roles_are_named_per_database_and_fit_postgres():
    one, two = team_roles("pilot"), team_roles("main_study")
    assert set(one.all).isdisjoint(two.all)
    assert one.owner == "concord_pilot_owner" and one.coders == "concord_pilot_coders"
    # Names that clean up alike still differ; long ones are cut to PostgreSQL's 63 bytes.
    assert set(team_roles("a-b").all).isdisjoint(team_roles("a_b").all)
    assert all(len(name) <= 63 for name in team_roles("x" * 63).all)


def test_team_setup_refuses_a_study_file(tmp_path):
    result = CliRunner().invoke(concord_cli, ["team", "setup", str(tmp_path / "s.concord")])
    assert result.exit_code == 2 and "team mode is for PostgreSQL studies" in result.stderr


def test_every_claim_of_the_admin_guide_names_a_test_here():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "admin-guide.md").read_text(encoding="utf-8")
    section = guide[
        guide.index("#### What it enforces, and against whom") : guide.index("#### What it does not enforce")
    ]
    claims = section.split("\n- ")[1:]
    here = {name for name in globals() if name.startswith("test_")}
    assert len(claims) >= 8
    for claim in claims:
        cited = re.findall(r"`(test_\w+)`", claim)
        assert cited, f"a claim without a test: {claim[:80]}"
        assert set(cited) <= here, f"no such test in {__name__}: {set(cited) - here}"


def test_a_supervisor_login_backs_up_the_whole_study_and_a_coder_login_cannot(team, tmp_path):
    runner = CliRunner()
    refused = runner.invoke(concord_cli, ["backup", team.url_for("alex"), str(tmp_path / "alex.concord")])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert not (tmp_path / "alex.concord").exists()
    made = runner.invoke(concord_cli, ["backup", team.url_for("sam"), str(tmp_path / "sam.concord")])
    assert made.exit_code == 0, made.output
    import sqlite3

    copy = sqlite3.connect(tmp_path / "sam.concord")
    try:
        with team.connect() as su:
            for table in ("codings", "questionnaire_scores", "code_changes", "memos", "edit_steps"):
                total = su.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                assert copy.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == total, table
            # Every event up to the backup (the backup's own event comes after the copy).
            last, copied = copy.execute("SELECT max(id), count(*) FROM audit_log").fetchone()
            assert su.execute("SELECT count(*) FROM audit_log WHERE id <= %s", (last,)).fetchone()[0] == copied
            assert su.execute("SELECT action FROM audit_log WHERE id > %s", (last,)).fetchall() == [("study.backup",)]
    finally:
        copy.close()
