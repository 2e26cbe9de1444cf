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
- ``coder_pair``: the stacked variables rated by two of the coders (only with three or more coders);
- ``scale``: a code that carries a value, its values compared at the scale's level (Krippendorff's alpha
  at that level, weighted kappa for two coders; per coder pair with three or more).

Which turns are the units of a code or group (turn units): those of the speakers the option ``speaker``
names; otherwise those its codebook declares (``applies_to`` on it or an ancestor); otherwise those of the
speakers it was applied to at all. A speaker whose turns nobody ever coded with a group is left out with a
warning, since every coder "agreeing" there on "(none)" would inflate the figures.

A statistic that does not fit a scope (Cohen's kappa with three coders, Fleiss' kappa when coders rated
different numbers of units) gives a row with no value and a note, unless it was the only statistic
asked for: then the report stops with an error naming the problem.

``phase="consensus"`` adds the consensus layer as one more rater, named ``(consensus)``, beside the
independent coders; its coder-pair rows say how close each coder came to the consensus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.analysis.agreement_stats import (
    MISSING,
    RatingsError,
    StatResult,
    compute,
    rating_patterns,
    statistics_by_group,
)
from concord.analysis.agreement_units import (
    UNCODED_CHOICES,
    UNIT_KINDS,
    Corpus,
    Group,
    RatingTable,
    Scale,
    UnitsError,
    check_overlap,
    disagreeing,
    group_tables,
    make_corpus,
    presence_tables,
    roles_coded,
    scale_tables,
    stack,
    turns_by_role,
)
from concord.codebooks.spec import ScaleSpec
from concord.services.codes import find_code, stored_applies_to, stored_scale
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
    "wkappa": "weighted_kappa",
}
ALL_STATISTICS = tuple(STATISTIC_NAMES.values())
STATISTIC_CHOICES = ("all", *STATISTIC_NAMES)
# --speaker all: every turn, whatever the codebook declares.
ALL_SPEAKERS = "all"
# Statistics for categories (codes, groups) and for values on a scale; the rest does not fit the reading.
NOMINAL_STATISTICS = ("percent", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "brennan_prediger")
SCALE_READING_STATISTICS = ("percent", "krippendorff_alpha", "weighted_kappa")


@dataclass(frozen=True)
class AgreementOptions:
    transcripts: tuple[str, ...] = ()
    coders: tuple[str, ...] = ()
    phase: str = "independent"
    unit: str = "turn"
    codes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # A role, several roles, or "all"; None: each code or group on its own speakers (see the module text).
    speaker: str | tuple[str, ...] | None = None
    uncoded: str = "category"
    overlap: float = 0.5
    statistics: tuple[str, ...] = ("all",)
    bootstrap: int = 0
    seed: int = 0
    # Leave out codings made with the coding assistant (accepted suggestions, "more like this").
    without_assisted: bool = False


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
    # The speaker roles whose turns were the units (None: every speaker).
    speakers: tuple[str, ...] | None = None


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
    speakers: tuple[str, ...] | None = None
    alpha_statistic: str = "krippendorff_alpha"


@dataclass(frozen=True)
class AgreementReport:
    unit: str
    unit_description: str
    # Distinct units over every code and group of the report (for span units: aligned spans per code).
    units_total: int
    # The transcripts at least one of the coders rated.
    transcripts: tuple[str, ...]
    coders: tuple[str, ...]
    rows: tuple[AgreementRow, ...]
    summaries: tuple[VariableSummary, ...]
    warnings: tuple[str, ...] = ()
    # The coders' independent codings in the report, how many the coding assistant had a hand in, and
    # whether those were left out (then ``codings`` counts only the rest).
    codings: int = 0
    assisted: int = 0
    without_assisted: bool = False

    @property
    def assisted_text(self) -> str:
        if self.without_assisted:
            return (
                f"{self.assisted} coding(s) made with the coding assistant were left out;"
                f" {self.codings} coded by hand remain"
            )
        return (
            f"{self.assisted} of {self.codings} codings were accepted from the coding assistant's suggestions"
            ' or coded from its "more like this" lists (--without-suggested leaves them out)'
        )

    @property
    def headline(self) -> str:
        people = (
            f"in {len(self.transcripts)} transcript(s), rated by {len(self.coders)} coder(s)"
            f" ({', '.join(self.coders)}); a unit is {self.unit_description}"
        )
        counts = {(s.units, s.speakers) for s in self.summaries}
        if len(counts) <= 1:
            return f"{self.units_total} units {people}"
        # Different codes or groups rest on different units: never one summed or maximal figure.
        if len(self.summaries) <= 4:
            each = "; ".join(
                f"{s.name}{' (value)' if s.reading == 'scale' else ''} {s.units}{_speakers_text(s.speakers)}"
                for s in self.summaries
            )
        else:
            sizes: dict[tuple[int, tuple[str, ...] | None], int] = {}
            for summary in self.summaries:
                sizes[(summary.units, summary.speakers)] = sizes.get((summary.units, summary.speakers), 0) + 1
            each = "; ".join(
                f"{units}{_speakers_text(speakers)} for {count} of them" for (units, speakers), count in sizes.items()
            )
        return f"units per code or group: {each}; {people}"


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


