"""Applying, changing and removing codes, memos, and a coder's undo/redo history.

Every call is one unit of work committed before it returns, so what a screen
shows as saved is on disk. Each step a coder takes in a transcript is kept as an
``EditStep`` so undo and redo survive a restart or a dropped connection.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from concord.services.audit import record
from concord.services.codes import usable_code
from concord.services.dto import CodingInfo, MemoInfo
from concord.services.rights import require_coding_layer_rights, require_own_coding, require_own_memo
from concord.services.workspace import Workspace, settings_of
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import Coder, Coding, EditStep, Memo, Study, Transcript

CODING_FIELDS = ("code_id", "start_offset", "end_offset", "memo")


def _now() -> datetime:
    return datetime.now(UTC)


def coding_info(row: Coding, coder_name: str) -> CodingInfo:
    return CodingInfo(
        id=row.id,
        transcript_id=row.transcript_id,
        coder=coder_name,
        code_id=row.code_id,
        start=row.start_offset,
        end=row.end_offset,
        memo=row.memo,
        phase=row.phase,
        made_blind=row.made_blind,
        created_at=row.created_at,
        changed_at=row.changed_at,
    )


def memo_info(row: Memo, coder_name: str) -> MemoInfo:
    return MemoInfo(
        id=row.id,
        coder=coder_name,
        target_kind=row.target_kind,
        target_id=row.target_id,
        text=row.text,
        changed_at=row.changed_at,
    )


def list_codings(workspace: Workspace, transcript_id: int, *, layer: str = "own") -> list[CodingInfo]:
    """Codings of a transcript in one layer: ``own``, ``others`` (everyone else's
    independent codings), ``consensus``, or a coder's name.

    While the study is blind a coder may read only their own layer.
    """
    actor = require_coding_layer_rights(workspace, layer, blind=workspace.blind_for_actor())
    with workspace.store.reader() as session:
        query = (
            select(Coding, Coder.name)
            .join(Coder, Coder.id == Coding.coder_id)
            .where(Coding.transcript_id == transcript_id, Coding.deleted_at.is_(None))
        )
        if layer == "own":
            query = query.where(Coding.coder_id == actor.id, Coding.phase == "independent")
        elif layer == "others":
            query = query.where(Coding.phase == "independent")
            if actor is not None:
                query = query.where(Coding.coder_id != actor.id)
        elif layer == "consensus":
            query = query.where(Coding.phase == "consensus")
        else:
            query = query.where(Coder.name == layer, Coding.phase == "independent")
        rows = session.execute(query.order_by(Coding.start_offset, Coding.id)).all()
        return [coding_info(row, name) for row, name in rows]


def _check_span(text_length: int, start: int, end: int) -> None:
    if not (0 <= start < end <= text_length):
        raise ConcordError(f"span {start}-{end} is outside the transcript (0-{text_length})")


def _push_step(session: Session, coder_id: int, transcript_id: int, action: str, payload: dict) -> None:
    # A new step forgets what had been undone, as every editor does.
    session.execute(
        delete(EditStep).where(
            EditStep.coder_id == coder_id, EditStep.transcript_id == transcript_id, EditStep.undone.is_(True)
        )
    )
    seq = session.scalar(
        select(func.coalesce(func.max(EditStep.seq), 0)).where(
            EditStep.coder_id == coder_id, EditStep.transcript_id == transcript_id
        )
    )
    session.add(EditStep(coder_id=coder_id, transcript_id=transcript_id, seq=seq + 1, action=action, payload=payload))


def _own_coding(session: Session, workspace: Workspace, coding_id: int) -> Coding:
    actor = workspace.require_actor()
    row = session.get(Coding, coding_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no coding {coding_id}")
    require_own_coding(actor, coder_id=row.coder_id, phase=row.phase)
    return row


def _snapshot(row: Coding) -> dict:
    return {name: getattr(row, name) for name in CODING_FIELDS}


def _text_length(session: Session, transcript_id: int) -> int:
    length = session.scalar(select(func.length(Transcript.text)).where(Transcript.id == transcript_id))
    if length is None:
        raise NotFound(f"no transcript {transcript_id!r} in this study")
    return length


def apply_code(
    workspace: Workspace, transcript_id: int, code_id: int, start: int, end: int, memo: str | None = None
) -> CodingInfo:
    actor = workspace.require_actor()
    # One unit of work, a handful of single-row statements: this runs on every keypress that codes.
    with workspace.store.session() as session:
        settings = settings_of(session.get(Study, 1))
        blind = settings.blind_now and not actor.supervises
        _check_span(_text_length(session, transcript_id), start, end)
        usable_code(session, workspace, code_id, blind)
        now = _now()
        row = Coding(
            coder_id=actor.id,
            transcript_id=transcript_id,
            code_id=code_id,
            start_offset=start,
            end_offset=end,
            memo=memo or None,
            phase="independent",
            made_blind=settings.blind_now,
            created_at=now,
            changed_at=now,
        )
        session.add(row)
        session.flush()
        _push_step(session, actor.id, transcript_id, "apply", {"coding_id": row.id})
        record(
            session,
            actor.name,
            "coding.apply",
            "coding",
            row.id,
            transcript_id=transcript_id,
            code_id=code_id,
            start=start,
            end=end,
        )
        return coding_info(row, actor.name)


def remove_coding(workspace: Workspace, coding_id: int) -> None:
    with workspace.store.session() as session:
        row = _own_coding(session, workspace, coding_id)
        row.deleted_at = _now()
        _push_step(session, row.coder_id, row.transcript_id, "remove", {"coding_id": row.id})
        record(session, workspace.actor.name, "coding.remove", "coding", row.id)


def change_coding(
    workspace: Workspace,
    coding_id: int,
    *,
    code_id: int | None = None,
    start: int | None = None,
    end: int | None = None,
    memo: str | None = None,
    clear_memo: bool = False,
) -> CodingInfo:
    blind = workspace.blind_for_actor()
    with workspace.store.session() as session:
        row = _own_coding(session, workspace, coding_id)
        before = _snapshot(row)
        if code_id is not None:
            usable_code(session, workspace, code_id, blind)
            row.code_id = code_id
        new_start = row.start_offset if start is None else start
        new_end = row.end_offset if end is None else end
        if start is not None or end is not None:
            _check_span(_text_length(session, row.transcript_id), new_start, new_end)
            row.start_offset, row.end_offset = new_start, new_end
        if memo is not None:
            row.memo = memo or None
        elif clear_memo:
            row.memo = None
        after = _snapshot(row)
        if after == before:
            return coding_info(row, workspace.actor.name)
        row.changed_at = _now()
        _push_step(
            session, row.coder_id, row.transcript_id, "change", {"coding_id": row.id, "before": before, "after": after}
        )
        record(session, workspace.actor.name, "coding.change", "coding", row.id, before=before, after=after)
        return coding_info(row, workspace.actor.name)


def _revert(session: Session, step: EditStep, *, undo: bool) -> int:
    """Undo (or redo) one step; returns the coding it touched."""
    row = session.get(Coding, step.payload["coding_id"])
    if step.action == "apply":
        row.deleted_at = _now() if undo else None
    elif step.action == "remove":
        row.deleted_at = None if undo else _now()
    elif step.action == "change":
        values = step.payload["before" if undo else "after"]
        for name in CODING_FIELDS:
            setattr(row, name, values[name])
    row.changed_at = _now()
    return row.id


def undo(workspace: Workspace, transcript_id: int) -> int | None:
    """Undo the coder's latest step in this transcript; None when there is nothing to undo."""
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        step = session.scalar(
            select(EditStep)
            .where(EditStep.coder_id == actor.id, EditStep.transcript_id == transcript_id, EditStep.undone.is_(False))
            .order_by(EditStep.seq.desc())
            .limit(1)
        )
        if step is None:
            return None
        coding_id = _revert(session, step, undo=True)
        step.undone = True
        record(session, actor.name, "coding.undo", "edit", step.id, step=step.action, coding_id=coding_id)
        return coding_id


