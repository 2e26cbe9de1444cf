"""Writing to and reading the append-only audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.services.dto import AuditInfo
from concord.services.workspace import Workspace
from concord.storage.models import AuditEvent, Coder


def record(
    session: Session, actor: str, action: str, entity: str | None = None, entity_id: int | None = None, **details: Any
) -> None:
    """Add an audit event in the caller's unit of work, so it commits with the change."""
    session.add(AuditEvent(actor=actor, action=action, entity=entity, entity_id=entity_id, details=details))


# Events about these say what a coder coded or what a session scored: behind the blind.
BLINDED_ENTITIES = frozenset({"coding", "memo", "consensus", "score", "attribute", "edit"})


def list_events(workspace: Workspace, *, limit: int | None = None, action: str | None = None) -> list[AuditInfo]:
    """The audit trail, oldest first.

    While the study is blind, a coder (or a command run without --as) sees the
    study's setup events and their own work: nothing another coder did (their
    codings, inductive codes, memos, progress), and no event about consensus,
    scores or attributes.
    """
    blind = workspace.blind_for_actor()
    own_name = workspace.actor.name if workspace.actor else None
    with workspace.store.reader() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        rows = session.scalars(query).all()
        if blind:
            coders = set(session.scalars(select(Coder.name).where(Coder.role == "coder")))
            rows = [
                r for r in rows if r.actor == own_name or (r.actor not in coders and r.entity not in BLINDED_ENTITIES)
            ]
        if limit:
            rows = rows[-limit:]
        return [
            AuditInfo(
                id=r.id,
                at=r.at,
                actor=r.actor,
                action=r.action,
                entity=r.entity,
                entity_id=r.entity_id,
                details=dict(r.details or {}),
            )
            for r in rows
        ]
