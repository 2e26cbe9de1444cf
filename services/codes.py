"""The codes a person may code with, and inductive codes made while coding.

In a blind study a coder sees every deductive code and only their own
inductive ones; other coders' inductive codes would reveal their coding.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from concord.codebooks.spec import ScaleSpec, scale_from_document
from concord.services.audit import record
from concord.services.dto import CodeInfo
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import Code, Codebook, Coder

INDUCTIVE_CODEBOOK = "inductive"


# The fields that describe a code, named alike on a Code row, a CodeSpec and a CodeInfo: copying a
# code from one of these to another goes through this one list, so a new field is added once.
DESCRIPTION_FIELDS = ("label", "definition", "inclusion", "exclusion", "example", "pole", "high_pole", "colour")


def description_of(code: Any) -> dict[str, Any]:
    """The fields describing ``code`` (a Code row, a CodeSpec or a CodeInfo), as keyword arguments."""
    return {name: getattr(code, name) for name in DESCRIPTION_FIELDS}


def stored_applies_to(text: str | None) -> tuple[str, ...] | None:
    """codes.applies_to as the codebook wrote it: the roles, or None where nothing was declared."""
    return tuple(role for role in text.split(",") if role) if text else None


def stored_scale(document: dict[str, Any] | None) -> ScaleSpec | None:
    """codes.scale as a ScaleSpec; a stored scale was checked when its codebook was read."""
    return scale_from_document(document) if document else None


def checked_value(code_name: str, scale: ScaleSpec | None, value: float | None) -> float | None:
    """The value a coding of this code carries: required, and on the scale, for a code with a scale;
    refused for a code without one."""
    if scale is None:
        if value is not None:
            raise ConcordError(f"code {code_name!r} carries no value (its codebook gives it no scale)")
        return None
    if value is None:
        raise ConcordError(f"code {code_name!r} needs a value on its scale ({scale.describe()})")
    if not scale.allows(float(value)):
        raise ConcordError(f"{value:g} is not on the scale of code {code_name!r} ({scale.describe()})")
    return float(value)


def code_info(row: Code, codebook_key: str, creator: str | None, path: tuple[str, ...]) -> CodeInfo:
    return CodeInfo(
        id=row.id,
        codebook=codebook_key,
        parent_id=row.parent_id,
        name=row.name,
        **description_of(row),
        hotkey=row.hotkey,
        origin=row.origin,
        creator=creator,
        position=row.position,
        guid=row.guid,
        path=path,
        applies_to=stored_applies_to(row.applies_to),
        scale=stored_scale(row.scale),
    )


def _live_codes(session: Session) -> list[Code]:
    return list(session.scalars(select(Code).where(Code.live()).order_by(Code.codebook_id, Code.position, Code.id)))


def code_infos(session: Session, rows: list[Code]) -> list[CodeInfo]:
    books = dict(session.execute(select(Codebook.id, Codebook.key)).all())
    names = dict(session.execute(select(Coder.id, Coder.name)).all())
    # Paths run through ancestors that may not be among `rows`; codebooks hold hundreds of codes, not more.
    by_id = {row.id: row for row in session.scalars(select(Code))}
    by_id.update({row.id: row for row in rows})

    def path_of(row: Code) -> tuple[str, ...]:
        parts = []
        seen = set()
        while row is not None and row.id not in seen:
            seen.add(row.id)
            parts.append(row.name)
            row = by_id.get(row.parent_id) if row.parent_id else None
        return tuple(reversed(parts))

    return [code_info(r, books[r.codebook_id], names.get(r.creator_id), path_of(r)) for r in rows]


def visible_codes(workspace: Workspace) -> list[CodeInfo]:
    """The study's live codes (not merged away or retired) the actor may see, in tree order."""
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        rows = _live_codes(session)
        if blind:
            rows = [r for r in rows if r.origin == "deductive" or (actor and r.creator_id == actor.id)]
        return code_infos(session, rows)


