"""Theme frequency tables, group summaries and the IPR representativeness table.

Pure functions over the plain records of ``exporters.records.ResultsData`` (pandas
frames and frozen dataclasses); they read no database and write no file.

What a count means (a theme's or sub-theme's count always includes the codings of
all codes below it):

* segments: the number of coded segments (codings) of the code or any descendant.
* turns: the number of distinct turns that the code's or its descendants' codings
  overlap (a turn is overlapped when a coding shares at least one character with it).
* words: the words inside the union of the code's and its descendants' coded spans,
  so a stretch coded twice under one theme counts once. Only what was said counts:
  characters inside a turn's non-verbal annotation ranges (``Turn.nonverbal``:
  "(sighs)", "[laughter]") and characters outside every turn (the speaker labels and
  line breaks a span crossing turns takes in) are left out. A word is a run of letters or digits, with inner apostrophes or hyphens
  ("don't", "um-hm" and "well-being" are one word each).
* presence: 1 when the unit has at least one coded segment of the code, else 0.

Counts of transcripts add up to sessions, dyads and groups (distinct turns and
spans of different transcripts never overlap); presence is taken after adding up.

Linked scores (only when the actor may see them):

* "<instrument> <respondent> total" and "<instrument> <respondent> <subscale>" from
  the questionnaire scores of the unit's session.
* "alliance mean": per session, the mean of the client's alliance and the therapist's
  alliance, where the client's (therapist's) alliance is the mean item score of the client's
  (therapist's) form of an instrument whose name starts with "WAI" (the mean of those
  should one side have filled in several WAI forms). Empty unless both sides have one. The
  mean item score (a summed total over its number of items) puts forms of different lengths
  and ranges on one scale: a WAI-SR total of 48 and a WAI-S total of 60 are 4.0 and 5.0.
* "alliance z within dyad": (alliance mean - the dyad's mean) / the dyad's standard
  deviation (n - 1 in the denominator, as R's scale()), over all sessions of the same
  dyad in the study that have an alliance mean. Empty with fewer than two such
  sessions or no spread.
* For dyads and groups, each score column is the mean over the unit's sessions (the
  sessions with a transcript in the unit, each counted once); no z-score is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from concord.analysis.scoring import mean_item_score, squash
from concord.exporters.records import CodeNode, ResultsData
from concord.exporters.writers import TableSpec
from concord.storage.errors import ConcordError, PermissionDenied

COUNTS = ("segments", "turns", "words", "presence")
UNITS = ("transcript", "session", "dyad", "group")
WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
ALLIANCE = "alliance mean"
ALLIANCE_Z = "alliance z within dyad"
EXPLORATORY = "exploratory: no correction for multiple tests"
# Exact permutation p-values for Mann-Whitney U while the number of group splits stays small.
EXACT_SPLITS_LIMIT = 20_000


# What services.results.gather must read for each count.
GATHER_FOR: dict[str, dict[str, Any]] = {
    "segments": {},
    "presence": {},
    "turns": {"turns": "bounds"},
    "words": {"spans": True, "turns": "bounds"},
}


def count_words(text: str) -> int:
    return sum(1 for _ in WORD.finditer(text))


def blank_ranges(text: str, offset: int, ranges: Iterable[Sequence[int]]) -> str:
    """``text`` (which starts at transcript offset ``offset``) with the given ranges blanked out."""
    end = offset + len(text)
    pieces, cursor = [], offset
    for a, b in sorted((int(a), int(b)) for a, b in ranges):
        a, b = max(a, cursor), min(b, end)
        if a >= b:
            continue
        pieces.append(text[cursor - offset : a - offset])
        pieces.append(" " * (b - a))
        cursor = b
    pieces.append(text[cursor - offset :])
    return "".join(pieces)


# -- counting ----------------------------------------------------------------------------


def coding_turns(codings: pd.DataFrame, turns: pd.DataFrame) -> pd.DataFrame:
    """Pairs (coding_id, turn_id) of codings and the turns they overlap, found with two
    binary searches over all turns at once (turns sorted by transcript and start)."""
    empty = pd.DataFrame({"coding_id": pd.Series([], dtype="int64"), "turn_id": pd.Series([], dtype="int64")})
    if codings.empty or turns.empty:
        return empty
    ordered = turns.sort_values(["transcript_id", "char_start"], kind="stable")
    shift = np.int64(1) << np.int64(32)
    turn_tid = ordered["transcript_id"].to_numpy(np.int64) * shift
    starts = turn_tid + ordered["char_start"].to_numpy(np.int64)
    ends = np.maximum.accumulate(turn_tid + ordered["char_end"].to_numpy(np.int64))
    coding_tid = codings["transcript_id"].to_numpy(np.int64) * shift
    c_start = coding_tid + codings["start"].to_numpy(np.int64)
    c_end = coding_tid + codings["end"].to_numpy(np.int64)
    first = np.searchsorted(ends, c_start, side="right")
    stop = np.searchsorted(starts, c_end, side="left")
    sizes = np.clip(stop - first, 0, None)
    if not sizes.sum():
        return empty
    which = np.repeat(np.arange(len(codings)), sizes)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    turn_pos = first[which] + (np.arange(len(which)) - offsets)
    # The running maximum of ends can admit a turn that ends before the coding: check exactly.
    true_ends = turn_tid + ordered["char_end"].to_numpy(np.int64)
    keep = (starts[turn_pos] < c_end[which]) & (true_ends[turn_pos] > c_start[which])
    return pd.DataFrame(
        {
            "coding_id": codings["coding_id"].to_numpy(np.int64)[which[keep]],
            "turn_id": ordered["turn_id"].to_numpy(np.int64)[turn_pos[keep]],
        }
    )


def lineage(codes: Sequence[CodeNode]) -> dict[int, list[int]]:
    """Each code with its ancestors: a coding counts for all of them."""
    parents = {node.id: node.parent_id for node in codes}
    result = {}
    for node in codes:
        chain, current = [], node.id
        while current is not None and current in parents and current not in chain:
            chain.append(current)
            current = parents[current]
        result[node.id] = chain
    return result


def _hidden_by_coding(codings: pd.DataFrame, turns: pd.DataFrame, pairs: pd.DataFrame) -> dict[int, list]:
    """Per coding, the ranges whose words do not count: non-verbal annotations of the turns it
    overlaps and any stretch outside those turns (speaker labels, line breaks between turns).
    Codings that sit inside one turn without annotations (the usual case) are not listed."""
    if turns.empty or pairs.empty:
        return {}
    joined = pairs.merge(turns[["turn_id", "char_start", "char_end", "nonverbal"]], on="turn_id")
    joined = joined.merge(codings[["coding_id", "start", "end"]], on="coding_id")
    turns_per_coding = joined.groupby("coding_id", sort=False)["turn_id"].transform("size")
    simple = (
        (turns_per_coding == 1)
        & (joined["char_start"] <= joined["start"])
        & (joined["end"] <= joined["char_end"])
        & joined["nonverbal"].isna()
    )
    rest = joined[~simple].sort_values(["coding_id", "char_start"], kind="stable")
    hidden: dict[int, list] = {}
    current, cursor, end, ranges = None, 0, 0, []

    def close() -> None:
        if current is not None:
            if cursor < end:
                ranges.append((cursor, end))
            if ranges:
                hidden[current] = ranges

    for coding_id, start, stop, t_start, t_end, nonverbal in zip(
        rest["coding_id"].tolist(),
        rest["start"].tolist(),
        rest["end"].tolist(),
        rest["char_start"].tolist(),
        rest["char_end"].tolist(),
        rest["nonverbal"].tolist(),
    ):
        if coding_id != current:
            close()
            current, cursor, end, ranges = coding_id, start, stop, []
        if t_start > cursor:
            ranges.append((cursor, t_start))
        cursor = max(cursor, t_end)
        if isinstance(nonverbal, list):
            ranges.extend((int(a), int(b)) for a, b in nonverbal)
    close()
    return hidden


def _union_words(spans: list[tuple[int, int, str]], ranges: list) -> int:
    """Words in the union of overlapping or touching spans (start, end, text), minus non-verbal ranges."""
    total = 0
    spans = sorted(spans)
    cur_start, cur_end, cur_text = spans[0]
    for start, end, text in spans[1:]:
        if start <= cur_end:
            if end > cur_end:
                cur_text += text[cur_end - start :]
                cur_end = end
        else:
            total += count_words(blank_ranges(cur_text, cur_start, ranges))
            cur_start, cur_end, cur_text = start, end, text
    return total + count_words(blank_ranges(cur_text, cur_start, ranges))


def code_counts(codes: Sequence[CodeNode], codings: pd.DataFrame, turns: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per (transcript_id, code_id) with a coding of the code or a descendant: ``value``.

    For ``presence`` the value is the number of segments (made 0/1 after adding up units).
    """
    if measure not in COUNTS:
        raise ValueError(f"unknown count {measure!r}; choose one of {', '.join(COUNTS)}")
    columns = ["transcript_id", "code_id", "value"]
    if measure == "words" and "text" not in codings:
        raise ValueError("counting words needs the coded text: gather(..., spans=True, turns='bounds')")
    if measure in ("turns", "words") and turns.empty and not codings.empty:
        raise ValueError(f"counting {measure} needs the turns: gather(..., turns='bounds')")
    if codings.empty:
        return pd.DataFrame({c: pd.Series([], dtype="int64") for c in columns})
    lines = lineage(codes)
    expanded = codings[["coding_id", "transcript_id", "code_id", "start", "end"]].copy()
    expanded["node"] = expanded["code_id"].map(lines)
    expanded = expanded[expanded["node"].notna()].explode("node")
    expanded["node"] = expanded["node"].astype("int64")
    keys = ["transcript_id", "node"]
    if measure in ("segments", "presence"):
        result = expanded.groupby(keys, sort=False).size()
    elif measure == "turns":
        pairs = coding_turns(codings, turns)
        joined = expanded[["coding_id", "transcript_id", "node"]].merge(pairs, on="coding_id")
        result = joined.drop_duplicates(["node", "turn_id"]).groupby(keys, sort=False).size()
    else:
        result = _word_counts(codings, turns, expanded)
    frame = result.rename("value").reset_index().rename(columns={"node": "code_id"})
    return frame[columns].astype("int64")


