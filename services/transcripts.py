"""Reading transcripts, their turns, attributes and scores, and each coder's progress.

The blind is applied here: a coder in a blind study gets neutral keys only, no
dyad, session, group attributes or scores, and no other coder's progress.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord.services.audit import record
from concord.services.dto import (
    AttributeInfo,
    ProgressInfo,
    ScoreInfo,
    TranscriptDetail,
    TranscriptSummary,
    TurnInfo,
)
from concord.services.workspace import Workspace
from concord.storage.errors import NotFound
from concord.storage.models import (
    Attribute,
    Coder,
    Coding,
    Dyad,
    QuestionnaireScore,
    TherapySession,
    Transcript,
    TranscriptProgress,
    Turn,
)


def find_transcript(session: Session, key_or_id: str | int) -> Transcript:
    if isinstance(key_or_id, int):
        row = session.get(Transcript, key_or_id)
    else:
        row = session.scalar(select(Transcript).where(Transcript.key == key_or_id))
    if row is None:
        raise NotFound(f"no transcript {key_or_id!r} in this study")
    return row


def _attributes(session: Session, transcript: Transcript, *, hide_blinded: bool) -> tuple[AttributeInfo, ...]:
    targets = [("transcript", transcript.id)]
    if transcript.session_id is not None:
        targets.append(("session", transcript.session_id))
        dyad_id = session.scalar(select(TherapySession.dyad_id).where(TherapySession.id == transcript.session_id))
        targets.append(("dyad", dyad_id))
    found: list[AttributeInfo] = []
    for kind, target_id in targets:
        query = select(Attribute).where(Attribute.target_kind == kind, Attribute.target_id == target_id)
        if hide_blinded:
            query = query.where(Attribute.blinded.is_(False))
        for row in session.scalars(query.order_by(Attribute.name)):
            found.append(
                AttributeInfo(
                    name=row.name, value=row.value, value_type=row.value_type, blinded=row.blinded, target_kind=kind
                )
            )
    return tuple(found)


def _session_place(session: Session, transcript: Transcript) -> tuple[str | None, int | None]:
    if transcript.session_id is None:
        return None, None
    row = session.execute(
        select(Dyad.key, TherapySession.number)
        .join(TherapySession, TherapySession.dyad_id == Dyad.id)
        .where(TherapySession.id == transcript.session_id)
    ).one()
    return row[0], row[1]


def _progress(session: Session, transcript_ids: list[int]) -> dict[tuple[int, int], ProgressInfo]:
    coding_counts = {
        (tid, cid): n
        for tid, cid, n in session.execute(
            select(Coding.transcript_id, Coding.coder_id, func.count())
            .where(Coding.deleted_at.is_(None), Coding.phase == "independent", Coding.transcript_id.in_(transcript_ids))
            .group_by(Coding.transcript_id, Coding.coder_id)
        )
    }
    names = dict(session.execute(select(Coder.id, Coder.name)).all())
    rows = {
        (p.transcript_id, p.coder_id): p
        for p in session.scalars(select(TranscriptProgress).where(TranscriptProgress.transcript_id.in_(transcript_ids)))
    }
    result = {}
    for key in set(coding_counts) | set(rows):
        row = rows.get(key)
        result[key] = ProgressInfo(
            coder=names[key[1]],
            turns_reviewed=row.turns_reviewed if row else 0,
            codings=coding_counts.get(key, 0),
            done=bool(row and row.done_at),
        )
    return result


def list_transcripts(workspace: Workspace) -> list[TranscriptSummary]:
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        rows = session.scalars(select(Transcript).order_by(Transcript.key)).all()
        ids = [r.id for r in rows]
        turn_counts = dict(session.execute(select(Turn.transcript_id, func.count()).group_by(Turn.transcript_id)).all())
        progress = _progress(session, ids) if ids else {}
        summaries = []
        for row in rows:
            own = None
            if actor is not None:
                own = progress.get(
                    (row.id, actor.id), ProgressInfo(coder=actor.name, turns_reviewed=0, codings=0, done=False)
                )
            others: tuple[ProgressInfo, ...] = ()
            dyad = number = None
            attributes: tuple[AttributeInfo, ...] = ()
            if not blind:
                others = tuple(sorted((p for (tid, _), p in progress.items() if tid == row.id), key=lambda p: p.coder))
                dyad, number = _session_place(session, row)
                attributes = _attributes(session, row, hide_blinded=False)
            summaries.append(
                TranscriptSummary(
                    id=row.id,
                    key=row.key,
                    kind=row.kind,
                    perspective=row.perspective,
                    turns=turn_counts.get(row.id, 0),
                    phase=row.phase,
                    progress=own,
                    others=others,
                    dyad=dyad,
                    session_number=number,
                    attributes=attributes,
                )
            )
        return summaries


def get_transcript(workspace: Workspace, key_or_id: str | int) -> TranscriptDetail:
    blind = workspace.blind_for_actor()
    with workspace.store.reader() as session:
        row = find_transcript(session, key_or_id)
        turns = tuple(
            TurnInfo(
                id=t.id,
                number=t.number,
                speaker_role=t.speaker_role,
                speaker_label=t.speaker_label,
                start_time=t.start_time,
                end_time=t.end_time,
                char_start=t.char_start,
                char_end=t.char_end,
                replayed=t.replayed,
                nonverbal=tuple((int(a), int(b)) for a, b in (t.nonverbal or ())),
            )
            for t in session.scalars(select(Turn).where(Turn.transcript_id == row.id).order_by(Turn.number))
        )
        dyad = number = None
        scores: tuple[ScoreInfo, ...] = ()
        if not blind:
            dyad, number = _session_place(session, row)
            if row.session_id is not None:
                scores = tuple(
                    ScoreInfo(
                        instrument=s.instrument,
                        respondent=s.respondent,
                        total=s.total,
                        subscales=dict(s.subscales or {}),
                        band=s.band,
                    )
                    for s in session.scalars(
                        select(QuestionnaireScore)
                        .where(QuestionnaireScore.session_id == row.session_id)
                        .order_by(QuestionnaireScore.instrument, QuestionnaireScore.respondent)
                    )
                )
        return TranscriptDetail(
            id=row.id,
            key=row.key,
            kind=row.kind,
            perspective=row.perspective,
            language=row.language,
            text=row.text,
            turns=turns,
            phase=row.phase,
            dyad=dyad,
            session_number=number,
            attributes=_attributes(session, row, hide_blinded=blind),
            scores=scores,
        )


def record_progress(workspace: Workspace, transcript_id: int, *, turns_reviewed: int, last_offset: int) -> None:
    """Remember how far the coder has read; only ever moves forward."""
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        row = session.get(TranscriptProgress, (actor.id, transcript_id))
        if row is None:
            row = TranscriptProgress(coder_id=actor.id, transcript_id=transcript_id, turns_reviewed=0, last_offset=0)
            session.add(row)
        row.turns_reviewed = max(row.turns_reviewed or 0, turns_reviewed)
        row.last_offset = last_offset


def set_done(workspace: Workspace, transcript_id: int, done: bool = True) -> None:
    actor = workspace.require_actor()
    with workspace.store.session() as session:
        find_transcript(session, transcript_id)
        row = session.get(TranscriptProgress, (actor.id, transcript_id))
        if row is None:
            row = TranscriptProgress(coder_id=actor.id, transcript_id=transcript_id, turns_reviewed=0, last_offset=0)
            session.add(row)
        row.done_at = datetime.now(UTC) if done else None
        record(session, actor.name, "transcript.done" if done else "transcript.reopen", "transcript", transcript_id)


def last_position(workspace: Workspace, transcript_id: int) -> int:
    actor = workspace.require_actor()
    with workspace.store.reader() as session:
        row = session.get(TranscriptProgress, (actor.id, transcript_id))
        return row.last_offset if row else 0
