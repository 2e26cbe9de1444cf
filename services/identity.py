"""Who is running a command: the one rule every command goes through (via Workspace).

A study records how people are identified (``study.identity_mode``):

* ``trusted``: ``--as NAME`` (or ``$CONCORD_CODER``) is believed. For the demo and for a study only
  one person uses; every command says so on stderr.
* ``os-login``: SQLite studies on one machine. Each coder is bound to an operating-system login
  (``coders.os_login``); a command acts as the coder bound to the login that runs it, and ``--as``
  must name that same coder. The login comes from the process's effective user id, never from
  ``$USER`` or ``$LOGNAME``, which anyone can set.
* ``database``: PostgreSQL team studies. The actor is the coder whose ``db_role`` is the login
  connected to the database (``SELECT current_user``); ``--as`` must agree.

In the checked modes a login bound to no coder is nobody in particular: it may run what needs no
person (help, listing coders and codebooks, status and audit as seen through the blind) and nothing
that acts for someone.
"""

from __future__ import annotations

import os
import pwd

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from concord.storage.models import Coder, Study

TRUSTED = "trusted"
OS_LOGIN = "os-login"
DATABASE = "database"
IDENTITY_MODES = (TRUSTED, OS_LOGIN, DATABASE)

TRUSTED_NOTICE = "concord: note: this study does not check identities (--identity trusted): --as is taken on trust"


class IdentityRefused(PermissionDenied):
    """Someone tried to act as a person they are not."""


def current_login() -> str:
    """The operating-system login running this process, from its effective user id."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        # A uid with no passwd entry (some containers): the number is still unforgeable.
        return str(uid)


def database_login(session: Session) -> str:
    return session.scalar(text("SELECT current_user"))


def default_mode(target: str) -> str:
    """The identity mode a new study gets when `concord init` is not told one.

    A file is bound to OS logins. A PostgreSQL study can only check identities once its
    per-person logins and row-level security exist (concord team setup); until then it is trusted.
    """
    if "://" not in str(target):
        return OS_LOGIN
    return TRUSTED


def check_mode(mode: str, backend: str) -> None:
    if mode not in IDENTITY_MODES:
        raise ConcordError(f"unknown identity mode {mode!r}; choose one of {', '.join(IDENTITY_MODES)}")
    if mode == OS_LOGIN and backend != "sqlite":
        raise ConcordError(
            "os-login identifies people on one machine and needs a study file;"
            " a PostgreSQL study uses --identity database (after concord team setup) or trusted"
        )
    if mode == DATABASE and backend != "postgresql":
        raise ConcordError("--identity database needs a PostgreSQL study; a study file uses os-login or trusted")


def study_mode(session: Session) -> str:
    row = session.get(Study, 1)
    return (row.identity_mode if row is not None else None) or TRUSTED


def who_is_running(session: Session, mode: str) -> tuple[str, Coder | None]:
    """The login running this command (OS or database, by mode) and the coder bound to it."""
    if mode == OS_LOGIN:
        login = current_login()
        return login, session.scalar(select(Coder).where(Coder.os_login == login))
    if mode == DATABASE:
        login = database_login(session)
        return login, session.scalar(select(Coder).where(Coder.db_role == login))
    raise ValueError(f"identity mode {mode!r} binds no login")


def resolve_actor(session: Session, claimed: str | None) -> Coder | None:
    """The coder a command acts as, or None for nobody in particular.

    ``claimed`` is the name given with --as or $CONCORD_CODER. Raises IdentityRefused when the
    study checks identities and the claim is not the person running the command.
    """
    mode = study_mode(session)
    if mode == TRUSTED:
        if not claimed:
            return None
        row = session.scalar(select(Coder).where(Coder.name == claimed))
        if row is None:
            raise NotFound(f"no coder named {claimed!r} in this study (see: concord coder list)")
        return _active(row)
    login, bound = who_is_running(session, mode)
    kind = "logged in" if mode == OS_LOGIN else "connected to the database"
    if bound is None:
        if claimed:
            raise IdentityRefused(
                f"you are {kind} as {login}, which is bound to no coder in this study; --as {claimed} refused"
            )
        return None
    if claimed and claimed != bound.name:
        raise IdentityRefused(f"you are {kind} as {login}, bound to coder {bound.name}; --as {claimed} refused")
    return _active(bound)


def _active(row: Coder) -> Coder:
    if not row.active:
        raise PermissionDenied(f"coder {row.name!r} is deactivated")
    return row


def login_for_new_coder(session: Session, name: str, login: str | None) -> str | None:
    """The OS login to bind a new coder to on a study file, or None to bind none.

    In os-login mode every coder is bound (default: a login of the same name); in trusted mode
    only when --login is given, so the bindings are there if the study is switched to os-login.
    """
    mode = study_mode(session)
    if mode == DATABASE or session.get_bind().dialect.name != "sqlite":
        # PostgreSQL people get database logins (concord team / coder add --login there).
        return None
    if login is not None:
        chosen = login.strip() or name
    elif mode == OS_LOGIN:
        chosen = name
    else:
        return None
    holder = session.scalar(select(Coder.name).where(Coder.os_login == chosen))
    if holder is not None:
        raise ConcordError(f"the login {chosen!r} is already bound to coder {holder}")
    return chosen
