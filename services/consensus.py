"""Consensus: the queue of disagreements, the supervisors' decisions, the consensus layer, transcript phases.

A transcript's *units* are its turns (or, with ``unit="span"``, stretches where codings overlap by at
least ``overlap`` of the shorter span). On each unit every rater (a coder who coded the transcript or
marked it done) has a *reading*: the set of codes they applied there. A unit is

- *agreed* when two or more raters read it the same, non-empty way;
- *open* (in the queue) when the readings differ, including a rater who coded nothing there and a unit
  only one rater coded;
- *settled* once it has a current decision.

A decision takes one coder's reading (``take``), all readings together (``all``), none (``none``), a code
nobody or somebody applied (``code``), or one coder's codes over an edited span (``span``). Its result is a
set of consensus codings (phase ``consensus``, coder = the deciding supervisor, ``made_blind`` as the study
stands), each linked to the independent codings it came from (``ConsensusSource``). In turn units the
results are clipped to the turn, so a coding that ran over several turns is decided turn by turn. A decision
whose codes match no rater's reading needs a rationale. Deciding a settled unit again supersedes the earlier
decision: its codings are soft-deleted and the new decision points to it (``supersedes_id``), so the history
stays. Agreed units enter the consensus layer by themselves (``decision = "agreed"``) the first time a
decision is made in the transcript, or with ``accept_agreed``; they can be revised like any other.

Phases: a transcript is ``independent`` until its first decision, ``in_consensus`` while units are open,
and ``consensus_done`` as soon as every unit is settled. Done is automatic rather than a separate click: the
queue being empty is the condition a supervisor would check, and a revised or newly coded unit reopens it.
Decisions are matched to units by (unit kind, start, end): keep one consensus unit kind per study.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.analysis.agreement_units import Corpus, ReviewUnit, UnitsError, check_overlap, review_units
from concord.services.agreement import LoadedCorpus, load_corpus
from concord.services.audit import record
from concord.services.codes import find_code
from concord.services.rights import require_consensus_rights
from concord.services.transcripts import find_transcript
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, InputError, NotFound
from concord.storage.models import (
    Code,
    Coder,
    Coding,
    ConsensusDecision,
    ConsensusSource,
    Memo,
    Transcript,
    TranscriptProgress,
    Turn,
)

DECISIONS = ("take", "all", "none", "code", "span")
AGREED = "agreed"
CONSENSUS_UNITS = ("turn", "span")
CSV_COLUMNS = ("transcript", "unit_start", "unit_end", "turn", "code", "decision", "coder", "start", "end", "rationale")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class RationaleRequired(ConcordError):
    """The decision matches no coder's reading, so it needs a rationale."""


@dataclass(frozen=True)
class ReviewCoding:
    id: int
    code_id: int
    code: str
    start: int
    end: int
    text: str
    memo: str | None


@dataclass(frozen=True)
class Reading:
    """One rater's codes on a unit. ``coder`` is None when the study hides names in consensus."""

    letter: str
    label: str
    coder: str | None
    codes: tuple[str, ...]
    codings: tuple[ReviewCoding, ...]
    memos: tuple[str, ...]


@dataclass(frozen=True)
class ContextTurn:
    number: int
    speaker: str
    text: str
    in_unit: bool


@dataclass(frozen=True)
class DecisionInfo:
    id: int
    transcript: str
    unit: str
    unit_start: int
    unit_end: int
    decision: str
    coder: str | None
    code: str | None
    rationale: str | None
    decided_by: str
    present: tuple[str, ...]
    decided_at: datetime
    result: tuple[tuple[str, int, int], ...]
    supersedes_id: int | None


@dataclass(frozen=True)
class QueueItem:
    transcript_id: int
    transcript: str
    unit: str
    start: int
    end: int
    turn: int | None
    speaker: str | None
    text: str
    context: tuple[ContextTurn, ...]
    readings: tuple[Reading, ...]
    status: str
    decision: DecisionInfo | None
    history: tuple[DecisionInfo, ...] = ()

    @property
    def where(self) -> str:
        return f"turn {self.turn}" if self.turn is not None else f"{self.start}-{self.end}"


