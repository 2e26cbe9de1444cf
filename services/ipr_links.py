"""Linking the replayed turns of IPR interviews to the session turns they replay (analysis.ipr_links).

Links are made when an interview or its session transcript is imported, whichever comes second, and
made again when either is imported anew; what could not be linked is reported, turn by turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from concord.analysis.ipr_links import LinkTurn, link_replayed
from concord.storage.models import Transcript, Turn, TurnLink


@dataclass(frozen=True)
class InterviewLinks:
    interview: str  # transcript key
    session_transcript: str | None  # None: the session it is about has no transcript yet
    replayed: int
    by_time: int
    by_text: int
    unlinked: tuple[int, ...]  # replayed turn numbers

    def describe(self) -> str:
        if self.replayed == 0:
            return f"{self.interview}: no replayed turns to link"
        if self.session_transcript is None:
            return (
                f"{self.interview}: {self.replayed} replayed turn(s) not linked yet: the session it is about has"
                " no transcript (they are linked when it is imported)"
            )
        linked = self.by_time + self.by_text
        text = (
            f"{self.interview}: {linked} of {self.replayed} replayed turn(s) linked to {self.session_transcript}"
            f" ({self.by_time} by time, {self.by_text} by text)"
        )
        if self.unlinked:
            shown = ", ".join(str(n) for n in self.unlinked[:12]) + (" ..." if len(self.unlinked) > 12 else "")
            text += f"; not linked: turn(s) {shown}"
        return text


def _turns(session: Session, transcript_id: int, *, replayed_only: bool) -> list[LinkTurn]:
    query = select(Turn).where(Turn.transcript_id == transcript_id).order_by(Turn.number)
    if replayed_only:
        query = query.where(Turn.replayed.is_(True))
    text = session.scalar(select(Transcript.text).where(Transcript.id == transcript_id)) or ""
    return [
        LinkTurn(t.id, t.number, t.speaker_role, text[t.char_start : t.char_end], t.start_time)
        for t in session.scalars(query)
    ]


def link_interviews(session: Session, session_ids: set[int]) -> list[InterviewLinks]:
    """(Re)link every IPR interview about these sessions; in the caller's unit of work."""
    if not session_ids:
        return []
    rows = session.execute(
        select(Transcript.id, Transcript.key, Transcript.kind, Transcript.session_id)
        .where(Transcript.session_id.in_(session_ids))
        .order_by(Transcript.key)
    ).all()
    results = []
    for interview in (r for r in rows if r.kind == "ipr"):
        replayed = _turns(session, interview.id, replayed_only=True)
        if replayed:
            session.execute(delete(TurnLink).where(TurnLink.interview_turn_id.in_([t.id for t in replayed])))
        sources = [r for r in rows if r.kind == "session" and r.session_id == interview.session_id]
        if not sources or not replayed:
            results.append(InterviewLinks(interview.key, None, len(replayed), 0, 0, tuple(t.number for t in replayed)))
            continue
        source = sources[0]  # a session has one session transcript; the first by key if several
        result = link_replayed(replayed, _turns(session, source.id, replayed_only=False))
        for link in result.links:
            for session_turn in link.session_turns:
                session.add(
                    TurnLink(
                        interview_turn_id=link.interview_turn,
                        session_turn_id=session_turn,
                        method=link.method,
                        score=link.score,
                    )
                )
        results.append(
            InterviewLinks(
                interview.key,
                source.key,
                len(replayed),
                sum(1 for link in result.links if link.method == "time"),
                sum(1 for link in result.links if link.method == "text"),
                result.unlinked,
            )
        )
    session.flush()
    return results


@dataclass(frozen=True)
class TurnLinkRow:
    interview: str
    interview_turn: int
    session_transcript: str
    session_turn: int
    method: str
    score: float | None


def list_links(session: Session, transcript_id: int) -> list[TurnLinkRow]:
    """The links of one transcript's turns, from either side (interview or session)."""
    from sqlalchemy.orm import aliased

    interview_turn, session_turn = aliased(Turn), aliased(Turn)
    interview, source = aliased(Transcript), aliased(Transcript)
    query = (
        select(interview.key, interview_turn.number, source.key, session_turn.number, TurnLink.method, TurnLink.score)
        .join(interview_turn, interview_turn.id == TurnLink.interview_turn_id)
        .join(session_turn, session_turn.id == TurnLink.session_turn_id)
        .join(interview, interview.id == interview_turn.transcript_id)
        .join(source, source.id == session_turn.transcript_id)
        .where((interview.id == transcript_id) | (source.id == transcript_id))
        .order_by(interview.key, interview_turn.number, session_turn.number)
    )
    return [TurnLinkRow(*row) for row in session.execute(query)]
