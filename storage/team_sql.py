"""PostgreSQL team mode: the roles, grants and row-level security that enforce the blind in the database.

A team study gives every person their own database login, and the database itself decides what
that login may read and write, whatever program connects with it (Concord, psql, a spreadsheet):

* Four roles per study, named after its database so that studies on one server stay apart
  (roles are cluster-wide, tables are not): a NOLOGIN **owner** that owns every table and that no
  person logs in as, and the groups **admins**, **supervisors** and **coders**. Each person's login
  is a member of the group of their Concord role.
* Table privileges are the first fence: coders may write only their own work tables; nobody but
  the owner may UPDATE, DELETE or TRUNCATE the audit log, or change who a login is.
* Row-level security (ENABLE and FORCE, so the owner is held to its own policy too) is the second:
  each policy asks a few SECURITY DEFINER functions in the schema ``concord_team`` who the login
  is. They are owned by the owner role, run with a fixed search_path and name every table with its
  schema, so a coder cannot shadow them with objects of their own.

Superusers bypass row-level security whatever is done here; so do members of the owner role (the
administrator who ran the setup), through the owner's policies.

Everything here is idempotent: running the setup again brings a study whose tables a migration
changed back in line, and moves logins into the group of their current role.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import Connection

from concord.storage.errors import ConcordError, PermissionDenied

SCHEMA = "concord_team"
GROUP_KINDS = ("admins", "supervisors", "coders")
GROUP_FOR_ROLE = {"admin": "admins", "supervisor": "supervisors", "coder": "coders"}
LEADS = ("supervisor", "admin")
INDUCTIVE_CODEBOOK_KEY = "inductive"
# Audit events about these may be read by every coder when a lead (or nobody in particular) made
# them: the study's setup. Everything else another person did stays behind the blind.
SETUP_ENTITIES = ("study", "coder", "codebook", "transcript")

# What each coder writes: their own rows only (row-level security checks coder_id).
OWN_WORK_TABLES = ("codings", "memos", "transcript_progress", "edit_steps", "suggestion_rejections")
# Tables behind row-level security, and how a coder may read them while the study is blind.
#   own:      rows whose coder_id is theirs; everyone's once the blind is lifted
#   private:  rows whose coder_id is theirs (undo history stays private, also after unblinding)
#   hidden:   nothing until the blind is lifted
#   unblinded_only_flagged: rows not flagged blinded
#   codes / code_changes / audit_log / codebooks: rules of their own, below
PROTECTED_TABLES = {
    "codings": "own",
    "memos": "own",
    "transcript_progress": "own",
    "edit_steps": "private",
    # Suggestions a coder turned down say what their model proposed: private like the undo history.
    "suggestion_rejections": "private",
    "codes": "codes",
    "code_changes": "code_changes",
    "codebook_versions": "hidden",
    "codebooks": "codebooks",
    "consensus_decisions": "hidden",
    "consensus_sources": "hidden",
    "attributes": "attributes",
    "questionnaire_scores": "hidden",
    "sessions": "hidden",
    "dyads": "hidden",
    "participants": "hidden",
    "audit_log": "audit_log",
}
# Columns only the owner may change: how people are identified and which login is whose.
OWNER_ONLY_COLUMNS = {
    "study": ("id", "identity_mode", "study_uid", "handout_for", "handout_of"),
    "coders": ("id", "db_role", "os_login"),
}
LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class TeamRoles:
    """The database roles of one study."""

    owner: str
    admins: str
    supervisors: str
    coders: str

    @property
    def groups(self) -> tuple[str, str, str]:
        return (self.admins, self.supervisors, self.coders)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.owner, *self.groups)

    def group_for(self, role: str) -> str:
        return getattr(self, GROUP_FOR_ROLE[role])


def team_roles(database: str) -> TeamRoles:
    """The role names of the study in ``database``: ``concord_<database>_<kind>``.

    Names are lower-case letters, digits and underscores; a database name with anything else, or
    too long to leave room for the suffix, gets a short hash so that two databases never share roles.
    """
    cleaned = re.sub(r"[^a-z0-9_]", "_", database.lower())
    prefix = f"concord_{cleaned}"
    if cleaned != database or len(prefix) > 48:
        digest = hashlib.sha256(database.encode("utf-8")).hexdigest()[:8]
        prefix = f"{prefix[:39]}_{digest}"
    return TeamRoles(
        owner=f"{prefix}_owner",
        admins=f"{prefix}_admins",
        supervisors=f"{prefix}_supervisors",
        coders=f"{prefix}_coders",
    )


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_login_name(login: str) -> str:
    if not LOGIN_NAME.match(login):
        raise ConcordError(
            f"{login!r} cannot be a database login: use lower-case letters, digits and _ (at most 63, not starting"
            " with a digit)"
        )
    return login


# -- who is connected ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    login: str
    database: str
    superuser: bool
    createrole: bool
    owns_database: bool


def connected(conn: Connection) -> Connected:
    row = conn.exec_driver_sql(
        "SELECT current_user, current_database(), r.rolsuper, r.rolcreaterole,"
        " pg_has_role(current_user, d.datdba, 'MEMBER')"
        " FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()"
    ).one()
    return Connected(login=row[0], database=row[1], superuser=row[2], createrole=row[3], owns_database=bool(row[4]))


def role_exists(conn: Connection, name: str) -> dict | None:
    row = (
        conn.exec_driver_sql(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = %(n)s",
            {"n": name},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def require_admin(conn: Connection, what: str) -> Connected:
    """Refuse, in one sentence, a login that may not create roles and own the study's tables."""
    me = connected(conn)
    if me.superuser or (me.createrole and me.owns_database):
        return me
    raise PermissionDenied(
        f"{what} needs a database administrator: a PostgreSQL superuser, or the owner of database"
        f" {me.database} with the CREATEROLE right; {me.login} is neither"
    )