def _word_counts(codings: pd.DataFrame, turns: pd.DataFrame, expanded: pd.DataFrame) -> pd.Series:
    pairs = coding_turns(codings, turns)
    nonverbal = _hidden_by_coding(codings, turns, pairs)
    # A coding that overlaps no turn at all lies between turns (a speaker label): no words, unless
    # the transcript has no turns, when the whole span counts.
    with_turns = set(turns["transcript_id"].astype("int64")) if not turns.empty else set()
    outside = set(codings["coding_id"].astype("int64")) - set(pairs["coding_id"])
    for coding_id, start, end, tid in zip(
        codings["coding_id"], codings["start"], codings["end"], codings["transcript_id"]
    ):
        if int(coding_id) in outside and int(tid) in with_turns:
            nonverbal[int(coding_id)] = [(int(start), int(end))]
    words = {}
    for coding_id, start, text in zip(codings["coding_id"], codings["start"], codings["text"]):
        ranges = nonverbal.get(int(coding_id))
        words[int(coding_id)] = count_words(blank_ranges(text, int(start), ranges) if ranges else text)
    expanded = expanded.sort_values(["transcript_id", "node", "start", "end"], kind="stable")
    expanded["words"] = expanded["coding_id"].map(words)
    # A span that starts before the previous spans of the same code end (or where they end) overlaps
    # or touches them: such groups are counted over the union of their spans, the rest by adding up.
    reach = expanded.groupby(["transcript_id", "node"], sort=False)["end"].cummax()
    previous_reach = reach.groupby([expanded["transcript_id"], expanded["node"]], sort=False).shift(1)
    expanded["joins"] = expanded["start"] <= previous_reach
    keys = ["transcript_id", "node"]
    result = expanded.groupby(keys, sort=False)["words"].sum()
    joined_groups = expanded.loc[expanded["joins"], keys].drop_duplicates()
    if not joined_groups.empty:
        texts = dict(zip(codings["coding_id"].tolist(), codings["text"].tolist()))
        flagged = expanded.merge(joined_groups, on=keys)
        spans_of: dict[tuple[int, int], list] = {}
        for tid, node, coding_id, start, end in zip(
            flagged["transcript_id"].tolist(),
            flagged["node"].tolist(),
            flagged["coding_id"].tolist(),
            flagged["start"].tolist(),
            flagged["end"].tolist(),
        ):
            spans_of.setdefault((tid, node), []).append((start, end, texts[coding_id], coding_id))
        unions = {
            key: _union_words([(a, b, t) for a, b, t, _ in spans], [r for *_, c in spans for r in nonverbal.get(c, ())])
            for key, spans in spans_of.items()
        }
        result = result.copy()
        result.loc[list(unions)] = list(unions.values())
    return result


