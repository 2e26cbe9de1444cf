"""What the tables and reports of a study are made from, gathered under the blind rule.

The rules applied here (the exporters only count and format what they are given):

* Layer: the consensus layer by default, or one coder's independent codings
  (``layer=NAME``). While the study is blind, a coder or a caller without a name
  may read only their own layer: the consensus layer and other coders' layers are
  refused with PermissionDenied, as in ``services.coding.list_codings``.
* Scores, dyads, session numbers and blinded attributes (the high/low group) are
  handed out only when the actor may see them: a supervisor or admin, or anyone
  after unblinding. Otherwise ``blind`` is True, the scores table is empty, the
  dyad and session columns are empty and the blinded attributes are left out.
* Codes: the live codes (not merged away, not retired) the actor may see. A coding
  on a code that was merged counts for the code it was merged into; a coding on a
  retired code is left out.

Everything is read with a handful of set-based queries (one per table), never one
per transcript, so a study of a thousand sessions is read in well under a second.
Turns and transcript text are read only when the export needs them (words and turns
counts, excerpts), and then only for the transcripts that have codings.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

import numpy as np
import pandas as pd
from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from concord.exporters.records import COVERAGE_RULES, LABELS, CodeNode, Coverage, MemoNote, ResultsData
from concord.services.audit import record
from concord.services.rights import CONSENSUS_LAYER, require_export_layer_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    ConsensusSource,
    Dyad,
    Memo,
    QuestionnaireScore,
    Study,
    TherapySession,
    Transcript,
    TranscriptProgress,
    Turn,
)

CONSENSUS = CONSENSUS_LAYER
TURN_DETAIL = ("none", "bounds", "text")
TURN_COLUMNS = ["turn_id", "transcript_id", "char_start", "char_end", "nonverbal"]


def _code_nodes(
    session: Session, workspace: Workspace, blind: bool, codebooks: Iterable[str] | None, labels: str = "name"
) -> tuple[list[CodeNode], dict[int, int]]:
    """The live codes in tree order, and a map from every code id to the live code its codings count for.

    A code is shown by its name, as the workbench shows it; ``labels="publication"`` shows its
    publication label instead (the name where it has none)."""
    books = dict(session.execute(select(Codebook.id, Codebook.key)).all())
    wanted = None
    if codebooks:
        wanted = {key.strip() for key in codebooks if key.strip()}
        missing = wanted - set(books.values())
        if missing:
            raise NotFound(f"no codebook {', '.join(sorted(missing))} in this study")
    actor = workspace.actor
    rows = session.execute(
        select(
            Code.id,
            Code.codebook_id,
            Code.parent_id,
            Code.name,
            Code.label,
            Code.definition,
            Code.pole,
            Code.high_pole,
            Code.origin,
            Code.creator_id,
            Code.position,
            Code.merged_into_id,
            Code.retired_at,
        )
    ).all()
    merged_into = {r.id: r.merged_into_id for r in rows if r.merged_into_id}
    live = {
        r.id: r
        for r in rows
        if r.merged_into_id is None
        and r.retired_at is None
        and (wanted is None or books[r.codebook_id] in wanted)
        and (not blind or r.origin == "deductive" or (actor is not None and r.creator_id == actor.id))
    }
    children: dict[int | None, list] = {}
    for row in live.values():
        parent = row.parent_id if row.parent_id in live else None
        children.setdefault(parent, []).append(row)
    for siblings in children.values():
        siblings.sort(key=lambda r: (r.codebook_id, r.position, r.id))

    nodes: list[CodeNode] = []

    def walk(parent: int | None, path: tuple[str, ...], depth: int) -> None:
        for row in children.get(parent, ()):
            label = " ".join((row.label or row.name if labels == "publication" else row.name).split())
            node_path = path + (label,)
            nodes.append(
                CodeNode(
                    id=row.id,
                    codebook=books[row.codebook_id],
                    parent_id=parent,
                    name=row.name,
                    label=label,
                    path=node_path,
                    depth=depth,
                    definition=row.definition,
                    pole=row.pole,
                    high_pole=row.high_pole,
                )
            )
            walk(row.id, node_path, depth + 1)

    walk(None, (), 0)

    resolved: dict[int, int] = {}
    for code_id in (r.id for r in rows):
        seen, current = set(), code_id
        while current in merged_into and current not in seen:
            seen.add(current)
            current = merged_into[current]
        if current in live:
            resolved[code_id] = current
    return nodes, resolved


def _units(session: Session, blind: bool) -> pd.DataFrame:
    query = (
        select(
            Transcript.id,
            Transcript.key,
            Transcript.kind,
            Transcript.perspective,
            Transcript.session_id,
            TherapySession.dyad_id,
            Dyad.key,
            TherapySession.number,
        )
        .outerjoin(TherapySession, TherapySession.id == Transcript.session_id)
        .outerjoin(Dyad, Dyad.id == TherapySession.dyad_id)
        .order_by(Transcript.key)
    )
    frame = _frame(
        session,
        query,
        ["transcript_id", "transcript", "kind", "perspective", "session_id", "dyad_id", "dyad", "session"],
    )
    frame["transcript_id"] = frame["transcript_id"].astype("int64")
    if blind:
        for column in ("session_id", "dyad_id", "dyad", "session"):
            frame[column] = None
    for column in ("session_id", "dyad_id", "session"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _frame(session: Session, query, names: list[str]) -> pd.DataFrame:
    """A query's rows as a DataFrame, column by column (much faster than row objects through the ORM)."""
    rows = session.connection().execute(query).fetchall()
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
    return pd.DataFrame(dict(zip(names, zip(*rows))))