def _speakers_text(speakers: tuple[str, ...] | None) -> str:
    return "" if speakers is None else f" ({' and '.join(speakers)} turns)"


@dataclass
class LoadedCorpus:
    """A corpus and the database ids behind its indices."""

    corpus: Corpus
    transcript_ids: list[int]
    coder_ids: list[int | None]
    code_ids: list[int]
    code_parent: dict[int, int | None]
    # What the codebook declares, by code id: speaker roles (own, not inherited) and rating scale.
    code_applies_to: dict[int, tuple[str, ...] | None] = field(default_factory=dict)
    code_scale: dict[int, ScaleSpec | None] = field(default_factory=dict)
    # Independent codings of the chosen coders kept, and the assisted ones among them (or left out).
    codings: int = 0
    assisted: int = 0

    def __post_init__(self) -> None:
        self._code_positions = {code_id: i for i, code_id in enumerate(self.code_ids)}

    def code_index(self, code_id: int) -> int:
        return self._code_positions[code_id]

    def code_label(self, code_id: int) -> str:
        return self.corpus.codes[self.code_index(code_id)]


def _code_labels(session: Session) -> tuple[list[int], list[str], dict[int, int | None], list[Any]]:
    rows = session.execute(
        select(Code.id, Code.name, Codebook.key, Code.parent_id, Code.applies_to, Code.scale)
        .join(Codebook, Codebook.id == Code.codebook_id)
        .order_by(Code.codebook_id, Code.position, Code.id)
    ).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    labels: list[str] = [row[1] if counts[row[1]] == 1 else f"{row[2]}/{row[1]}" for row in rows]
    return [r[0] for r in rows], labels, {r[0]: r[3] for r in rows}, list(rows)


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
    without_assisted: bool = False,
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
    code_ids, code_labels, code_parent, code_rows = _code_labels(session)
    c_index = {cid: i for i, cid in enumerate(code_ids)}

    in_scope = Coding.transcript_id.in_(transcript_ids) if transcript_keys else True
    # Columns through the connection, not the ORM session: no ORM row processing for a whole study's codings.
    independent = (
        session.connection()
        .execute(
            select(
                Coding.id,
                Coding.coder_id,
                Coding.transcript_id,
                Coding.code_id,
                Coding.start_offset,
                Coding.end_offset,
                Coding.value,
                Coding.assisted_by,
            )
            .where(Coding.deleted_at.is_(None), Coding.phase == "independent", in_scope)
            # In text order: the units builder looks each coding's turn up, and ordered lookups are cache-friendly.
            .order_by(Coding.transcript_id, Coding.start_offset, Coding.id)
        )
        .all()
    )
    found = _int_rows([row[:6] for row in independent], 6)
    found_values = _float_column([row[6] for row in independent])
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
    assisted_rows = np.array([row[7] is not None for row in independent], dtype=bool)
    assisted = int((kept & assisted_rows).sum())
    if without_assisted:
        kept &= ~assisted_rows
    kept_codings = int(kept.sum())
    values = found_values[kept]
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
        consensus_rows = session.execute(
            select(
                Coding.id, Coding.transcript_id, Coding.code_id, Coding.start_offset, Coding.end_offset, Coding.value
            )
            .where(Coding.deleted_at.is_(None), Coding.phase == "consensus", in_scope)
            .order_by(Coding.transcript_id, Coding.start_offset, Coding.id)
        ).all()
        consensus = _int_rows([row[:5] for row in consensus_rows], 5)
        consensus_values = _float_column([row[5] for row in consensus_rows])
        rater = len(coder_ids)
        coder_ids.append(None)
        names.append(CONSENSUS_RATER)
        phases = dict(session.execute(select(Transcript.id, Transcript.phase)).all())
        settled = np.array([[phases[tid] != "independent" for tid in transcript_ids]], dtype=bool)
        raters = np.vstack([raters, settled])
        where = _positions(consensus[:, 1], t_index)
        consensus = consensus[where >= 0]
        values = np.concatenate([values, consensus_values[where >= 0]])
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
    turn_rows = session.connection().execute(turn_query).all()
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
        coding_value=values,
    )
    return LoadedCorpus(
        corpus,
        transcript_ids,
        coder_ids,
        code_ids,
        code_parent,
        {row[0]: stored_applies_to(row[4]) for row in code_rows},
        {row[0]: stored_scale(row[5]) for row in code_rows},
        codings=kept_codings,
        assisted=assisted,
    )


