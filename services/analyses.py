"""The analyses researchers run after counting: co-occurrence, code queries, themes against scores, memos.

Each reads the study through ``services.results.gather``, so the same two rules hold as in every
export: the layer (the consensus layer, or one coder's codings; while the study is blind a coder gets
only their own) and coverage (only the transcripts the layer covers are searched and counted, see
``exporters.records.Coverage``). The statistics are in ``analysis`` (cooccurrence, code_query,
scores_link); the files are written by ``exporters.analyses``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from concord.analysis import code_query
from concord.analysis.cooccurrence import Cooccurrence, cooccurrence, parse_within
from concord.analysis.scoring import squash
from concord.exporters.analyses import (
    DOCUMENT_FORMATS,
    Block,
    cooccurrence_specs,
    heatmap_png,
    memo_blocks,
    query_report,
    scores_link_blocks,
    scores_link_specs,
    write_document,
)
from concord.exporters.excerpts import write_report
from concord.exporters.formats import format_of
from concord.exporters.frequencies import attribute_columns, blank_ranges, code_counts, count_words, natural_key
from concord.exporters.records import CodeNode, ResultsData
from concord.exporters.writers import write_tables
from concord.services.audit import record
from concord.services.reports import WrittenExport, export_meta
from concord.services.results import CONSENSUS, gather
from concord.services.rights import require_results_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound, PermissionDenied
from concord.storage.models import Code, Coder, Coding, Memo, Transcript, Turn

LEVELS = ("code", "subtheme", "theme")


def covered_transcripts(data: ResultsData) -> set[int]:
    """The transcripts the layer covers (every one with include_uncoded): the one place this module asks
    the coverage rule, which ``gather`` applied when it read the codings."""
    return {int(t) for t in data.units.loc[data.counted().to_numpy(), "transcript_id"]}


# ------------------------------------------------------------------------------------ shared


def _level_map(nodes: Sequence[CodeNode], level: str, outline_only: frozenset[int]) -> dict[int, int]:
    """Each code to the code it counts for at ``level``: itself ("code"), its theme ("theme"), or its
    ancestor one below the theme ("subtheme"; a theme stays itself)."""
    if level not in LEVELS:
        raise ConcordError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    by_id = {n.id: n for n in nodes}
    result = {}
    for node in nodes:
        if node.id in outline_only:
            continue
        if level == "code":
            result[node.id] = node.id
            continue
        depth = 0 if level == "theme" else 1
        current = node
        while current.depth > depth and current.parent_id in by_id:
            current = by_id[current.parent_id]
        result[node.id] = current.id
    return result


def _labels(nodes: Sequence[CodeNode]) -> dict[int, str]:
    """A code's label where it is unique among ``nodes``, its path where it is not."""
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.label] = counts.get(node.label, 0) + 1
    return {n.id: n.label if counts[n.label] == 1 else n.path_name for n in nodes}


def _group_values(data: ResultsData, attribute: str) -> dict[int, str]:
    """Per transcript, its value of ``attribute`` (as text); refused when the actor cannot see it."""
    attrs = attribute_columns(data)
    if attribute not in attrs.columns:
        if data.blind:
            raise PermissionDenied(
                f"the study is blind: the attribute {attribute!r} is hidden from you (or there is none)"
            )
        raise ConcordError(f"no attribute {attribute!r} on the transcripts, sessions or dyads")
    out = {}
    for tid, value in zip(attrs["transcript_id"], attrs[attribute]):
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            out[int(tid)] = _text(value)
    return out


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------------------------ co-occurrence


@dataclass(frozen=True)
class CooccurrenceGroup:
    name: str  # "all" or the group's value
    transcripts: int
    result: Cooccurrence


@dataclass(frozen=True)
class CooccurrenceTables:
    data: ResultsData
    codes: tuple[CodeNode, ...]  # rows and columns
    labels: dict[int, str]
    groups: tuple[CooccurrenceGroup, ...]
    within: str | int
    directed: bool
    by: str | None
    notes: tuple[str, ...]