def _texts(session: Session, transcript_ids: list[int]) -> dict[int, str]:
    query = select(Transcript.id, Transcript.text)
    if len(transcript_ids) <= 500:
        query = query.where(Transcript.id.in_(transcript_ids))
    wanted = set(transcript_ids)
    return {tid: text for tid, text in session.connection().execute(query) if tid in wanted}


def _int_frame(session: Session, query, names: list[str]) -> pd.DataFrame:
    """An all-integer query as a DataFrame, read straight into one array."""
    rows = session.connection().execute(query).fetchall()
    values = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(names) * len(rows))
    return pd.DataFrame(values.reshape(-1, len(names)), columns=names)


def _codings(session: Session, layer: str, resolved: dict[int, int], with_memos: bool) -> pd.DataFrame:
    query = select(Coding.id, Coding.transcript_id, Coding.code_id, Coding.start_offset, Coding.end_offset).where(
        Coding.deleted_at.is_(None)
    )
    if layer == CONSENSUS:
        query = query.where(Coding.phase == "consensus")
    else:
        layer_coder = select(Coder.id).where(Coder.name == layer).scalar_subquery()
        query = query.where(Coding.phase == "independent", Coding.coder_id == layer_coder)
    frame = _int_frame(
        session,
        query.order_by(Coding.transcript_id, Coding.start_offset, Coding.id),
        ["coding_id", "transcript_id", "code_id", "start", "end"],
    )
    frame["code_id"] = frame["code_id"].map(resolved)
    frame = frame[frame["code_id"].notna()].reset_index(drop=True)
    frame["code_id"] = frame["code_id"].astype("int64")
    frame["coder"] = None
    frame["memo"] = None
    if with_memos and len(frame):
        # The note a coder may keep on a coding itself, with who wrote it; few codings have one.
        notes = (
            session.connection()
            .execute(
                select(Coding.id, Coder.name, Coding.memo)
                .join(Coder, Coder.id == Coding.coder_id)
                .where(Coding.memo.is_not(None), Coding.deleted_at.is_(None))
            )
            .fetchall()
        )
        by_id = {coding_id: (coder, memo) for coding_id, coder, memo in notes}
        found = [by_id.get(c, (None, None)) for c in frame["coding_id"].tolist()]
        frame["coder"] = [coder for coder, _ in found]
        frame["memo"] = [memo for _, memo in found]
    return frame