# -- units, attributes and scores ---------------------------------------------------------


def natural_key(value) -> tuple:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in re.split(r"(\d+)", text) if part
    )


def _typed(value: str | None, value_type: str):
    if value is None:
        return None
    if value_type == "number":
        try:
            return float(value)
        except ValueError:
            return value
    return value


RESERVED = {
    "unit",
    "transcript",
    "kind",
    "perspective",
    "dyad",
    "session",
    "sessions",
    "transcripts",
    "code path",
    "code",
    "level",
    "measure",
    "count",
}


def attribute_columns(data: ResultsData) -> pd.DataFrame:
    """One row per transcript (transcript_id) with every attribute it may be shown: a transcript's
    own attribute wins over its session's, which wins over its dyad's."""
    units = data.units
    attributes = data.attributes
    if attributes.empty:
        return pd.DataFrame({"transcript_id": units["transcript_id"]})
    values: dict[tuple[str, int], dict[str, object]] = {}
    for kind, target, name, value, value_type in zip(
        attributes["target_kind"],
        attributes["target_id"],
        attributes["name"],
        attributes["value"],
        attributes["value_type"],
    ):
        column = f"{name} (attribute)" if name in RESERVED else name
        values.setdefault((kind, int(target)), {})[column] = _typed(value, value_type)
    names = list(dict.fromkeys((f"{n} (attribute)" if n in RESERVED else n) for n in attributes["name"]))
    rows = []
    for tid, session_id, dyad_id in zip(units["transcript_id"], units["session_id"], units["dyad_id"]):
        merged: dict[str, object] = {}
        if not pd.isna(dyad_id):
            merged.update(values.get(("dyad", int(dyad_id)), {}))
        if not pd.isna(session_id):
            merged.update(values.get(("session", int(session_id)), {}))
        merged.update(values.get(("transcript", int(tid)), {}))
        rows.append([tid] + [merged.get(n) for n in names])
    frame = pd.DataFrame(rows, columns=["transcript_id"] + names)
    return frame.dropna(axis=1, how="all")