def cooccurrence_tables(
    workspace: Workspace,
    *,
    layer: str = CONSENSUS,
    within: str | int = "turn",
    directed: bool = False,
    by: str | None = None,
    level: str = "code",
    codes: Iterable[str] | None = None,
    codebooks: Iterable[str] | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
    all_codes: bool = False,
) -> CooccurrenceTables:
    """The code x code matrices of one layer over the covered transcripts, for all of them or per group
    (``by`` names the attribute). Codes never applied are left out unless ``all_codes``."""
    try:
        within = parse_within(within)
    except ValueError as exc:
        raise ConcordError(str(exc)) from None
    if directed and (not isinstance(within, int) or within < 1):
        raise ConcordError("--directed needs --within N, a number of turns (1 or more)")
    data = gather(
        workspace,
        layer=layer,
        codes=list(codes or ()) or None,
        codebooks=codebooks or None,
        turns="bounds",
        purpose="cooccurrence",
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    groups_of = _group_values(data, by) if by else {}
    mapping = _level_map(data.codes, level, data.outline_only)
    codings = data.codings.assign(code_id=data.codings["code_id"].map(mapping))
    codings = codings[codings["code_id"].notna()].astype({"code_id": "int64"})
    used = set(codings["code_id"].tolist())
    nodes = tuple(
        n
        for n in data.codes
        if n.id in set(mapping.values()) and (all_codes or n.id in used) and n.id not in data.outline_only
    )
    order = [n.id for n in nodes]
    covered_ids = covered_transcripts(data)
    parts: list[tuple[str, set[int]]] = [("all", covered_ids)]
    if by:
        values = sorted({groups_of[t] for t in covered_ids if t in groups_of}, key=natural_key)
        parts = [(value, {t for t in covered_ids if groups_of.get(t) == value}) for value in values]
    groups = []
    unplaced = 0
    for name, members in parts:
        part_codings = codings[codings["transcript_id"].isin(members)]
        part_turns = data.turns[data.turns["transcript_id"].isin(members)]
        result = cooccurrence(part_codings, part_turns, order, within, directed=directed)
        unplaced += result.unplaced
        groups.append(CooccurrenceGroup(name, len(members), result))
    notes = []
    if data.coverage is not None:
        notes.append(data.coverage.statement(len(covered_ids), len(data.units), "transcripts"))
    if unplaced:
        notes.append(f"{unplaced} codings touch no turn (inside a speaker label) and are left out.")
    over = sum(g.result.over_one for g in groups)
    if over:
        notes.append(
            f"{over} pairs of codes have a c-coefficient above 1 or not defined: a coding there meets several "
            "codings of the other code (ATLAS.ti flags such cells too); Jaccard is not affected."
        )
    if by:
        missing = len(covered_ids) - sum(g.transcripts for g in groups)
        if missing:
            notes.append(f"{missing} covered transcripts have no {by!r} and are in no group.")
    return CooccurrenceTables(data, nodes, _labels(nodes), tuple(groups), within, directed, by, tuple(notes))


def cooccurrence_rows(tables: CooccurrenceTables, *, everything: bool = False) -> list[dict[str, object]]:
    """The long form: one row per group and ordered pair of codes that meet (every pair with
    ``everything``); each unordered pair once when undirected."""
    rows: list[dict[str, object]] = []
    for group in tables.groups:
        result = group.result
        for i, a in enumerate(tables.codes):
            for j, b in enumerate(tables.codes):
                if (not tables.directed and j <= i) or (not everything and not result.counts[i, j]):
                    continue
                row: dict[str, object] = {"group": group.name} if tables.by else {}
                row.update({"code A": tables.labels[a.id], "code B": tables.labels[b.id]})
                row["codings A"] = int(result.segments[i])
                row["codings B"] = int(result.segments[j])
                if tables.directed:
                    row["A followed by B"] = int(result.counts[i, j])
                    row["share of A"] = _cell(result.share, i, j)
                else:
                    row["count"] = int(result.counts[i, j])
                    row["c"] = _cell(result.c, i, j)
                    row["jaccard"] = _cell(result.jaccard, i, j)
                rows.append(row)
    return rows


def _number(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _cell(matrix: np.ndarray | None, i: int, j: int) -> float | None:
    """One cell of a result's matrix, rounded; None where the result has no such matrix (c and Jaccard
    are left out of a directed one, the share out of an undirected one)."""
    return None if matrix is None else _number(matrix[i, j])


def export_cooccurrence(workspace: Workspace, out: str | Path, **options: Any) -> WrittenExport:
    """The matrices (counts, c-coefficient, Jaccard; or followed-by counts and shares) and the long list,
    written to ``out`` (.csv, .xlsx, .json or .docx)."""
    format_of(out)
    tables = cooccurrence_tables(workspace, **options)
    specs = cooccurrence_specs(tables, cooccurrence_rows(tables, everything=True))
    meta = export_meta(
        tables.data,
        within=str(tables.within),
        directed=tables.directed,
        by=tables.by or "",
        subtitle=f"{len(tables.codes)} codes, unit {tables.within}, layer {tables.data.layer}",
    )
    paths = write_tables(out, specs, meta=meta)
    return WrittenExport(tuple(paths), f"{len(tables.codes)} x {len(tables.codes)} codes", tables.notes)


def cooccurrence_plot(tables: CooccurrenceTables, out: str | Path) -> Path:
    """A heatmap of the first group's matrix (the c-coefficient, or the share for directed) as PNG."""
    from concord.exporters.writers import atomic_write

    if Path(out).suffix.lower() != ".png":
        raise ConcordError(f"{out}: the plot is a picture; give a .png file")
    png = heatmap_png(tables)
    return atomic_write(out, lambda part: part.write_bytes(png))


# ------------------------------------------------------------------------------------ queries


@dataclass(frozen=True)
class QueryResult:
    data: ResultsData
    query: str  # as written back from the tree
    within: str | int
    hits: pd.DataFrame  # transcript, turn, speaker, left, hit, right, transcript_id, turn_id, start, end
    searched: int  # transcripts searched
    notes: tuple[str, ...]


def _parse_where(conditions: Iterable[str]) -> list[tuple[str, str, str]]:
    parsed = []
    for condition in conditions:
        found = re.match(r"^\s*([^=!]+?)\s*(!=|=)\s*(.*?)\s*$", condition)
        if not found:
            raise ConcordError(f"--where {condition!r}: write NAME=VALUE or NAME!=VALUE")
        parsed.append((found.group(1), found.group(2), found.group(3)))
    return parsed


def _same(value: object, wanted: str) -> bool:
    if value is None:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) == float(wanted)
        except ValueError:
            return False
    return str(value).casefold() == wanted.casefold()


def _where_transcripts(data: ResultsData, conditions: list[tuple[str, str, str]]) -> set[int] | None:
    if not conditions:
        return None
    attrs = attribute_columns(data).merge(data.units[["transcript_id", "kind", "perspective"]], on="transcript_id")
    keep = set(attrs["transcript_id"].astype(int))
    for name, operator, wanted in conditions:
        if name not in attrs.columns:
            if data.blind:
                raise PermissionDenied(
                    f"the study is blind: the attribute {name!r} is hidden from you (or there is none)"
                )
            raise ConcordError(f"--where: no attribute {name!r} on the transcripts, sessions or dyads")
        matches = {int(t) for t, v in zip(attrs["transcript_id"], attrs[name]) if _same(v, wanted)}
        keep &= matches if operator == "=" else set(attrs["transcript_id"].astype(int)) - matches
    return keep


def _resolve(query: str, tree: code_query.Node, nodes: Sequence[CodeNode]) -> dict[str, frozenset[int]]:
    """Each code name in the query to the codes it stands for, with every code below them."""
    children: dict[int | None, list[int]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node.id)

    def below(code_id: int) -> set[int]:
        found, stack = set(), [code_id]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(children.get(current, ()))
        return found

    resolved = {}
    for code in code_query.codes_in(tree):
        folded = code.name.casefold()
        hits = [
            n
            for n in nodes
            if n.name.casefold() == folded or n.label.casefold() == folded or n.path_name.casefold() == folded
        ]
        if not hits:
            raise NotFound(
                code_query.pointed(query, code.position, f"no code named {code.name!r} among the codes you can see")
            )
        ids: set[int] = set()
        for node in hits:
            ids |= below(node.id)
        resolved[code.name] = frozenset(ids)
    return resolved


def run_query(
    workspace: Workspace,
    query: str,
    *,
    layer: str = CONSENSUS,
    within: str | int = "turn",
    speaker: str | None = None,
    where: Iterable[str] = (),
    codebooks: Iterable[str] | None = None,
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> QueryResult:
    """The hits of ``query`` (see ``analysis.code_query``) in one layer's covered transcripts."""
    try:
        tree = code_query.parse(query)
        within = parse_within(within)
    except ValueError as exc:
        raise ConcordError(str(exc)) from None
    conditions = _parse_where(where)
    data = gather(
        workspace,
        layer=layer,
        codebooks=codebooks or None,
        turns="bounds",
        purpose="query",
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    ids = _resolve(query, tree, data.codes)
    searched = covered_transcripts(data)
    chosen = _where_transcripts(data, conditions)
    if chosen is not None:
        searched &= chosen
    turns = data.turns[data.turns["transcript_id"].isin(searched)]
    codings = data.codings[data.codings["transcript_id"].isin(searched)]
    keep = None
    if speaker:
        roles = _speaker_roles(workspace, sorted(set(turns["transcript_id"].tolist())))

        def keep(turn_ids: np.ndarray) -> np.ndarray:
            return pd.Series(turn_ids).map(roles).eq(speaker).to_numpy()

    hits = code_query.evaluate(tree, ids, codings, turns, within, keep_turn=keep).frame
    frame = _kwic(workspace, data, hits)
    notes = []
    if data.coverage is not None:
        notes.append(data.coverage.statement(int(data.units["covered"].sum()), len(data.units), "transcripts"))
    return QueryResult(data, code_query.render(tree), within, frame, len(searched), tuple(notes))


def _speaker_roles(workspace: Workspace, transcript_ids: list[int]) -> dict[int, str]:
    query = select(Turn.id, Turn.transcript_id, Turn.speaker_role)
    if len(transcript_ids) <= 500:
        query = query.where(Turn.transcript_id.in_(transcript_ids))
    wanted = set(transcript_ids)
    with workspace.store.reader() as session:
        return {tid: role for tid, t, role in session.connection().execute(query) if t in wanted}


def _kwic(workspace: Workspace, data: ResultsData, hits: pd.DataFrame) -> pd.DataFrame:
    """The hits with their transcript, turn number, speaker and the text of their turn around them. Only the
    hit turns are read, each with its own text (a substring in SQL, never whole transcripts)."""
    columns = ["transcript", "turn", "speaker", "left", "hit", "right", "transcript_id", "turn_id", "start", "end"]
    if hits.empty:
        return pd.DataFrame(columns=columns)
    wanted = sorted(set(hits["turn_id"].astype(int)))
    said = func.substr(Transcript.text, Turn.char_start + 1, Turn.char_end - Turn.char_start)
    by_turn = {}
    with workspace.store.reader() as session:
        connection = session.connection()
        for first in range(0, len(wanted), 900):
            query = (
                select(Turn.id, Turn.number, Turn.speaker_role, Turn.char_start, said)
                .join(Transcript, Transcript.id == Turn.transcript_id)
                .where(Turn.id.in_(wanted[first : first + 900]))
            )
            by_turn.update({row[0]: row for row in connection.execute(query).fetchall()})
    keys = dict(zip(data.units["transcript_id"].astype(int), data.units["transcript"]))
    out = []
    for tid, turn_id, start, end in zip(
        hits["transcript_id"].tolist(), hits["turn_id"].tolist(), hits["start"].tolist(), hits["end"].tolist()
    ):
        _, number, role, turn_start, text = by_turn[turn_id]
        a, b = start - turn_start, end - turn_start
        out.append((keys[tid], number, role, text[:a], text[a:b], text[b:], tid, turn_id, start, end))
    frame = pd.DataFrame(out, columns=columns)
    order = {key: rank for rank, key in enumerate(sorted(set(frame["transcript"]), key=natural_key))}
    frame = frame.assign(_rank=frame["transcript"].map(order)).sort_values(["_rank", "start"], kind="stable")
    return frame.drop(columns="_rank").reset_index(drop=True)


def _report_turns(workspace: Workspace, transcript_ids: list[int]) -> pd.DataFrame:
    """Every turn of the given transcripts with its speaker label and text, for excerpts with context."""
    names = ["turn_id", "transcript_id", "number", "speaker_role", "speaker_label", "char_start", "char_end", "text"]
    if not transcript_ids:
        return pd.DataFrame(columns=names)
    said = func.substr(Transcript.text, Turn.char_start + 1, Turn.char_end - Turn.char_start)
    rows: list[Sequence[object]] = []
    with workspace.store.reader() as session:
        for first in range(0, len(transcript_ids), 500):
            query = (
                select(
                    Turn.id,
                    Turn.transcript_id,
                    Turn.number,
                    Turn.speaker_role,
                    Turn.speaker_label,
                    Turn.char_start,
                    Turn.char_end,
                    said,
                )
                .join(Transcript, Transcript.id == Turn.transcript_id)
                .where(Turn.transcript_id.in_(transcript_ids[first : first + 500]))
            )
            rows += session.connection().execute(query).fetchall()
    return pd.DataFrame(rows, columns=names).sort_values(["transcript_id", "char_start"]).reset_index(drop=True)


def export_query_report(
    workspace: Workspace,
    query: str,
    out: str | Path,
    *,
    context: int = 0,
    group_attribute: str = "group",
    group_label: str = "{value} alliance",
    **options: Any,
) -> WrittenExport:
    """The hits as an excerpt report (.docx, .md or .html), with ``context`` turns around each."""
    from concord.exporters.excerpts import REPORT_FORMATS

    format_of(out, REPORT_FORMATS)
    if context < 0:
        raise ConcordError("--context is a number of turns, 0 or more")
    result = run_query(workspace, query, **options)
    groups = {}
    attrs = attribute_columns(result.data)
    if group_attribute in attrs.columns:
        groups = {
            int(t): _text(v) for t, v in zip(attrs["transcript_id"], attrs[group_attribute]) if v is not None and v == v
        }
    turn_rows = _report_turns(workspace, sorted(set(result.hits["transcript_id"].astype(int))))
    report = query_report(result, turn_rows, context=context, groups=groups, group_label=group_label)
    paths = write_report(report, out)
    return WrittenExport(tuple(paths), f"{len(result.hits)} hits", result.notes)


# ------------------------------------------------------------------------------------ themes and scores


PER = {"turns": 100, "words": 1000}
KINDS = ("session", "ipr", "all")


@dataclass(frozen=True)
class ScoresLink:
    data: ResultsData
    score_name: str  # "WAI-SR client total"
    per: str
    level: str
    themes: tuple[str, ...]
    sessions: pd.DataFrame  # one row per covered session: patient, session, score, per theme count/rate/present
    results: pd.DataFrame  # one row per theme (analysis.scores_link.link_themes)
    correction: str
    notes: tuple[str, ...]


def _score_column(
    scores: pd.DataFrame, instrument: str, respondent: str | None, subscale: str | None
) -> tuple[dict[int, float], str]:
    if scores.empty:
        raise NotFound("this study holds no questionnaire scores (concord import measures)")
    names = sorted(set(scores["instrument"]))
    matching = [name for name in names if squash(name) == squash(instrument)]
    if not matching:
        raise NotFound(f"no instrument {instrument!r} among the scores; there are: {', '.join(names)}")
    chosen = scores[scores["instrument"] == matching[0]]
    sides = sorted(set(chosen["respondent"]))
    if respondent is None:
        if len(sides) > 1:
            raise ConcordError(f"{matching[0]} was filled in by {' and '.join(sides)}: say which with --respondent")
        respondent = sides[0]
    if respondent not in sides:
        raise NotFound(f"no {matching[0]} scores from the {respondent}; there are: {', '.join(sides)}")
    chosen = chosen[chosen["respondent"] == respondent]
    if subscale:

        def pick(subscales: dict[str, Any] | None) -> float:
            for key, value in (subscales or {}).items():
                if squash(key) == squash(subscale):
                    return np.nan if value is None else float(value)
            return np.nan

        values = chosen["subscales"].map(pick)
        if values.isna().all():
            raise NotFound(f"no subscale {subscale!r} in the {matching[0]} scores")
        label = f"{matching[0]} {respondent} {subscale}"
    else:
        values = chosen["total"].astype(float)
        label = f"{matching[0]} {respondent} total"
    return dict(zip(chosen["session_id"].astype(int), values)), label


def _transcript_sizes(workspace: Workspace, transcript_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Turns and words said (non-verbal annotations left out) per transcript."""
    turns: dict[int, int] = {}
    words: dict[int, int] = {}
    if not transcript_ids:
        return turns, words
    with workspace.store.reader() as session:
        texts = dict(
            session.execute(select(Transcript.id, Transcript.text).where(Transcript.id.in_(transcript_ids)))
            .tuples()
            .all()
        )
        rows = session.execute(
            select(Turn.transcript_id, Turn.char_start, Turn.char_end, Turn.nonverbal).where(
                Turn.transcript_id.in_(transcript_ids)
            )
        ).all()
    for tid, start, end, nonverbal in rows:
        turns[tid] = turns.get(tid, 0) + 1
        said = blank_ranges(texts[tid][start:end], start, nonverbal or [])
        words[tid] = words.get(tid, 0) + count_words(said)
    return turns, words


def scores_link(
    workspace: Workspace,
    *,
    instrument: str,
    respondent: str | None = None,
    subscale: str | None = None,
    layer: str = CONSENSUS,
    per: str = "turns",
    level: str = "theme",
    codes: Iterable[str] | None = None,
    codebooks: Iterable[str] | None = None,
    kind: str = "session",
    correction: str = "holm",
    covered: str = "done",
    include_uncoded: bool = False,
    labels: str = "name",
) -> ScoresLink:
    """Per session, each theme's rate and presence beside the instrument's score, and per theme the
    correlations and multilevel models of ``analysis.scores_link``. Supervisors, or after unblinding."""
    from concord.analysis.scores_link import CORRECTIONS, link_themes

    require_results_rights(workspace)
    if per not in PER:
        raise ConcordError(f"unknown rate {per!r}; choose one of {', '.join(PER)}")
    if kind not in KINDS:
        raise ConcordError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if correction not in CORRECTIONS:
        raise ConcordError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    data = gather(
        workspace,
        layer=layer,
        codes=list(codes or ()) or None,
        codebooks=codebooks or None,
        purpose="scores-link",
        covered=covered,
        include_uncoded=include_uncoded,
        labels=labels,
    )
    require_results_rights(workspace, blind=data.blind)
    scores, score_name = _score_column(data.scores, instrument, respondent, subscale)
    mapping = _level_map(data.codes, level, data.outline_only)
    targets = [n for n in data.codes if n.id in set(mapping.values()) and n.id not in data.outline_only]
    names = _labels(targets)
    units = data.units[data.counted().to_numpy() & data.units["session_id"].notna()]
    if kind != "all":
        units = units[units["kind"] == kind]
    transcript_ids = [int(t) for t in units["transcript_id"]]
    turns, words = _transcript_sizes(workspace, transcript_ids)
    counts = code_counts(data.codes, data.codings, data.turns, "segments")
    counts = counts[counts["transcript_id"].isin(transcript_ids) & counts["code_id"].isin(names)]
    per_transcript = counts.pivot_table(index="transcript_id", columns="code_id", values="value", aggfunc="sum")
    rows = []
    for session_id, part in units.groupby("session_id", sort=False):
        ids = [int(t) for t in part["transcript_id"]]
        size = sum(turns.get(t, 0) for t in ids) if per == "turns" else sum(words.get(t, 0) for t in ids)
        # pandas-stubs types a groupby key as any scalar; a session id is an integer
        sid = int(session_id)  # type: ignore[arg-type]
        row = {
            "patient": str(part["dyad"].iloc[0]),
            "session": int(part["session"].iloc[0]),
            "session_id": sid,
            "transcripts": ", ".join(sorted(part["transcript"], key=natural_key)),
            "turns": sum(turns.get(t, 0) for t in ids),
            "words": sum(words.get(t, 0) for t in ids),
            "score": scores.get(sid, np.nan),
        }
        for node in targets:
            present = [t for t in ids if t in per_transcript.index]
            count = (
                float(np.nansum(per_transcript.loc[present, node.id])) if present and node.id in per_transcript else 0.0
            )
            row[f"{names[node.id]}: count"] = int(count)
            row[f"{names[node.id]}: rate"] = count / size * PER[per] if size else np.nan
            row[f"{names[node.id]}: present"] = int(count > 0)
        rows.append(row)
    sessions = pd.DataFrame(rows)
    if sessions.empty:
        raise ConcordError(
            "no covered session transcript belongs to a session with a score: nothing to link"
            " (see --covered, --layer and --kind)"
        )
    sessions = sessions.sort_values(["patient", "session"], key=lambda c: c.map(natural_key)).reset_index(drop=True)
    themes = tuple(names[n.id] for n in targets)
    results = link_themes(sessions, themes, score="score", patient="patient", correction=correction)
    notes = []
    if data.coverage is not None:
        notes.append(data.coverage.statement(int(data.units["covered"].sum()), len(data.units), "transcripts"))
    unscored = int(sessions["score"].isna().sum())
    if unscored:
        notes.append(f"{unscored} covered sessions have no {score_name} score and are left out of the statistics.")
    return ScoresLink(data, score_name, per, level, themes, sessions, results, correction, tuple(notes))


def export_scores_link(workspace: Workspace, out: str | Path, **options: Any) -> WrittenExport:
    """The per-session table and the per-theme results: a report (.docx, .md, .html: a table and a plot per
    theme) or tables (.csv, .xlsx, .json)."""
    suffix = Path(out).suffix.lower()
    if suffix not in DOCUMENT_FORMATS:
        format_of(out)
    link = scores_link(workspace, **options)
    if suffix in DOCUMENT_FORMATS:
        paths = write_document(scores_link_blocks(link), out, title=f"Themes and {link.score_name}: {link.data.title}")
    else:
        meta = export_meta(link.data, score=link.score_name, rate=f"per {PER[link.per]:,} {link.per}")
        paths = write_tables(out, scores_link_specs(link), meta=meta)
    summary = f"{len(link.sessions)} sessions x {len(link.themes)} {link.level}s"
    return WrittenExport(tuple(paths), summary, link.notes)


# ------------------------------------------------------------------------------------ memos


MEMO_GROUPINGS = ("code", "transcript", "coder")


@dataclass(frozen=True)
class MemoEntry:
    coder: str
    text: str
    about: str  # "code", "coding", "turn", "transcript", "study", "coding note"
    code: str | None  # the code's path
    transcript: str | None
    turn: int | None
    quote: str | None  # the coded words, for a memo on a coding
    written: datetime | None


def memo_entries(workspace: Workspace) -> tuple[list[MemoEntry], bool]:
    """Every memo the actor may read (their own while the study is blind, everyone's otherwise) and the
    notes kept on codings, with what each is about; and whether the blind applied."""
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    if blind and actor is None:
        raise PermissionDenied(
            "the study is blind: memos are shown to the person who wrote them; say who you are (--as NAME)"
        )
    with workspace.store.reader() as session:
        codes = {r.id: r for r in session.execute(select(Code.id, Code.name, Code.parent_id, Code.merged_into_id))}

        def path(code_id: int | None) -> str | None:
            if code_id is None or code_id not in codes:
                return None
            seen, current = set(), code_id
            while codes[current].merged_into_id and current not in seen:
                seen.add(current)
                current = codes[current].merged_into_id
            parts: list[str] = []
            node = current
            while node is not None and node in codes and len(parts) < 50:
                parts.append(codes[node].name)
                node = codes[node].parent_id
            return " > ".join(reversed(parts))

        keys = dict(session.execute(select(Transcript.id, Transcript.key)).tuples().all())
        memo_query = select(Memo, Coder.name).join(Coder, Coder.id == Memo.coder_id).where(Memo.deleted_at.is_(None))
        note_query = (
            select(Coding, Coder.name)
            .join(Coder, Coder.id == Coding.coder_id)
            .where(Coding.memo.is_not(None), Coding.deleted_at.is_(None))
        )
        if blind and actor is not None:  # blind without an actor was refused above
            memo_query = memo_query.where(Memo.coder_id == actor.id)
            note_query = note_query.where(Coding.coder_id == actor.id)
        memos = session.execute(memo_query.order_by(Memo.id)).all()
        coding_ids = {m.target_id for m, _ in memos if m.target_kind == "coding"}
        turn_ids = {m.target_id for m, _ in memos if m.target_kind == "turn"}
        codings = (
            {c.id: c for c in session.scalars(select(Coding).where(Coding.id.in_(coding_ids)))} if coding_ids else {}
        )
        turns = {t.id: t for t in session.scalars(select(Turn).where(Turn.id.in_(turn_ids)))} if turn_ids else {}
        texts: dict[int, str] = {}

        def quote(row: Coding) -> str:
            if row.transcript_id not in texts:
                texts[row.transcript_id] = (
                    session.scalar(select(Transcript.text).where(Transcript.id == row.transcript_id)) or ""
                )
            return " ".join(texts[row.transcript_id][row.start_offset : row.end_offset].split())

        def turn_of(row: Coding) -> int | None:
            return session.scalar(
                select(Turn.number)
                .where(Turn.transcript_id == row.transcript_id, Turn.char_end > row.start_offset)
                .order_by(Turn.char_start)
                .limit(1)
            )

        entries = []
        for memo, name in memos:
            entry = {
                "coder": name,
                "text": memo.text,
                "about": memo.target_kind,
                "code": None,
                "transcript": None,
                "turn": None,
                "quote": None,
                "written": memo.changed_at,
            }
            if memo.target_kind == "code":
                entry["code"] = path(memo.target_id)
            elif memo.target_kind == "transcript":
                entry["transcript"] = keys.get(memo.target_id)
            elif memo.target_kind == "turn" and memo.target_id in turns:
                turn = turns[memo.target_id]
                entry.update(transcript=keys.get(turn.transcript_id), turn=turn.number)
            elif memo.target_kind == "coding" and memo.target_id in codings:
                coding = codings[memo.target_id]
                entry.update(
                    code=path(coding.code_id),
                    transcript=keys.get(coding.transcript_id),
                    turn=turn_of(coding),
                    quote=quote(coding),
                )
            entries.append(MemoEntry(**entry))
        for coding, name in session.execute(note_query.order_by(Coding.id)).all():
            entries.append(
                MemoEntry(
                    coder=name,
                    text=coding.memo,
                    about="coding note",
                    code=path(coding.code_id),
                    transcript=keys.get(coding.transcript_id),
                    turn=turn_of(coding),
                    quote=quote(coding),
                    written=coding.changed_at,
                )
            )
    with workspace.store.session() as session:
        record(session, workspace.actor_label, "export.memos", "study", 1, blind=blind)
    return entries, blind


def export_memos(workspace: Workspace, out: str | Path, *, by: str = "code") -> WrittenExport:
    """Every memo the actor may read, grouped by code, transcript or coder, to .docx, .md or .html."""
    if by not in MEMO_GROUPINGS:
        raise ConcordError(f"unknown grouping {by!r}; choose one of {', '.join(MEMO_GROUPINGS)}")
    suffix = Path(out).suffix.lower()
    if suffix not in DOCUMENT_FORMATS:
        raise ConcordError(f"{out}: the memo report is written as {', '.join(DOCUMENT_FORMATS)}")
    entries, blind = memo_entries(workspace)
    title = workspace.settings().title
    blocks: list[Block] = memo_blocks(entries, by=by, blind=blind, actor=workspace.actor_label)
    paths = write_document(blocks, out, title=f"Memos: {title}")
    notes = ("The study is blind for you: only your own memos are in the report.",) if blind else ()
    return WrittenExport(tuple(paths), f"{len(entries)} memos", notes)