def _turns(session: Session, transcript_ids: list[int], texts: dict[int, str] | None) -> pd.DataFrame:
    """Turn boundaries of the given transcripts; with ``texts`` also their numbers, speakers and text.

    Counting needs only the boundaries, read as one integer array (the fast path for
    a hundred thousand turns); excerpts need the rest for far fewer transcripts.
    """
    wanted = set(transcript_ids)
    annotated = select(Turn.id, Turn.nonverbal).where(func.length(cast(Turn.nonverbal, String)) > 2)
    if texts is None:
        query = select(Turn.id, Turn.transcript_id, Turn.char_start, Turn.char_end)
        if len(transcript_ids) <= 500:
            query = query.where(Turn.transcript_id.in_(transcript_ids))
            annotated = annotated.where(Turn.transcript_id.in_(transcript_ids))
        frame = _int_frame(
            session,
            query.order_by(Turn.transcript_id, Turn.char_start),
            ["turn_id", "transcript_id", "char_start", "char_end"],
        )
    else:
        names = ["turn_id", "transcript_id", "number", "speaker_role", "speaker_label", "char_start", "char_end"]
        query = select(
            Turn.id,
            Turn.transcript_id,
            Turn.number,
            Turn.speaker_role,
            Turn.speaker_label,
            Turn.char_start,
            Turn.char_end,
        )
        if len(transcript_ids) <= 500:
            query = query.where(Turn.transcript_id.in_(transcript_ids))
            annotated = annotated.where(Turn.transcript_id.in_(transcript_ids))
        frame = _frame(session, query.order_by(Turn.transcript_id, Turn.char_start), names)
        for column in ("turn_id", "transcript_id", "number", "char_start", "char_end"):
            frame[column] = frame[column].astype("int64")
    frame = frame[frame["transcript_id"].isin(wanted)].reset_index(drop=True)
    # Most turns carry no non-verbal annotation: only the ones that do are read and decoded.
    nonverbal = {turn_id: ranges for turn_id, ranges in session.connection().execute(annotated) if ranges}
    frame["nonverbal"] = frame["turn_id"].map(nonverbal) if nonverbal else None
    if texts is not None:
        frame["text"] = [
            texts[t][a:b] for t, a, b in zip(frame["transcript_id"], frame["char_start"], frame["char_end"])
        ]
    return frame


SCORE_COLUMNS = ["session_id", "dyad_id", "session", "instrument", "respondent", "total", "subscales", "items"]


def _scores(session: Session | None) -> pd.DataFrame:
    if session is None:
        return pd.DataFrame([], columns=SCORE_COLUMNS)
    query = (
        select(
            QuestionnaireScore.session_id,
            TherapySession.dyad_id,
            TherapySession.number,
            QuestionnaireScore.instrument,
            QuestionnaireScore.respondent,
            QuestionnaireScore.total,
            QuestionnaireScore.subscales,
            QuestionnaireScore.items,
        )
        .join(TherapySession, TherapySession.id == QuestionnaireScore.session_id)
        .order_by(QuestionnaireScore.instrument, QuestionnaireScore.respondent, QuestionnaireScore.session_id)
    )
    return _frame(session, query, SCORE_COLUMNS)


def _attributes(session: Session, hide_blinded: bool) -> pd.DataFrame:
    query = select(
        Attribute.target_kind,
        Attribute.target_id,
        Attribute.name,
        Attribute.value,
        Attribute.value_type,
        Attribute.blinded,
    )
    if hide_blinded:
        query = query.where(Attribute.blinded.is_(False))
    return _frame(
        session, query.order_by(Attribute.name), ["target_kind", "target_id", "name", "value", "value_type", "blinded"]
    )


def _memos(
    session: Session, workspace: Workspace, blind: bool, codings: pd.DataFrame, node_ids: list[int]
) -> tuple[MemoNote, ...]:
    """Memos on the exported codings and codes: everyone's, or only the actor's own while blind."""
    actor = workspace.actor
    if blind and actor is None:
        return ()
    query = (
        select(Coder.name, Memo.target_kind, Memo.target_id, Memo.text)
        .join(Coder, Coder.id == Memo.coder_id)
        .where(Memo.deleted_at.is_(None), Memo.target_kind.in_(("coding", "code")))
    )
    if blind:
        query = query.where(Memo.coder_id == actor.id)
    coding_ids = {int(i) for i in codings["coding_id"]}
    codes = set(node_ids)
    notes = []
    for coder, kind, target, text in session.execute(query.order_by(Memo.id)):
        if (kind == "coding" and target in coding_ids) or (kind == "code" and target in codes):
            notes.append(MemoNote(coder=coder, target_kind=kind, target_id=int(target), text=text))
    return tuple(notes)


