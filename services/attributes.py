"""Seeing and fixing what came in with the data: transcript attributes, questionnaire scores, speaker roles.

Imports are all or nothing and refuse a second import of the same file, so a wrong attribute or a
speaker label that got no role must be fixable afterwards, under the same rule as importing
(supervisors and admins once the study has one), with every change in the audit log. The blind holds here as everywhere: coders never list scores or blinded values while the
study is blind, and a blinded attribute stays blinded when its value is changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.services.audit import record
from concord.services.rights import require_scores_rights, require_setup_rights
from concord.services.transcripts import find_transcript
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from concord.storage.models import Attribute, Dyad, QuestionnaireScore, TherapySession, Transcript, Turn

NAME_LIMIT = 120  # attributes.name in storage/models.py


# -- attributes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeRow:
    transcript: str
    kind: str
    name: str
    value: str | None
    blinded: bool


def list_attributes(workspace: Workspace, transcript: str | None = None) -> list[AttributeRow]:
    """Every transcript attribute (or one transcript's), blinded ones marked; under the setup rule
    (supervisors and admins once the study has one). Whoever the blind applies to sees a blinded
    attribute's name, never its value."""
    require_setup_rights(workspace)
    hide = workspace.blind_for_actor()
    with workspace.store.reader() as session:
        query = select(Transcript.key, Transcript.kind, Attribute).join(
            Attribute, (Attribute.target_kind == "transcript") & (Attribute.target_id == Transcript.id)
        )
        if transcript is not None:
            query = query.where(Transcript.id == find_transcript(session, transcript).id)
        rows = session.execute(query.order_by(Transcript.key, Attribute.name)).all()
        return [
            AttributeRow(key, kind, a.name, None if a.blinded and hide else a.value, a.blinded) for key, kind, a in rows
        ]


@dataclass(frozen=True)
class AttributeChange:
    transcript: str
    name: str
    old: str | None
    new: str | None
    blinded: bool
    interviews: tuple[str, ...]  # IPR interviews about the same session that inherited the change


def _value_type(value: str) -> str:
    try:
        float(value)
        return "number"
    except ValueError:
        return "text"


def _interviews_of(session: Session, transcript: Transcript) -> list[Transcript]:
    """The IPR interviews about the session this session transcript records."""
    if transcript.kind != "session" or transcript.session_id is None:
        return []
    return list(
        session.scalars(
            select(Transcript).where(Transcript.session_id == transcript.session_id, Transcript.kind == "ipr")
        )
    )


def _attribute(session: Session, transcript_id: int, name: str) -> Attribute | None:
    found: Attribute | None = session.scalar(
        select(Attribute).where(
            Attribute.target_kind == "transcript", Attribute.target_id == transcript_id, Attribute.name == name
        )
    )
    return found


def set_attribute(
    workspace: Workspace, transcript: str, name: str, value: str, *, blinded: bool | None = None
) -> AttributeChange:
    """Set (or add) one attribute of one transcript. `blinded` None keeps an existing attribute's blinding
    (a new one is open); the IPR interviews about a session transcript inherit the change where they held
    the old value or none."""
    require_setup_rights(workspace)
    hide = workspace.blind_for_actor()
    name = " ".join(name.split())
    value = value.strip()
    if not name or len(name) > NAME_LIMIT:
        raise ConcordError(f"an attribute name is 1 to {NAME_LIMIT} characters, not {len(name)}")
    if not value:
        raise ConcordError(f"give a value, or remove the attribute: concord attribute unset STUDY {transcript} {name}")
    with workspace.store.session() as session:
        row = find_transcript(session, transcript)
        existing = _attribute(session, row.id, name)
        old = existing.value if existing is not None else None
        hidden = blinded if blinded is not None else (existing.blinded if existing is not None else False)
        if existing is not None and existing.blinded and hide:
            raise PermissionDenied(f"{name!r} is blinded: changing it takes a supervisor or admin (--as)")
        if existing is not None and existing.blinded and blinded is False:
            raise ConcordError(
                f"{name!r} is blinded; a value is unblinded for everyone by concord unblind, not one by one"
            )
        targets = [row]
        for interview in _interviews_of(session, row):
            own = _attribute(session, interview.id, name)
            if own is None or own.value == old:
                targets.append(interview)
        for target in targets:
            current = _attribute(session, target.id, name)
            if current is None:
                session.add(
                    Attribute(
                        target_kind="transcript",
                        target_id=target.id,
                        name=name,
                        value_type=_value_type(value),
                        value=value,
                        blinded=hidden,
                    )
                )
            else:
                current.value = value
                current.value_type = _value_type(value)
                current.blinded = current.blinded or hidden
        interviews = tuple(t.key for t in targets[1:])
        record(
            session,
            workspace.actor_label,
            "attribute.set",
            "transcript",
            row.id,
            transcript=row.key,
            name=name,
            # A blinded value stays out of the log: the log is read more widely than the values are.
            old=None if hidden else old,
            new=None if hidden else value,
            blinded=hidden,
            inherited_by=list(interviews),
        )
    return AttributeChange(row.key, name, old, value, hidden, interviews)


def unset_attribute(workspace: Workspace, transcript: str, name: str) -> AttributeChange:
    """Remove one attribute of one transcript, and the copies its IPR interviews inherited."""
    require_setup_rights(workspace)
    hide = workspace.blind_for_actor()
    name = " ".join(name.split())
    with workspace.store.session() as session:
        row = find_transcript(session, transcript)
        existing = _attribute(session, row.id, name)
        if existing is None:
            names = sorted(
                session.scalars(
                    select(Attribute.name).where(Attribute.target_kind == "transcript", Attribute.target_id == row.id)
                )
            )
            raise NotFound(f"transcript {row.key!r} has no attribute {name!r} (it has: {', '.join(names) or 'none'})")
        old, hidden = existing.value, existing.blinded
        if hidden and hide:
            raise PermissionDenied(f"{name!r} is blinded: removing it takes a supervisor or admin (--as)")
        inherited = []
        for interview in _interviews_of(session, row):
            own = _attribute(session, interview.id, name)
            if own is not None and own.value == old:
                session.delete(own)
                inherited.append(interview.key)
        session.delete(existing)
        record(
            session,
            workspace.actor_label,
            "attribute.unset",
            "transcript",
            row.id,
            transcript=row.key,
            name=name,
            old=None if hidden else old,
            blinded=hidden,
            inherited_by=inherited,
        )
    return AttributeChange(row.key, name, old, None, hidden, tuple(inherited))


# -- scores ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreRow:
    dyad: str
    session: int
    instrument: str
    respondent: str
    total: float | None
    subscales: dict[str, float | None]
    band: str | None
    answered: int
    missing: tuple[str, ...]  # item ids without an answer (blank or a missing-value code)
    prorated: bool  # scored although items were missing (the instrument's prorate rule)
    transcripts: tuple[str, ...]
    source: str | None


def list_scores(workspace: Workspace, instrument: str | None = None) -> list[ScoreRow]:
    """Every imported questionnaire form, per session: totals, subscales, missing and prorated items."""
    require_scores_rights(workspace)
    with workspace.store.reader() as session:
        query = (
            select(QuestionnaireScore, Dyad.key, TherapySession.number)
            .join(TherapySession, TherapySession.id == QuestionnaireScore.session_id)
            .join(Dyad, Dyad.id == TherapySession.dyad_id)
        )
        if instrument is not None:
            query = query.where(QuestionnaireScore.instrument == instrument.strip().upper())
        found = session.execute(
            query.order_by(
                Dyad.key, TherapySession.number, QuestionnaireScore.instrument, QuestionnaireScore.respondent
            )
        ).all()
        keys: dict[int, list[str]] = {}
        for key, session_id in session.execute(
            select(Transcript.key, Transcript.session_id)
            .where(Transcript.session_id.is_not(None))
            .order_by(Transcript.key)
        ):
            keys.setdefault(session_id, []).append(key)
        rows = []
        for score, dyad, number in found:
            items = dict(score.items or {})
            missing = tuple(item for item, value in items.items() if value is None)
            rows.append(
                ScoreRow(
                    dyad=dyad,
                    session=number,
                    instrument=score.instrument,
                    respondent=score.respondent,
                    total=score.total,
                    subscales=dict(score.subscales or {}),
                    band=score.band,
                    answered=len(items) - len(missing),
                    missing=missing,
                    # A total despite missing items can only come from the instrument's prorate rule.
                    prorated=bool(missing) and score.total is not None,
                    transcripts=tuple(keys.get(score.session_id, ())),
                    source=score.source_name,
                )
            )
        return rows


# -- speaker roles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerRow:
    label: str
    role: str
    turns: int


@dataclass(frozen=True)
class SpeakerChange:
    transcript: str
    changed: dict[str, tuple[str, str]]  # label -> (old role, new role)
    turns: int
    speakers: list[SpeakerRow]


def _speakers(session: Session, transcript_id: int) -> list[SpeakerRow]:
    counts = Counter(
        session.execute(select(Turn.speaker_label, Turn.speaker_role).where(Turn.transcript_id == transcript_id)).all()
    )
    return [SpeakerRow(label, role, n) for (label, role), n in sorted(counts.items())]


def list_speakers(workspace: Workspace, transcript: str) -> list[SpeakerRow]:
    require_setup_rights(workspace)
    with workspace.store.reader() as session:
        return _speakers(session, find_transcript(session, transcript).id)


def map_speakers(workspace: Workspace, transcript: str, speaker_map: str) -> SpeakerChange:
    """Give speaker labels their roles after an import (T=therapist,P=client): every turn of that label."""
    from concord.importers.speakers import parse_speaker_map

    require_setup_rights(workspace)
    mapping = parse_speaker_map(speaker_map)
    if not mapping:
        raise ConcordError("--map takes LABEL=ROLE pairs, e.g. --map T=therapist,P=client")
    with workspace.store.session() as session:
        row = find_transcript(session, transcript)
        before = _speakers(session, row.id)
        by_label = {" ".join(s.label.split()).casefold(): s for s in before}
        unknown = [label for label in mapping if " ".join(label.split()).casefold() not in by_label]
        if unknown:
            listed = ", ".join(s.label for s in before)
            raise NotFound(
                f"transcript {row.key!r} has no speaker {unknown[0]!r} (its speakers: {listed}); "
                "labels are matched as shown by: concord speakers STUDY TRANSCRIPT"
            )
        changed: dict[str, tuple[str, str]] = {}
        turns = 0
        for label, role in mapping.items():
            speaker = by_label[" ".join(label.split()).casefold()]
            if speaker.role == role:
                continue
            for turn in session.scalars(
                select(Turn).where(Turn.transcript_id == row.id, Turn.speaker_label == speaker.label)
            ):
                turn.speaker_role = role
                turns += 1
            changed[speaker.label] = (speaker.role, role)
        if changed:
            record(
                session,
                workspace.actor_label,
                "speakers.map",
                "transcript",
                row.id,
                transcript=row.key,
                roles={label: {"from": old, "to": new} for label, (old, new) in changed.items()},
                turns=turns,
            )
        session.flush()
        after = _speakers(session, row.id)
    return SpeakerChange(row.key, changed, turns, after)
