"""The audit log's hash chain: the one way an event is written, and the walk that checks it.

Each event's ``hash`` is a SHA-256 over a canonical form of the event (id, time in UTC, actor,
action, entity, entity id, details as JSON with sorted keys) together with ``prev_hash``, the hash
of the event before it. Change, remove, insert or reorder one event and the walk finds the first
link that no longer holds. Checkpoints (``audit_checkpoints``) record a head of the chain; a tail
cut off after one, or the whole log emptied, shows against them.

Events written before the chain existed (studies made before schema 0003) have no hash. They are
not rewritten (the log refuses UPDATE, and lifting that to chain them would be the very thing the
chain exists to expose); instead they are folded, in order, into the ``prev_hash`` of the first
hashed event, which the migration writes as ``audit.chain.start``. So a later change to an old
event breaks the first link too.

What the chain cannot show: someone who can write the database, knows this algorithm and rewrites
every hash from the change onwards (including the checkpoints) leaves a consistent chain. Against
that, keep the head printed by ``concord audit --head`` outside the study (the lab record), and the
backups, each of which carries its own head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from concord.storage.models import AuditCheckpoint, AuditEvent, utcnow

GENESIS = "0" * 64
CHAIN_FORMAT = "concord-audit-1"
CHAIN_START = "audit.chain.start"
# pg_advisory_xact_lock key for appending to the chain: "Concord" in ASCII.
_PG_APPEND_LOCK = 0x436F6E636F7264


def utc_iso(moment: datetime) -> str:
    """An instant in one spelling whatever the backend returns: SQLite gives naive UTC, PostgreSQL an aware
    time in the session's zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_details(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def event_hash(
    event_id: int,
    at: datetime,
    actor: str,
    action: str,
    entity: str | None,
    entity_id: int | None,
    details: dict[str, Any] | None,
    prev_hash: str,
) -> str:
    form = [CHAIN_FORMAT, event_id, utc_iso(at), actor, action, entity, entity_id, details or {}, prev_hash]
    payload = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def hash_of(row: AuditEvent, prev_hash: str) -> str:
    return event_hash(row.id, row.at, row.actor, row.action, row.entity, row.entity_id, row.details, prev_hash)


# -- appending -------------------------------------------------------------------------------------


def _lock_for_append(session: Session) -> None:
    # SQLite units of work begin IMMEDIATE, so they already hold the only write lock. PostgreSQL writers run
    # side by side: without this, two could read the same head and fork the chain. The lock is released at
    # commit or rollback, and taking it again in the same transaction is free.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_APPEND_LOCK})


def _head_for_append(session: Session) -> tuple[int, str]:
    """The largest event id and the hash the next event chains onto."""
    if session.get_bind().dialect.name == "postgresql":
        # Through a SECURITY DEFINER function: with row-level security on the log, a coder's login sees only
        # their own events, but must still chain onto everyone's.
        max_id, last_hash = session.execute(text("SELECT max_id, last_hash FROM concord_audit_head()")).one()
    else:
        max_id = session.scalar(select(func.max(AuditEvent.id)))
        # Normally the last event itself. An unhashed event after hashed ones was written around Concord:
        # the chain goes on past it, and --verify names it.
        last_hash = session.scalar(
            select(AuditEvent.hash).where(AuditEvent.hash.is_not(None)).order_by(AuditEvent.id.desc()).limit(1)
        )
    if max_id is None:
        return 0, GENESIS
    if last_hash is None:
        return max_id, _fold_unchained(session)
    return max_id, last_hash


def _fold_unchained(session: Session) -> str:
    running = GENESIS
    for row in session.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)):
        running = hash_of(row, running)
    return running


