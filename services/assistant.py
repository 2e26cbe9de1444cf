"""The coding assistant: code suggestions learned on the study's own machine, and "more like this".

The rules live here; the model is analysis/suggest.py (scikit-learn, nothing downloaded, nothing sent
anywhere). What the assistant may learn from is the heart of it:

* While the study is blind, a person's suggestions are learned from **their own codings only** (and the
  suggestions they turned down). Another coder's work never reaches the model, so nothing a suggestion
  shows can depend on it (tests/test_blind_differential.py runs ``concord suggest`` on studies with and
  without the other coder's work, and the workbench with it).
* Once the study is unblinded, or in an open study, a supervisor may let it learn from the consensus
  layer too (``learn_from = "consensus"``): the team's agreed reading, which everyone may then see.
* A code becomes suggestible once the person has given it to ``min_codings`` turns (default 10).
* The assistant is off until a supervisor switches it on for the study; the switch is in the audit log.

A coding accepted from a suggestion is marked (``codings.assisted_by = "suggestion"``; "similar" when
coded from a "more like this" list), so agreement can be computed without such codings and a report can
say how many there were (``methods_text``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord.services.audit import record
from concord.services.codes import visible_codes
from concord.services.dto import Actor, CodeInfo, CodingInfo
from concord.services.rights import require_assistant_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from concord.storage.models import Coding, Study, SuggestionRejection, Transcript, TranscriptProgress, Turn

DEFAULT_MIN_CODINGS = 10
DEFAULT_THRESHOLD = 0.5
LEARN_FROM = ("own", "consensus")
ASSISTED = ("suggestion", "similar")
# A rejection is a deliberate "no": it counts for more than a turn merely left uncoded.
REJECTION_WEIGHT = 2.0
METHOD = (
    "a logistic regression per code over word and character n-grams of each turn, its speaker and the"
    " previous turn (scikit-learn, run on the study's own machine)"
)


@dataclass(frozen=True)
class AssistantSettings:
    on: bool = False
    min_codings: int = DEFAULT_MIN_CODINGS
    learn_from: str = "own"
    changed_by: str | None = None
    changed_at: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "min_codings": self.min_codings,
            "learn_from": self.learn_from,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at,
        }


@dataclass(frozen=True)
class TurnSuggestion:
    transcript_id: int
    transcript: str
    turn_id: int
    turn: int
    start: int
    end: int
    code_id: int
    code_path: tuple[str, ...]
    confidence: float


@dataclass(frozen=True)
class Suggestions:
    """The suggestions for one transcript and what they were learned from."""

    suggestions: tuple[TurnSuggestion, ...]
    # The codes the person has given often enough to be suggested, and how often.
    learned: tuple[tuple[int, int], ...]
    source: str  # "own" or "own and consensus"
    examples: int
    note: str = ""


@dataclass(frozen=True)
class SimilarPassage:
    transcript_id: int
    transcript: str
    turn_id: int
    turn: int
    speaker_role: str
    start: int
    end: int
    score: float
    left: str
    keyword: str
    right: str


# ------------------------------------------------------------------------------------- the setting


def _stored(value: dict[str, Any] | None) -> AssistantSettings:
    value = value or {}
    return AssistantSettings(
        on=bool(value.get("on", False)),
        min_codings=int(value.get("min_codings", DEFAULT_MIN_CODINGS)),
        learn_from=value.get("learn_from", "own") if value.get("learn_from") in LEARN_FROM else "own",
        changed_by=value.get("changed_by"),
        changed_at=value.get("changed_at"),
    )


def _study_row(session: Session) -> Study:
    row = session.get(Study, 1)
    if row is None:
        raise NotFound("not a Concord study (no study settings)")
    return row


def assistant_settings(workspace: Workspace) -> AssistantSettings:
    """Whether the assistant is on in this study, and how; anyone may ask."""
    with workspace.store.reader() as session:
        return _stored(_study_row(session).assistant)


def set_assistant(
    workspace: Workspace,
    *,
    on: bool | None = None,
    min_codings: int | None = None,
    learn_from: str | None = None,
) -> AssistantSettings:
    """Switch the assistant on or off, or change how it learns (supervisors and admins); audited."""
    actor = require_assistant_rights(workspace)
    if min_codings is not None and min_codings < 2:
        raise ConcordError(f"--min-codings {min_codings}: a code needs at least 2 codings to be learned")
    if learn_from is not None and learn_from not in LEARN_FROM:
        raise ConcordError(f"--learn-from {learn_from!r}: choose one of {', '.join(LEARN_FROM)}")
    with workspace.store.session() as session:
        row = _study_row(session)
        before = _stored(row.assistant)
        after = AssistantSettings(
            on=before.on if on is None else on,
            min_codings=before.min_codings if min_codings is None else min_codings,
            learn_from=before.learn_from if learn_from is None else learn_from,
            changed_by=actor.name,
            changed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        changes = {
            name: [getattr(before, name), getattr(after, name)]
            for name in ("on", "min_codings", "learn_from")
            if getattr(before, name) != getattr(after, name)
        }
        if not changes:
            return before
        row.assistant = after.document()
        action = "assistant.change"
        if "on" in changes:
            action = "assistant.on" if after.on else "assistant.off"
        record(session, actor.name, action, "study", 1, **changes)
    _forget_models()
    return after


def require_on(workspace: Workspace) -> AssistantSettings:
    settings = assistant_settings(workspace)
    if not settings.on:
        raise PermissionDenied(
            "the coding assistant is off in this study; a supervisor switches it on:"
            " concord assistant STUDY --on --as SUPERVISOR"
        )
    return settings


def learning_source(workspace: Workspace, settings: AssistantSettings) -> str:
    """ "own" while the study is blind, whatever was set; "consensus" (own and consensus) only when allowed
    and nothing is hidden any more."""
    if workspace.settings().blind_now or settings.learn_from != "consensus":
        return "own"
    return "consensus"


# -------------------------------------------------------------------------------- what is learned


@dataclass(frozen=True)
class _Turn:
    id: int
    transcript_id: int
    number: int
    role: str
    start: int
    end: int
    text: str


def _turns(session: Session, transcript_ids: Sequence[int] | None = None) -> dict[int, list[_Turn]]:
    """Turns with their text, in order, by transcript."""
    query = select(Transcript.id, Transcript.text)
    if transcript_ids is not None:
        query = query.where(Transcript.id.in_(list(transcript_ids)))
    texts: dict[int, str] = {row[0]: row[1] for row in session.execute(query).all()}
    turn_query = select(Turn.id, Turn.transcript_id, Turn.number, Turn.speaker_role, Turn.char_start, Turn.char_end)
    if transcript_ids is not None:
        turn_query = turn_query.where(Turn.transcript_id.in_(list(transcript_ids)))
    result: dict[int, list[_Turn]] = {}
    for row in session.execute(turn_query.order_by(Turn.transcript_id, Turn.number)).all():
        text = texts.get(row.transcript_id, "")
        result.setdefault(row.transcript_id, []).append(
            _Turn(
                row.id,
                row.transcript_id,
                row.number,
                row.speaker_role,
                row.char_start,
                row.char_end,
                text[row.char_start : row.char_end],
            )
        )
    return result


def _codes_by_turn(turns: list[_Turn], spans: list[tuple[int, int, int]]) -> list[set[int]]:
    """Which codes touch each turn: a coding touches a turn when they share a character."""
    found: list[set[int]] = [set() for _ in turns]
    for code_id, start, end in spans:
        for position, turn in enumerate(turns):
            if turn.start < end and start < turn.end:
                found[position].add(code_id)
            elif turn.start >= end:
                break
    return found


def _layer_spans(session: Session, *, coder_id: int | None, consensus: bool) -> dict[int, list[tuple[int, int, int]]]:
    query = select(Coding.transcript_id, Coding.code_id, Coding.start_offset, Coding.end_offset).where(
        Coding.deleted_at.is_(None)
    )
    if consensus:
        query = query.where(Coding.phase == "consensus")
    else:
        query = query.where(Coding.phase == "independent", Coding.coder_id == coder_id)
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for row in session.execute(query.order_by(Coding.transcript_id, Coding.start_offset)).all():
        spans.setdefault(row.transcript_id, []).append((row.code_id, row.start_offset, row.end_offset))
    return spans


def _labelled_until(turns: list[_Turn], codes: list[set[int]], *, done: bool, reviewed: int) -> int:
    """How many turns of a transcript say something: all of a finished one; else up to the furthest turn
    the person read or coded (a turn they have not reached yet is not a "no")."""
    if done:
        return len(turns)
    last_coded = max((i + 1 for i, found in enumerate(codes) if found), default=0)
    reached = sum(1 for turn in turns if turn.number <= reviewed)
    return max(last_coded, reached)


def _examples(session: Session, actor: Actor, source: str, usable: set[int]) -> tuple[list[Any], list[str]]:
    from concord.analysis.suggest import Example, units_of

    own = _layer_spans(session, coder_id=actor.id, consensus=False)
    progress = {
        row.transcript_id: row
        for row in session.scalars(select(TranscriptProgress).where(TranscriptProgress.coder_id == actor.id))
    }
    rejections = session.execute(
        select(SuggestionRejection.turn_id, SuggestionRejection.code_id).where(SuggestionRejection.coder_id == actor.id)
    ).all()
    rejected_turns: dict[int, set[int]] = {}
    for turn_id, code_id in rejections:
        if code_id in usable:
            rejected_turns.setdefault(turn_id, set()).add(code_id)
    layers: list[tuple[dict[int, list[tuple[int, int, int]]], bool]] = [(own, False)]
    consensus_done: set[int] = set()
    if source == "consensus":
        layers.append((_layer_spans(session, coder_id=None, consensus=True), True))
        consensus_done = set(session.scalars(select(Transcript.id).where(Transcript.phase == "consensus_done")).all())
    wanted = (
        set(own)
        | set(progress)
        | set(layers[-1][0])
        | set(session.scalars(select(Turn.transcript_id).where(Turn.id.in_(list(rejected_turns)))).all())
    )
    turns_of = _turns(session, sorted(wanted))
    examples: list[Any] = []
    for layer, is_consensus in layers:
        for transcript_id, spans in sorted(layer.items()):
            turns = turns_of.get(transcript_id, [])
            codes = [found & usable for found in _codes_by_turn(turns, [s for s in spans if s[0] in usable])]
            units = units_of([(turn.text, turn.role) for turn in turns], codes)
            if is_consensus:
                done, reviewed = transcript_id in consensus_done, 0
            else:
                row = progress.get(transcript_id)
                done, reviewed = bool(row and row.done_at), (row.turns_reviewed if row else 0)
            until = _labelled_until(turns, codes, done=done, reviewed=reviewed)
            examples += [Example(units[i], frozenset(codes[i])) for i in range(until) if turns[i].text.strip()]
    # Turns the person read without coding anything are "no" for every code, even with no codings in them.
    for transcript_id, row in progress.items():
        if transcript_id in own or not (row.done_at or row.turns_reviewed):
            continue
        turns = turns_of.get(transcript_id, [])
        units = units_of([(turn.text, turn.role) for turn in turns])
        until = _labelled_until(turns, [set() for _ in turns], done=bool(row.done_at), reviewed=row.turns_reviewed)
        examples += [Example(units[i], frozenset()) for i in range(until) if turns[i].text.strip()]
    for transcript_id, turns in turns_of.items():
        own_codes = _codes_by_turn(turns, [s for s in own.get(transcript_id, []) if s[0] in usable])
        units = units_of([(turn.text, turn.role) for turn in turns], own_codes)
        for position, turn in enumerate(turns):
            for code_id in rejected_turns.get(turn.id, ()):
                examples.append(Example(units[position], frozenset(), frozenset({code_id}), REJECTION_WEIGHT))
    texts = [turn.text for turns in turns_of.values() for turn in turns]
    return examples, texts


# ------------------------------------------------------------------------------------ the models

_MODELS: dict[tuple[str, int, str, int], tuple[tuple[Any, ...], Any]] = {}
_VECTORS: dict[str, tuple[tuple[Any, ...], Any, list[_Turn], Any]] = {}
_LOCK = threading.Lock()


def _forget_models() -> None:
    with _LOCK:
        _MODELS.clear()


def _fingerprint(session: Session, actor: Actor, source: str) -> tuple[Any, ...]:
    """Changes whenever what the model learns from changes: then it is trained again."""
    own = session.execute(
        select(func.count(), func.max(Coding.id), func.max(Coding.changed_at)).where(
            Coding.coder_id == actor.id, Coding.phase == "independent"
        )
    ).one()
    deleted = session.scalar(select(func.count()).where(Coding.coder_id == actor.id, Coding.deleted_at.is_not(None)))
    rejected = session.execute(
        select(func.count(), func.max(SuggestionRejection.id)).where(SuggestionRejection.coder_id == actor.id)
    ).one()
    progress = session.execute(
        select(func.sum(TranscriptProgress.turns_reviewed), func.count(TranscriptProgress.done_at)).where(
            TranscriptProgress.coder_id == actor.id
        )
    ).one()
    consensus: tuple[Any, ...] = ()
    if source == "consensus":
        consensus = tuple(
            session.execute(
                select(func.count(), func.max(Coding.id), func.max(Coding.changed_at)).where(
                    Coding.phase == "consensus", Coding.deleted_at.is_(None)
                )
            ).one()
        )
    return (tuple(own), deleted, tuple(rejected), tuple(progress), consensus)


def _model(workspace: Workspace, actor: Actor, settings: AssistantSettings, usable: set[int]) -> tuple[Any, int]:
    from concord.analysis.suggest import train

    source = learning_source(workspace, settings)
    key = (workspace.store.target, actor.id, source, settings.min_codings)
    with workspace.store.reader() as session:
        stamp = (_fingerprint(session, actor, source), tuple(sorted(usable)))
        with _LOCK:
            cached = _MODELS.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[1].examples
        examples, texts = _examples(session, actor, source, usable)
    model = train(examples, min_examples=settings.min_codings, idf_texts=texts)
    with _LOCK:
        _MODELS[key] = (stamp, model)
    return model, len(examples)


def _code_paths(codes: Sequence[CodeInfo]) -> dict[int, tuple[str, ...]]:
    return {code.id: code.path or (code.name,) for code in codes}


def suggest(
    workspace: Workspace,
    transcript: str | int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    per_turn: int = 2,
) -> Suggestions:
    """Codes the person would likely give the turns of ``transcript`` they have not coded yet.

    Learned from their own codings (see the module text for when the consensus layer joins them); a turn
    they coded, and a code they turned down for a turn, are never proposed."""
    from concord.analysis.suggest import units_of
    from concord.services.transcripts import find_transcript

    if not 0.0 <= threshold <= 1.0:
        raise ConcordError(f"--threshold {threshold}: give a confidence between 0 and 1")
    actor = workspace.require_actor()
    settings = require_on(workspace)
    codes = visible_codes(workspace)
    paths = _code_paths(codes)
    model, examples = _model(workspace, actor, settings, set(paths))
    source = "own" if learning_source(workspace, settings) == "own" else "own and consensus"
    learned = tuple((code_id, model.codes[code_id].positives) for code_id in model.code_ids)
    with workspace.store.reader() as session:
        row = find_transcript(session, transcript)
        key, transcript_id = row.key, row.id
        turns = _turns(session, [transcript_id]).get(transcript_id, [])
        own = _codes_by_turn(turns, _layer_spans(session, coder_id=actor.id, consensus=False).get(transcript_id, []))
        rejected = set(
            session.execute(
                select(SuggestionRejection.turn_id, SuggestionRejection.code_id).where(
                    SuggestionRejection.coder_id == actor.id, SuggestionRejection.transcript_id == transcript_id
                )
            ).all()
        )
    if not learned:
        note = f"no code has been given to {settings.min_codings} turns yet: nothing to suggest"
        return Suggestions((), (), source, examples, note)
    units = units_of([(turn.text, turn.role) for turn in turns], [found & set(paths) for found in own])
    skip = [(i, code_id) for i, turn in enumerate(turns) for (turn_id, code_id) in rejected if turn_id == turn.id]
    found = model.suggest(units, threshold=threshold, per_turn=per_turn, skip=skip)
    suggestions = tuple(
        TurnSuggestion(
            transcript_id=transcript_id,
            transcript=key,
            turn_id=turns[s.index].id,
            turn=turns[s.index].number,
            start=turns[s.index].start,
            end=turns[s.index].end,
            code_id=s.code_id,
            code_path=paths[s.code_id],
            confidence=round(s.confidence, 4),
        )
        for s in found
        # Uncoded turns only, with words in them.
        if not own[s.index] and turns[s.index].text.strip()
    )
    return Suggestions(suggestions, learned, source, examples)


def accept(workspace: Workspace, suggestion: TurnSuggestion) -> CodingInfo:
    """Code the suggested turn with the suggested code, marked as accepted from a suggestion (u undoes it)."""
    from concord.services.coding import apply_code

    require_on(workspace)
    return apply_code(
        workspace,
        suggestion.transcript_id,
        suggestion.code_id,
        suggestion.start,
        suggestion.end,
        assisted_by="suggestion",
    )


def code_similar(workspace: Workspace, passage: SimilarPassage, code_id: int) -> CodingInfo:
    """Code a passage found by "more like this"; marked as such."""
    from concord.services.coding import apply_code

    require_on(workspace)
    return apply_code(workspace, passage.transcript_id, code_id, passage.start, passage.end, assisted_by="similar")


def reject(workspace: Workspace, suggestion: TurnSuggestion) -> None:
    """Turn a suggestion down: it is not proposed for that turn again, and the model learns from it."""
    actor = workspace.require_actor()
    require_on(workspace)
    with workspace.store.session() as session:
        turn = session.get(Turn, suggestion.turn_id)
        if turn is None or turn.transcript_id != suggestion.transcript_id:
            raise NotFound(f"no turn {suggestion.turn} in transcript {suggestion.transcript!r}")
        exists = session.scalar(
            select(SuggestionRejection.id).where(
                SuggestionRejection.coder_id == actor.id,
                SuggestionRejection.turn_id == suggestion.turn_id,
                SuggestionRejection.code_id == suggestion.code_id,
            )
        )
        if exists is not None:
            return
        row = SuggestionRejection(
            coder_id=actor.id,
            transcript_id=suggestion.transcript_id,
            turn_id=suggestion.turn_id,
            code_id=suggestion.code_id,
            confidence=suggestion.confidence,
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor.name,
            "suggestion.reject",
            "suggestion",
            row.id,
            transcript_id=suggestion.transcript_id,
            turn=suggestion.turn,
            code_id=suggestion.code_id,
            confidence=suggestion.confidence,
        )


# ---------------------------------------------------------------------------------- more like this


def _passages(workspace: Workspace) -> tuple[Any, list[_Turn], Any]:
    """Every turn of the study as a vector (cached until turns are added or removed)."""
    from concord.analysis.suggest import TurnVectorizer

    with workspace.store.reader() as session:
        stamp = tuple(session.execute(select(func.count(Turn.id), func.max(Turn.id), func.sum(Turn.char_end))).one())
        with _LOCK:
            cached = _VECTORS.get(workspace.store.target)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2], cached[3]
        keys: dict[int, str] = {row[0]: row[1] for row in session.execute(select(Transcript.id, Transcript.key)).all()}
        turns = [turn for _, found in sorted(_turns(session).items(), key=lambda i: keys[i[0]]) for turn in found]
    vectorizer = TurnVectorizer().fit_idf([turn.text for turn in turns] or [""])
    matrix = vectorizer.text_vectors([turn.text for turn in turns])
    with _LOCK:
        _VECTORS[workspace.store.target] = (stamp, vectorizer, turns, (matrix, keys))
    return vectorizer, turns, (matrix, keys)


def similar(
    workspace: Workspace,
    text: str,
    *,
    exclude: Sequence[tuple[int, int, int]] = (),
    limit: int = 20,
) -> list[SimilarPassage]:
    """The turns across the study's transcripts most like ``text`` (cosine over word and character
    n-grams), best first; ``exclude``: (transcript id, start, end) spans to leave out (the passage asked
    about, turns already coded). Every coder may open every transcript, so every turn is a candidate;
    no coding of anyone's is read."""
    from concord.analysis.suggest import keyword_window

    workspace.require_actor()
    require_on(workspace)
    if not text.strip():
        raise ConcordError("nothing to compare: the passage has no words")
    vectorizer, turns, (matrix, keys) = _passages(workspace)
    left_out = {
        i
        for i, turn in enumerate(turns)
        for (t, s, e) in exclude
        if turn.transcript_id == t and turn.start < e and s < turn.end
    }
    target = vectorizer.text_vectors([text])
    import numpy as np

    scores = np.asarray((matrix @ target.T).todense()).ravel() if turns else np.zeros(0)
    for i in left_out:
        scores[i] = -1.0
    order = np.argsort(-scores, kind="stable")[:limit]
    found = []
    for i in order:
        if scores[i] < 0.05 or not turns[i].text.strip():
            continue
        turn = turns[int(i)]
        left, keyword, right = keyword_window(text, turn.text)
        found.append(
            SimilarPassage(
                transcript_id=turn.transcript_id,
                transcript=keys[turn.transcript_id],
                turn_id=turn.id,
                turn=turn.number,
                speaker_role=turn.role,
                start=turn.start,
                end=turn.end,
                score=round(float(scores[i]), 4),
                left=left,
                keyword=keyword,
                right=right,
            )
        )
    return found


