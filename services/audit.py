"""Writing to and reading the append-only audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.services import rights
from concord.services.dto import AuditInfo
from concord.services.workspace import Workspace
from concord.storage.audit_chain import ChainHead, ChainReport, add_checkpoint, append_event, chain_head, verify_chain
from concord.storage.errors import ConcordError, PermissionDenied
from concord.storage.models import AuditEvent, Code, Coder


class AuditChainBroken(ConcordError):
    """`concord audit --verify` found a link that does not hold, or a checkpoint the log no longer meets."""


def record(
    session: Session, actor: str, action: str, entity: str | None = None, entity_id: int | None = None, **details: Any
) -> None:
    """Add an audit event in the caller's unit of work, so it commits with the change; chained onto the
    event before it (storage.audit_chain.append_event is the only writer of events)."""
    append_event(session, actor, action, entity, entity_id, details)


def require_audit_housekeeping(workspace: Workspace) -> None:
    """Verifying the whole log, printing its head, recording a checkpoint and taking a backup read every
    event and every row: housekeeping for supervisors and admins, never for a coder. A study without a
    supervisor or admin yet (one researcher) lets a caller without --as do it."""
    rights.require_backup_rights(workspace)
    actor = workspace.actor
    if actor is not None and not actor.supervises:
        raise PermissionDenied(f"{actor.name} is a {actor.role}; this needs a supervisor or admin")


def parse_head(value: str) -> ChainHead:
    """EVENT:HASH or EVENT:HASH:COUNT, as `concord audit --head` prints them for the lab record."""
    parts = value.strip().split(":")
    try:
        if len(parts) not in (2, 3) or len(parts[1]) != 64:
            raise ValueError
        int(parts[1], 16)
        return ChainHead(int(parts[0]), parts[1].lower(), int(parts[2]) if len(parts) == 3 else 0)
    except ValueError:
        raise ConcordError(
            f"--expect {value!r}: give EVENT:HASH or EVENT:HASH:COUNT (see concord audit --head)"
        ) from None


def verify(workspace: Workspace, expect: ChainHead | None = None) -> ChainReport:
    """Walk the hash chain and the checkpoints (and a head kept outside the study, if given); raise
    AuditChainBroken naming the first broken link."""
    require_audit_housekeeping(workspace)
    with workspace.store.reader() as session:
        report = verify_chain(session, expect)
    if not report.intact:
        raise AuditChainBroken(f"{workspace.store.display_name}: audit log broken: {report.problem}")
    return report


def head(workspace: Workspace) -> ChainHead:
    require_audit_housekeeping(workspace)
    with workspace.store.reader() as session:
        return chain_head(session)


def checkpoint(workspace: Workspace, reason: str | None = None) -> ChainHead:
    """Record the current head in the study, so a later cut-off tail or emptied log shows."""
    require_audit_housekeeping(workspace)
    with workspace.store.session() as session:
        current = chain_head(session)
        if current.event_id is None:
            raise ConcordError(f"{workspace.store.display_name}: the audit log is empty; nothing to checkpoint")
        add_checkpoint(session, current, reason or f"asked for by {workspace.actor_label}")
        record(session, workspace.actor_label, "audit.checkpoint", "audit", current.event_id, hash=current.hash)
    return current


# Events about these say what a coder coded or what a session scored: behind the blind.
# "workfile": handing out and collecting a coder's work file counts their codings.
BLINDED_ENTITIES = frozenset({"coding", "memo", "consensus", "score", "attribute", "edit", "workfile"})


def _codes_hidden_from(session: Session, coder_id: int | None) -> set[int]:
    """Other coders' inductive codes, and the codes a supervisor split from them: their names are their work.

    The complement of codes.seen_under_blind (not imported here: codes records its events through this module).
    """
    query = select(Code.id).where(Code.origin != "deductive")
    if coder_id is not None:
        query = query.where((Code.creator_id.is_(None)) | (Code.creator_id != coder_id))
    return set(session.scalars(query))


def _about_hidden_code(event: AuditEvent, hidden: set[int]) -> bool:
    """Whether a supervisor's theme work (rename, move, merge, split) touched a code the viewer may not see."""
    if event.entity != "code":
        return False
    details = event.details or {}
    return event.entity_id in hidden or details.get("source_id") in hidden


def list_events(workspace: Workspace, *, limit: int | None = None, action: str | None = None) -> list[AuditInfo]:
    """The audit trail, oldest first.

    While the study is blind, a coder (or a command run without --as) sees the
    study's setup events and their own work: nothing another coder did (their
    codings, inductive codes, memos, progress), no event about consensus,
    scores or attributes, and none of a supervisor's theme work on another
    coder's inductive codes (a rename or split names them).
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
            hidden_codes = _codes_hidden_from(session, workspace.actor.id if workspace.actor else None)
            rows = [
                r
                for r in rows
                if r.actor == own_name
                or (
                    r.actor not in coders
                    and r.entity not in BLINDED_ENTITIES
                    and not _about_hidden_code(r, hidden_codes)
                )
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
