"""PostgreSQL team mode: `concord team setup` and `concord team login`, and the password a new login gets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from concord.app.cli_common import as_option, study_argument
from concord.storage.errors import ConcordError

PASSWORD_ENV = "CONCORD_PASSWORD"


def password_file_option(func):
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Read the new login's password from the first line of this file (mode 600). Otherwise"
        f" ${PASSWORD_ENV}, otherwise a prompt. Never on the command line.",
    )(func)


def read_password(password_file: Path | None, login: str, *, needed: bool) -> str | None:
    """The password for ``login``: from the file, $CONCORD_PASSWORD or a prompt (only when ``needed``)."""
    if password_file is not None:
        try:
            mode = password_file.stat().st_mode
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConcordError(f"{password_file}: cannot read the password file ({exc.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConcordError(f"{password_file}: others may read this password file; chmod 600 it first")
        password = lines[0] if lines else ""
        if not password:
            raise ConcordError(f"{password_file}:1: the password file's first line is empty")
        return password
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not needed:
        return None
    return click.prompt(f"Password for the new database login {login}", hide_input=True, confirmation_prompt=True)


@click.group()
def team():
    """PostgreSQL team mode: one database login per person, the blind enforced by the database."""


@team.command("setup")
@study_argument
@as_option
def team_setup(study, actor):
    """Enforce the blind in the database of STUDY (a PostgreSQL URL); for a database administrator.

    Creates the study's roles (a NOLOGIN owner of every table, and the groups admins, supervisors and
    coders, named after the database), grants each group what it needs, and installs row-level
    security on every table holding coder-owned or blinded data. From then on a person is the coder
    bound to the login they connect with, and --as must name them. Run it again at any time (after
    an upgrade, or after changing someone's role): it brings everything back in line.

    Connect as a PostgreSQL superuser, or as the database's owner with the CREATEROLE right.

    \b
    Example:
      concord team setup postgresql+psycopg://postgres@db.example.org/alliance_pilot
    """
    from concord.services import team as team_service

    done = team_service.setup_team(study, actor=actor)
    made = f"created roles {', '.join(done.created_roles)}" if done.created_roles else "roles already there"
    click.echo(
        f"Team mode is on: {made}; {done.tables} tables owned by {done.roles.owner};"
        f" row-level security on {len(done.protected)} tables."
    )
    for change in done.logins_moved:
        click.echo(f"  group membership: {change}")
    click.echo(
        f"Next: concord coder add {study} NAME --role coder --login  (or concord team login for existing people)"
    )


@team.command("login")
@study_argument
@click.argument("name")
@click.option("--login", "login", metavar="LOGIN", help="The database login (default: NAME).")
@password_file_option
@as_option
def team_login(study, name, login, password_file, actor):
    """Give the person NAME, already in the study, a database login of their own.

    A login that does not exist is created with a password (--password-file, $CONCORD_PASSWORD or a
    prompt); an existing plain login is reused and keeps its password unless one is given. The login is
    bound to NAME and put in the group of their role. For a database administrator.
    """
    from concord.services import team as team_service

    info = _bind(team_service, study, name, login, password_file, actor, create=False)
    click.echo(_bound_line(info))


def _bind(team_service, study, name, login, password_file, actor, *, create, role=None):
    chosen = (login or "").strip() or name.strip()
    needed = not team_service.login_exists(study, chosen)
    password = read_password(password_file, chosen, needed=needed)
    return team_service.bind_login(study, name, login=chosen, role=role, password=password, create=create, actor=actor)


def _bound_line(info) -> str:
    how = "a new login" if info.created_login else "the existing login"
    return f"{info.name} ({info.role}) connects with {how} {info.login}, in group {info.group}."


def add_with_login(study: str, name: str, role: str, login: str, password_file: Path | None, actor: str | None) -> str:
    """`concord coder add URL NAME --login` on PostgreSQL: the person, their login and their group at once."""
    from concord.services import team as team_service

    info = _bind(team_service, study, name, login, password_file, actor, create=True, role=role)
    return f"Added {info.role} {info.name}; " + _bound_line(info)