@dataclass(frozen=True)
class _Planned:
    code: int
    start: int
    end: int
    sources: tuple[int, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _check_unit(unit: str, overlap: float) -> None:
    if unit not in CONSENSUS_UNITS:
        raise ConcordError(f"consensus works on turn or span units, not {unit!r}")
    try:
        check_overlap(overlap)
    except UnitsError as exc:
        raise ConcordError(str(exc)) from None


def _scope_of(row: ConsensusDecision) -> dict:
    try:
        return json.loads(row.scope or "{}")
    except ValueError:
        return {}


def _coder_letters(session: Session) -> dict[int, int]:
    """Every coder who coded independently or marked a transcript done, in the order they joined:
    0 = Coder A, 1 = Coder B, ... The same letters in every transcript, so keys 1..9 always mean the same."""
    coded = session.scalars(select(Coding.coder_id).where(Coding.phase == "independent").distinct()).all()
    done = session.scalars(
        select(TranscriptProgress.coder_id).where(TranscriptProgress.done_at.is_not(None)).distinct()
    ).all()
    return {coder_id: position for position, coder_id in enumerate(sorted(set(coded) | set(done)))}


def _letter(position: int) -> str:
    return LETTERS[position] if position < len(LETTERS) else f"#{position + 1}"


# ------------------------------------------------------------------------------ one transcript's work


class _TranscriptWork:
    """A transcript's units, readings and current decisions, inside one storage session."""

    def __init__(self, session: Session, transcript: Transcript, unit: str, overlap: float):
        self.session = session
        self.transcript = transcript
        self.unit = unit
        self.loaded: LoadedCorpus = load_corpus(session, transcript_keys=(transcript.key,))
        self.corpus: Corpus = self.loaded.corpus
        self.units: list[ReviewUnit] = review_units(self.corpus, 0, unit, overlap)
        decisions = session.scalars(
            select(ConsensusDecision)
            .where(ConsensusDecision.transcript_id == transcript.id)
            .order_by(ConsensusDecision.id)
        ).all()
        self.decisions = list(decisions)
        superseded = {d.supersedes_id for d in decisions if d.supersedes_id is not None}
        self.current: dict[tuple[int, int], ConsensusDecision] = {
            (d.unit_start, d.unit_end): d
            for d in decisions
            if d.id not in superseded and _scope_of(d).get("unit") == unit
        }

    def coder_id(self, row: int) -> int:
        return self.loaded.coder_ids[row]

    def code_id(self, index: int) -> int:
        return self.loaded.code_ids[index]

    def find_unit(self, start: int | None, end: int | None, turn: int | None, where: str) -> ReviewUnit:
        if turn is not None:
            if self.unit != "turn":
                raise ConcordError(f"{where}: a turn number names a unit only with turn units")
            for candidate in self.units:
                if candidate.turn == turn:
                    return candidate
            if turn not in self.corpus.turn_number.tolist():
                raise NotFound(f"{where}: transcript {self.transcript.key!r} has no turn {turn}")
            raise ConcordError(f"{where}: nobody coded turn {turn} of {self.transcript.key!r}: nothing to decide")
        for candidate in self.units:
            if candidate.start == start and candidate.end == end:
                return candidate
        raise NotFound(
            f"{where}: {self.transcript.key!r} has no {self.unit} unit {start}-{end}"
            " (see: concord consensus STUDY --list)"
        )

    def status(self, unit: ReviewUnit) -> str:
        decision = self.current.get((unit.start, unit.end))
        if decision is not None:
            return AGREED if decision.decision == AGREED else "decided"
        return "agreed-pending" if unit.agreed(self.corpus) else "open"

    def refresh_phase(self) -> str:
        statuses = [self.status(u) for u in self.units]
        has_decision = any(_scope_of(d).get("unit") == self.unit for d in self.decisions)
        if not has_decision:
            phase = "independent"
        elif all(s in ("decided", AGREED) for s in statuses):
            phase = "consensus_done"
        else:
            phase = "in_consensus"
        self.transcript.phase = phase
        return phase


# -------------------------------------------------------------------------------------- planning


def _clip(unit: ReviewUnit, kind: str, start: int, end: int) -> tuple[int, int] | None:
    if kind == "turn":
        start, end = max(start, unit.start), min(end, unit.end)
    return (start, end) if start < end else None


def _merge(spans: list[_Planned]) -> list[_Planned]:
    """Per code, overlapping or touching spans become one, carrying all their sources."""
    merged: list[_Planned] = []
    for span in sorted(spans, key=lambda s: (s.code, s.start, s.end)):
        last = merged[-1] if merged else None
        if last is not None and last.code == span.code and span.start <= last.end:
            merged[-1] = _Planned(
                last.code, last.start, max(last.end, span.end), tuple(sorted(set(last.sources) | set(span.sources)))
            )
        else:
            merged.append(span)
    return merged


def _rows_by_code(corpus: Corpus, unit: ReviewUnit) -> dict[int, list[int]]:
    by_code: dict[int, list[int]] = {}
    for rows in unit.readings.values():
        for row in rows:
            by_code.setdefault(int(corpus.coding_code[row]), []).append(row)
    return by_code


def _plan(
    work: _TranscriptWork,
    unit: ReviewUnit,
    decision: str,
    *,
    coder_row: int | None,
    code_index: int | None,
    start: int | None,
    end: int | None,
) -> list[_Planned]:
    corpus, kind = work.corpus, work.unit
    by_code = _rows_by_code(corpus, unit)
    ident = corpus.coding_ident

    def copies(rows: list[int], extent: tuple[int, int] | None = None) -> list[_Planned]:
        planned = []
        for row in rows:
            code = int(corpus.coding_code[row])
            span = extent or (int(corpus.coding_start[row]), int(corpus.coding_end[row]))
            clipped = _clip(unit, kind, *span)
            if clipped is not None:
                sources = tuple(sorted(int(ident[r]) for r in by_code[code]))
                planned.append(_Planned(code, clipped[0], clipped[1], sources))
        return _merge(planned)

    if decision in ("take", AGREED):
        rows = list(unit.readings[coder_row]) if decision == "take" else [r for rs in by_code.values() for r in rs]
        return copies(rows)
    if decision == "all":
        return copies([r for rows in by_code.values() for r in rows])
    if decision == "none":
        return []
    if decision == "code":
        span = (unit.start if start is None else start, unit.end if end is None else end)
        sources = by_code.get(code_index) or [r for rows in by_code.values() for r in rows]
        return [_Planned(code_index, span[0], span[1], tuple(sorted(int(ident[r]) for r in sources)))]
    if decision == "span":
        rows = [r for r in unit.readings[coder_row] if code_index is None or int(corpus.coding_code[r]) == code_index]
        if not rows:
            raise ConcordError(
                "a span decision adjusts a coder's codes, and that coder has none here"
                + (" with that code" if code_index is not None else "")
            )
        return _merge([_Planned(p.code, start, end, p.sources) for p in copies(rows)])
    raise ConcordError(f"unknown decision {decision!r}; choose one of {', '.join(DECISIONS)}")


def _matches_a_coder(corpus: Corpus, unit: ReviewUnit, planned: list[_Planned]) -> bool:
    result = frozenset(p.code for p in planned)
    return any(result == codes for codes in unit.code_sets(corpus).values())


# -------------------------------------------------------------------------------------- deciding


def _resolve_coder(
    work: _TranscriptWork, letters: dict[int, int], coder: str | int | None, anonymous: bool, where: str
) -> int:
    """A rater row from a name, a letter (A, B, ...) or a key number (1 = Coder A)."""
    if coder is None or coder == "":
        raise ConcordError(f"{where}: say whose coding to take (coder name, letter or number)")
    position = None
    text = str(coder).strip()
    if text.isdigit():
        position = int(text) - 1
    elif len(text) == 1 and text.upper() in LETTERS:
        position = LETTERS.index(text.upper())
    elif text.lower().startswith("coder ") and len(text) == 7:
        position = LETTERS.index(text[-1].upper())
    if position is not None:
        by_position = {pos: cid for cid, pos in letters.items()}
        coder_id = by_position.get(position)
        if coder_id is None:
            raise ConcordError(f"{where}: there is no Coder {_letter(position)}")
        label = f"Coder {_letter(position)}"
    else:
        coder_id = work.session.scalar(select(Coder.id).where(Coder.name == text))
        if coder_id is None:
            raise NotFound(f"{where}: no coder named {text!r}")
        label = text if not anonymous else f"Coder {_letter(letters.get(coder_id, 0))}"
    if coder_id not in work.loaded.coder_ids:
        raise ConcordError(f"{where}: {label} did not code transcript {work.transcript.key!r}")
    return work.loaded.coder_ids.index(coder_id)


def _record_decision(
    work: _TranscriptWork,
    unit: ReviewUnit,
    decision: str,
    planned: list[_Planned],
    *,
    actor_id: int,
    actor_name: str,
    made_blind: bool,
    rationale: str | None,
    present: tuple[str, ...],
    details: dict,
) -> ConsensusDecision:
    session, now = work.session, _now()
    previous = work.current.get((unit.start, unit.end))
    if previous is not None:
        for coding_id in previous.result_coding_ids or ():
            old = session.get(Coding, coding_id)
            if old is not None and old.deleted_at is None:
                old.deleted_at = now
    created = []
    for span in planned:
        row = Coding(
            coder_id=actor_id,
            transcript_id=work.transcript.id,
            code_id=work.code_id(span.code),
            start_offset=span.start,
            end_offset=span.end,
            phase="consensus",
            made_blind=made_blind,
            created_at=now,
            changed_at=now,
        )
        session.add(row)
        session.flush()
        session.add_all(
            [ConsensusSource(consensus_coding_id=row.id, independent_coding_id=source) for source in span.sources]
        )
        created.append(row.id)
    scope = {"unit": work.unit, **({"turn": unit.turn} if unit.turn is not None else {}), **details}
    row = ConsensusDecision(
        transcript_id=work.transcript.id,
        unit_start=unit.start,
        unit_end=unit.end,
        scope=json.dumps(scope, separators=(",", ":")),
        decision=decision,
        rationale=rationale or None,
        decided_by_id=actor_id,
        present=list(present),
        result_coding_ids=created,
        supersedes_id=previous.id if previous else None,
        decided_at=now,
    )
    session.add(row)
    session.flush()
    work.current[(unit.start, unit.end)] = row
    work.decisions.append(row)
    record(
        session,
        actor_name,
        "consensus.agreed" if decision == AGREED else "consensus.decide",
        "consensus",
        row.id,
        transcript=work.transcript.key,
        unit=work.unit,
        unit_start=unit.start,
        unit_end=unit.end,
        decision=decision,
        rationale=rationale or None,
        supersedes=row.supersedes_id,
        codings=created,
        present=list(present),
        **details,
    )
    return row


def _accept_agreed_in(
    work: _TranscriptWork, *, actor_id: int, actor_name: str, made_blind: bool, present: tuple[str, ...]
) -> int:
    accepted = 0
    for unit in work.units:
        if work.status(unit) == "agreed-pending":
            planned = _plan(work, unit, AGREED, coder_row=None, code_index=None, start=None, end=None)
            _record_decision(
                work,
                unit,
                AGREED,
                planned,
                actor_id=actor_id,
                actor_name=actor_name,
                made_blind=made_blind,
                rationale=None,
                present=present,
                details={},
            )
            accepted += 1
    return accepted


@dataclass(frozen=True)
class DecisionRequest:
    """One decision as a script or a screen states it; ``where`` names it in error messages."""

    transcript: str | int
    decision: str
    unit_start: int | None = None
    unit_end: int | None = None
    turn: int | None = None
    coder: str | int | None = None
    code: str | int | None = None
    start: int | None = None
    end: int | None = None
    rationale: str | None = None
    where: str = "decision"


class _Session:
    """Decisions applied inside one unit of work, transcript by transcript."""

    def __init__(self, workspace: Workspace, session: Session, unit: str, overlap: float, present: tuple[str, ...]):
        self.actor = require_consensus_rights(workspace)
        self.settings = workspace.settings()
        self.session = session
        self.unit, self.overlap = unit, overlap
        self.present = tuple(dict.fromkeys(p.strip() for p in present if p and p.strip()))
        self.letters = _coder_letters(session)
        self.works: dict[int, _TranscriptWork] = {}

    def work(self, transcript: str | int, where: str) -> _TranscriptWork:
        try:
            row = find_transcript(self.session, transcript)
        except NotFound as exc:
            raise NotFound(f"{where}: {exc}") from None
        if row.id not in self.works:
            self.works[row.id] = _TranscriptWork(self.session, row, self.unit, self.overlap)
        return self.works[row.id]

    def _code_index(self, work: _TranscriptWork, code: str | int | None, where: str) -> int | None:
        if code is None or code == "":
            return None
        try:
            row = find_code(self.session, code)
        except ConcordError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        return work.loaded.code_index(row.id)

    def decide(self, request: DecisionRequest) -> ConsensusDecision:
        where = request.where
        decision = (request.decision or "").strip().lower()
        if decision not in DECISIONS:
            raise ConcordError(f"{where}: unknown decision {request.decision!r}; choose one of {', '.join(DECISIONS)}")
        work = self.work(request.transcript, where)
        unit = work.find_unit(request.unit_start, request.unit_end, request.turn, where)
        coder_row = None
        if decision in ("take", "span"):
            coder_row = _resolve_coder(work, self.letters, request.coder, self.settings.anonymous_consensus, where)
        code_index = self._code_index(work, request.code, where)
        if decision == "code" and code_index is None:
            raise ConcordError(f"{where}: a code decision needs the code to apply")
        start, end = request.start, request.end
        if decision == "span" and (start is None or end is None):
            raise ConcordError(f"{where}: a span decision needs the new start and end")
        if start is not None or end is not None:
            low = unit.start if start is None else start
            high = unit.end if end is None else end
            if not 0 <= low < high <= len(work.transcript.text):
                raise ConcordError(
                    f"{where}: span {low}-{high} is outside the transcript (0-{len(work.transcript.text)})"
                )
        planned = _plan(work, unit, decision, coder_row=coder_row, code_index=code_index, start=start, end=end)
        rationale = (request.rationale or "").strip() or None
        if rationale is None and not _matches_a_coder(work.corpus, unit, planned):
            raise RationaleRequired(f"{where}: this decision matches no coder's reading; give a rationale")
        _accept_agreed_in(
            work,
            actor_id=self.actor.id,
            actor_name=self.actor.name,
            made_blind=self.settings.blind_now,
            present=self.present,
        )
        details = {}
        if coder_row is not None:
            details["coder"] = work.coder_id(coder_row)
        if code_index is not None:
            details["code"] = work.code_id(code_index)
        if request.start is not None or request.end is not None:
            details["span"] = [planned[0].start, planned[0].end] if planned else [start, end]
        row = _record_decision(
            work,
            unit,
            decision,
            planned,
            actor_id=self.actor.id,
            actor_name=self.actor.name,
            made_blind=self.settings.blind_now,
            rationale=rationale,
            present=self.present,
            details=details,
        )
        work.refresh_phase()
        return row


def _decision_info(
    session: Session, row: ConsensusDecision, transcript_key: str, anonymous: bool, letters: dict[int, int]
) -> DecisionInfo:
    scope = _scope_of(row)
    coder = None
    if "coder" in scope:
        coder_id = scope["coder"]
        coder = (
            f"Coder {_letter(letters.get(coder_id, 0))}"
            if anonymous
            else session.scalar(select(Coder.name).where(Coder.id == coder_id))
        )
    code = session.scalar(select(Code.name).where(Code.id == scope["code"])) if "code" in scope else None
    result = []
    for coding_id in row.result_coding_ids or ():
        made = session.get(Coding, coding_id)
        if made is not None:
            result.append(
                (session.scalar(select(Code.name).where(Code.id == made.code_id)), made.start_offset, made.end_offset)
            )
    return DecisionInfo(
        id=row.id,
        transcript=transcript_key,
        unit=scope.get("unit", "turn"),
        unit_start=row.unit_start,
        unit_end=row.unit_end,
        decision=row.decision,
        coder=coder,
        code=code,
        rationale=row.rationale,
        decided_by=session.scalar(select(Coder.name).where(Coder.id == row.decided_by_id)),
        present=tuple(row.present or ()),
        decided_at=row.decided_at,
        result=tuple(result),
        supersedes_id=row.supersedes_id,
    )


def decide(
    workspace: Workspace,
    request: DecisionRequest,
    *,
    unit: str = "turn",
    overlap: float = 0.5,
    present: tuple[str, ...] = (),
) -> DecisionInfo:
    """Settle (or revise) one unit; agreed units of the transcript are accepted first if still pending."""
    _check_unit(unit, overlap)
    with workspace.store.session() as session:
        state = _Session(workspace, session, unit, overlap, present)
        row = state.decide(request)
        return _decision_info(
            session,
            row,
            state.works[row.transcript_id].transcript.key,
            state.settings.anonymous_consensus,
            state.letters,
        )


def needs_rationale(
    workspace: Workspace, request: DecisionRequest, *, unit: str = "turn", overlap: float = 0.5
) -> bool:
    """Whether ``request`` (without a rationale) would be refused for want of one; nothing is written."""
    _check_unit(unit, overlap)
    with workspace.store.reader() as session:
        state = _Session(workspace, session, unit, overlap, ())
        work = state.work(request.transcript, request.where)
        target = work.find_unit(request.unit_start, request.unit_end, request.turn, request.where)
        decision = request.decision
        coder_row = None
        if decision in ("take", "span"):
            coder_row = _resolve_coder(
                work, state.letters, request.coder, state.settings.anonymous_consensus, request.where
            )
        code_index = state._code_index(work, request.code, request.where)
        planned = _plan(
            work, target, decision, coder_row=coder_row, code_index=code_index, start=request.start, end=request.end
        )
        return not _matches_a_coder(work.corpus, target, planned)


def accept_agreed(
    workspace: Workspace,
    *,
    transcripts: tuple[str, ...] = (),
    unit: str = "turn",
    overlap: float = 0.5,
    present: tuple[str, ...] = (),
) -> dict[str, int]:
    """Put every pending agreed unit into the consensus layer; returns how many per transcript."""
    _check_unit(unit, overlap)
    with workspace.store.session() as session:
        state = _Session(workspace, session, unit, overlap, present)
        keys = transcripts or tuple(session.scalars(select(Transcript.key).order_by(Transcript.key)))
        accepted = {}
        for key in keys:
            work = state.work(key, f"transcript {key!r}")
            accepted[key] = _accept_agreed_in(
                work,
                actor_id=state.actor.id,
                actor_name=state.actor.name,
                made_blind=state.settings.blind_now,
                present=state.present,
            )
            if accepted[key]:
                work.refresh_phase()
        return accepted


# -------------------------------------------------------------------------------------- the CSV path


def _csv_int(value: str | None, column: str, where: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise ConcordError(f"{where}: column {column!r} must be a whole number, got {value!r}") from None


def read_decisions(path: str | Path) -> list[DecisionRequest]:
    """Decision rows from a CSV file (header: transcript, unit_start, unit_end or turn, code, decision,
    coder, start, end, rationale); errors name the file and line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    requests = []
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if not header:
            raise InputError("empty file: expected a header row", path=str(path), line=1)
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if unknown:
            raise InputError(
                f"unknown column(s) {', '.join(unknown)}; expected {', '.join(CSV_COLUMNS)}", path=str(path), line=1
            )
        for needed in ("transcript", "decision"):
            if needed not in header:
                raise InputError(f"missing column {needed!r}", path=str(path), line=1)
        if "turn" not in header and not {"unit_start", "unit_end"} <= set(header):
            raise InputError(
                "name each unit by a 'turn' column or by 'unit_start' and 'unit_end'", path=str(path), line=1
            )
        for raw in reader:
            line = reader.line_num
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            where = f"{path}:{line}"
            try:
                turn = _csv_int(row.get("turn"), "turn", where)
                unit_start = _csv_int(row.get("unit_start"), "unit_start", where)
                unit_end = _csv_int(row.get("unit_end"), "unit_end", where)
                if turn is None and (unit_start is None or unit_end is None):
                    raise ConcordError(f"{where}: give the turn, or unit_start and unit_end")
                if not row.get("transcript"):
                    raise ConcordError(f"{where}: the transcript is empty")
                if row.get("decision", "").lower() not in DECISIONS:
                    raise ConcordError(
                        f"{where}: unknown decision {row.get('decision', '')!r}; choose one of {', '.join(DECISIONS)}"
                    )
                requests.append(
                    DecisionRequest(
                        transcript=row["transcript"],
                        decision=row.get("decision", ""),
                        unit_start=unit_start,
                        unit_end=unit_end,
                        turn=turn,
                        coder=row.get("coder") or None,
                        code=row.get("code") or None,
                        start=_csv_int(row.get("start"), "start", where),
                        end=_csv_int(row.get("end"), "end", where),
                        rationale=row.get("rationale") or None,
                        where=where,
                    )
                )
            except ConcordError as exc:
                raise InputError(str(exc).removeprefix(f"{where}: "), path=str(path), line=line) from None
    return requests


def apply_decisions(
    workspace: Workspace,
    requests: list[DecisionRequest],
    *,
    unit: str = "turn",
    overlap: float = 0.5,
    present: tuple[str, ...] = (),
) -> list[DecisionInfo]:
    """Apply decisions in order as one unit of work: all of them or, on the first bad one, none."""
    _check_unit(unit, overlap)
    with workspace.store.session() as session:
        state = _Session(workspace, session, unit, overlap, present)
        rows = [state.decide(request) for request in requests]
        keys = {tid: work.transcript.key for tid, work in state.works.items()}
        return [
            _decision_info(session, row, keys[row.transcript_id], state.settings.anonymous_consensus, state.letters)
            for row in rows
        ]


# ------------------------------------------------------------------------------------------ the queue


def _memos(session: Session, transcript_id: int) -> tuple[dict[int, list[str]], dict[tuple[int, int], list[str]]]:
    """Live memos on the transcript's codings (by coding) and turns (by turn id and coder)."""
    coding_ids = select(Coding.id).where(Coding.transcript_id == transcript_id)
    turn_ids = select(Turn.id).where(Turn.transcript_id == transcript_id)
    on_codings: dict[int, list[str]] = {}
    on_turns: dict[tuple[int, int], list[str]] = {}
    rows = session.scalars(
        select(Memo)
        .where(
            Memo.deleted_at.is_(None),
            ((Memo.target_kind == "coding") & Memo.target_id.in_(coding_ids))
            | ((Memo.target_kind == "turn") & Memo.target_id.in_(turn_ids)),
        )
        .order_by(Memo.id)
    ).all()
    for memo in rows:
        if memo.target_kind == "coding":
            on_codings.setdefault(memo.target_id, []).append(memo.text)
        else:
            on_turns.setdefault((memo.target_id, memo.coder_id), []).append(memo.text)
    return on_codings, on_turns


def _queue_items(
    session: Session, work: _TranscriptWork, letters: dict[int, int], anonymous: bool, include_settled: bool
) -> list[QueueItem]:
    corpus, transcript = work.corpus, work.transcript
    text = transcript.text
    turns = session.execute(
        select(Turn.id, Turn.number, Turn.speaker_label, Turn.char_start, Turn.char_end)
        .where(Turn.transcript_id == transcript.id)
        .order_by(Turn.number)
    ).all()
    on_codings, on_turns = _memos(session, transcript.id)
    names = dict(session.execute(select(Coder.id, Coder.name)).all())
    stored = {
        row.id: row
        for row in session.scalars(
            select(Coding).where(Coding.transcript_id == transcript.id, Coding.phase == "independent")
        )
    }
    history_of: dict[int, ConsensusDecision] = {d.id: d for d in work.decisions}
    items = []
    for unit in work.units:
        status = work.status(unit)
        if status in ("decided", AGREED) and not include_settled:
            continue
        inside = [i for i, t in enumerate(turns) if t.char_start < unit.end and t.char_end > unit.start]
        if not inside:
            inside = [i for i, t in enumerate(turns) if t.char_start <= unit.start <= t.char_end][:1]
        shown = range(max(0, (inside[0] if inside else 0) - 1), min(len(turns), (inside[-1] if inside else -1) + 2))
        context = tuple(
            ContextTurn(
                turns[i].number, turns[i].speaker_label, text[turns[i].char_start : turns[i].char_end], i in inside
            )
            for i in shown
        )
        unit_turn_ids = [turns[i].id for i in inside]
        readings = []
        for row in sorted(unit.readings, key=lambda r: letters.get(work.coder_id(r), 0)):
            coder_id = work.coder_id(row)
            letter = _letter(letters.get(coder_id, 0))
            codings = []
            memos: list[str] = []
            for coding_row in unit.readings[row]:
                ident = int(corpus.coding_ident[coding_row])
                coding = stored[ident]
                codings.append(
                    ReviewCoding(
                        id=ident,
                        code_id=coding.code_id,
                        code=corpus.codes[int(corpus.coding_code[coding_row])],
                        start=coding.start_offset,
                        end=coding.end_offset,
                        text=text[coding.start_offset : coding.end_offset],
                        memo=coding.memo,
                    )
                )
                memos += on_codings.get(ident, [])
            for turn_id in unit_turn_ids:
                memos += on_turns.get((turn_id, coder_id), [])
            readings.append(
                Reading(
                    letter=letter,
                    label=f"Coder {letter}" if anonymous else names[coder_id],
                    coder=None if anonymous else names[coder_id],
                    codes=tuple(dict.fromkeys(c.code for c in codings)),
                    codings=tuple(codings),
                    memos=tuple(dict.fromkeys(memos)),
                )
            )
        current = work.current.get((unit.start, unit.end))
        history: list[DecisionInfo] = []
        step = current
        while step is not None:
            history.append(_decision_info(session, step, transcript.key, anonymous, letters))
            step = history_of.get(step.supersedes_id) if step.supersedes_id else None
        speaker = ", ".join(dict.fromkeys(turns[i].speaker_label for i in inside)) or None
        items.append(
            QueueItem(
                transcript_id=transcript.id,
                transcript=transcript.key,
                unit=work.unit,
                start=unit.start,
                end=unit.end,
                turn=unit.turn,
                speaker=speaker,
                text=text[unit.start : unit.end],
                context=context,
                readings=tuple(readings),
                status=status,
                decision=history[0] if history else None,
                history=tuple(history),
            )
        )
    return items


def consensus_queue(
    workspace: Workspace,
    *,
    transcripts: tuple[str, ...] = (),
    unit: str = "turn",
    overlap: float = 0.5,
    include_settled: bool = False,
) -> list[QueueItem]:
    """Units where the coders differ (status ``open``), per transcript in key order.

    With ``include_settled`` also the decided and agreed units (for review), and the agreed units not yet in
    the consensus layer (``agreed-pending``). Supervisors only.
    """
    _check_unit(unit, overlap)
    require_consensus_rights(workspace)
    anonymous = workspace.settings().anonymous_consensus
    with workspace.store.reader() as session:
        letters = _coder_letters(session)
        keys = transcripts or tuple(session.scalars(select(Transcript.key).order_by(Transcript.key)))
        items = []
        for key in keys:
            work = _TranscriptWork(session, find_transcript(session, key), unit, overlap)
            found = _queue_items(session, work, letters, anonymous, include_settled)
            items += [i for i in found if include_settled or i.status == "open"]
        return items


def coder_keys(workspace: Workspace) -> list[str]:
    """The labels behind keys 1..9 in consensus: "Coder A", ... or the coders' names."""
    require_consensus_rights(workspace)
    anonymous = workspace.settings().anonymous_consensus
    with workspace.store.reader() as session:
        letters = _coder_letters(session)
        names = dict(session.execute(select(Coder.id, Coder.name)).all())
        ordered = sorted(letters, key=letters.get)
        return [f"Coder {_letter(letters[c])}" if anonymous else names[c] for c in ordered]


@dataclass(frozen=True)
class TranscriptConsensus:
    transcript: str
    phase: str
    open: int
    decided: int
    agreed: int
    agreed_pending: int


def consensus_overview(workspace: Workspace, *, unit: str = "turn", overlap: float = 0.5) -> list[TranscriptConsensus]:
    """Per transcript: its phase and how many units are open, decided, agreed."""
    _check_unit(unit, overlap)
    require_consensus_rights(workspace)
    with workspace.store.reader() as session:
        overview = []
        for row in session.scalars(select(Transcript).order_by(Transcript.key)).all():
            work = _TranscriptWork(session, row, unit, overlap)
            statuses = [work.status(u) for u in work.units]
            overview.append(
                TranscriptConsensus(
                    transcript=row.key,
                    phase=row.phase,
                    open=statuses.count("open"),
                    decided=statuses.count("decided"),
                    agreed=statuses.count(AGREED),
                    agreed_pending=statuses.count("agreed-pending"),
                )
            )
        return overview


def consensus_codings_count(workspace: Workspace, transcript: str | int) -> int:
    with workspace.store.reader() as session:
        row = find_transcript(session, transcript)
        return len(
            session.scalars(
                select(Coding.id).where(
                    Coding.transcript_id == row.id, Coding.phase == "consensus", Coding.deleted_at.is_(None)
                )
            ).all()
        )


def sources_of(workspace: Workspace, consensus_coding_id: int) -> list[int]:
    """The independent codings a consensus coding came from."""
    require_consensus_rights(workspace)
    with workspace.store.reader() as session:
        return sorted(
            session.scalars(
                select(ConsensusSource.independent_coding_id).where(
                    ConsensusSource.consensus_coding_id == consensus_coding_id
                )
            ).all()
        )