def session_scores(scores: pd.DataFrame, measures: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per session (session_id, dyad_id) with a column per instrument total and subscale,
    the alliance mean and its z-score within the dyad. See the module notes."""
    wanted = {squash(m) for m in measures} if measures else None
    if wanted is not None:
        scores = scores[scores["instrument"].map(lambda name: squash(name) in wanted)]
    if scores.empty:
        return pd.DataFrame({"session_id": pd.Series([], dtype="int64")})
    columns: dict[str, None] = {}
    per_session: dict[int, dict[str, float]] = {}
    dyads: dict[int, int] = {}
    for session_id, dyad_id, instrument, respondent, total, subscales in zip(
        scores["session_id"],
        scores["dyad_id"],
        scores["instrument"],
        scores["respondent"],
        scores["total"],
        scores["subscales"],
    ):
        row = per_session.setdefault(int(session_id), {})
        dyads[int(session_id)] = int(dyad_id)
        stem = f"{instrument} {respondent}"
        columns[f"{stem} total"] = None
        row[f"{stem} total"] = np.nan if total is None else float(total)
        for name, value in (subscales or {}).items():
            column = f"{stem} {str(name).lower()}"
            columns[column] = None
            row[column] = np.nan if value is None else float(value)
    frame = pd.DataFrame.from_dict(per_session, orient="index").reindex(columns=list(columns))
    frame.index.name = "session_id"
    frame = frame.reset_index()
    frame.insert(1, "dyad_id", frame["session_id"].map(dyads))

    alliance = scores[scores["instrument"].map(lambda name: squash(name).startswith("wai"))]
    if not alliance.empty:
        items = alliance["items"] if "items" in alliance else [None] * len(alliance)
        per_item = [mean_item_score(i, t, a) for i, t, a in zip(alliance["instrument"], alliance["total"], items)]
        sides = (
            alliance.assign(total=pd.Series(per_item, index=alliance.index, dtype=float))
            .groupby(["session_id", "respondent"])["total"]
            .mean()
            .unstack()
        )
        if {"client", "therapist"} <= set(sides.columns):
            mean = ((sides["client"] + sides["therapist"]) / 2).rename(ALLIANCE)
            frame = frame.merge(mean, left_on="session_id", right_index=True, how="left")
            grouped = frame.groupby("dyad_id")[ALLIANCE]
            spread = grouped.transform("std").where(grouped.transform("count") >= 2)
            z = (frame[ALLIANCE] - grouped.transform("mean")) / spread
            frame[ALLIANCE_Z] = z.where(spread > 0)
    return frame


# -- the frequency table -------------------------------------------------------------------


@dataclass(frozen=True)
class FrequencyTables:
    by: str
    measure: str
    layer: str
    wide: pd.DataFrame
    id_columns: list[str]
    attribute_columns: list[str]
    score_columns: list[str]
    code_columns: list[str]
    codes: tuple  # the CodeNodes of code_columns, same order
    group_attribute: str | None
    notes: list[str] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    # Units of each group counted or not (covered or not), for "n covered / n in the group".
    group_sizes: dict[str, int] = field(default_factory=dict)
    units_in_study: int | None = None  # every unit with a key, covered or not
    coverage: str | None = None  # the sentence that says what was counted

    def long(self) -> pd.DataFrame:
        """Tidy: one row per unit and code, with the unit's columns, scores and attributes repeated."""
        n_units, n_codes = len(self.wide), len(self.code_columns)
        keep = self.id_columns + self.score_columns + self.attribute_columns
        base = self.wide[keep]
        repeated = base.iloc[np.repeat(np.arange(n_units), n_codes)].reset_index(drop=True)
        values = self.wide[self.code_columns].to_numpy().reshape(-1) if n_codes else np.array([], dtype=int)
        middle = pd.DataFrame(
            {
                "code path": np.tile(np.array([n.path_name for n in self.codes], dtype=object), n_units),
                "code": np.tile(np.array([n.label for n in self.codes], dtype=object), n_units),
                "level": np.tile(np.array([n.level for n in self.codes], dtype=object), n_units),
                "measure": self.measure,
                "count": values,
            }
        )
        ids = repeated[self.id_columns]
        rest = repeated[self.score_columns + self.attribute_columns]
        return pd.concat([ids, middle, rest], axis=1)

    def long_columns(self) -> list[str]:
        return (
            self.id_columns
            + ["code path", "code", "level", "measure", "count"]
            + self.score_columns
            + self.attribute_columns
        )

    def write_long_csv(self, path) -> None:
        """The long form straight to CSV, the same text as ``long().to_csv(index=False)``: each unit's
        columns are formatted once, not once per code, which is what makes this fast."""
        import csv
        import io

        def formatted(columns: list[str]) -> list[str]:
            if not columns:
                return [""] * len(self.wide)
            part = self.wide[columns]
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            lines = []
            for row in part.astype(object).where(part.notna(), None).to_numpy().tolist():
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(row)
                lines.append(buffer.getvalue()[:-1])
            return lines

        def line(values: list) -> str:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(values)
            return buffer.getvalue()

        ids = formatted(self.id_columns)
        rest = (
            ["," + text for text in formatted(self.score_columns + self.attribute_columns)]
            if self.score_columns or self.attribute_columns
            else [""] * len(self.wide)
        )
        code_fields = [line([n.path_name, n.label, n.level, self.measure]) for n in self.codes]
        counts = self.wide[self.code_columns].to_numpy().tolist()
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(line(self.long_columns()) + "\n")
            handle.writelines(
                f"{ids[u]},{fields},{row[c]}{rest[u]}\n"
                for u, row in enumerate(counts)
                for c, fields in enumerate(code_fields)
            )


def _unit_label(by: str, dyad, session, group) -> str:
    if by == "session":
        return f"dyad {dyad}, session {session}"
    if by == "dyad":
        return f"dyad {dyad}"
    return str(group)


def _distinct(values: pd.Series):
    seen = list(dict.fromkeys(values.dropna().tolist()))
    if not seen:
        return None
    if len(seen) == 1:
        return seen[0]
    return "; ".join(str(v) for v in sorted(seen, key=natural_key))


def frequency_table(
    data: ResultsData,
    *,
    by: str = "transcript",
    measure: str = "segments",
    measures: Iterable[str] | None = None,
    group_attribute: str = "group",
    counts: pd.DataFrame | None = None,
) -> FrequencyTables:
    """The frequency table (one row per unit) with linked scores and attributes, and the group
    summary when the group attribute is there to see."""
    if by not in UNITS:
        raise ValueError(f"unknown unit {by!r}; choose one of {', '.join(UNITS)}")
    notes: list[str] = []
    codes = list(data.codes)
    if counts is None:
        counts = code_counts(codes, data.codings, data.turns, measure)
    units = data.units.copy()
    attrs = attribute_columns(data)
    attr_names = [c for c in attrs.columns if c != "transcript_id"]
    units = units.merge(attrs, on="transcript_id", how="left")
    counted = (
        units["transcript_id"].map(data.coverage.counts).astype(bool)
        if data.coverage is not None
        else pd.Series(True, index=units.index)
    )
    scores = session_scores(data.scores, measures)
    score_names = [c for c in scores.columns if c not in ("session_id", "dyad_id")]

    if by in ("session", "dyad") and data.blind:
        _refuse_blind(by)
    if by == "group":
        if group_attribute not in attr_names:
            _refuse_missing_group(group_attribute, data.blind)
        unit_key = units[group_attribute]
    elif by == "session":
        unit_key = units["session_id"]
    elif by == "dyad":
        unit_key = units["dyad_id"]
    else:
        unit_key = units["transcript_id"]
    left_out = units[unit_key.isna()]
    if len(left_out):
        what = {"session": "no session", "dyad": "no dyad", "group": f"no {group_attribute!r} value"}[by]
        notes.append(f"{len(left_out)} transcript(s) with {what} left out: {', '.join(left_out['transcript'])}.")
    everything = units[unit_key.notna()].copy()
    everything["_unit"] = unit_key[unit_key.notna()]
    units = everything[counted[unit_key.notna()]].copy()
    group_sizes = _group_sizes(everything, by, group_attribute) if group_attribute in attr_names else {}
    units_in_study = int(everything["_unit"].nunique())
    coverage = None
    if data.coverage is not None:
        covered_units = int(everything.loc[everything["covered"].astype(bool), "_unit"].nunique())
        coverage = data.coverage.statement(covered_units, units_in_study, unit_word(by))
        notes.insert(0, coverage)

    # Counts: a transcripts x codes matrix, then added up per unit.
    code_index = {node.id: i for i, node in enumerate(codes)}
    transcript_index = {int(t): i for i, t in enumerate(units["transcript_id"])}
    matrix = np.zeros((len(units), len(codes)), dtype=np.int64)
    if not counts.empty:
        rows = counts["transcript_id"].map(transcript_index)
        cols = counts["code_id"].map(code_index)
        ok = rows.notna() & cols.notna()
        np.add.at(
            matrix,
            (rows[ok].astype(int).to_numpy(), cols[ok].astype(int).to_numpy()),
            counts.loc[ok, "value"].to_numpy(),
        )
    code_names = [node.path_name for node in codes]

    if by == "transcript":
        wide = units[["transcript", "kind", "perspective", "dyad", "session", "session_id"]].copy()
        wide.insert(0, "unit", wide["transcript"])
        id_columns = ["unit", "transcript", "kind", "perspective", "dyad", "session"]
        values = matrix
        wide = wide.merge(scores, on="session_id", how="left") if score_names else wide
        wide[attr_names] = units[attr_names].to_numpy() if attr_names else None
    else:
        grouped = units.groupby("_unit", sort=False)
        first = grouped.first()
        if by == "group":
            keys = sorted(first.index, key=natural_key)
        else:
            keys = sorted(
                first.index,
                key=lambda k: (
                    natural_key(first.at[k, "dyad"]),
                    natural_key(first.at[k, "session"] if by == "session" else ""),
                ),
            )
        first = first.reindex(keys)
        position = {k: i for i, k in enumerate(keys)}
        which = units["_unit"].map(position).to_numpy()
        values = np.zeros((len(keys), len(codes)), dtype=np.int64)
        np.add.at(values, which, matrix)
        wide = pd.DataFrame(
            {
                "unit": [_unit_label(by, first.at[k, "dyad"], first.at[k, "session"], k) for k in keys],
            }
        )
        if by == "session":
            wide["dyad"] = first["dyad"].to_numpy()
            wide["session"] = first["session"].to_numpy()
            id_columns = ["unit", "dyad", "session", "transcripts"]
        elif by == "dyad":
            wide["dyad"] = first["dyad"].to_numpy()
            wide["sessions"] = grouped["session_id"].nunique().reindex(keys).to_numpy()
            id_columns = ["unit", "dyad", "sessions", "transcripts"]
        else:
            wide[group_attribute] = keys
            wide["sessions"] = grouped["session_id"].nunique().reindex(keys).to_numpy()
            id_columns = ["unit", "sessions", "transcripts"]
        wide["transcripts"] = grouped.size().reindex(keys).to_numpy()
        if by == "group" and data.coverage is not None:
            # Beside the covered transcripts, how many the group has in all.
            wide["transcripts in the group"] = everything.groupby("_unit").size().reindex(keys).to_numpy()
            id_columns = id_columns + ["transcripts in the group"]
        if score_names:
            if by == "session":
                session_rows = scores.set_index("session_id").reindex(first["session_id"].astype("Int64"))
                for name in score_names:
                    wide[name] = session_rows[name].to_numpy()
            else:
                # The mean over the unit's sessions, each session once; a z-score has no meaning here.
                score_names = [n for n in score_names if n != ALLIANCE_Z]
                pairs = units[["_unit", "session_id"]].dropna().drop_duplicates()
                joined = pairs.merge(scores, on="session_id", how="left")
                means = joined.groupby("_unit")[score_names].mean().reindex(keys)
                for name in score_names:
                    wide[name] = means[name].to_numpy()
        for name in attr_names:
            if by == "group" and name == group_attribute:
                continue
            wide[name] = grouped[name].agg(_distinct).reindex(keys).to_numpy()
        if by == "group":
            attr_names = [group_attribute] + [n for n in attr_names if n != group_attribute]
    if measure == "presence":
        values = (values > 0).astype(np.int64)
    code_frame = pd.DataFrame(values, columns=code_names, index=wide.index)
    wide = pd.concat([wide.drop(columns=["session_id"], errors="ignore"), code_frame], axis=1)
    # An identifying column nobody can fill (no perspectives in a session study, no dyads under the blind)
    # is left out rather than written empty.
    id_columns = [c for c in id_columns if c == "unit" or wide[c].notna().any()]
    wide = wide[id_columns + attr_names + score_names + code_names]
    if data.blind:
        notes.append("The study is blind for you: scores, dyads, sessions and blinded attributes are left out.")
    tables = FrequencyTables(
        by=by,
        measure=measure,
        layer=data.layer,
        wide=wide.reset_index(drop=True),
        id_columns=id_columns,
        attribute_columns=attr_names,
        score_columns=score_names,
        code_columns=code_names,
        codes=tuple(codes),
        group_attribute=group_attribute if group_attribute in attr_names else None,
        notes=notes,
        group_sizes=group_sizes,
        units_in_study=units_in_study,
        coverage=coverage,
    )
    if by != "group" and group_attribute in attr_names:
        summary = group_summary(tables, group_attribute)
        return replace(tables, summary=summary)
    return tables


def _group_sizes(units: pd.DataFrame, by: str, group_attribute: str) -> dict[str, int]:
    """Units per group value, counted or not: a session or dyad belongs to the group its transcripts
    give (several values joined, as in the table's own column)."""
    if by == "group":
        return {}
    values = units.groupby("_unit", sort=False)[group_attribute].agg(_distinct)
    return {str(k): int(v) for k, v in values.dropna().value_counts().items()}


def _refuse_blind(what: str):
    raise PermissionDenied(f"the study is blind: rows per {what} would show what is hidden from you")


def _refuse_missing_group(name: str, blind: bool):
    if blind:
        raise PermissionDenied(f"the study is blind: the group attribute {name!r} is hidden from you")
    raise ConcordError(f"no attribute {name!r} on the transcripts, sessions or dyads (see --group-attribute)")


# -- group summary ---------------------------------------------------------------------------


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Two-sided Mann-Whitney U p-values for each column of x (units x codes) against y.

    Exact (all splits of the units enumerated) while there are at most EXACT_SPLITS_LIMIT
    splits, else the normal approximation with the tie correction, all columns at once.
    A code with the same count everywhere gets p = 1.
    """
    from scipy import stats

    codes = x.shape[1]
    if len(x) == 0 or len(y) == 0:
        return np.full(codes, np.nan), ["Mann-Whitney U"] * codes
    pooled = np.concatenate([x, y])
    constant = pooled.min(axis=0) == pooled.max(axis=0)
    p = np.ones(codes)
    varying = np.flatnonzero(~constant)
    if math.comb(len(x) + len(y), len(x)) <= EXACT_SPLITS_LIMIT:
        if len(varying):
            p[varying] = _exact_u(x[:, varying], y[:, varying])
        return p, ["Mann-Whitney U (exact permutation)"] * codes
    if len(varying):
        p[varying] = stats.mannwhitneyu(
            x[:, varying], y[:, varying], alternative="two-sided", method="asymptotic", axis=0
        ).pvalue
    return p, ["Mann-Whitney U (normal approximation)"] * codes


def _exact_u(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided exact permutation p-values of U for each column: every way of splitting the pooled
    units into groups of the two sizes, ties given mid-ranks. Works for a group of one unit too
    (a group with one covered session is common when coverage is partial), where scipy's
    permutation method refuses."""
    from itertools import combinations

    from scipy import stats

    pooled = np.concatenate([x, y])
    ranks = stats.rankdata(pooled, axis=0)
    n1 = len(x)
    splits = np.array(list(combinations(range(len(pooled)), n1)), dtype=np.int64)
    offset = n1 * (n1 + 1) / 2
    observed = ranks[:n1].sum(axis=0) - offset
    every = ranks[splits].sum(axis=1) - offset  # splits x columns
    # A little slack, so that mid-rank sums equal in exact arithmetic compare equal.
    greater = (every >= observed - 1e-9).mean(axis=0)
    less = (every <= observed + 1e-9).mean(axis=0)
    return np.minimum(1.0, 2 * np.minimum(greater, less))


def group_summary(tables: FrequencyTables, group_attribute: str) -> pd.DataFrame:
    """Per code: units with the code in each group (n, %), the mean count, and one exploratory test.

    The test compares the groups: Fisher's exact test on units with/without the code
    (presence; a 2 x k table for k groups), or a Mann-Whitney U test on the counts for
    the other measures (Kruskal-Wallis for more than two groups). Two-sided, not
    corrected for multiple tests.
    """
    from scipy import stats

    wide = tables.wide
    labels = wide[group_attribute]
    # A group none of whose units the layer covers still gets its columns: 0 covered / N in the group.
    groups = sorted(set(labels.dropna().unique()) | set(tables.group_sizes), key=natural_key)
    values = wide[tables.code_columns].to_numpy(dtype=float)
    codes = len(tables.code_columns)
    summary = pd.DataFrame(
        {
            "code path": tables.code_columns,
            "code": [n.label for n in tables.codes],
            "level": [n.level for n in tables.codes],
        }
    )
    samples = []
    for group in groups:
        part = values[(labels == group).to_numpy()]
        present = (part > 0).sum(axis=0)
        summary[f"{group}: N"] = len(part)
        summary[f"{group}: N in group"] = tables.group_sizes.get(str(group), len(part))
        summary[f"{group}: n"] = present
        summary[f"{group}: %"] = 100.0 * present / len(part) if len(part) else np.nan
        summary[f"{group}: mean {tables.measure}"] = part.mean(axis=0) if len(part) else np.nan
        if len(part):
            samples.append(part)
    tests, p = [""] * codes, np.full(codes, np.nan)
    # Only groups with counted units take part in the test; with fewer than two there is none.
    if len(samples) >= 2:
        if tables.measure == "presence":
            tests = ["Fisher's exact"] * codes
            for column in range(codes):
                table = np.array(
                    [
                        [int((s[:, column] > 0).sum()) for s in samples],
                        [int((s[:, column] == 0).sum()) for s in samples],
                    ]
                )
                p[column] = 1.0 if (table.sum(axis=1) == 0).any() else stats.fisher_exact(table).pvalue
        elif len(samples) == 2:
            p, tests = _mann_whitney(samples[0], samples[1])
        else:
            tests = ["Kruskal-Wallis"] * codes
            for column in range(codes):
                columns = [s[:, column] for s in samples]
                pooled = np.concatenate(columns)
                p[column] = 1.0 if pooled.min() == pooled.max() else stats.kruskal(*columns).pvalue
    summary["test"] = tests
    summary["p (exploratory)"] = p
    return summary


# -- representativeness (IPR) ----------------------------------------------------------------


@dataclass(frozen=True)
class RepresentativenessTable:
    level: str
    wide: pd.DataFrame  # rows: dyads, then the totals; columns: dyad, group, one per theme
    long: pd.DataFrame  # dyad, group, code path, level, client, therapist, contribution
    code_columns: list[str]
    group_attribute: str | None
    notes: list[str]


def representativeness_table(
    data: ResultsData, *, level: str = "theme", group_attribute: str = "group", counts: pd.DataFrame | None = None
) -> RepresentativenessTable:
    """Which side of each dyad contributes to each theme (or sub-theme): "C" when a client's IPR
    interview has a coding of it (or of a code below it), "T" for the therapist's, "C+T" for both."""
    depth = {"theme": 0, "subtheme": 1}.get(level)
    if depth is None:
        raise ValueError(f"unknown level {level!r}; choose theme or subtheme")
    if data.blind:
        _refuse_blind("dyad")
    if counts is None:
        counts = code_counts(data.codes, data.codings, data.turns, "segments")
    nodes = [n for n in data.codes if n.depth == depth]
    units = data.units
    ipr = units[(units["kind"] == "ipr") & units["perspective"].isin(("client", "therapist")) & units["dyad"].notna()]
    attrs = attribute_columns(data)
    group_known = group_attribute in attrs.columns
    dyad_keys = sorted(ipr["dyad"].unique(), key=natural_key)
    notes = []
    if data.coverage is not None:
        notes.append(data.coverage.statement(int(ipr["covered"].sum()), len(ipr), "IPR interviews"))
    if ipr.empty and not (units["kind"] == "ipr").any():
        notes.append(
            "No IPR interviews found, so the table has no dyads: it is built from transcripts of kind ipr"
            " with a client or therapist perspective and a session of the dyad (import them with --kind ipr"
            " --perspective client|therapist --session DYAD:N, or a manifest's or turn table's kind,"
            " perspective, dyad and session columns)."
        )
    skipped = units[(units["kind"] == "ipr") & ~units.index.isin(ipr.index)]
    if len(skipped):
        notes.append(
            f"{len(skipped)} IPR transcript(s) without a perspective or dyad left out: "
            f"{', '.join(skipped['transcript'])}."
        )
    groups = {}
    if group_known:
        merged = ipr.merge(attrs[["transcript_id", group_attribute]], on="transcript_id", how="left")
        for dyad in dyad_keys:
            groups[dyad] = _distinct(merged.loc[merged["dyad"] == dyad, group_attribute])
    coded = counts[counts["value"] > 0].merge(ipr[["transcript_id", "dyad", "perspective"]], on="transcript_id")
    sides = coded.groupby(["dyad", "code_id"])["perspective"].agg(lambda s: set(s)).to_dict()

    long_rows, wide_rows = [], []
    for dyad in dyad_keys:
        row: dict[str, object] = {"dyad": str(dyad)}
        if group_known:
            row[group_attribute] = groups.get(dyad)
        for node in nodes:
            present = sides.get((dyad, node.id), set())
            client, therapist = "client" in present, "therapist" in present
            mark = "C+T" if client and therapist else "C" if client else "T" if therapist else ""
            row[node.path_name] = mark
            long_rows.append(
                {
                    "dyad": str(dyad),
                    **({group_attribute: groups.get(dyad)} if group_known else {}),
                    "code path": node.path_name,
                    "level": node.level,
                    "client": int(client),
                    "therapist": int(therapist),
                    "contribution": mark,
                }
            )
        wide_rows.append(row)
    table = pd.DataFrame(
        wide_rows, columns=["dyad"] + ([group_attribute] if group_known else []) + [n.path_name for n in nodes]
    )
    totals = []
    scopes = [("all dyads", table)]
    if group_known:
        for group in sorted({g for g in groups.values() if g is not None}, key=natural_key):
            scopes.append((f"{group} dyads", table[table[group_attribute] == group]))
    for label, part in scopes:
        row = {"dyad": f"Total, {label}"}
        if group_known:
            row[group_attribute] = None
        for node in nodes:
            marks = part[node.path_name]
            row[node.path_name] = f"{int((marks != '').sum())}/{len(part)}"
        totals.append(row)
    wide = pd.concat([table, pd.DataFrame(totals, columns=table.columns)], ignore_index=True)
    notes.append(
        "C: the client's IPR interviews contribute; T: the therapist's; C+T: both. Totals: dyads contributing / dyads."
    )
    return RepresentativenessTable(
        level=level,
        wide=wide,
        long=pd.DataFrame(long_rows),
        code_columns=[n.path_name for n in nodes],
        group_attribute=group_attribute if group_known else None,
        notes=notes,
    )


# -- publication views ------------------------------------------------------------------------


def _fmt_number(value, decimals: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)) or (float(value).is_integer() and decimals == 0):
        return str(int(value))
    return f"{float(value):.{decimals}f}"