def _float_column(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


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


def requested_speakers(speaker: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The --speaker option as roles: None when not given; ("all",) or roles otherwise."""
    if speaker is None or speaker == ():
        return None
    roles = (speaker,) if isinstance(speaker, str) else tuple(dict.fromkeys(speaker))
    for role in roles:
        if role != ALL_SPEAKERS and role not in SPEAKER_ROLES:
            raise ConcordError(
                f"unknown speaker role {role!r}; choose one of {', '.join(SPEAKER_ROLES)} or {ALL_SPEAKERS}"
            )
    if ALL_SPEAKERS in roles and len(roles) > 1:
        raise ConcordError(f"--speaker {ALL_SPEAKERS} means every speaker; give it alone")
    return roles


def check_options(options: AgreementOptions) -> None:
    if options.unit not in UNIT_KINDS:
        raise ConcordError(f"unknown unit {options.unit!r}; choose one of {', '.join(UNIT_KINDS)}")
    if options.uncoded not in UNCODED_CHOICES:
        raise ConcordError(f"unknown --uncoded {options.uncoded!r}; choose one of {', '.join(UNCODED_CHOICES)}")
    requested_speakers(options.speaker)
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
    roles = requested_speakers(options.speaker)
    if roles == (ALL_SPEAKERS,):
        text += "; every speaker's turns"
    elif roles:
        text += f"; only {' and '.join(roles)} turns"
    elif options.unit == "turn":
        text += "; each code or group on the turns of the speakers it applies to"
    if options.unit != "span":
        text += (
            "; units no coder coded are left out"
            if options.uncoded == "exclude"
            else "; units no coder coded are kept, rated absent by everyone"
        )
    return text


# -------------------------------------------------------------------------------------- variables


def _children_of(loaded: LoadedCorpus) -> dict[int | None, list[int]]:
    children_of: dict[int | None, list[int]] = {}
    for code_id in loaded.code_ids:
        children_of.setdefault(loaded.code_parent[code_id], []).append(code_id)
    return children_of


def _subtree(children_of: dict[int | None, list[int]], top: int) -> list[int]:
    found, queue = [], [top]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += children_of.get(current, [])
    return found


def declared_speakers(loaded: LoadedCorpus, code_id: int) -> tuple[str, ...] | None:
    """The speakers the codebook declares for a code: its own applies_to, or its nearest ancestor's."""
    seen: set[int] = set()
    current: int | None = code_id
    while current is not None and current not in seen:
        seen.add(current)
        roles = loaded.code_applies_to.get(current)
        if roles:
            return roles
        current = loaded.code_parent.get(current)
    return None


def _top_of(loaded: LoadedCorpus, code_id: int) -> int:
    seen = {code_id}
    while (parent := loaded.code_parent.get(code_id)) is not None and parent not in seen:
        seen.add(parent)
        code_id = parent
    return code_id


class _Speakers:
    """The rule for which speakers' turns are a variable's units, and the warnings it gives."""

    def __init__(self, loaded: LoadedCorpus, options: AgreementOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.requested = requested_speakers(options.speaker)
        self.children_of = _children_of(loaded)
        self.turns = turns_by_role(loaded.corpus)
        self.warnings: dict[str, None] = {}

    def of(self, code_id: int, members: list[int], what: str) -> tuple[str, ...] | None:
        """Roles for the variable of ``code_id`` (a group's parent, or a code), whose codes are ``members``
        (database ids) when the never-applied rule has to look at what was coded."""
        if self.requested == (ALL_SPEAKERS,):
            return None
        if self.requested:
            return self.requested
        declared = declared_speakers(self.loaded, code_id)
        if declared:
            return declared
        if self.options.unit != "turn":
            return None
        indices = [self.loaded.code_index(member) for member in members]
        coded = roles_coded(self.loaded.corpus, indices)
        present = [role for role in SPEAKER_ROLES if self.turns.get(role)]
        missing = [role for role in present if role not in coded]
        if not coded or not missing:
            return None
        if self.options.uncoded == "category":
            left_out = ", ".join(f"{self.turns[role]} {role}" for role in missing)
            self.warnings.setdefault(
                f"{what} was never applied to {' or '.join(missing)} turns: those turns ({left_out}) are left out"
                " of its agreement instead of counting as agreement on nothing. Declare applies_to in the"
                " codebook, or choose with --speaker (--speaker all keeps every turn)"
            )
        return tuple(role for role in SPEAKER_ROLES if role in coded)

    def of_code(self, code_id: int) -> tuple[str, ...] | None:
        """A code is compared on the speakers of its theme (its top-level ancestor and everything below)."""
        top = _top_of(self.loaded, code_id)
        theme = self.loaded.code_label(top)
        what = f"code group {theme!r}" if top != code_id else f"code {theme!r}"
        return self.of(code_id, _subtree(self.children_of, top), what)


def _groups(session: Session, loaded: LoadedCorpus, names: tuple[str, ...], rule: _Speakers) -> list[Group]:
    children_of = rule.children_of
    live = set(session.scalars(select(Code.id).where(Code.live())))
    groups = []
    for name in names:
        parent = find_code(session, name)
        values = [c for c in children_of.get(parent.id, []) if c in live]
        if len(values) < 2:
            raise ConcordError(f"{parent.name!r} has {len(values)} child code(s); a group needs at least two values")
        code_lists = [tuple(loaded.code_index(c) for c in _subtree(children_of, value)) for value in values]
        label = loaded.code_label(parent.id)
        members = [c for value in values for c in _subtree(children_of, value)]
        groups.append(
            Group(
                label,
                tuple(session.get(Code, value).name for value in values),
                tuple(code_lists),
                speakers=rule.of(parent.id, members, f"group {label!r}"),
            )
        )
    return groups


def _presence_codes(session: Session, loaded: LoadedCorpus, names: tuple[str, ...]) -> list[int]:
    if names:
        return list(dict.fromkeys(loaded.code_index(find_code(session, name).id) for name in names))
    used = set(np.unique(loaded.corpus.coding_code).tolist())
    return [i for i in range(len(loaded.corpus.codes)) if i in used]


def _scales(loaded: LoadedCorpus, codes: list[int], rule: _Speakers) -> list[Scale]:
    scales = []
    for index in codes:
        code_id = loaded.code_ids[index]
        spec = loaded.code_scale.get(code_id)
        if spec is None:
            continue
        scales.append(
            Scale(
                loaded.corpus.codes[index],
                index,
                spec.level,
                spec.point_values(),
                speakers=rule.of_code(code_id),
            )
        )
    return scales


def _tables(
    session: Session, loaded: LoadedCorpus, options: AgreementOptions
) -> tuple[list[tuple[str, list[RatingTable]]], tuple[str, ...]]:
    """The tables of each reading, and the warnings about units left out."""
    readings = []
    rule = _Speakers(loaded, options)
    common = {"uncoded": options.uncoded, "overlap": options.overlap}
    if options.codes or not options.groups:
        codes = _presence_codes(session, loaded, options.codes)
        speakers = {index: rule.of_code(loaded.code_ids[index]) for index in codes}
        readings.append(("code", presence_tables(loaded.corpus, options.unit, codes, code_speakers=speakers, **common)))
        scales = _scales(loaded, codes, rule)
        if scales:
            readings.append(("scale", scale_tables(loaded.corpus, options.unit, scales, overlap=options.overlap)))
    if options.groups:
        groups = _groups(session, loaded, options.groups, rule)
        readings.append(("group", group_tables(loaded.corpus, options.unit, groups, **common)))
    return readings, tuple(rule.warnings)


# ------------------------------------------------------------------------------------- statistics


def _plain(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _fleiss_problem(table: RatingTable) -> str:
    rated = table.rated_per_unit()
    return _fleiss_problem_text(sorted(set(rated[rated >= 2].tolist())))


def _fleiss_problem_text(sizes: list[int]) -> str:
    return (
        f"fleiss_kappa needs the same number of coders on every unit; here units have"
        f" {' or '.join(str(s) for s in sizes)} ratings (not every coder rated every transcript):"
        " use alpha, which allows missing ratings"
    )


def _reading_statistics(reading: str, table: RatingTable, statistics: tuple[str, ...]) -> tuple[str, ...]:
    """The statistics asked for that fit the reading: values on a scale get alpha at their level and weighted
    kappa; categories get the nominal statistics."""
    if reading != "scale":
        return tuple(s for s in statistics if s in NOMINAL_STATISTICS)
    names: list[str] = []
    for statistic in statistics:
        if statistic == "percent":
            names.append("percent")
        elif statistic == "krippendorff_alpha":
            names.append(f"krippendorff_alpha_{table.level}")
        elif statistic == "weighted_kappa":
            names += ["weighted_kappa_linear", "weighted_kappa_quadratic"]
    return tuple(names)


def _scale_values(table: RatingTable, statistic: str) -> tuple[float, ...]:
    # Weighted kappa on an ordinal scale weighs by rank (the distance in scale points), on an interval or
    # ratio scale by the values themselves; alpha's ordinal metric uses only their order anyway.
    if statistic.startswith("weighted_kappa") and table.level == "ordinal":
        return tuple(float(position) for position in range(table.n_categories))
    return table.category_values


def _table_problem(table: RatingTable, statistic: str) -> str | None:
    """Why a statistic does not fit a table at all (the same for every part of it), or None."""
    if statistic in ("cohen_kappa",) or statistic.startswith("weighted_kappa"):
        if len(table.coders) != 2:
            return (
                f"{statistic} needs exactly 2 coders; this scope has {len(table.coders)}"
                f" ({', '.join(table.coders)}): pick two with --coders, or see the coder_pair rows or alpha"
            )
    elif statistic == "brennan_prediger" and table.mixed_categories:
        return "brennan_prediger: the pooled groups offer different categories, so q is undefined; see each group"
    return None


def _row(
    table: RatingTable,
    statistic: str,
    result: StatResult | None,
    problem: str | None,
    alone: bool,
    options: AgreementOptions,
    scope: str,
    units_total: int,
    disagreements: int,
    where: dict[str, Any],
) -> AgreementRow:
    """One report row: the statistic's result, or the reason it was skipped (an error when it was asked alone)."""
    base = dict(
        scope=scope,
        statistic=statistic,
        unit=options.unit,
        units_total=units_total,
        disagreements=disagreements,
        coder_names=table.coders,
        reading=table.reading,
        speakers=table.speakers,
        **where,
    )
    if problem is not None or result is None:
        if alone:
            raise ConcordError(problem)
        return AgreementRow(
            value=None, units=0, coders=len(table.coders), ci_low=None, ci_high=None, note=f"skipped: {problem}", **base
        )
    note = result.note
    if table.conflicts:
        conflict = f"{table.conflicts} rating(s) left out: a coder gave one unit two different values"
        note = f"{note}; {conflict}" if note else conflict
    return AgreementRow(
        value=_plain(result.value),
        units=result.units,
        coders=result.coders,
        ci_low=_plain(result.ci_low),
        ci_high=_plain(result.ci_high),
        note=note,
        **base,
    )


def _result_rows(
    table: RatingTable, statistics: tuple[str, ...], alone: bool, options: AgreementOptions, scope: str, **where
) -> list[AgreementRow]:
    rows = []
    ratings, weights = table.ratings, None
    if not options.bootstrap and table.n_units >= 1024 and table.n_categories:
        # Every statistic depends on a unit only through its column of ratings: computed once on the few
        # distinct columns, each weighted by how often it occurs, rather than on every unit five times.
        ratings, index = rating_patterns(table.ratings, table.n_categories)
        weights = np.bincount(index, minlength=ratings.shape[1])
        disagreements = int(weights[disagreeing(ratings)].sum())
    else:
        disagreements = int(table.disagreements().sum())
    for statistic in _reading_statistics(table.reading, table, statistics):
        problem = _table_problem(table, statistic)
        result = None
        if problem is None:
            try:
                if table.reading == "scale":
                    result = compute(
                        statistic,
                        ratings,
                        table.n_categories,
                        options.bootstrap,
                        options.seed,
                        values=_scale_values(table, statistic),
                        weights=weights,
                    )
                elif statistic == "brennan_prediger":
                    # q is the categories of the design: a group's codes, "(none)" only where it was given.
                    design, q = table.design_ratings(ratings)
                    result = compute(statistic, design, q, options.bootstrap, options.seed, weights=weights)
                else:
                    result = compute(
                        statistic, ratings, table.n_categories, options.bootstrap, options.seed, weights=weights
                    )
            except RatingsError as exc:
                problem = _fleiss_problem(table) if statistic == "fleiss_kappa" else f"{statistic}: {exc}"
        rows.append(_row(table, statistic, result, problem, alone, options, scope, table.n_units, disagreements, where))
    return rows


def _transcript_parts(table: RatingTable, wanted: np.ndarray):
    """(transcript index, the table restricted to that transcript's units) for each wanted transcript, as
    ``select_units`` would give them, from one stable sort instead of a mask over all units per transcript."""
    order = np.argsort(table.unit_transcript, kind="stable")
    bounds = np.searchsorted(table.unit_transcript[order], np.arange(int(table.unit_transcript.max()) + 2))
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    source_transcript = table.unit_transcript[table.source_unit]
    source_order = np.argsort(source_transcript, kind="stable")
    source_bounds = np.searchsorted(source_transcript[source_order], np.arange(int(table.unit_transcript.max()) + 2))
    for index in wanted.tolist():
        units = order[bounds[index] : bounds[index + 1]]
        sources = source_order[source_bounds[index] : source_bounds[index + 1]]
        yield (
            index,
            replace(
                table,
                ratings=table.ratings[:, units],
                unit_transcript=table.unit_transcript[units],
                unit_start=table.unit_start[units],
                unit_end=table.unit_end[units],
                unit_turn=table.unit_turn[units],
                source_unit=position[table.source_unit[sources]] - bounds[index],
                source_coding=table.source_coding[sources],
            ),
        )


def _transcript_rows(
    stacked: RatingTable, statistics: tuple[str, ...], alone: bool, options: AgreementOptions, corpus: Corpus
) -> list[AgreementRow]:
    """The per-transcript rows of a stacked table (when it spans several transcripts).

    Every transcript's statistics come from one pass over all units, grouped by transcript with bincount
    (analysis.agreement_stats.statistics_by_group): linear in the study, where computing each transcript
    on its own masked all units once per transcript. A bootstrap resamples each transcript on its own."""
    n = len(corpus.transcripts)
    units_per = np.bincount(stacked.unit_transcript, minlength=n)
    with_units = np.flatnonzero(units_per)
    if len(with_units) <= 1:
        return []
    if options.bootstrap:
        rows: list[AgreementRow] = []
        for index, part in _transcript_parts(stacked, with_units):
            rows += _result_rows(part, statistics, alone, options, "transcript", transcript=corpus.transcripts[index])
        return rows
    names = _reading_statistics(stacked.reading, stacked, statistics)
    problems = {name: _table_problem(stacked, name) for name in names}
    computable = [name for name in names if problems[name] is None]
    q = None
    if "brennan_prediger" in computable and stacked.empty_label in stacked.categories:
        # As design_ratings per transcript: "(none)" counts as a category only where some coder gave it.
        given = (stacked.ratings == stacked.categories.index(stacked.empty_label)).any(axis=0)
        has_empty = np.bincount(stacked.unit_transcript[given], minlength=n) > 0
        q = np.where(has_empty, stacked.n_categories, stacked.n_categories - 1)
    results = statistics_by_group(computable, stacked.ratings, stacked.n_categories, stacked.unit_transcript, n, q=q)
    disagreements = np.bincount(stacked.unit_transcript[stacked.disagreements()], minlength=n)
    sizes = None
    if "fleiss_kappa" in computable:
        rated = stacked.rated_per_unit()
        sizes = np.zeros((n, len(stacked.coders) + 1), dtype=bool)
        sizes[stacked.unit_transcript[rated >= 2], rated[rated >= 2]] = True
    rows = []
    for index in with_units.tolist():
        where = {"transcript": corpus.transcripts[index]}
        for name in names:
            problem, result = problems[name], None
            if problem is None:
                found = results[name][index]
                if isinstance(found, RatingsError):
                    if name == "fleiss_kappa" and sizes is not None:
                        problem = _fleiss_problem_text(np.flatnonzero(sizes[index]).tolist())
                    else:
                        problem = f"{name}: {found}"
                else:
                    result = found
            rows.append(
                _row(
                    stacked,
                    name,
                    result,
                    problem,
                    alone,
                    options,
                    "transcript",
                    int(units_per[index]),
                    int(disagreements[index]),
                    where,
                )
            )
    return rows


def _summaries(reading: str, tables: list[RatingTable], rows: list[AgreementRow]) -> list[VariableSummary]:
    summaries = []
    for table in tables:
        mine = {r.statistic: r for r in rows if r.scope == reading and (r.code or r.group) == table.variable}
        if reading == "scale":
            kappa_name = "weighted_kappa_quadratic"
            alpha_name = f"krippendorff_alpha_{table.level}"
        else:
            kappa_name = "cohen_kappa" if len(table.coders) == 2 else "fleiss_kappa"
            alpha_name = "krippendorff_alpha"
        kappa = mine.get(kappa_name)
        alpha = mine.get(alpha_name)
        percent = mine.get("percent")
        notes = [r.note for r in (kappa, alpha) if r is not None and r.note and r.value is None]
        # Every row of a variable carries its disagreements: counted once, in _result_rows.
        counted = next(iter(mine.values()), None)
        summaries.append(
            VariableSummary(
                reading=reading,
                name=table.variable,
                units=table.n_units,
                disagreements=counted.disagreements if counted else int(table.disagreements().sum()),
                percent=percent.value if percent else None,
                kappa=kappa.value if kappa else None,
                kappa_statistic=kappa_name,
                alpha=alpha.value if alpha else None,
                note="; ".join(dict.fromkeys(notes)) or None,
                speakers=table.speakers,
                alpha_statistic=alpha_name,
            )
        )
    return summaries


def _build(workspace: Workspace, options: AgreementOptions):
    require_agreement_rights(workspace)
    check_options(options)
    with workspace.store.reader() as session:
        loaded = load_corpus(
            session,
            transcript_keys=options.transcripts,
            coder_names=options.coders,
            phase=options.phase,
            without_assisted=options.without_assisted,
        )
        if len(loaded.corpus.coders) < 2:
            found = ", ".join(loaded.corpus.coders) or "nobody"
            raise ConcordError(f"agreement needs at least 2 coders with codings; found {found}")
        try:
            readings, warnings = _tables(session, loaded, options)
        except UnitsError as exc:
            raise ConcordError(str(exc)) from None
    return loaded, readings, warnings


def _distinct_units(readings: list[tuple[str, list[RatingTable]]], unit: str) -> int:
    tables = [table for _, tables in readings for table in tables]
    if unit == "span":
        return sum(table.n_units for table in tables)
    # Most tables share one set of units (every code on the same turns): each distinct set is counted once.
    distinct: dict[bytes, tuple[np.ndarray, ...]] = {}
    for table in tables:
        columns = (table.unit_transcript, table.unit_start, table.unit_end)
        distinct.setdefault(b"".join(np.ascontiguousarray(c).tobytes() + b"|" for c in columns), columns)
    if not distinct:
        return 0
    transcript, start, end = (np.concatenate(parts) for parts in zip(*distinct.values()))
    order = np.lexsort((end, start, transcript))
    transcript, start, end = transcript[order], start[order], end[order]
    changes = (np.diff(transcript) != 0) | (np.diff(start) != 0) | (np.diff(end) != 0)
    return int(transcript.size and 1 + np.count_nonzero(changes))


def compute_agreement(workspace: Workspace, options: AgreementOptions = AgreementOptions()) -> AgreementReport:
    """The agreement report: rows per code/group, pooled, per transcript and per coder pair."""
    loaded, readings, warnings = _build(workspace, options)
    statistics, alone = _statistics(options.statistics)
    fits = {
        reading: bool(tables and _reading_statistics(reading, tables[0], statistics)) for reading, tables in readings
    }
    if alone and readings and not any(fits.values()):
        asked = statistics[0]
        raise ConcordError(
            f"{asked} does not fit what is compared: weighted kappa is for codes that carry a value on a scale,"
            " the kappas and Brennan-Prediger for codes and groups (alpha and percent fit both)"
        )
    corpus = loaded.corpus
    rows: list[AgreementRow] = []
    summaries: list[VariableSummary] = []
    for reading, tables in readings:
        if not tables or not fits[reading]:
            continue
        reading_rows: list[AgreementRow] = []
        for table in tables:
            where = {"code": table.variable} if reading == "scale" else {reading: table.variable}
            # With three or more coders the pairs carry weighted kappa, so its absence here is no error.
            strict = alone and (reading != "scale" or len(corpus.coders) == 2)
            reading_rows += _result_rows(table, statistics, strict, options, reading, **where)
            if reading == "scale" and len(corpus.coders) > 2:
                # Weighted kappa is for two coders: every pair, on this code's values.
                for first, second in combinations(range(len(corpus.coders)), 2):
                    reading_rows += _result_rows(
                        table.select_coders([first, second]),
                        statistics,
                        False,
                        options,
                        "coder_pair",
                        code=table.variable,
                        coder_pair=(corpus.coders[first], corpus.coders[second]),
                    )
        if reading != "scale":
            reading_rows += _stacked_rows(reading, tables, statistics, alone, options, corpus)
        rows += reading_rows
        summaries += _summaries(reading, tables, reading_rows)
    rated = corpus.raters.any(axis=0)
    return AgreementReport(
        unit=options.unit,
        unit_description=describe_unit(options),
        units_total=_distinct_units(readings, options.unit),
        transcripts=tuple(k for k, r in zip(corpus.transcripts, rated) if r),
        coders=corpus.coders,
        rows=tuple(rows),
        summaries=tuple(summaries),
        warnings=warnings,
        codings=loaded.codings,
        assisted=loaded.assisted,
        without_assisted=options.without_assisted,
    )


def _stacked_rows(
    reading: str,
    tables: list[RatingTable],
    statistics: tuple[str, ...],
    alone: bool,
    options: AgreementOptions,
    corpus: Corpus,
) -> list[AgreementRow]:
    """Pooled, per-transcript and per-coder-pair rows over the reading's codes or groups stacked."""
    rows: list[AgreementRow] = []
    stacked = stack(tables, "all codes" if reading == "code" else "all groups")
    if len(tables) > 1:
        rows += _result_rows(stacked, statistics, alone, options, "pooled")
    rows += _transcript_rows(stacked, statistics, alone, options, corpus)
    if len(corpus.coders) > 2:
        for first, second in combinations(range(len(corpus.coders)), 2):
            pair = stacked.select_coders([first, second])
            rows += _result_rows(
                pair, statistics, alone, options, "coder_pair", coder_pair=(corpus.coders[first], corpus.coders[second])
            )
    return rows


def _speaker_at(corpus: Corpus, transcript: int, start: int, end: int) -> str | None:
    hit = (corpus.turn_transcript == transcript) & (corpus.turn_start < end) & (corpus.turn_end > start)
    roles = list(dict.fromkeys(corpus.turn_speaker[hit].tolist()))
    return ", ".join(roles) if roles else None


def disagreement_units(
    workspace: Workspace, options: AgreementOptions, reading: str, variable: str, *, limit: int | None = None
) -> list[DisagreementUnit]:
    """The units of one code or group where the coders differ, with the unit's text and every rating."""
    loaded, readings, _ = _build(workspace, options)
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