def append_event(
    session: Session,
    actor: str,
    action: str,
    entity: str | None = None,
    entity_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one event, chained onto the one before it, in the caller's unit of work.

    Every audit event goes through here. The id is chosen under the append lock (the largest so far plus
    one), so the chain's order is the id order.
    """
    # Stored as JSON and read back as JSON: hash exactly what a reader will get (tuples become lists,
    # keys strings).
    details = json.loads(canonical_details(details))
    _lock_for_append(session)
    session.flush()
    max_id, prev_hash = _head_for_append(session)
    row = AuditEvent(
        id=max_id + 1,
        at=utcnow(),
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        details=details,
        prev_hash=prev_hash,
    )
    row.hash = hash_of(row, prev_hash)
    session.add(row)
    session.flush()
    return row


def seal_unchained(session: Session, *, from_revision: str | None) -> AuditEvent | None:
    """After a migration from before the chain: start it with one event that covers the older ones."""
    if session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_not(None))):
        return None
    earlier = session.scalar(select(func.count()).select_from(AuditEvent))
    if not earlier:
        return None
    return append_event(
        session, "(concord)", CHAIN_START, "audit", None, {"earlier_events": earlier, "from_schema": from_revision}
    )


# -- the head and checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainHead:
    event_id: int | None
    hash: str
    count: int


def chain_head(session: Session) -> ChainHead:
    """The latest event, its hash and the number of events up to it (for the lab record)."""
    last = session.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    if last is None:
        return ChainHead(None, GENESIS, 0)
    return ChainHead(last.id, last.hash or "", count)


def add_checkpoint(session: Session, head: ChainHead, reason: str) -> AuditCheckpoint | None:
    if head.event_id is None or not head.hash:
        return None
    row = AuditCheckpoint(
        at=utcnow(), event_id=head.event_id, head_hash=head.hash, event_count=head.count, reason=reason[:200]
    )
    session.add(row)
    session.flush()
    return row


# -- verifying -------------------------------------------------------------------------------------


@dataclass
class ChainReport:
    events: int = 0
    unchained: int = 0  # written before the chain, covered by the first hashed event
    head: ChainHead | None = None
    checkpoints: int = 0
    broken_at: int | None = None  # the event id of the first broken link (None for the checkpoints)
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.problem is None


def _events(session: Session) -> Iterator[AuditEvent]:
    yield from session.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=2000))


@dataclass(frozen=True)
class _Expected:
    """A head kept outside the study (the lab record, a backup), checked like a checkpoint."""

    event_id: int
    head_hash: str
    event_count: int | None
    where: str


def verify_chain(session: Session, expect: ChainHead | None = None) -> ChainReport:
    """Walk every event in id order; stop at the first link that does not hold, then check the checkpoints
    and, if given, a head recorded outside the study (``expect``; its count may be 0 for unknown)."""
    report = ChainReport()
    checkpoints: list[AuditCheckpoint | _Expected] = list(
        session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
    )
    if expect is not None and expect.event_id is not None:
        checkpoints.append(
            _Expected(
                expect.event_id, expect.hash, expect.count or None, f"the head you gave (event #{expect.event_id})"
            )
        )
    by_event: dict[int, list[AuditCheckpoint | _Expected]] = {}
    for checkpoint in checkpoints:
        by_event.setdefault(checkpoint.event_id, []).append(checkpoint)
    seen: dict[int, tuple[str | None, int]] = {}

    running = GENESIS
    chained = False
    last_id = None
    last_hash = ""
    for row in _events(session):
        report.events += 1
        last_id = row.id
        if row.id in by_event:
            seen[row.id] = (row.hash, report.events)
        if row.hash is None:
            if chained:
                report.broken_at = row.id
                report.problem = f"event #{row.id} has no hash: it was written around Concord, after the chain began"
                break
            report.unchained += 1
            running = hash_of(row, running)
            continue
        if row.prev_hash != running:
            report.broken_at = row.id
            before = "the events before it" if not chained else "the event before it"
            report.problem = (
                f"event #{row.id} does not follow {before}: an event was removed, inserted or moved just before it"
                if chained or not report.unchained
                else f"event #{row.id} does not cover the {report.unchained} events written before the chain began:"
                " one of them was changed, removed or added"
            )
            break
        if hash_of(row, row.prev_hash) != row.hash:
            report.broken_at = row.id
            report.problem = f"event #{row.id} does not match its hash: it was changed after it was written"
            break
        running = row.hash
        last_hash = row.hash
        chained = True
    report.head = ChainHead(last_id, last_hash, report.events)
    if report.problem:
        return report

    for checkpoint in checkpoints:
        report.checkpoints += 1
        where = (
            checkpoint.where
            if isinstance(checkpoint, _Expected)
            else f"checkpoint {checkpoint.id} ({utc_iso(checkpoint.at)}, {checkpoint.reason})"
        )
        found = seen.get(checkpoint.event_id)
        if found is None:
            counted = f" ({checkpoint.event_count} events)" if checkpoint.event_count is not None else ""
            report.problem = (
                f"{where} saw event #{checkpoint.event_id}{counted}, which is gone:"
                f" the log was cut off or emptied after it (it now ends at "
                f"{'#' + str(last_id) if last_id else 'nothing'}, {report.events} events)"
            )
            return report
        stored_hash, count = found
        if stored_hash != checkpoint.head_hash:
            report.broken_at = checkpoint.event_id
            report.problem = f"{where}: event #{checkpoint.event_id} no longer has the hash it had then"
            return report
        if checkpoint.event_count is not None and count != checkpoint.event_count:
            report.problem = (
                f"{where} counted {checkpoint.event_count} events up to #{checkpoint.event_id}; there are now {count}"
            )
            return report
    if not report.events:
        # Every study begins with its study.init event: an empty log was emptied.
        report.problem = "the audit log is empty: even a new study has its study.init event"
        return report
    if not checkpoints:
        report.notes.append("no checkpoint yet: a cut-off tail would not show (concord audit --checkpoint)")
    return report