def usable_code(session: Session, workspace: Workspace, code_id: int, blind: bool) -> None:
    """The code exists, is live, and (while blind) is deductive or the actor's own."""
    row = session.execute(
        select(Code.origin, Code.creator_id, Code.merged_into_id, Code.retired_at).where(Code.id == code_id)
    ).first()
    actor = workspace.actor
    if (
        row is None
        or row.merged_into_id is not None
        or row.retired_at is not None
        or (blind and row.origin != "deductive" and not (actor and row.creator_id == actor.id))
    ):
        raise NotFound(f"no code {code_id} that you can use")


def inductive_codebook(session: Session) -> Codebook:
    book = session.scalar(select(Codebook).where(Codebook.key == INDUCTIVE_CODEBOOK))
    if book is None:
        book = Codebook(
            key=INDUCTIVE_CODEBOOK,
            title="Inductive codes",
            version="1",
            description="Codes made while coding.",
            origin="study",
        )
        session.add(book)
        session.flush()
    return book


def create_inductive_code(
    workspace: Workspace, name: str, definition: str | None = None, parent_id: int | None = None
) -> CodeInfo:
    """A coder's own code, made while coding; marked inductive and owned by its creator."""
    actor = workspace.require_actor()
    name = " ".join(name.split())
    if not name:
        raise ConcordError("an inductive code needs a name")
    if len(name) > 300:
        raise ConcordError("a code name is at most 300 characters")
    blind = workspace.blind_for_actor()
    with workspace.store.session() as session:
        book = inductive_codebook(session)
        existing = session.scalar(
            select(Code).where(Code.codebook_id == book.id, Code.name == name, Code.creator_id == actor.id, Code.live())
        )
        if existing is not None:
            return code_infos(session, [existing])[0]
        if parent_id is not None:
            usable_code(session, workspace, parent_id, blind)
        position = len(session.scalars(select(Code.id).where(Code.codebook_id == book.id)).all())
        row = Code(
            codebook_id=book.id,
            parent_id=parent_id if parent_id else None,
            guid=str(uuid.uuid4()),
            name=name,
            definition=definition or None,
            origin="inductive",
            creator_id=actor.id,
            position=position,
        )
        session.add(row)
        session.flush()
        record(session, actor.name, "code.create", "code", row.id, name=name, origin="inductive")
        return code_infos(session, [row])[0]


def find_code(
    session: Session,
    name_or_id: str | int,
    codebook_key: str | None = None,
    *,
    among: ColumnElement[bool] | None = None,
) -> Code:
    """A live code by id, by name, or by codebook-qualified name "book/name".

    ``among`` limits the search to the codes a person may see (seen_under_blind): a code outside it is
    answered exactly as one that does not exist, so a lookup cannot probe for another coder's codes.
    """
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
        query = select(Code).where(Code.id == int(name_or_id))
        row = session.scalar(query if among is None else query.where(among))
        if row is None:
            raise NotFound(f"no code with id {name_or_id}")
        return row
    text = str(name_or_id)
    if codebook_key is None and "/" in text:
        codebook_key, text = text.split("/", 1)
    query = select(Code).where(Code.name == text, Code.live())
    if among is not None:
        query = query.where(among)
    if codebook_key:
        query = query.join(Codebook, Codebook.id == Code.codebook_id).where(Codebook.key == codebook_key)
    rows = session.scalars(query).all()
    if not rows:
        raise NotFound(f"no code named {text!r}" + (f" in codebook {codebook_key!r}" if codebook_key else ""))
    if len(rows) > 1:
        raise ConcordError(f"several codes are named {text!r}; qualify it as CODEBOOK/NAME")
    return rows[0]


def seen_under_blind(coder_id: int | None) -> ColumnElement[bool]:
    """The codes a person under the blind may see, as SQL (the rule of visible_codes): every deductive
    code, and their own inductive ones."""
    return (Code.origin == "deductive") | (Code.creator_id == (coder_id if coder_id is not None else -1))