def is_team_study(conn: Connection) -> bool:
    return bool(conn.exec_driver_sql("SELECT to_regnamespace(%(s)s) IS NOT NULL", {"s": SCHEMA}).scalar())


# -- the setup -----------------------------------------------------------------------------------


def _functions_sql(roles: TeamRoles) -> list[str]:
    definer = "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
    functions = {
        # The coder a login is (NULL for none, or for a deactivated person).
        "coder_id(login name) RETURNS integer": "SELECT c.id FROM public.coders c WHERE c.db_role = login AND c.active",
        "coder_name(login name) RETURNS text": (
            "SELECT c.name::text FROM public.coders c WHERE c.db_role = login AND c.active"
        ),
        "coder_role(login name) RETURNS text": (
            "SELECT c.role::text FROM public.coders c WHERE c.db_role = login AND c.active"
        ),
        "is_lead(login name) RETURNS boolean": (
            "SELECT coalesce((SELECT c.role IN ('supervisor', 'admin') FROM public.coders c"
            " WHERE c.db_role = login AND c.active), false)"
        ),
        # Supervisors and admins always; a coder once the study is open or unblinded.
        "sees_all(login name) RETURNS boolean": (
            "SELECT concord_team.is_lead(login) OR (concord_team.coder_id(login) IS NOT NULL"
            " AND coalesce((SELECT NOT s.blind OR s.unblinded_at IS NOT NULL FROM public.study s WHERE s.id = 1),"
            " false))"
        ),
        "audit_visible(login name, who text, about text) RETURNS boolean": (
            "SELECT concord_team.sees_all(login) OR who = concord_team.coder_name(login)"
            f" OR (about IN ({', '.join(literal(e) for e in SETUP_ENTITIES)})"
            " AND NOT EXISTS (SELECT 1 FROM public.coders c WHERE c.name = who AND c.role = 'coder'))"
        ),
    }
    statements = []
    for signature, body in functions.items():
        statements.append(f"CREATE OR REPLACE FUNCTION {SCHEMA}.{signature} {definer} AS $fn$ {body} $fn$")
        name_and_args = signature.split(" RETURNS ")[0]
        statements.append(f"ALTER FUNCTION {SCHEMA}.{name_and_args} OWNER TO {ident(roles.owner)}")
        statements.append(f"REVOKE ALL ON FUNCTION {SCHEMA}.{name_and_args} FROM PUBLIC")
        statements.append(
            f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{name_and_args} TO {', '.join(ident(g) for g in roles.groups)}"
        )
    return statements