def redo(workspace: Workspace, transcript_id: int) -> int | None:
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        step = session.scalar(
            select(EditStep)
            .where(EditStep.coder_id == actor.id, EditStep.transcript_id == transcript_id, EditStep.undone.is_(True))
            .order_by(EditStep.seq)
            .limit(1)
        )
        if step is None:
            return None
        coding_id = _revert(session, step, undo=False)
        step.undone = False
        record(session, actor.name, "coding.redo", "edit", step.id, step=step.action, coding_id=coding_id)
        return coding_id


# -- memos ---------------------------------------------------------------------------------


def add_memo(workspace: Workspace, target_kind: str, target_id: int | None, text: str) -> MemoInfo:
    """A note on the study, a transcript, a turn, a coding or a code."""
    actor = workspace.require_actor()
    text = text.strip()
    if not text:
        raise ConcordError("a memo needs some text")
    settings = workspace.settings()
    with workspace.store.session() as session:
        if target_kind == "coding":
            _own_coding(session, workspace, target_id)
        now = _now()
        row = Memo(
            coder_id=actor.id,
            target_kind=target_kind,
            target_id=target_id,
            text=text,
            made_blind=settings.blind_now,
            created_at=now,
            changed_at=now,
        )
        session.add(row)
        session.flush()
        record(session, actor.name, "memo.add", "memo", row.id, target_kind=target_kind, target_id=target_id)
        return memo_info(row, actor.name)


def update_memo(workspace: Workspace, memo_id: int, text: str) -> MemoInfo:
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        row = session.get(Memo, memo_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no memo {memo_id}")
        require_own_memo(actor, coder_id=row.coder_id)
        if text.strip():
            row.text = text.strip()
            action = "memo.change"
        else:
            row.deleted_at = _now()
            action = "memo.remove"
        row.changed_at = _now()
        record(session, actor.name, action, "memo", row.id)
        return memo_info(row, actor.name)


def list_memos(
    workspace: Workspace,
    *,
    target_kind: str | None = None,
    target_id: int | None = None,
    transcript_id: int | None = None,
) -> list[MemoInfo]:
    """Memos the actor may read: their own while blind, everyone's otherwise.

    With ``transcript_id``: the memos on that transcript, its turns and its codings.
    """
    from concord.storage.models import Turn

    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        query = select(Memo, Coder.name).join(Coder, Coder.id == Memo.coder_id).where(Memo.deleted_at.is_(None))
        if target_kind:
            query = query.where(Memo.target_kind == target_kind)
        if target_id is not None:
            query = query.where(Memo.target_id == target_id)
        if transcript_id is not None:
            turn_ids = select(Turn.id).where(Turn.transcript_id == transcript_id)
            coding_ids = select(Coding.id).where(Coding.transcript_id == transcript_id)
            query = query.where(
                ((Memo.target_kind == "transcript") & (Memo.target_id == transcript_id))
                | ((Memo.target_kind == "turn") & Memo.target_id.in_(turn_ids))
                | ((Memo.target_kind == "coding") & Memo.target_id.in_(coding_ids))
            )
        if blind:
            if actor is None:
                return []
            query = query.where(Memo.coder_id == actor.id)
        return [memo_info(row, name) for row, name in session.execute(query.order_by(Memo.id))]
