"""The study's tables as SQLAlchemy 2 typed models.

Design notes that matter beyond this file:

* Every row a coder produces (codings, memos, progress, edit history) carries
  ``coder_id``, and every attribute carries ``blinded``. On PostgreSQL that is
  what row-level security needs: one login per person (``Coder.db_role``), a
  policy ``coder_id = current coder OR role is supervisor``, and a policy
  hiding ``blinded`` attributes and all questionnaire scores from coders while
  ``Study.unblinded_at`` is null. The services enforce the same rules today.
* Character offsets (turn ranges, coding spans) index into
  ``Transcript.text``, so they do not depend on how a screen wraps lines.
* The audit log is append-only: triggers refuse UPDATE and DELETE on it
  (installed by the first migration, for SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CODER_ROLES = ("coder", "supervisor", "admin")
SPEAKER_ROLES = ("therapist", "client", "interviewer", "other")
TRANSCRIPT_KINDS = ("session", "ipr")
PERSPECTIVES = ("client", "therapist")
CODING_PHASES = ("independent", "consensus")
TRANSCRIPT_PHASES = ("independent", "in_consensus", "consensus_done")
ATTRIBUTE_TARGETS = ("dyad", "session", "transcript")
ATTRIBUTE_TYPES = ("text", "number", "date", "boolean")
MEMO_TARGETS = ("study", "transcript", "turn", "coding", "code")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    """The study's settings: exactly one row (id = 1)."""

    __tablename__ = "study"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    title: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(16), default="en")
    blind: Mapped[bool] = mapped_column(Boolean, default=True)
    unblinded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unblinded_by: Mapped[str | None] = mapped_column(String(120))
    anonymous_consensus: Mapped[bool] = mapped_column(Boolean, default=False)
    pseudonym_register: Mapped[str | None] = mapped_column(Text)
    nlp_pipeline: Mapped[str | None] = mapped_column(String(120))
    # How a command knows who runs it: "trusted" (--as is believed), "os-login" (bound to the
    # operating-system login) or "database" (PostgreSQL logins, row-level security).
    identity_mode: Mapped[str] = mapped_column(String(16), default="trusted", server_default="trusted")
    # Identifies the study for coder work files (handout/collect); a work file records whose it is.
    study_uid: Mapped[str | None] = mapped_column(String(36))
    handout_for: Mapped[str | None] = mapped_column(String(120))
    handout_of: Mapped[str | None] = mapped_column(String(36))
    # The coding assistant (services/assistant.py): {"on", "min_codings", "learn_from"}; None: never switched on.
    assistant: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Coder(Base):
    __tablename__ = "coders"
    __table_args__ = (CheckConstraint(_one_of("role", CODER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="coder")
    # The PostgreSQL login this person uses, for row-level security.
    db_role: Mapped[str | None] = mapped_column(String(63), unique=True)
    # The operating-system login bound to this person (SQLite studies in "os-login" mode).
    os_login: Mapped[str | None] = mapped_column(String(120), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (CheckConstraint(_one_of("role", ("client", "therapist")), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))


class Dyad(Base):
    __tablename__ = "dyads"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    therapist_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))

    sessions: Mapped[list[TherapySession]] = relationship(back_populates="dyad")


class TherapySession(Base):
    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("dyad_id", "number", name="uq_sessions_dyad_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dyad_id: Mapped[int] = mapped_column(ForeignKey("dyads.id"))
    number: Mapped[int] = mapped_column(Integer)
    held_on: Mapped[date | None] = mapped_column(Date)
    modality: Mapped[str | None] = mapped_column(String(32))

    dyad: Mapped[Dyad] = relationship(back_populates="sessions")


class Transcript(Base):
    __tablename__ = "transcripts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", TRANSCRIPT_KINDS), name="kind"),
        CheckConstraint("perspective IS NULL OR " + _one_of("perspective", PERSPECTIVES), name="perspective"),
        CheckConstraint(_one_of("phase", TRANSCRIPT_PHASES), name="phase"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="session")
    perspective: Mapped[str | None] = mapped_column(String(16))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    language: Mapped[str] = mapped_column(String(16), default="en")
    source_name: Mapped[str | None] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    source_encoding: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(String(16), default="independent")
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    turns: Mapped[list[Turn]] = relationship(
        back_populates="transcript", order_by="Turn.number", cascade="all, delete-orphan"
    )
    session: Mapped[TherapySession | None] = relationship()


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("transcript_id", "number", name="uq_turns_transcript_number"),
        CheckConstraint(_one_of("speaker_role", SPEAKER_ROLES), name="speaker_role"),
        CheckConstraint("char_start <= char_end", name="range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    speaker_role: Mapped[str] = mapped_column(String(16))
    speaker_label: Mapped[str] = mapped_column(String(120))
    start_time: Mapped[float | None] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    # IPR: a stretch of the session recording transcribed inside the interview.
    replayed: Mapped[bool] = mapped_column(Boolean, default=False)
    # [[start, end], ...] ranges of non-verbal annotations, in transcript offsets.
    nonverbal: Mapped[list[Any]] = mapped_column(JSON, default=list)

    transcript: Mapped[Transcript] = relationship(back_populates="turns")


class TurnLink(Base):
    """A replayed turn of an IPR interview and a session turn it replays (found by time or by text)."""

    __tablename__ = "turn_links"
    __table_args__ = (
        UniqueConstraint("interview_turn_id", "session_turn_id", name="uq_turn_links_interview_turn_id"),
        CheckConstraint(_one_of("method", ("time", "text")), name="method"),
        Index("ix_turn_links_session_turn_id", "session_turn_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    interview_turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    session_turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)


class Attribute(Base):
    """A named value on a dyad, session or transcript; ``blinded`` hides it from coders."""

    __tablename__ = "attributes"
    __table_args__ = (
        UniqueConstraint("target_kind", "target_id", "name", name="uq_attributes_target_name"),
        CheckConstraint(_one_of("target_kind", ATTRIBUTE_TARGETS), name="target_kind"),
        CheckConstraint(_one_of("value_type", ATTRIBUTE_TYPES), name="value_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    value_type: Mapped[str] = mapped_column(String(16), default="text")
    value: Mapped[str | None] = mapped_column(Text)
    blinded: Mapped[bool] = mapped_column(Boolean, default=False)


class QuestionnaireScore(Base):
    """Raw item responses and the scored subscales of one instrument for one session."""

    __tablename__ = "questionnaire_scores"
    __table_args__ = (
        UniqueConstraint("session_id", "instrument", "respondent", name="uq_scores_session_instrument_respondent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    instrument: Mapped[str] = mapped_column(String(64))
    respondent: Mapped[str] = mapped_column(String(16))
    items: Mapped[dict[str, Any]] = mapped_column(JSON)
    subscales: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(64))
    source_name: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Codebook(Base):
    __tablename__ = "codebooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    version: Mapped[str] = mapped_column(String(64), default="1")
    source: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(32), default="bundled")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CodebookVersion(Base):
    """A snapshot of a codebook (its YAML) each time its structure or texts change."""

    __tablename__ = "codebook_versions"
    __table_args__ = (UniqueConstraint("codebook_id", "number", name="uq_cbversions_codebook_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    codebook_id: Mapped[int] = mapped_column(ForeignKey("codebooks.id"))
    number: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Code(Base):
    """A theme, sub-theme or code: a node in a codebook's tree of any depth."""

    __tablename__ = "codes"
    __table_args__ = (
        CheckConstraint(_one_of("origin", ("deductive", "inductive")), name="origin"),
        Index("ix_codes_codebook_parent", "codebook_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    codebook_id: Mapped[int] = mapped_column(ForeignKey("codebooks.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("codes.id"))
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    label: Mapped[str | None] = mapped_column(String(120))
    definition: Mapped[str | None] = mapped_column(Text)
    inclusion: Mapped[str | None] = mapped_column(Text)
    exclusion: Mapped[str | None] = mapped_column(Text)
    example: Mapped[str | None] = mapped_column(Text)
    pole: Mapped[str | None] = mapped_column(String(64))
    high_pole: Mapped[bool | None] = mapped_column(Boolean)
    hotkey: Mapped[str | None] = mapped_column(String(16))
    colour: Mapped[str | None] = mapped_column(String(32))
    # Speaker roles this code and its subtree apply to, comma-separated (codebook `applies_to`); None: not said.
    applies_to: Mapped[str | None] = mapped_column(String(120))
    # A code that carries a value: its rating scale (codebooks.spec.ScaleSpec.to_document()); None: no value.
    scale: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(16), default="deductive")
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("coders.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Set when merged into another code or retired; codings then point elsewhere.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("codes.id"))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @classmethod
    def live(cls) -> ColumnElement[bool]:
        """The SQL condition for codes still in use: neither merged into another nor retired."""
        return and_(cls.merged_into_id.is_(None), cls.retired_at.is_(None))


class CodeChange(Base):
    """One change to a code (rename, new definition, move, merge, split): its history."""

    __tablename__ = "code_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(120))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Coding(Base):
    """A code applied by one coder to a span of a transcript."""

    __tablename__ = "codings"
    __table_args__ = (
        CheckConstraint(_one_of("phase", CODING_PHASES), name="phase"),
        CheckConstraint("start_offset < end_offset", name="span"),
        Index("ix_codings_transcript_coder", "transcript_id", "coder_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coder_id: Mapped[int] = mapped_column(ForeignKey("coders.id"))
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id"), index=True)
    start_offset: Mapped[int] = mapped_column(Integer)
    end_offset: Mapped[int] = mapped_column(Integer)
    memo: Mapped[str | None] = mapped_column(Text)
    # The value on the code's rating scale, for a code that carries one.
    value: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str] = mapped_column(String(16), default="independent")
    made_blind: Mapped[bool] = mapped_column(Boolean)
    # "suggestion" (accepted from the assistant's suggestion) or "similar" (coded from "more like this");
    # None: the coder's own doing. Agreement can leave assisted codings out (--without-suggested).
    assisted_by: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SuggestionRejection(Base):
    """A suggestion the coder turned down: never proposed again for that turn, and learned from."""

    __tablename__ = "suggestion_rejections"
    __table_args__ = (
        UniqueConstraint("coder_id", "turn_id", "code_id", name="uq_suggestion_rejections_coder_turn_code"),
        Index("ix_suggestion_rejections_coder_transcript", "coder_id", "transcript_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coder_id: Mapped[int] = mapped_column(ForeignKey("coders.id"))
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id"))
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsensusSource(Base):
    """Links a consensus coding to the independent codings it came from."""

    __tablename__ = "consensus_sources"

    consensus_coding_id: Mapped[int] = mapped_column(ForeignKey("codings.id"), primary_key=True)
    independent_coding_id: Mapped[int] = mapped_column(ForeignKey("codings.id"), primary_key=True)


class ConsensusDecision(Base):
    """How a disagreement was settled, by whom and why; a revision supersedes the earlier one."""

    __tablename__ = "consensus_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"), index=True)
    unit_start: Mapped[int] = mapped_column(Integer)
    unit_end: Mapped[int] = mapped_column(Integer)
    scope: Mapped[str | None] = mapped_column(String(300))
    decision: Mapped[str] = mapped_column(String(32))
    rationale: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("coders.id"))
    present: Mapped[list[Any]] = mapped_column(JSON, default=list)
    result_coding_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("consensus_decisions.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Memo(Base):
    __tablename__ = "memos"
    __table_args__ = (
        CheckConstraint(_one_of("target_kind", MEMO_TARGETS), name="target_kind"),
        Index("ix_memos_target", "target_kind", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coder_id: Mapped[int] = mapped_column(ForeignKey("coders.id"))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    made_blind: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TranscriptProgress(Base):
    """One coder's progress through one transcript."""

    __tablename__ = "transcript_progress"

    coder_id: Mapped[int] = mapped_column(ForeignKey("coders.id"), primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"), primary_key=True)
    turns_reviewed: Mapped[int] = mapped_column(Integer, default=0)
    last_offset: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EditStep(Base):
    """A coder's undoable action in a transcript, kept so undo/redo survive a restart."""

    __tablename__ = "edit_steps"
    __table_args__ = (Index("ix_edit_steps_coder_transcript", "coder_id", "transcript_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coder_id: Mapped[int] = mapped_column(ForeignKey("coders.id"))
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Append-only: who changed what, when. Triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash chain: each event's hash covers its canonical form and the previous event's hash.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A recorded head of the audit chain (at each backup, or asked for): truncation shows against it."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    event_id: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