# Policy expressions. Each function call is wrapped in a sub-select, so PostgreSQL evaluates it once
# per query rather than once per row.
ME = f"(SELECT {SCHEMA}.coder_id(current_user))"
LEAD = f"(SELECT {SCHEMA}.is_lead(current_user))"
SEES_ALL = f"(SELECT {SCHEMA}.sees_all(current_user))"


def _policies_sql(table: str, kind: str, roles: TeamRoles) -> list[str]:
    t = ident(table)
    out = [
        f"CREATE POLICY concord_owner ON {t} TO {ident(roles.owner)} USING (true) WITH CHECK (true)",
        f"CREATE POLICY concord_lead ON {t} USING ({LEAD}) WITH CHECK ({LEAD})",
    ]
    if kind == "own":
        check = f"coder_id = {ME}"
        if table == "codings":
            # Foreign keys look past row-level security; this does not: a coder codes only with a code they
            # may see, so another coder's inductive code cannot even be probed by its number.
            check += " AND EXISTS (SELECT 1 FROM public.codes c WHERE c.id = code_id)"
        out += [
            f"CREATE POLICY concord_read ON {t} FOR SELECT USING (coder_id = {ME} OR {SEES_ALL})",
            f"CREATE POLICY concord_own ON {t} USING (coder_id = {ME}) WITH CHECK ({check})",
        ]
    elif kind == "private":
        out.append(f"CREATE POLICY concord_own ON {t} USING (coder_id = {ME}) WITH CHECK (coder_id = {ME})")
    elif kind == "hidden":
        out.append(f"CREATE POLICY concord_read ON {t} FOR SELECT USING ({SEES_ALL})")
    elif kind == "attributes":
        out.append(f"CREATE POLICY concord_read ON {t} FOR SELECT USING (NOT blinded OR {SEES_ALL})")
    elif kind == "codes":
        out += [
            f"CREATE POLICY concord_read ON {t} FOR SELECT"
            f" USING (origin <> 'inductive' OR creator_id = {ME} OR {SEES_ALL})",
            # A coder makes inductive codes of their own while coding, and nothing else.
            f"CREATE POLICY concord_own ON {t} FOR INSERT WITH CHECK (origin = 'inductive' AND creator_id = {ME})",
        ]
    elif kind == "code_changes":
        # The history of a code is as visible as the code: the sub-select runs under the codes policy.
        out.append(
            f"CREATE POLICY concord_read ON {t} FOR SELECT"
            " USING (EXISTS (SELECT 1 FROM public.codes c WHERE c.id = code_id))"
        )
    elif kind == "codebooks":
        out += [
            f"CREATE POLICY concord_read ON {t} FOR SELECT USING (true)",
            # The study's codebook of inductive codes is made by whoever writes the first one.
            f"CREATE POLICY concord_own ON {t} FOR INSERT WITH CHECK (key = {literal(INDUCTIVE_CODEBOOK_KEY)})",
        ]
    elif kind == "audit_log":
        out += [
            f"CREATE POLICY concord_read ON {t} FOR SELECT USING ({SCHEMA}.audit_visible(current_user, actor, entity))",
            f"CREATE POLICY concord_own ON {t} FOR INSERT"
            f" WITH CHECK (actor = (SELECT {SCHEMA}.coder_name(current_user)))",
        ]
    else:  # pragma: no cover - a typo in PROTECTED_TABLES
        raise ValueError(kind)
    return out


