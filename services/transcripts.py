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


def _progress(session: Session, transcript_ids: list[int] | None) -> dict[tuple[int, int], ProgressInfo]:
    """Every coder's progress per transcript: (transcript id, coder id) -> progress. ``None``: all transcripts
    (no list of ids to send)."""
    counts = select(Coding.transcript_id, Coding.coder_id, func.count()).where(
        Coding.deleted_at.is_(None), Coding.phase == "independent"
    )
    rows = select(
        TranscriptProgress.transcript_id,
        TranscriptProgress.coder_id,
        TranscriptProgress.turns_reviewed,
        TranscriptProgress.done_at.is_not(None),
    )
    if transcript_ids is not None:
        counts = counts.where(Coding.transcript_id.in_(transcript_ids))
        rows = rows.where(TranscriptProgress.transcript_id.in_(transcript_ids))
    coding_counts = {
        (tid, cid): n for tid, cid, n in session.execute(counts.group_by(Coding.transcript_id, Coding.coder_id))
    }
    names = dict(session.execute(select(Coder.id, Coder.name)).all())
    reviewed = {(tid, cid): (turns, bool(done)) for tid, cid, turns, done in session.execute(rows)}
    result = {}
    for key in set(coding_counts) | set(reviewed):
        turns, done = reviewed.get(key, (0, False))
        result[key] = ProgressInfo(
            coder=names[key[1]], turns_reviewed=turns or 0, codings=coding_counts.get(key, 0), done=done
        )
    return result


def _places(session: Session) -> dict[int, tuple[str, int, int]]:
    """Every therapy session's dyad key, number and dyad id, by session id (one query)."""
    return {
        session_id: (dyad_key, number, dyad_id)
        for session_id, dyad_key, number, dyad_id in session.execute(
            select(TherapySession.id, Dyad.key, TherapySession.number, Dyad.id).join(
                Dyad, TherapySession.dyad_id == Dyad.id
            )
        )
    }


def _all_attributes(session: Session) -> dict[tuple[str, int], list[AttributeInfo]]:
    """Every attribute by (target kind, target id), each target's in name order (one query)."""
    found: dict[tuple[str, int], list[AttributeInfo]] = {}
    for kind, target_id, name, value, value_type, blinded in session.execute(
        select(
            Attribute.target_kind,
            Attribute.target_id,
            Attribute.name,
            Attribute.value,
            Attribute.value_type,
            Attribute.blinded,
        ).order_by(Attribute.name)
    ):
        found.setdefault((kind, target_id), []).append(
            AttributeInfo(name=name, value=value, value_type=value_type, blinded=blinded, target_kind=kind)
        )
    return found


def list_transcripts(workspace: Workspace) -> list[TranscriptSummary]:
    """Every transcript with its turn count and progress (and, outside the blind, everyone's progress, its
    dyad, session and attributes). A fixed number of queries whatever the study's size: counts, progress,
    places and attributes are each read once for all transcripts, and the texts are not read at all."""
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        rows = session.execute(
            select(
                Transcript.id,
                Transcript.key,
                Transcript.kind,
                Transcript.perspective,
                Transcript.phase,
                Transcript.session_id,
            ).order_by(Transcript.key)
        ).all()
        turn_counts = dict(session.execute(select(Turn.transcript_id, func.count()).group_by(Turn.transcript_id)).all())
        progress = _progress(session, None) if rows else {}
        others_of: dict[int, list[ProgressInfo]] = {}
        places: dict[int, tuple[str, int, int]] = {}
        attributes_of: dict[tuple[str, int], list[AttributeInfo]] = {}
        if not blind:
            for (tid, _), info in progress.items():
                others_of.setdefault(tid, []).append(info)
            places = _places(session)
            attributes_of = _all_attributes(session)
        summaries = []
        for tid, key, kind, perspective, phase, session_id in rows:
            own = None
            if actor is not None:
                own = progress.get(
                    (tid, actor.id), ProgressInfo(coder=actor.name, turns_reviewed=0, codings=0, done=False)
                )
            others: tuple[ProgressInfo, ...] = ()
            dyad = number = None
            attributes: tuple[AttributeInfo, ...] = ()
            if not blind:
                others = tuple(sorted(others_of.get(tid, ()), key=lambda p: p.coder))
                found = [*attributes_of.get(("transcript", tid), ())]
                if session_id is not None and session_id in places:
                    dyad, number, dyad_id = places[session_id]
                    found += attributes_of.get(("session", session_id), ())
                    found += attributes_of.get(("dyad", dyad_id), ())
                attributes = tuple(found)
            summaries.append(
                TranscriptSummary(
                    id=tid,
                    key=key,
                    kind=kind,
                    perspective=perspective,
                    turns=turn_counts.get(tid, 0),
                    phase=phase,
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