def format_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "< .001"
    return f"{p:.3f}".lstrip("0") if p < 1 else "1.000"


def unit_word(by: str, plural: bool = True) -> str:
    return (
        {"transcript": "transcripts", "session": "sessions", "dyad": "dyads", "group": "groups"}[by] if plural else by
    )


def summary_view(tables: FrequencyTables) -> tuple[pd.DataFrame, list[int]]:
    """The publication form of the code-by-group table (or of an overall summary when there is no group):
    returns the frame and each row's depth for indenting."""
    measure = tables.measure
    depths = [node.depth for node in tables.codes]
    units = unit_word(tables.by)
    if tables.summary is not None:
        summary = tables.summary
        groups = [c[: -len(": n")] for c in summary.columns if c.endswith(": n")]
        view = pd.DataFrame({"Theme / code": [node.label for node in tables.codes]})
        for group in groups:
            n_total = int(summary[f"{group}: N"].iloc[0]) if len(summary) else 0
            n_group = int(summary[f"{group}: N in group"].iloc[0]) if len(summary) else 0
            view[f"{group} ({n_total} covered / {n_group} in the group) n (%)"] = [
                f"{int(n)} ({pct:.0f}%)" for n, pct in zip(summary[f"{group}: n"], summary[f"{group}: %"])
            ]
            if measure != "presence":
                view[f"{group} M {measure}"] = [_fmt_number(v) for v in summary[f"{group}: mean {measure}"]]
        view["p"] = [format_p(p) for p in summary["p (exploratory)"]]
        return view, depths
    wide = tables.wide
    view = pd.DataFrame({"Theme / code": [node.label for node in tables.codes]})
    n = len(wide)
    present = [(wide[c] > 0).sum() for c in tables.code_columns]
    of = f"{n} covered / {tables.units_in_study} in the study" if tables.coverage else str(n)
    view[f"{units.capitalize()} with code, n (%) of {of}"] = [
        f"{int(k)} ({100.0 * k / n:.0f}%)" if n else "0" for k in present
    ]
    if measure != "presence":
        view[f"Total {measure}"] = [str(int(wide[c].sum())) for c in tables.code_columns]
        view[f"M {measure}"] = [_fmt_number(wide[c].mean()) for c in tables.code_columns]
        view[f"SD {measure}"] = [_fmt_number(wide[c].std(ddof=1)) if n > 1 else "" for c in tables.code_columns]
    return view, depths