def _columns(conn: Connection, table: str) -> list[str]:
    return list(
        conn.exec_driver_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = %(t)s ORDER BY ordinal_position",
            {"t": table},
        ).scalars()
    )


def _public_tables(conn: Connection) -> list[str]:
    return list(
        conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").scalars()
    )


@dataclass(frozen=True)
class SetupDone:
    roles: TeamRoles
    created_roles: tuple[str, ...]
    tables: int
    protected: tuple[str, ...]
    logins_moved: tuple[str, ...]


def install(conn: Connection, roles: TeamRoles, me: Connected) -> SetupDone:
    """Create the roles, hand the tables to the owner, grant, and install row-level security.

    Runs in the caller's transaction: all of it or none of it.
    """
    created = []
    for name in roles.all:
        found = role_exists(conn, name)
        if found is None:
            conn.exec_driver_sql(f"CREATE ROLE {ident(name)} NOLOGIN")
            created.append(name)
        elif found["rolcanlogin"] or found["rolsuper"] or found["rolbypassrls"]:
            raise ConcordError(
                f"a role named {name} already exists and can log in or bypass row-level security;"
                " Concord will not use it as a group (rename or drop it first)"
            )
    if not me.superuser:
        # A non-superuser may hand a table only to a role it belongs to; this makes the administrator
        # who runs the setup a member of the owner role, as the guide says.
        conn.exec_driver_sql(f"GRANT {ident(roles.owner)} TO {ident(me.login)}")

    db = ident(me.database)
    groups = ", ".join(ident(g) for g in roles.groups)
    leads = f"{ident(roles.admins)}, {ident(roles.supervisors)}"
    everyone = f"{groups}, {ident(roles.owner)}"
    conn.exec_driver_sql(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {groups}")
    conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {everyone}")
    conn.exec_driver_sql(f"GRANT CREATE ON SCHEMA public TO {ident(roles.owner)}")
    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA} AUTHORIZATION {ident(roles.owner)}")
    conn.exec_driver_sql(f"ALTER SCHEMA {SCHEMA} OWNER TO {ident(roles.owner)}")
    conn.exec_driver_sql(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {groups}")

    tables = _public_tables(conn)
    for table in tables:
        conn.exec_driver_sql(f"ALTER TABLE public.{ident(table)} OWNER TO {ident(roles.owner)}")
    functions = conn.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d"
        " WHERE d.objid = p.oid AND d.deptype = 'e')"
    ).scalars()
    for signature in functions:
        # The audit log's triggers and its head function run as their owner: never a person's login.
        conn.exec_driver_sql(f"ALTER FUNCTION {signature} OWNER TO {ident(roles.owner)}")

    for statement in _functions_sql(roles):
        conn.exec_driver_sql(statement)

    # Privileges from scratch each time, so a rerun also takes back what an earlier version granted.
    for table in tables:
        t = f"public.{ident(table)}"
        conn.exec_driver_sql(f"REVOKE ALL ON {t} FROM PUBLIC, {groups}")
        if table == "alembic_version":
            conn.exec_driver_sql(f"GRANT SELECT ON {t} TO {groups}")
            continue
        conn.exec_driver_sql(f"GRANT SELECT ON {t} TO {groups}")
        if table in OWNER_ONLY_COLUMNS:
            free = [c for c in _columns(conn, table) if c not in OWNER_ONLY_COLUMNS[table]]
            cols = ", ".join(ident(c) for c in free)
            conn.exec_driver_sql(f"GRANT UPDATE ({cols}) ON {t} TO {leads}")
            if table == "coders":
                conn.exec_driver_sql(f"GRANT INSERT ({cols}) ON {t} TO {leads}")
        elif table in ("audit_log", "audit_checkpoints"):
            conn.exec_driver_sql(f"GRANT INSERT ON {t} TO {groups if table == 'audit_log' else leads}")
        else:
            conn.exec_driver_sql(f"GRANT INSERT, UPDATE, DELETE ON {t} TO {leads}")
        if table in OWN_WORK_TABLES:
            conn.exec_driver_sql(f"GRANT INSERT, UPDATE, DELETE ON {t} TO {ident(roles.coders)}")
        elif table in ("codes", "codebooks"):
            conn.exec_driver_sql(f"GRANT INSERT ON {t} TO {ident(roles.coders)}")
    conn.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, {groups}")
    # USAGE (nextval) but not SELECT: reading a sequence's last value would count everyone's rows.
    conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {groups}")
    if conn.exec_driver_sql("SELECT to_regprocedure('public.concord_audit_head()') IS NOT NULL").scalar():
        conn.exec_driver_sql("REVOKE ALL ON FUNCTION public.concord_audit_head() FROM PUBLIC")
        conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION public.concord_audit_head() TO {groups}")

    protected = tuple(table for table in PROTECTED_TABLES if table in tables)
    old = conn.exec_driver_sql(
        "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public' AND policyname LIKE %(p)s",
        {"p": "concord\\_%"},
    ).all()
    for table, policy in old:
        conn.exec_driver_sql(f"DROP POLICY {ident(policy)} ON public.{ident(table)}")
    for table in protected:
        for statement in _policies_sql(table, PROTECTED_TABLES[table], roles):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"ALTER TABLE public.{ident(table)} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"ALTER TABLE public.{ident(table)} FORCE ROW LEVEL SECURITY")

    moved = sync_groups(conn, roles)
    conn.exec_driver_sql("UPDATE public.study SET identity_mode = 'database' WHERE id = 1")
    return SetupDone(
        roles=roles, created_roles=tuple(created), tables=len(tables), protected=protected, logins_moved=moved
    )


