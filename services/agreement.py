"""Inter-coder agreement over a study's codings: who may see it, what is compared, and the report.

Agreement compares coders' work, so while a study is blind it is for supervisors and admins only; in an
open study anyone may run it. The codings, turns and codes are read here through a storage session and
handed as plain columns to ``analysis.agreement_units`` (which builds the units x coders matrices) and
``analysis.agreement_stats`` (which computes the statistics).

Scopes of a report (``AgreementRow.scope``):

- ``code`` / ``group``: one code (present/absent per unit) or one group (its child codes as the values of
  one categorical variable) over all units;
- ``pooled``: every code (or every group) of the report stacked, each (variable, unit) counted as one unit;
- ``transcript``: the stacked variables within one transcript (only when the report covers several);
- ``coder_pair``: the stacked variables rated by two of the coders (only with three or more coders).

A statistic that does not fit a scope (Cohen's kappa with three coders, Fleiss' kappa when coders rated
different numbers of units) gives a row with no value and a note, unless it was the only statistic
asked for: then the report stops with an error naming the problem.

``phase="consensus"`` adds the consensus layer as one more rater, named ``(consensus)``, beside the
independent coders; its coder-pair rows say how close each coder came to the consensus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.analysis.agreement_stats import MISSING, RatingsError, compute
from concord.analysis.agreement_units import (
    UNCODED_CHOICES,
    UNIT_KINDS,
    Corpus,
    Group,
    RatingTable,
    UnitsError,
    check_overlap,
    group_tables,
    make_corpus,
    presence_tables,
    stack,
)
from concord.services.codes import find_code
from concord.services.rights import require_agreement_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import (
    SPEAKER_ROLES,
    Code,
    Codebook,
    Coder,
    Coding,
    Transcript,
    TranscriptProgress,
    Turn,
)

PHASES = ("independent", "consensus")
CONSENSUS_RATER = "(consensus)"
# What a user may type for --statistic, and the names the report uses.
STATISTIC_NAMES = {
    "percent": "percent",
    "cohen": "cohen_kappa",
    "fleiss": "fleiss_kappa",
    "alpha": "krippendorff_alpha",
    "bp": "brennan_prediger",
}
ALL_STATISTICS = tuple(STATISTIC_NAMES.values())
STATISTIC_CHOICES = ("all", *STATISTIC_NAMES)


@dataclass(frozen=True)
class AgreementOptions:
    transcripts: tuple[str, ...] = ()
    coders: tuple[str, ...] = ()
    phase: str = "independent"
    unit: str = "turn"
    codes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    speaker: str | None = None
    uncoded: str = "category"
    overlap: float = 0.5
    statistics: tuple[str, ...] = ("all",)
    bootstrap: int = 0
    seed: int = 0


@dataclass(frozen=True)
class AgreementRow:
    scope: str
    statistic: str
    value: float | None
    units: int
    coders: int
    ci_low: float | None
    ci_high: float | None
    unit: str
    units_total: int
    disagreements: int
    coder_names: tuple[str, ...]
    reading: str
    code: str | None = None
    group: str | None = None
    transcript: str | None = None
    coder_pair: tuple[str, str] | None = None
    note: str | None = None


@dataclass(frozen=True)
class VariableSummary:
    """One code or group at a glance, for the agreement screen."""

    reading: str
    name: str
    units: int
    disagreements: int
    percent: float | None
    kappa: float | None
    kappa_statistic: str
    alpha: float | None
    note: str | None


@dataclass(frozen=True)
class AgreementReport:
    unit: str
    unit_description: str
    units_total: int
    # The transcripts at least one of the coders rated.
    transcripts: tuple[str, ...]
    coders: tuple[str, ...]
    rows: tuple[AgreementRow, ...]
    summaries: tuple[VariableSummary, ...]

    @property
    def headline(self) -> str:
        return (
            f"{self.units_total} units in {len(self.transcripts)} transcript(s), rated by"
            f" {len(self.coders)} coder(s) ({', '.join(self.coders)}); a unit is {self.unit_description}"
        )


@dataclass(frozen=True)
class UnitRating:
    coder: str
    category: str | None
    codes: tuple[str, ...]


@dataclass(frozen=True)
class DisagreementUnit:
    """A unit where the coders differ, with its text and each coder's rating."""

    transcript: str
    start: int
    end: int
    turn: int | None
    speaker: str | None
    text: str
    ratings: tuple[UnitRating, ...]