def _consensus_source_memos(session: Session, codings: pd.DataFrame) -> tuple[MemoNote, ...]:
    """The coders' memos behind consensus codings: the note on each independent coding a consensus
    coding was made from, and memos written about those codings, shown on the consensus coding
    with the name of the coder who wrote them (the consensus layer has few memos of its own)."""
    consensus_ids = {int(i) for i in codings["coding_id"]}
    if not consensus_ids:
        return ()
    sources = session.execute(
        select(ConsensusSource.consensus_coding_id, Coding.id, Coder.name, Coding.memo)
        .join(Coding, Coding.id == ConsensusSource.independent_coding_id)
        .join(Coder, Coder.id == Coding.coder_id)
        .where(ConsensusSource.consensus_coding_id.in_(consensus_ids))
        .order_by(ConsensusSource.consensus_coding_id, Coding.id)
    ).all()
    consensus_of: dict[int, list[int]] = {}
    notes: list[MemoNote] = []
    seen: set[tuple[int, str, str]] = set()

    def add(consensus_id: int, coder: str, text: str) -> None:
        if (consensus_id, coder, text) not in seen:
            seen.add((consensus_id, coder, text))
            notes.append(MemoNote(coder=coder, target_kind="coding", target_id=consensus_id, text=text))

    for consensus_id, independent_id, coder, memo in sources:
        consensus_of.setdefault(independent_id, []).append(consensus_id)
        if memo:
            add(consensus_id, coder, memo)
    if consensus_of:
        written = session.execute(
            select(Memo.target_id, Coder.name, Memo.text)
            .join(Coder, Coder.id == Memo.coder_id)
            .where(
                Memo.deleted_at.is_(None),
                Memo.target_kind == "coding",
                Memo.target_id.in_(list(consensus_of)),
            )
            .order_by(Memo.id)
        ).all()
        for independent_id, coder, text in written:
            for consensus_id in consensus_of[independent_id]:
                add(consensus_id, coder, text)
    return tuple(notes)


