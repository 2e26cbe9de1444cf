"""The chain of schema revisions, read from the migration files' headers without importing Alembic.

Opening a study needs only the newest revision and the set of known ones. Alembic's import loads
every SQL dialect it supports and Mako, which costs more than the rest of a command such as
`concord status`; so Alembic itself is imported only to create or migrate a study (storage.db).
tests/test_cli_startup.py checks that this reading agrees with Alembic's own.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from concord.storage.resources import package_path

# `revision = "0003"` or `down_revision: str | None = "0002"`, as Alembic's script template writes them.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.*?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^(['"])([^'"]+)\1$""")


def _value(path: Path, name: str, text: str | None) -> str | None:
    if text is None:
        raise RuntimeError(f"{path}: migration without a `{name} = ...` line")
    if text == "None" and name == "down_revision":
        return None
    quoted = _QUOTED.match(text)
    if quoted is None:
        # Concord's migrations form one line: a tuple here would be a merge of branches.
        raise RuntimeError(f"{path}: {name} must be one quoted revision id, not {text}")
    return quoted.group(2)


@cache
def revision_chain() -> dict[str, str | None]:
    """Each revision -> the revision it follows (None for the first)."""
    chain: dict[str, str | None] = {}
    for path in sorted(package_path("concord.storage.migrations", "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        revision = _value(path, "revision", found.get("revision"))
        assert revision is not None  # _value gives None only for a first down_revision
        chain[revision] = _value(path, "down_revision", found.get("down_revision"))
    return chain


def known_revisions() -> set[str]:
    return set(revision_chain())


def head_revision() -> str:
    """The revision no other one follows: the schema a study has once it is up to date."""
    chain = revision_chain()
    heads = set(chain) - set(chain.values())
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one line; their heads are {sorted(heads)}")
    return heads.pop()