# ------------------------------------------------------------------------------------ who may see it


# ----------------------------------------------------------------------------------------- loading


@dataclass
class LoadedCorpus:
    """A corpus and the database ids behind its indices."""

    corpus: Corpus
    transcript_ids: list[int]
    coder_ids: list[int | None]
    code_ids: list[int]
    code_parent: dict[int, int | None]

    def __post_init__(self) -> None:
        self._code_positions = {code_id: i for i, code_id in enumerate(self.code_ids)}

    def code_index(self, code_id: int) -> int:
        return self._code_positions[code_id]

    def code_label(self, code_id: int) -> str:
        return self.corpus.codes[self.code_index(code_id)]


def _code_labels(session: Session) -> tuple[list[int], list[str], dict[int, int | None]]:
    rows = session.execute(
        select(Code.id, Code.name, Codebook.key, Code.parent_id)
        .join(Codebook, Codebook.id == Code.codebook_id)
        .order_by(Code.codebook_id, Code.position, Code.id)
    ).all()
    counts: dict[str, int] = {}
    for _, name, _, _ in rows:
        counts[name] = counts.get(name, 0) + 1
    labels = [name if counts[name] == 1 else f"{book}/{name}" for _, name, book, _ in rows]
    return [r[0] for r in rows], labels, {r[0]: r[3] for r in rows}


def _transcripts(session: Session, keys: tuple[str, ...]) -> list[tuple[int, str]]:
    rows = session.execute(select(Transcript.id, Transcript.key).order_by(Transcript.key)).all()
    if not keys:
        return [(r[0], r[1]) for r in rows]
    by_key = {key: tid for tid, key in rows}
    missing = [key for key in keys if key not in by_key]
    if missing:
        raise NotFound(f"no transcript {', '.join(repr(k) for k in missing)} in this study")
    return [(by_key[key], key) for key in dict.fromkeys(keys)]


