"""Applying, changing and removing codes, memos, and a coder's undo/redo history.

Every call is one unit of work committed before it returns, so what a screen
shows as saved is on disk. Each step a coder takes in a transcript is kept as an
``EditStep`` so undo and redo survive a restart or a dropped connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from concord.services.audit import record
from concord.services.codes import checked_value, stored_scale, usable_code
from concord.services.dto import CodingInfo, MemoInfo
from concord.services.rights import require_coding_layer_rights, require_own_coding, require_own_memo
from concord.services.workspace import Workspace, settings_of
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import MEMO_TARGETS, Code, Coder, Coding, EditStep, Memo, Study, Transcript, Turn

# "value" came with schema 0004: steps saved before it lack the key (the coding then had no value).
CODING_FIELDS = ("code_id", "start_offset", "end_offset", "memo", "value")
# Memos point at their target by kind and id (no foreign key can span five tables), so the target is looked up.
_MEMO_TARGET_ROWS = {"transcript": Transcript, "turn": Turn, "code": Code}


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
        value=row.value,
        assisted_by=row.assisted_by,
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


def _value_for(session: Session, code_id: int, value: float | None) -> float | None:
    """The value a coding of ``code_id`` carries, checked against the code's scale."""
    name, scale = session.execute(select(Code.name, Code.scale).where(Code.id == code_id)).one()
    return checked_value(name, stored_scale(scale), value)


def apply_code(
    workspace: Workspace,
    transcript_id: int,
    code_id: int,
    start: int,
    end: int,
    memo: str | None = None,
    *,
    value: float | None = None,
    assisted_by: str | None = None,
) -> CodingInfo:
    """Apply a code to a span; a code with a rating scale needs ``value``, a number on it.

    ``assisted_by``: "suggestion" or "similar" when the coding assistant proposed it (services/assistant.py)."""
    if assisted_by not in (None, "suggestion", "similar"):
        raise ConcordError(f"unknown assistance {assisted_by!r}")
    actor = workspace.require_actor()
    # One unit of work, a handful of single-row statements: this runs on every keypress that codes.
    with workspace.store.session() as session:
        settings = settings_of(session.get(Study, 1))
        blind = settings.blind_now and not actor.supervises
        _check_span(_text_length(session, transcript_id), start, end)
        usable_code(session, workspace, code_id, blind)
        value = _value_for(session, code_id, value)
        now = _now()
        row = Coding(
            coder_id=actor.id,
            transcript_id=transcript_id,
            code_id=code_id,
            start_offset=start,
            end_offset=end,
            memo=memo or None,
            value=value,
            phase="independent",
            made_blind=settings.blind_now,
            assisted_by=assisted_by,
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
            **({"value": value} if value is not None else {}),
            **({"assisted_by": assisted_by} if assisted_by else {}),
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
    value: float | None = None,
) -> CodingInfo:
    """Change a coding's code, span, memo or value. Moved to a code with a scale it needs a value on that
    scale (the old one is kept if it fits); moved to a code without one it drops its value."""
    blind = workspace.blind_for_actor()
    with workspace.store.session() as session:
        row = _own_coding(session, workspace, coding_id)
        before = _snapshot(row)
        if code_id is not None:
            usable_code(session, workspace, code_id, blind)
            row.code_id = code_id
        if code_id is not None or value is not None:
            name, scale = session.execute(select(Code.name, Code.scale).where(Code.id == row.code_id)).one()
            row.value = checked_value(name, stored_scale(scale), value if value is not None or not scale else row.value)
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


@dataclass(frozen=True)
class StepInfo:
    """An undoable step as the coder reads it: "coding “Stagnation” on turn 2, words 1–3", "memo on turn 12"."""

    step_id: int
    action: str  # "apply", "remove", "change" or "memo"
    target_id: int  # the coding's id, or the memo's for a memo step
    what: str
    # Memo text that taking this step back (undo) or again (redo) would take away: the screen asks first.
    memo_lost: str | None = None