def overall_summary(tables: FrequencyTables) -> pd.DataFrame:
    """Per code, over every counted unit: units with it, their share of the covered units, and for
    counts other than presence the total and mean count."""
    wide = tables.wide
    n = len(wide)
    values = wide[tables.code_columns].to_numpy(dtype=float) if tables.code_columns else np.zeros((n, 0))
    present = (values > 0).sum(axis=0)
    frame = pd.DataFrame(
        {
            "code path": tables.code_columns,
            "code": [node.label for node in tables.codes],
            "level": [node.level for node in tables.codes],
            "N covered": n,
            "N in study": tables.units_in_study if tables.units_in_study is not None else n,
            "n": present,
            "% of covered": 100.0 * present / n if n else np.nan,
        }
    )
    if tables.measure != "presence":
        frame[f"total {tables.measure}"] = values.sum(axis=0)
        frame[f"mean {tables.measure}"] = values.mean(axis=0) if n else np.nan
    return frame


def unit_view(tables: FrequencyTables, max_columns: int = 8) -> pd.DataFrame:
    """Per-unit counts of the themes (the top level), with the group and the alliance columns."""
    theme_columns = [c for node, c in zip(tables.codes, tables.code_columns) if node.depth == 0][:max_columns]
    # Dyad and session read better as two narrow columns than as one long label.
    names = {"dyad": "Dyad", "session": "Session"} if tables.by in ("session", "dyad") else {}
    keep = [c for c in names if c in tables.wide] or ["unit"]
    if tables.group_attribute and tables.group_attribute in tables.wide and tables.by != "group":
        keep.append(tables.group_attribute)
    keep += [c for c in (ALLIANCE, ALLIANCE_Z) if c in tables.score_columns]
    view = tables.wide[keep + theme_columns].copy()
    for column in (ALLIANCE, ALLIANCE_Z):
        if column in view:
            view[column] = [_fmt_number(v) for v in view[column]]
    return view.rename(columns={"unit": unit_word(tables.by, plural=False).capitalize(), **names})


