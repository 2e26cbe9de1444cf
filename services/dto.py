"""Plain data the services hand out: frozen dataclasses, never live ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from concord.codebooks.spec import ScaleSpec


@dataclass(frozen=True)
class Actor:
    id: int
    name: str
    role: str

    @property
    def supervises(self) -> bool:
        return self.role in ("supervisor", "admin")


@dataclass(frozen=True)
class StudySettings:
    title: str
    language: str
    blind: bool
    unblinded_at: datetime | None
    anonymous_consensus: bool
    pseudonym_register: str | None
    nlp_pipeline: str | None

    @property
    def blind_now(self) -> bool:
        """Blind until a supervisor unblinds the study."""
        return self.blind and self.unblinded_at is None


@dataclass(frozen=True)
class CoderInfo:
    id: int
    name: str
    role: str
    active: bool
    os_login: str | None = None


@dataclass(frozen=True)
class TurnInfo:
    id: int
    number: int
    speaker_role: str
    speaker_label: str
    start_time: float | None
    end_time: float | None
    char_start: int
    char_end: int
    replayed: bool
    nonverbal: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class AttributeInfo:
    name: str
    value: str | None
    value_type: str
    blinded: bool
    target_kind: str


@dataclass(frozen=True)
class ScoreInfo:
    instrument: str
    respondent: str
    total: float | None
    subscales: dict[str, float]
    band: str | None


@dataclass(frozen=True)
class ProgressInfo:
    coder: str
    turns_reviewed: int
    codings: int
    done: bool


@dataclass(frozen=True)
class TranscriptSummary:
    id: int
    key: str
    kind: str
    perspective: str | None
    turns: int
    phase: str
    # The acting coder's own progress; supervisors also get everyone's in `others`.
    progress: ProgressInfo | None
    others: tuple[ProgressInfo, ...] = ()
    # Empty for a coder while the study is blind.
    dyad: str | None = None
    session_number: int | None = None
    attributes: tuple[AttributeInfo, ...] = ()


@dataclass(frozen=True)
class TranscriptDetail:
    id: int
    key: str
    kind: str
    perspective: str | None
    language: str
    text: str
    turns: tuple[TurnInfo, ...]
    phase: str
    dyad: str | None = None
    session_number: int | None = None
    attributes: tuple[AttributeInfo, ...] = ()
    scores: tuple[ScoreInfo, ...] = ()


@dataclass(frozen=True)
class CodeInfo:
    id: int
    codebook: str
    parent_id: int | None
    name: str
    label: str | None
    definition: str | None
    inclusion: str | None
    exclusion: str | None
    example: str | None
    pole: str | None
    high_pole: bool | None
    hotkey: str | None
    colour: str | None
    origin: str
    creator: str | None
    position: int
    guid: str
    path: tuple[str, ...] = field(default=())
    # The speaker roles declared for this code itself (not inherited); None: not declared.
    applies_to: tuple[str, ...] | None = None
    # The rating scale of a code that carries a value (codebooks.spec.ScaleSpec); None: no value.
    scale: ScaleSpec | None = None


@dataclass(frozen=True)
class CodingInfo:
    id: int
    transcript_id: int
    coder: str
    code_id: int
    start: int
    end: int
    memo: str | None
    phase: str
    made_blind: bool
    created_at: datetime
    changed_at: datetime
    # The value on the code's rating scale, for a code that carries one.
    value: float | None = None
    # "suggestion" or "similar" when the coding assistant had a hand in it (services/assistant.py).
    assisted_by: str | None = None


@dataclass(frozen=True)
class MemoInfo:
    id: int
    coder: str
    target_kind: str
    target_id: int | None
    text: str
    changed_at: datetime


@dataclass(frozen=True)
class AuditInfo:
    id: int
    at: datetime
    actor: str
    action: str
    entity: str | None
    entity_id: int | None
    details: dict


@dataclass(frozen=True)
class DataLossReport:
    """What a file held that Concord could not keep, what had to be adjusted, and plain remarks."""

    lost: tuple[str, ...] = ()
    adjusted: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.lost or self.adjusted)

    def render(self, title: str) -> str:
        lines = [title]
        if self.empty:
            lines.append("Nothing was lost.")
        for heading, items in (("Not kept", self.lost), ("Adjusted", self.adjusted), ("Notes", self.remarks)):
            if items:
                lines.append(f"{heading}:")
                lines.extend(f"  - {item}" for item in items)
        return "\n".join(lines)