def _where(session: Session, transcript_id: int, start: int, end: int) -> str:
    from concord.services.dto import TurnInfo
    from concord.services.workbench import describe_span

    text = session.scalar(select(Transcript.text).where(Transcript.id == transcript_id)) or ""
    rows = session.execute(
        select(Turn.id, Turn.number, Turn.char_start, Turn.char_end, Turn.speaker_role, Turn.speaker_label)
        .where(Turn.transcript_id == transcript_id, Turn.char_end > start, Turn.char_start < max(end, start + 1))
        .order_by(Turn.char_start)
    ).all()
    turns = [
        TurnInfo(
            id=row.id,
            number=row.number,
            speaker_role=row.speaker_role,
            speaker_label=row.speaker_label,
            start_time=None,
            end_time=None,
            char_start=row.char_start,
            char_end=row.char_end,
            replayed=False,
            nonverbal=(),
        )
        for row in rows
    ]
    return describe_span(text, turns, start, end)


def _code_name(session: Session, code_id: int) -> str:
    return session.scalar(select(Code.name).where(Code.id == code_id)) or f"code {code_id}"


def _memo_place(session: Session, memo: Memo) -> str:
    if memo.target_kind == "turn":
        number = session.scalar(select(Turn.number).where(Turn.id == memo.target_id))
        return f"turn {number}"
    if memo.target_kind == "transcript":
        return "the transcript"
    if memo.target_kind == "coding":
        row = session.get(Coding, memo.target_id)
        if row is not None:
            return f"“{_code_name(session, row.code_id)}” ({_where(session, row.transcript_id, row.start_offset, row.end_offset)})"
    return memo.target_kind


def _describe(session: Session, step: EditStep, *, undo: bool) -> StepInfo:
    """What a step did, in words, and which memo text reverting it (or doing it again) would drop."""
    payload = step.payload
    if step.action == "memo":
        memo = session.get(Memo, payload["memo_id"])
        lost = payload["after"] if undo else payload["before"]
        kept = payload["before"] if undo else payload["after"]
        return StepInfo(
            step.id,
            "memo",
            memo.id,
            f"memo on {_memo_place(session, memo)}",
            lost if lost and lost != kept else None,
        )
    row = session.get(Coding, payload["coding_id"])
    name = _code_name(session, row.code_id)
    if step.action == "apply":
        what = f"“{name}” on {_where(session, row.transcript_id, row.start_offset, row.end_offset)}"
        return StepInfo(step.id, "apply", row.id, what, row.memo if undo and row.memo else None)
    if step.action == "remove":
        what = f"removal of “{name}” on {_where(session, row.transcript_id, row.start_offset, row.end_offset)}"
        return StepInfo(step.id, "remove", row.id, what, row.memo if not undo and row.memo else None)
    before, after = payload["before"], payload["after"]
    changed = [field for field in CODING_FIELDS if before.get(field) != after.get(field)]
    values = after if undo else before  # what the coding holds now, before reverting
    where = _where(session, row.transcript_id, values["start_offset"], values["end_offset"])
    if changed == ["memo"]:
        what = f"memo on “{name}” ({where})"
    elif "code_id" in changed:
        what = f"change of “{_code_name(session, before['code_id'])}” to “{_code_name(session, after['code_id'])}” on {where}"
    else:
        what = f"change of “{name}” on {where}"
    lost = values["memo"] if "memo" in changed and values["memo"] else None
    return StepInfo(step.id, "change", row.id, what, lost)


def _revert(session: Session, step: EditStep, *, undo: bool) -> int:
    """Undo (or redo) one step; returns the coding (or, for a memo step, the memo) it touched."""
    if step.action == "memo":
        memo = session.get(Memo, step.payload["memo_id"])
        value = step.payload["before" if undo else "after"]
        if value is None:
            memo.deleted_at = _now()
        else:
            memo.text, memo.deleted_at = value, None
        memo.changed_at = _now()
        return memo.id
    row = session.get(Coding, step.payload["coding_id"])
    if step.action == "apply":
        row.deleted_at = _now() if undo else None
    elif step.action == "remove":
        row.deleted_at = None if undo else _now()
    elif step.action == "change":
        values = step.payload["before" if undo else "after"]
        for name in CODING_FIELDS:
            setattr(row, name, values.get(name))
    row.changed_at = _now()
    return row.id


def _next_step(session: Session, coder_id: int, transcript_id: int, *, undo: bool) -> EditStep | None:
    query = select(EditStep).where(
        EditStep.coder_id == coder_id, EditStep.transcript_id == transcript_id, EditStep.undone.is_(not undo)
    )
    order = EditStep.seq.desc() if undo else EditStep.seq
    return session.scalar(query.order_by(order).limit(1))


