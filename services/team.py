"""PostgreSQL team mode: the database decides who may read and write what (storage/team_sql.py holds the SQL).

Two things a database administrator does, and nobody else can:

* ``setup_team``: roles, grants and row-level security for a study, and its identity mode set to
  "database": from then on a person *is* the coder bound to the login they connect with.
* ``bind_login``: give one person a database login (created with the password given, or an existing
  plain login reused), bind it to them (``coders.db_role``) and put it in their role's group.

These act through the connection's own login rather than through ``--as``: creating roles is a right
the database grants, and it checks it. ``--as``, if given, must still name the coder bound to that
login.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import make_url

from concord.services import identity
from concord.services.audit import record
from concord.storage import team_sql
from concord.storage.db import StudyStore, open_study
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import CODER_ROLES, Coder

SetupDone = team_sql.SetupDone


@dataclass(frozen=True)
class LoginBound:
    name: str
    role: str
    login: str
    created_coder: bool
    created_login: bool
    group: str


def _open_postgres(target: str) -> StudyStore:
    if "://" not in str(target):
        raise ConcordError(
            f"{target}: team mode is for PostgreSQL studies; on a study file people are bound to"
            " operating-system logins (concord coder add STUDY NAME --login LOGIN)"
        )
    store = open_study(target)
    if store.backend != "postgresql":  # pragma: no cover - is_url already means PostgreSQL
        store.close()
        raise ConcordError(f"{store.display_name}: team mode needs PostgreSQL")
    return store


def roles_for(target: str) -> team_sql.TeamRoles:
    return team_sql.team_roles(make_url(target).database or "")


def _actor_label(session, claimed: str | None, login: str) -> str:
    """Who the audit log names: the coder bound to the connected login, else that login itself.

    On a team study ``--as`` must name the coder bound to the login (identity.resolve_actor refuses
    anything else). Before the setup the database checks nothing about --as, so it is not believed.
    """
    if identity.study_mode(session) == identity.DATABASE:
        actor = identity.resolve_actor(session, claimed)
        if actor is not None:
            return actor.name
    return f"{login} (database administrator)"


def setup_team(target: str, *, actor: str | None = None) -> SetupDone:
    """Install team mode on the study at ``target`` (idempotent)."""
    store = _open_postgres(target)
    try:
        roles = roles_for(target)
        with store.session() as session:
            conn = session.connection()
            me = team_sql.require_admin(conn, "concord team setup")
            label = _actor_label(session, actor, me.login)
            done = team_sql.install(conn, roles, me)
            record(
                session,
                label,
                "team.setup",
                "study",
                1,
                roles=list(roles.all),
                protected=list(done.protected),
                moved=list(done.logins_moved),
            )
        return done
    finally:
        store.close()


def login_exists(target: str, login: str) -> bool:
    """Whether a database role of that name exists (so the CLI knows whether to ask for a password)."""
    store = _open_postgres(target)
    try:
        with store.reader() as session:
            return team_sql.role_exists(session.connection(), team_sql.check_login_name(login)) is not None
    finally:
        store.close()


def bind_login(
    target: str,
    name: str,
    *,
    login: str | None = None,
    role: str | None = None,
    password: str | None = None,
    create: bool = False,
    actor: str | None = None,
) -> LoginBound:
    """Give the person ``name`` the database login ``login`` (default: their name), in one unit of work.

    ``create`` adds the person first (``concord coder add --login``); otherwise they must exist. A login that
    does not exist yet is created with ``password``; an existing plain login is reused, and its password
    changed only if one is given.
    """
    name = name.strip()
    if not name:
        raise ConcordError("a coder needs a name")
    if role is not None and role not in CODER_ROLES:
        raise ConcordError(f"unknown role {role!r}; choose one of {', '.join(CODER_ROLES)}")
    login = team_sql.check_login_name((login or "").strip() or name)
    store = _open_postgres(target)
    try:
        roles = roles_for(target)
        with store.session() as session:
            conn = session.connection()
            me = team_sql.require_admin(conn, "giving a person a database login")
            if not team_sql.is_team_study(conn) or identity.study_mode(session) != identity.DATABASE:
                raise ConcordError(
                    f"{store.display_name}: not a team study yet; a database administrator runs"
                    f" concord team setup {store.display_name} first"
                )
            label = _actor_label(session, actor, me.login)
            coder = session.scalar(select(Coder).where(Coder.name == name))
            if create and coder is not None:
                raise ConcordError(f"a coder named {name!r} already exists (bind a login: concord team login)")
            if not create and coder is None:
                raise NotFound(f"no coder named {name!r} in this study (see: concord coder list)")
            holder = session.scalar(select(Coder.name).where(Coder.db_role == login))
            if holder is not None and holder != name:
                raise ConcordError(f"the login {login} is already bound to coder {holder}")
            if login in roles.all:
                raise ConcordError(f"{login} is one of the study's own roles, not a person's login")
            verifier = team_sql.encrypt_password(conn, login, password) if password else None
            created_login = team_sql.make_login(conn, login, verifier)
            if coder is None:
                coder = Coder(name=name, role=role or "coder", db_role=login)
                session.add(coder)
                session.flush()
                record(session, label, "coder.add", "coder", coder.id, name=name, role=coder.role, login=login)
            else:
                old = coder.db_role
                coder.db_role = login
                if role is not None and role != coder.role:
                    coder.role = role
                session.flush()
                record(session, label, "coder.login", "coder", coder.id, name=name, login=login, old=old)
            team_sql.sync_groups(conn, roles)
            return LoginBound(
                name=coder.name,
                role=coder.role,
                login=login,
                created_coder=create,
                created_login=created_login,
                group=roles.group_for(coder.role),
            )
    finally:
        store.close()


def sync_groups(target: str) -> tuple[str, ...]:
    """Move every bound login into the group of its person's current role (after ``concord coder role``)."""
    store = _open_postgres(target)
    try:
        with store.session() as session:
            conn = session.connection()
            team_sql.require_admin(conn, "moving logins between groups")
            return team_sql.sync_groups(conn, roles_for(target))
    finally:
        store.close()
