"""The plain records the exporters are given: the codes of a study and its units, codings, turns, scores
and attributes as pandas frames, already read under the blind rule by ``services.results.gather``.

They live here, below the services, so that an exporter needs nothing from the layer that reads the
database: it counts, formats and writes what it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

LEVELS = ("theme", "subtheme", "code")


@dataclass(frozen=True)
class CodeNode:
    """A theme, sub-theme or code. ``level`` follows the depth in its codebook's tree:
    0 = theme, 1 = sub-theme, 2 and deeper = code."""

    id: int
    codebook: str
    parent_id: int | None
    name: str
    label: str  # what tables show: the name, or the publication label when one was asked for
    path: tuple[str, ...]
    depth: int
    definition: str | None
    pole: str | None
    high_pole: bool | None

    @property
    def level(self) -> str:
        return LEVELS[min(self.depth, 2)]

    @property
    def path_name(self) -> str:
        """The column name: the code's place, its labels from the theme down, e.g.
        "Therapeutic direction > Moving forward"."""
        return " > ".join(self.path)


COVERAGE_RULES = ("done", "coded")
LABELS = ("name", "publication")


@dataclass(frozen=True)
class Coverage:
    """Which transcripts a layer covers: those its coder marked done (``rule`` "done"; for the
    consensus layer, those whose consensus is finished), or those with at least one coding in the
    layer ("coded"). Counts, shares and tests take the covered transcripts only: a transcript
    nobody has finished is not a transcript without the code. ``include_uncoded`` counts every
    transcript, the uncovered ones as having no codings (the researcher asked for it)."""

    rule: str
    description: str  # "consensus finished", "marked done by alex", "coded by alex"
    transcripts: frozenset[int]
    include_uncoded: bool = False

    def counts(self, transcript_id: int) -> bool:
        return self.include_uncoded or int(transcript_id) in self.transcripts

    def statement(self, covered: int, total: int, noun: str) -> str:
        """One sentence for the reader of a table: how many units are covered and what is counted."""
        text = f"Coverage: {covered} of {total} {noun} covered ({self.description})"
        if self.include_uncoded:
            return text + f"; --include-uncoded: all {total} are counted, the uncovered ones as having no codings."
        return text + "; only the covered ones are counted (--include-uncoded counts them all)."


@dataclass(frozen=True)
class MemoNote:
    coder: str
    target_kind: str
    target_id: int
    text: str


@dataclass(frozen=True)
class ResultsData:
    """Plain records for the exporters.

    units: one row per transcript: transcript_id, transcript, kind, perspective,
        session_id, dyad_id, dyad, session (number), covered (see ``coverage``). The
        session and dyad columns are empty when ``blind``. Every transcript is a row,
        covered or not, so a group's size can be told beside what was counted.
    codings: coding_id, transcript_id, code_id (the live code), start, end, coder and memo
        (only those of counted transcripts: see ``counted``)
        (a note kept on the coding itself; read with ``with_memos`` only), and with ``spans``
        text (the coded span).
    turns: turn_id, transcript_id, char_start, char_end, nonverbal (a list of [start, end]
        or None), and with turns="text" also number, speaker_role, speaker_label and text;
        the turns of the transcripts that have codings, or none (see ``gather``).
    scores: session_id, dyad_id, session (number), instrument, respondent, total,
        subscales (dict), items (the answers, dict). Holds every session of the study, not only those with
        transcripts, so within-dyad statistics see the whole therapy. Empty when blind.
    attributes: target_kind, target_id, name, value, value_type, blinded; the
        blinded ones only when the actor may see them.
    """

    title: str
    layer: str
    actor: str
    blind: bool
    codes: tuple[CodeNode, ...]
    units: pd.DataFrame
    codings: pd.DataFrame
    turns: pd.DataFrame
    scores: pd.DataFrame
    attributes: pd.DataFrame
    memos: tuple[MemoNote, ...] = field(default=())
    # Ancestors kept only so a report selected with --codes keeps its outline: no codings counted for them.
    outline_only: frozenset[int] = frozenset()
    # None: every transcript counts (records made by hand, as in tests of the counting itself).
    coverage: Coverage | None = None

    def counted(self) -> pd.Series:
        """Per row of ``units``: whether the transcript counts (covered, or every one with include_uncoded)."""
        if self.coverage is None:
            return pd.Series(True, index=self.units.index)
        return self.units["transcript_id"].map(self.coverage.counts).astype(bool)

    @property
    def codes_by_id(self) -> dict[int, CodeNode]:
        return {node.id: node for node in self.codes}