def peek_step(workspace: Workspace, transcript_id: int, *, undo: bool = True) -> StepInfo | None:
    """The step undo (or redo) would take next, described; nothing changes."""
    actor = workspace.require_actor()
    with workspace.store.reader() as session:
        step = _next_step(session, actor.id, transcript_id, undo=undo)
        return None if step is None else _describe(session, step, undo=undo)


def _take_step(workspace: Workspace, transcript_id: int, *, undo: bool) -> StepInfo | None:
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        step = _next_step(session, actor.id, transcript_id, undo=undo)
        if step is None:
            return None
        info = _describe(session, step, undo=undo)
        target = _revert(session, step, undo=undo)
        step.undone = undo
        kind = "memo" if step.action == "memo" else "coding"
        record(
            session,
            actor.name,
            f"{kind}.{'undo' if undo else 'redo'}",
            "edit",
            step.id,
            step=step.action,
            **{f"{kind}_id": target},
        )
        return info


def undo_step(workspace: Workspace, transcript_id: int) -> StepInfo | None:
    """Undo the coder's latest step in this transcript and say what it was; None: nothing to undo."""
    return _take_step(workspace, transcript_id, undo=True)


def redo_step(workspace: Workspace, transcript_id: int) -> StepInfo | None:
    return _take_step(workspace, transcript_id, undo=False)


def undo(workspace: Workspace, transcript_id: int) -> int | None:
    """Undo the coder's latest step in this transcript; returns the coding (or memo) it touched,
    None when there is nothing to undo."""
    step = undo_step(workspace, transcript_id)
    return None if step is None else step.target_id


def redo(workspace: Workspace, transcript_id: int) -> int | None:
    step = redo_step(workspace, transcript_id)
    return None if step is None else step.target_id


# -- memos ---------------------------------------------------------------------------------


def add_memo(workspace: Workspace, target_kind: str, target_id: int | None, text: str) -> MemoInfo:
    """A note on the study, a transcript, a turn, a coding or a code."""
    actor = workspace.require_actor()
    text = text.strip()
    if not text:
        raise ConcordError("a memo needs some text")
    if target_kind not in MEMO_TARGETS:
        raise ConcordError(f"a memo goes on a {', a '.join(MEMO_TARGETS)}; not on a {target_kind!r}")
    settings = workspace.settings()
    with workspace.store.session() as session:
        if target_kind == "coding":
            _own_coding(session, workspace, target_id)
        elif target_kind != "study" and (
            target_id is None or session.get(_MEMO_TARGET_ROWS[target_kind], target_id) is None
        ):
            raise NotFound(f"no {target_kind} {target_id} in this study: the memo was not saved")
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
        _push_memo_step(session, actor.id, row, None, text)
        record(session, actor.name, "memo.add", "memo", row.id, target_kind=target_kind, target_id=target_id)
        return memo_info(row, actor.name)


def _memo_transcript(session: Session, memo: Memo) -> int | None:
    """The transcript a memo belongs to (its undo history lives there); None for study and code memos."""
    if memo.target_kind == "transcript":
        return memo.target_id
    if memo.target_kind == "turn":
        return session.scalar(select(Turn.transcript_id).where(Turn.id == memo.target_id))
    if memo.target_kind == "coding":
        return session.scalar(select(Coding.transcript_id).where(Coding.id == memo.target_id))
    return None


def _push_memo_step(session: Session, coder_id: int, memo: Memo, before: str | None, after: str | None) -> None:
    """Memos on a transcript, its turns and codings are undoable like codings (no memo vanishes for good)."""
    if before == after:
        return
    transcript_id = _memo_transcript(session, memo)
    if transcript_id is not None:
        _push_step(session, coder_id, transcript_id, "memo", {"memo_id": memo.id, "before": before, "after": after})


def update_memo(workspace: Workspace, memo_id: int, text: str) -> MemoInfo:
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        row = session.get(Memo, memo_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no memo {memo_id}")
        require_own_memo(actor, coder_id=row.coder_id)
        _push_memo_step(session, actor.id, row, row.text, text.strip() or None)
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