def frequency_specs(tables: FrequencyTables, *, long: bool) -> list[TableSpec]:
    """The tables of a frequency export, for writers.write_tables."""
    units = unit_word(tables.by)
    layer = "consensus codings" if tables.layer == "consensus" else f"{tables.layer}'s codings"
    measure_text = {
        "segments": "coded segments",
        "turns": "coded turns",
        "words": "coded words",
        "presence": "presence (1 = coded at least once)",
    }[tables.measure]
    notes = [
        f"Counts: {measure_text} per {unit_word(tables.by, False)}, {layer}. A theme's count includes "
        "the codings of the codes below it."
    ] + tables.notes
    specs = []
    if tables.summary is not None:
        view, depths = summary_view(tables)
        specs.append(
            TableSpec(
                name="Group summary",
                caption=f"{units.capitalize()} with each theme and code by {tables.group_attribute}",
                frame=tables.summary,
                long=tables.summary,
                print_frame=view,
                print_depths=depths,
                notes=notes
                + [
                    f"n (%): {units} in which the code was applied at least once, as a share of the "
                    f"group's covered {units} (covered / in the group in each column head). p: "
                    + ("Fisher's exact test" if tables.measure == "presence" else "Mann-Whitney U test on the counts")
                    + f", two-sided, {EXPLORATORY}."
                ],
            )
        )
    elif tables.by != "group":
        view, depths = summary_view(tables)
        frame = overall_summary(tables)
        specs.append(
            TableSpec(
                name="Summary",
                caption=f"{units.capitalize()} with each theme and code",
                frame=frame,
                long=frame,
                print_frame=view,
                print_depths=depths,
                notes=notes,
            )
        )
    frequencies = TableSpec(
        name="Frequencies",
        caption=f"Theme and code counts per {unit_word(tables.by, False)}",
        frame=tables.wide,
        long=tables.long if long else None,
        write_long_csv=tables.write_long_csv if long else None,
        print_frame=unit_view(tables),
        notes=notes
        + [
            c
            for c in (
                f"{ALLIANCE}: mean of the client's and the therapist's WAI forms, each as its mean item score "
                f"(the total over its number of items), so forms of different lengths and ranges weigh alike; "
                f"{ALLIANCE_Z}: its z-score over the dyad's sessions."
                if ALLIANCE in tables.score_columns
                else "",
            )
            if c
        ],
        print_limit=60,
        primary=True,
    )
    return specs + [frequencies]


def representativeness_specs(table: RepresentativenessTable) -> list[TableSpec]:
    level = "theme" if table.level == "theme" else "sub-theme"
    return [
        TableSpec(
            name="Representativeness",
            caption=f"Dyads and perspectives contributing to each {level}",
            frame=table.wide,
            long=table.long,
            print_frame=table.wide,
            notes=table.notes,
            primary=True,
        )
    ]