def sync_groups(conn: Connection, roles: TeamRoles) -> tuple[str, ...]:
    """Put every bound login in the group of its person's current role, and in no other."""
    moved = []
    rows = conn.exec_driver_sql(
        "SELECT c.db_role, c.role, c.active FROM public.coders c JOIN pg_roles r ON r.rolname = c.db_role"
    ).all()
    for login, role, active in rows:
        wanted = roles.group_for(role) if active else None
        for group in roles.groups:
            member = conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                " JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = %(g)s AND u.rolname = %(u)s)",
                {"g": group, "u": login},
            ).scalar()
            if group == wanted and not member:
                conn.exec_driver_sql(f"GRANT {ident(group)} TO {ident(login)}")
                moved.append(f"{login} -> {group}")
            elif group != wanted and member:
                conn.exec_driver_sql(f"REVOKE {ident(group)} FROM {ident(login)}")
                moved.append(f"{login} -/> {group}")
    return tuple(moved)


# -- logins --------------------------------------------------------------------------------------


def encrypt_password(conn: Connection, login: str, password: str) -> str:
    """The SCRAM verifier of a password, made by libpq on this side: the password itself never reaches the
    server, its logs or pg_stat_activity."""
    pgconn = conn.connection.driver_connection.pgconn
    return pgconn.encrypt_password(password.encode("utf-8"), login.encode("utf-8"), b"scram-sha-256").decode("ascii")


def make_login(conn: Connection, login: str, verifier: str | None) -> bool:
    """Create the LOGIN role (True) or, for an existing plain login, leave it be (False)."""
    found = role_exists(conn, login)
    if found is None:
        if verifier is None:
            raise ConcordError(f"a new login {login} needs a password")
        conn.exec_driver_sql(f"CREATE ROLE {ident(login)} LOGIN PASSWORD {literal(verifier)}")
        return True
    if not found["rolcanlogin"] or found["rolsuper"] or found["rolbypassrls"] or found["rolcreaterole"]:
        raise ConcordError(
            f"the database role {login} exists but is not a plain login (it cannot log in, or it is a superuser,"
            " bypasses row-level security or creates roles); choose another with --login NAME"
        )
    if verifier is not None:
        conn.exec_driver_sql(f"ALTER ROLE {ident(login)} PASSWORD {literal(verifier)}")
    return False