def load_corpus(
    session: Session,
    *,
    transcript_keys: tuple[str, ...] = (),
    coder_names: tuple[str, ...] = (),
    phase: str = "independent",
) -> LoadedCorpus:
    """Read the transcripts, turns, coders, codes and live codings into a ``Corpus``.

    Coders default to everyone with an independent coding (or a transcript marked done) among the chosen
    transcripts, in the order they joined the study. A coder rated a transcript when they coded it or
    marked it done.
    """
    if phase not in PHASES:
        raise ConcordError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    transcripts = _transcripts(session, transcript_keys)
    transcript_ids = [tid for tid, _ in transcripts]
    t_index = {tid: i for i, tid in enumerate(transcript_ids)}
    code_ids, code_labels, code_parent = _code_labels(session)
    c_index = {cid: i for i, cid in enumerate(code_ids)}

    in_scope = Coding.transcript_id.in_(transcript_ids) if transcript_keys else True
    independent = session.execute(
        select(Coding.id, Coding.coder_id, Coding.transcript_id, Coding.code_id, Coding.start_offset, Coding.end_offset)
        .where(Coding.deleted_at.is_(None), Coding.phase == "independent", in_scope)
        # In text order: the units builder looks each coding's turn up, and ordered lookups are cache-friendly.
        .order_by(Coding.transcript_id, Coding.start_offset, Coding.id)
    ).all()
    found = _int_rows(independent, 6)
    done_query = select(TranscriptProgress.coder_id, TranscriptProgress.transcript_id).where(
        TranscriptProgress.done_at.is_not(None)
    )
    if transcript_keys:
        done_query = done_query.where(TranscriptProgress.transcript_id.in_(transcript_ids))
    done = [(c, t) for c, t in session.execute(done_query).all() if t in t_index]

    people = dict(session.execute(select(Coder.name, Coder.id)).all())
    if coder_names:
        unknown = [name for name in coder_names if name not in people]
        if unknown:
            raise NotFound(f"no coder named {', '.join(repr(n) for n in unknown)} in this study")
        coder_ids: list[int | None] = [people[name] for name in dict.fromkeys(coder_names)]
        names = list(dict.fromkeys(coder_names))
    else:
        active = set(np.unique(found[:, 1]).tolist()) | {c for c, _ in done}
        by_id = {cid: name for name, cid in people.items()}
        coder_ids = sorted(active)
        names = [by_id[cid] for cid in coder_ids]
    r_index = {cid: i for i, cid in enumerate(coder_ids)}
    raters = np.zeros((len(coder_ids), len(transcript_ids)), dtype=bool)
    for coder_id, transcript_id in done:
        if coder_id in r_index:
            raters[r_index[coder_id], t_index[transcript_id]] = True

    # Database ids -> corpus indices, vectorised: a study can hold a million codings.
    coder_of = _positions(found[:, 1], r_index)
    transcript_of = _positions(found[:, 2], t_index)
    kept = (coder_of >= 0) & (transcript_of >= 0)
    table = np.column_stack(
        [
            coder_of[kept],
            transcript_of[kept],
            _positions(found[kept, 3], c_index),
            found[kept, 4],
            found[kept, 5],
            found[kept, 0],
        ]
    )
    if phase == "consensus":
        consensus = _int_rows(
            session.execute(
                select(Coding.id, Coding.transcript_id, Coding.code_id, Coding.start_offset, Coding.end_offset)
                .where(Coding.deleted_at.is_(None), Coding.phase == "consensus", in_scope)
                .order_by(Coding.transcript_id, Coding.start_offset, Coding.id)
            ).all(),
            5,
        )
        rater = len(coder_ids)
        coder_ids.append(None)
        names.append(CONSENSUS_RATER)
        phases = dict(session.execute(select(Transcript.id, Transcript.phase)).all())
        settled = np.array([[phases[tid] != "independent" for tid in transcript_ids]], dtype=bool)
        raters = np.vstack([raters, settled])
        where = _positions(consensus[:, 1], t_index)
        consensus = consensus[where >= 0]
        table = np.vstack(
            [
                table,
                np.column_stack(
                    [
                        np.full(len(consensus), rater),
                        where[where >= 0],
                        _positions(consensus[:, 2], c_index),
                        consensus[:, 3],
                        consensus[:, 4],
                        consensus[:, 0],
                    ]
                ),
            ]
        )

    turn_query = select(Turn.transcript_id, Turn.number, Turn.char_start, Turn.char_end, Turn.speaker_role)
    if transcript_keys:
        turn_query = turn_query.where(Turn.transcript_id.in_(transcript_ids))
    turn_rows = session.execute(turn_query).all()
    turns = _int_rows([row[:4] for row in turn_rows], 4)
    turn_transcript = _positions(turns[:, 0], t_index)
    in_corpus = turn_transcript >= 0
    corpus = make_corpus(
        [key for _, key in transcripts],
        names,
        code_labels,
        turn_transcript=turn_transcript[in_corpus],
        turn_number=turns[in_corpus, 1],
        turn_start=turns[in_corpus, 2],
        turn_end=turns[in_corpus, 3],
        turn_speaker=np.array([row[4] for row in turn_rows], dtype=object)[in_corpus],
        coding_coder=table[:, 0],
        coding_transcript=table[:, 1],
        coding_code=table[:, 2],
        coding_start=table[:, 3],
        coding_end=table[:, 4],
        coding_ident=table[:, 5],
        raters=raters,
    )
    return LoadedCorpus(corpus, transcript_ids, coder_ids, code_ids, code_parent)


def _int_rows(rows, width: int) -> np.ndarray:
    """Result rows of whole numbers as an n x width array (rows made plain tuples first: numpy would
    otherwise probe every SQLAlchemy row object for array protocols)."""
    return np.array([tuple(row) for row in rows], dtype=np.int64).reshape(-1, width)


def _positions(ids: np.ndarray, index: dict[int, int]) -> np.ndarray:
    """Each database id's position in ``index``, or -1 for ids not in it."""
    if not ids.size:
        return np.zeros(0, dtype=np.int64)
    lookup = np.full(max(int(ids.max()), max(index, default=0)) + 1, -1, dtype=np.int64)
    for database_id, position in index.items():
        lookup[database_id] = position
    return lookup[ids]


# ----------------------------------------------------------------------------------------- options