# ------------------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class AssistedCounts:
    codings: int
    suggestion: int
    similar: int

    @property
    def assisted(self) -> int:
        return self.suggestion + self.similar


def assisted_counts(workspace: Workspace) -> AssistedCounts:
    """Live independent codings, and how many were made with the assistant: everyone's for a supervisor
    (or once the study is unblinded), the person's own while the study is blind for them."""
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        query = select(Coding.assisted_by, func.count()).where(
            Coding.deleted_at.is_(None), Coding.phase == "independent"
        )
        if blind:
            query = query.where(Coding.coder_id == (actor.id if actor else -1))
        counts: dict[str | None, int] = {
            row[0]: row[1] for row in session.execute(query.group_by(Coding.assisted_by)).all()
        }
    return AssistedCounts(
        codings=sum(counts.values()), suggestion=counts.get("suggestion", 0), similar=counts.get("similar", 0)
    )


def methods_text(workspace: Workspace) -> str:
    """A paragraph for a methods section: what suggested codes, from what, and how much was accepted."""
    settings = assistant_settings(workspace)
    counts = assisted_counts(workspace)
    whose = "the" if not workspace.blind_for_actor() else "your"
    if not settings.on and counts.assisted == 0:
        return (
            "No coding assistant was used: every coding was made by hand "
            f"({whose} {counts.codings} coding{'s' if counts.codings != 1 else ''})."
        )
    consensus = (
        " and, once the study was unblinded, on the consensus layer" if settings.learn_from == "consensus" else ""
    )
    state = "is on" if settings.on else "was used and is now off"
    return (
        f"Codes were suggested by Concord's local coding assistant ({METHOD}), trained only on each coder's own"
        f" codings while the study was blind{consensus}; a code was suggested once the coder had applied it to"
        f" at least {settings.min_codings} turns, and no text left the study's machine. The assistant {state}"
        f"{f' (set by {settings.changed_by}, {settings.changed_at})' if settings.changed_by else ''}."
        f" {counts.suggestion} of {whose} {counts.codings} codings were accepted from suggestions"
        f' and {counts.similar} were coded from "more like this" lists.'
    )