def gather(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    codebooks: Iterable[str] | None = None,
    codes: Iterable[str] | None = None,
    spans: bool = False,
    turns: str = "none",
    with_memos: bool = False,
    purpose: str = "export",
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> ResultsData:
    """Everything a frequency table, representativeness table or excerpt report needs, and no more.

    ``codes`` keeps only the named codes (name, label or id) and their descendants.
    ``spans`` adds the coded text of each coding (column ``text``; needed to count words).
    ``turns``: "none", "bounds" (the turns of the coded transcripts, to count turns and to
    leave out non-verbal annotations) or "text" (also each turn's text, for excerpts).
    ``covered``: which transcripts the layer covers, "done" (marked done by the coder; for the
    consensus layer, consensus finished) or "coded" (at least one coding in the layer); only their
    codings are read, unless ``include_uncoded`` counts every transcript (see ``Coverage``).
    ``labels``: "name" (the code's name, as the workbench shows it) or "publication".
    """
    if turns not in TURN_DETAIL:
        raise ValueError(f"turns must be one of {', '.join(TURN_DETAIL)}")
    if covered not in COVERAGE_RULES:
        raise ConcordError(f"unknown coverage {covered!r}; choose one of {', '.join(COVERAGE_RULES)}")
    if labels not in LABELS:
        raise ConcordError(f"unknown labels {labels!r}; choose one of {', '.join(LABELS)}")
    settings = workspace.settings()
    blind = workspace.blind_for_actor(settings)
    layer = require_export_layer_rights(workspace, layer, blind=blind)
    with workspace.store.reader() as session:
        title = session.get(Study, 1).title
        if layer != CONSENSUS and session.scalar(select(Coder.id).where(Coder.name == layer)) is None:
            raise NotFound(f"no layer {layer!r}: give 'consensus' or a coder's name (see: concord coder list)")
        nodes, resolved = _code_nodes(session, workspace, blind, codebooks, labels)
        outline_only: frozenset[int] = frozenset()
        if codes:
            nodes, outline_only = select_codes(nodes, codes)
        kept = {node.id for node in nodes} - outline_only
        resolved = {code_id: live for code_id, live in resolved.items() if live in kept}
        units = _units(session, blind)
        codings = _codings(session, layer, resolved, with_memos)
        coverage = _coverage(session, layer, covered, include_uncoded)
        units["covered"] = units["transcript_id"].isin(coverage.transcripts)
        if not include_uncoded:
            codings = codings[codings["transcript_id"].isin(coverage.transcripts)].reset_index(drop=True)
        coded = sorted(set(codings["transcript_id"].tolist()))
        texts = _texts(session, coded) if spans or turns == "text" else None
        if spans:
            codings["text"] = [
                texts[t][a:b] for t, a, b in zip(codings["transcript_id"], codings["start"], codings["end"])
            ]
        turn_frame = (
            _turns(session, coded, texts if turns == "text" else None)
            if turns != "none"
            else pd.DataFrame(columns=TURN_COLUMNS)
        )
        scores = _scores(None if blind else session)
        attributes = _attributes(session, hide_blinded=blind)
        memos = _memos(session, workspace, blind, codings, [n.id for n in nodes]) if with_memos else ()
        if with_memos and layer == CONSENSUS and not blind:
            memos += _consensus_source_memos(session, codings)
    with workspace.store.session() as session:
        # Who exported which layer, and whether the blind applied, belongs in the blinding audit.
        record(session, workspace.actor_label, f"export.{purpose}", "study", 1, layer=layer, blind=blind)
    return ResultsData(
        title=title,
        layer=layer,
        actor=workspace.actor_label,
        blind=blind,
        codes=tuple(nodes),
        units=units,
        codings=codings,
        turns=turn_frame,
        scores=scores,
        attributes=attributes,
        memos=memos,
        outline_only=outline_only,
        coverage=coverage,
    )


def _coverage(session: Session, layer: str, rule: str, include_uncoded: bool) -> Coverage:
    """The transcripts a layer covers (see ``Coverage``)."""
    if rule == "coded":
        query = select(Coding.transcript_id).where(Coding.deleted_at.is_(None)).distinct()
        if layer == CONSENSUS:
            query = query.where(Coding.phase == "consensus")
            description = "transcripts with consensus codings"
        else:
            query = query.join(Coder, Coder.id == Coding.coder_id).where(
                Coding.phase == "independent", Coder.name == layer
            )
            description = f"transcripts {layer} coded"
    elif layer == CONSENSUS:
        query = select(Transcript.id).where(Transcript.phase == "consensus_done")
        description = "consensus finished"
    else:
        query = (
            select(TranscriptProgress.transcript_id)
            .join(Coder, Coder.id == TranscriptProgress.coder_id)
            .where(Coder.name == layer, TranscriptProgress.done_at.is_not(None))
        )
        description = f"marked done by {layer}"
    ids = frozenset(int(t) for t in session.scalars(query))
    return Coverage(rule=rule, description=description, transcripts=ids, include_uncoded=include_uncoded)


def select_codes(nodes: list[CodeNode], wanted: Iterable[str]) -> tuple[list[CodeNode], frozenset[int]]:
    """The named codes (by name, label, path "A > B" or id) with their descendants, plus their
    ancestors as an outline only (returned apart), so a report keeps theme -> sub-theme -> code."""
    wanted = [w.strip() for w in wanted if w and w.strip()]
    chosen: set[int] = set()
    for text in wanted:
        folded = text.casefold()
        hits = [
            n
            for n in nodes
            if str(n.id) == text
            or n.name.casefold() == folded
            or n.label.casefold() == folded
            or n.path_name.casefold() == folded
        ]
        if not hits:
            raise NotFound(f"no code named {text!r} among the codes you can see")
        chosen.update(n.id for n in hits)
    by_id = {n.id: n for n in nodes}
    keep = set()
    for node in nodes:
        current, line = node, []
        while current is not None:
            line.append(current.id)
            if current.id in chosen:
                keep.update(line)
                break
            current = by_id.get(current.parent_id) if current.parent_id else None
    outline = set()
    for node_id in keep:
        current = by_id[node_id]
        while current.parent_id in by_id:
            if current.parent_id not in keep:
                outline.add(current.parent_id)
            current = by_id[current.parent_id]
    if not keep:
        raise ConcordError("no codes selected")
    return [n for n in nodes if n.id in keep or n.id in outline], frozenset(outline)
