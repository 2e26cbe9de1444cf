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
    label: str
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
        """The column name: the labels from the theme down, e.g. "Therapeutic direction > Moving forward"."""
        return " > ".join(self.path)


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
        session_id, dyad_id, dyad, session (number). The session and dyad columns are
        empty when ``blind``.
    codings: coding_id, transcript_id, code_id (the live code), start, end, coder and memo
        (a note kept on the coding itself; read with ``with_memos`` only), and with ``spans``
        text (the coded span).
    turns: turn_id, transcript_id, char_start, char_end, nonverbal (a list of [start, end]
        or None), and with turns="text" also number, speaker_role, speaker_label and text;
        the turns of the transcripts that have codings, or none (see ``gather``).
    scores: session_id, dyad_id, session (number), instrument, respondent, total,
        subscales (dict). Holds every session of the study, not only those with
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

    @property
    def codes_by_id(self) -> dict[int, CodeNode]:
        return {node.id: node for node in self.codes}