def _statistics(requested: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The statistic names to compute, and whether exactly one was asked for by name."""
    if not requested:
        requested = ("all",)
    names: list[str] = []
    for item in requested:
        if item == "all":
            names += ALL_STATISTICS
        elif item in STATISTIC_NAMES:
            names.append(STATISTIC_NAMES[item])
        elif item in ALL_STATISTICS:
            names.append(item)
        else:
            raise ConcordError(f"unknown statistic {item!r}; choose from {', '.join(STATISTIC_CHOICES)}")
    names = list(dict.fromkeys(names))
    return tuple(names), "all" not in requested and len(names) == 1


def check_options(options: AgreementOptions) -> None:
    if options.unit not in UNIT_KINDS:
        raise ConcordError(f"unknown unit {options.unit!r}; choose one of {', '.join(UNIT_KINDS)}")
    if options.uncoded not in UNCODED_CHOICES:
        raise ConcordError(f"unknown --uncoded {options.uncoded!r}; choose one of {', '.join(UNCODED_CHOICES)}")
    if options.speaker is not None and options.speaker not in SPEAKER_ROLES:
        raise ConcordError(f"unknown speaker role {options.speaker!r}; choose one of {', '.join(SPEAKER_ROLES)}")
    if options.phase not in PHASES:
        raise ConcordError(f"unknown phase {options.phase!r}; choose one of {', '.join(PHASES)}")
    try:
        check_overlap(options.overlap)
    except UnitsError as exc:
        raise ConcordError(str(exc)) from None
    if isinstance(options.bootstrap, bool) or not isinstance(options.bootstrap, int) or options.bootstrap < 0:
        raise ConcordError(f"--bootstrap must be a whole number of resamples >= 0, got {options.bootstrap!r}")
    _statistics(options.statistics)


def describe_unit(options: AgreementOptions) -> str:
    if options.unit == "turn":
        text = "a speaker turn (a coder applied a code to a turn when any of their codings of it overlaps the turn)"
    elif options.unit == "span":
        text = (
            f"an aligned span (spans of different coders match when they overlap by at least"
            f" {options.overlap:.0%} of the shorter; an unmatched span is a disagreement)"
        )
    else:
        text = "a whole transcript (a code is present when the coder applied it anywhere in it)"
    if options.speaker:
        text += f"; only {options.speaker} turns"
    if options.unit != "span":
        text += (
            "; units no coder coded are left out"
            if options.uncoded == "exclude"
            else "; units no coder coded are kept, rated absent by everyone"
        )
    return text


# -------------------------------------------------------------------------------------- variables


def _groups(session: Session, loaded: LoadedCorpus, names: tuple[str, ...]) -> list[Group]:
    children_of: dict[int | None, list[int]] = {}
    live = set(session.scalars(select(Code.id).where(Code.live())))
    for code_id in loaded.code_ids:
        children_of.setdefault(loaded.code_parent[code_id], []).append(code_id)
    groups = []
    for name in names:
        parent = find_code(session, name)
        values = [c for c in children_of.get(parent.id, []) if c in live]
        if len(values) < 2:
            raise ConcordError(f"{parent.name!r} has {len(values)} child code(s); a group needs at least two values")
        code_lists = []
        for value in values:
            found, queue = [], [value]
            while queue:
                current = queue.pop()
                found.append(loaded.code_index(current))
                queue += children_of.get(current, [])
            code_lists.append(tuple(found))
        groups.append(
            Group(
                loaded.code_label(parent.id),
                tuple(session.get(Code, value).name for value in values),
                tuple(code_lists),
            )
        )
    return groups


def _presence_codes(session: Session, loaded: LoadedCorpus, names: tuple[str, ...]) -> list[int]:
    if names:
        return list(dict.fromkeys(loaded.code_index(find_code(session, name).id) for name in names))
    used = set(np.unique(loaded.corpus.coding_code).tolist())
    return [i for i in range(len(loaded.corpus.codes)) if i in used]


def _tables(session: Session, loaded: LoadedCorpus, options: AgreementOptions) -> list[tuple[str, list[RatingTable]]]:
    readings = []
    common = {"speaker": options.speaker, "uncoded": options.uncoded, "overlap": options.overlap}
    if options.codes or not options.groups:
        codes = _presence_codes(session, loaded, options.codes)
        readings.append(("code", presence_tables(loaded.corpus, options.unit, codes, **common)))
    if options.groups:
        groups = _groups(session, loaded, options.groups)
        readings.append(("group", group_tables(loaded.corpus, options.unit, groups, **common)))
    return readings


# ------------------------------------------------------------------------------------- statistics


def _plain(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _fleiss_problem(table: RatingTable) -> str:
    rated = table.rated_per_unit()
    sizes = sorted(set(rated[rated >= 2].tolist()))
    return (
        f"fleiss_kappa needs the same number of coders on every unit; here units have"
        f" {' or '.join(str(s) for s in sizes)} ratings (not every coder rated every transcript):"
        " use alpha, which allows missing ratings"
    )


def _result_rows(
    table: RatingTable, statistics: tuple[str, ...], alone: bool, options: AgreementOptions, scope: str, **where
) -> list[AgreementRow]:
    rows = []
    disagreements = int(table.disagreements().sum())
    for statistic in statistics:
        base = dict(
            scope=scope,
            statistic=statistic,
            unit=options.unit,
            units_total=table.n_units,
            disagreements=disagreements,
            coder_names=table.coders,
            reading=table.reading,
            **where,
        )
        problem = None
        if statistic == "cohen_kappa" and len(table.coders) != 2:
            problem = (
                f"cohen_kappa needs exactly 2 coders; this scope has {len(table.coders)}"
                f" ({', '.join(table.coders)}): pick two with --coders, or see the coder_pair rows or alpha"
            )
        elif statistic == "brennan_prediger" and table.mixed_categories:
            problem = (
                "brennan_prediger: the pooled groups offer different categories, so q is undefined; see each group"
            )
        result = None
        if problem is None:
            try:
                result = compute(statistic, table.ratings, table.n_categories, options.bootstrap, options.seed)
            except RatingsError as exc:
                problem = _fleiss_problem(table) if statistic == "fleiss_kappa" else f"{statistic}: {exc}"
        if problem is not None:
            if alone:
                raise ConcordError(problem)
            rows.append(
                AgreementRow(
                    value=None,
                    units=0,
                    coders=len(table.coders),
                    ci_low=None,
                    ci_high=None,
                    note=f"skipped: {problem}",
                    **base,
                )
            )
            continue
        rows.append(
            AgreementRow(
                value=_plain(result.value),
                units=result.units,
                coders=result.coders,
                ci_low=_plain(result.ci_low),
                ci_high=_plain(result.ci_high),
                note=result.note,
                **base,
            )
        )
    return rows


def _summaries(reading: str, tables: list[RatingTable], rows: list[AgreementRow]) -> list[VariableSummary]:
    summaries = []
    for table in tables:
        mine = {r.statistic: r for r in rows if r.scope == reading and (r.code or r.group) == table.variable}
        kappa_name = "cohen_kappa" if len(table.coders) == 2 else "fleiss_kappa"
        kappa = mine.get(kappa_name)
        alpha = mine.get("krippendorff_alpha")
        percent = mine.get("percent")
        notes = [r.note for r in (kappa, alpha) if r is not None and r.note and r.value is None]
        summaries.append(
            VariableSummary(
                reading=reading,
                name=table.variable,
                units=table.n_units,
                disagreements=int(table.disagreements().sum()),
                percent=percent.value if percent else None,
                kappa=kappa.value if kappa else None,
                kappa_statistic=kappa_name,
                alpha=alpha.value if alpha else None,
                note="; ".join(dict.fromkeys(notes)) or None,
            )
        )
    return summaries


def _build(workspace: Workspace, options: AgreementOptions):
    require_agreement_rights(workspace)
    check_options(options)
    with workspace.store.reader() as session:
        loaded = load_corpus(
            session, transcript_keys=options.transcripts, coder_names=options.coders, phase=options.phase
        )
        if len(loaded.corpus.coders) < 2:
            found = ", ".join(loaded.corpus.coders) or "nobody"
            raise ConcordError(f"agreement needs at least 2 coders with codings; found {found}")
        try:
            readings = _tables(session, loaded, options)
        except UnitsError as exc:
            raise ConcordError(str(exc)) from None
    return loaded, readings


def compute_agreement(workspace: Workspace, options: AgreementOptions = AgreementOptions()) -> AgreementReport:
    """The agreement report: rows per code/group, pooled, per transcript and per coder pair."""
    loaded, readings = _build(workspace, options)
    statistics, alone = _statistics(options.statistics)
    corpus = loaded.corpus
    rows: list[AgreementRow] = []
    summaries: list[VariableSummary] = []
    units_total = 0
    for reading, tables in readings:
        reading_rows: list[AgreementRow] = []
        for table in tables:
            reading_rows += _result_rows(table, statistics, alone, options, reading, **{reading: table.variable})
        if not tables:
            continue
        stacked = stack(tables, "all codes" if reading == "code" else "all groups")
        units_total = max(units_total, stacked.n_units if options.unit == "span" else tables[0].n_units)
        if len(tables) > 1:
            reading_rows += _result_rows(stacked, statistics, alone, options, "pooled")
        with_units = np.unique(stacked.unit_transcript).tolist()
        if len(with_units) > 1:
            for index in with_units:
                part = stacked.select_units(stacked.unit_transcript == index)
                reading_rows += _result_rows(
                    part, statistics, alone, options, "transcript", transcript=corpus.transcripts[index]
                )
        if len(corpus.coders) > 2:
            for first, second in combinations(range(len(corpus.coders)), 2):
                pair = stacked.select_coders([first, second])
                reading_rows += _result_rows(
                    pair,
                    statistics,
                    alone,
                    options,
                    "coder_pair",
                    coder_pair=(corpus.coders[first], corpus.coders[second]),
                )
        rows += reading_rows
        summaries += _summaries(reading, tables, reading_rows)
    rated = corpus.raters.any(axis=0)
    return AgreementReport(
        unit=options.unit,
        unit_description=describe_unit(options),
        units_total=units_total,
        transcripts=tuple(k for k, r in zip(corpus.transcripts, rated) if r),
        coders=corpus.coders,
        rows=tuple(rows),
        summaries=tuple(summaries),
    )


def _speaker_at(corpus: Corpus, transcript: int, start: int, end: int) -> str | None:
    hit = (corpus.turn_transcript == transcript) & (corpus.turn_start < end) & (corpus.turn_end > start)
    roles = list(dict.fromkeys(corpus.turn_speaker[hit].tolist()))
    return ", ".join(roles) if roles else None


def disagreement_units(
    workspace: Workspace, options: AgreementOptions, reading: str, variable: str, *, limit: int | None = None
) -> list[DisagreementUnit]:
    """The units of one code or group where the coders differ, with the unit's text and every rating."""
    loaded, readings = _build(workspace, options)
    table = next((t for r, tables in readings if r == reading for t in tables if t.variable == variable), None)
    if table is None:
        raise NotFound(f"no {reading} {variable!r} in this agreement report")
    corpus = loaded.corpus
    units = np.flatnonzero(table.disagreements())
    if limit is not None:
        units = units[:limit]
    wanted = sorted({loaded.transcript_ids[int(table.unit_transcript[u])] for u in units})
    with workspace.store.reader() as session:
        texts = dict(session.execute(select(Transcript.id, Transcript.text).where(Transcript.id.in_(wanted))).all())
    found = []
    for unit in units.tolist():
        t_index = int(table.unit_transcript[unit])
        start, end = int(table.unit_start[unit]), int(table.unit_end[unit])
        text = texts[loaded.transcript_ids[t_index]]
        ratings = []
        for row, coder in enumerate(table.coders):
            category = table.ratings[row, unit]
            sources = table.sources_of(unit, row)
            ratings.append(
                UnitRating(
                    coder=coder,
                    category=None if category == MISSING else table.categories[category],
                    codes=tuple(dict.fromkeys(corpus.codes[int(corpus.coding_code[s])] for s in sources)),
                )
            )
        turn = int(table.unit_turn[unit])
        found.append(
            DisagreementUnit(
                transcript=corpus.transcripts[t_index],
                start=start,
                end=end,
                turn=turn if turn >= 0 else None,
                speaker=_speaker_at(corpus, t_index, start, end),
                text=text[start:end],
                ratings=tuple(ratings),
            )
        )
    return found
