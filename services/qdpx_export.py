"""Exporting a whole study as a REFI-QDA project (.qdpx), for NVivo, ATLAS.ti, MAXQDA or another Concord.

The study's transcripts become text sources, its codebooks one CodeBook (stable GUIDs), each coder a
User with their codings, dyads and sessions Cases whose variables are the attributes, memos Notes.
Consensus codings belong to a User named "Consensus". The export holds everyone's work and blinded
attributes, so while a study is blind only supervisors and admins may export (services.rights).

What the schema cannot carry travels in Concord blocks inside Description elements (see
exporters/qdpx.py): a transcript's key, kind, session and turns; a session's dyad and number; a
coder's role; which codebook a code belongs to and who made it. A Concord export therefore comes
back complete through services/qdpx_import.py.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from concord.codebooks.spec import CodebookSpec
from concord.exporters.qdpx import (
    ATTRIBUTE_MARKER,
    CODE_CREATOR_MARKER,
    CODEBOOK_MARKER,
    DYAD_MARKER,
    MEMO_MARKER,
    SESSION_MARKER,
    STUDY_MARKER,
    TRANSCRIPT_MARKER,
    ExportCase,
    ExportCoding,
    ExportNote,
    ExportProject,
    ExportSelection,
    ExportSet,
    ExportSource,
    ExportUser,
    ExportValue,
    ExportVariable,
    concord_block,
    exchange_guid,
    selection_name,
    write_qdpx_file,
    xml_datetime,
)
from concord.importers.qdpx import (
    unique_names,
)
from concord.services.audit import record
from concord.services.codebooks import codebook_spec
from concord.services.dto import DataLossReport
from concord.services.rights import require_project_export_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    ConsensusDecision,
    Dyad,
    Memo,
    Participant,
    QuestionnaireScore,
    Study,
    TherapySession,
    Transcript,
    Turn,
)

CONSENSUS_USER_NAME = "Consensus"
CONSENSUS_USER_GUID = exchange_guid("consensus layer")
_VARIABLE_KINDS = {"text": "Text", "number": "Float", "date": "Date", "boolean": "Boolean"}


@dataclass(frozen=True)
class QdpxExportResult:
    path: Path
    transcripts: int
    codes: int
    codings: int
    memos: int
    users: int
    report: DataLossReport


def export_qdpx(workspace: Workspace, out: str | Path) -> QdpxExportResult:
    """Write the whole study as a .qdpx archive; refused to a coder while the study is blind."""
    require_project_export_rights(workspace)
    out = Path(out)
    if out.suffix.lower() != ".qdpx":
        raise ConcordError(f"{out}: a REFI-QDA project file ends in .qdpx")
    with workspace.store.reader() as session:
        book_keys = list(session.scalars(select(Codebook.key).order_by(Codebook.key)))
    specs = [codebook_spec(workspace, key) for key in book_keys]
    with workspace.store.reader() as session:
        builder = _ExportBuilder(session, workspace, specs)
        project = builder.build()
    tmp = out.with_name(out.name + ".part")
    try:
        write_qdpx_file(project, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    with workspace.store.session() as session:
        record(
            session,
            workspace.actor_label,
            "qdpx.export",
            "study",
            1,
            file=str(out),
            transcripts=len(project.sources),
            codings=builder.coding_count,
            memos=builder.memo_count,
        )
    return QdpxExportResult(
        path=out,
        transcripts=len(project.sources),
        codes=sum(spec.code_count() for spec in specs),
        codings=builder.coding_count,
        memos=builder.memo_count,
        users=len(project.users),
        report=builder.report(),
    )


def _user_guid(name: str) -> str:
    return exchange_guid("coder", name)


def _yes(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


class _ExportBuilder:
    def __init__(self, session: Session, workspace: Workspace, specs: list[CodebookSpec]):
        self.session = session
        self.workspace = workspace
        self.specs = specs
        self.lost: list[str] = []
        self.remarks: list[str] = []
        self.notes: list[ExportNote] = []
        self.coding_count = 0
        self.memo_count = 0

    def report(self) -> DataLossReport:
        return DataLossReport(lost=tuple(self.lost), remarks=tuple(self.remarks))

    def build(self) -> ExportProject:
        session = self.session
        study = session.get(Study, 1)
        coders = {row.id: row for row in session.scalars(select(Coder))}
        self.coder_names = {cid: row.name for cid, row in coders.items()}
        users = [
            ExportUser(guid=_user_guid(row.name), name=row.name)
            for row in sorted(coders.values(), key=lambda r: r.name)
        ]
        codes = {row.id: row for row in session.scalars(select(Code))}
        exported_guids = {code.guid for spec in self.specs for _path, code in spec.walk()}
        self.code_guid = {cid: row.guid for cid, row in codes.items() if row.guid in exported_guids}
        for cid, row in codes.items():
            target, seen = row, set()
            while target.merged_into_id and target.id not in seen:
                seen.add(target.id)
                target = codes.get(target.merged_into_id, target)
            if cid not in self.code_guid and target.guid in exported_guids:
                self.code_guid[cid] = target.guid

        # Plain rows through the connection, not ORM objects: a whole trial has hundreds of thousands of
        # turns and codings, and the export only reads them.
        connection = session.connection()
        transcripts = connection.execute(
            select(*(column for column in Transcript.__table__.columns)).order_by(Transcript.key)
        ).all()
        self.transcript_key = {t.id: t.key for t in transcripts}

        memos = defaultdict(list)
        for memo in session.scalars(select(Memo).where(Memo.deleted_at.is_(None)).order_by(Memo.id)):
            memos[memo.target_kind].append(memo)
        # Each transcript's turns become lines of its description; only turns with a memo are kept as rows.
        wanted = {memo.target_id for memo in memos.get("turn", [])}
        self.turn_lines: dict[int, str] = {}
        self.turn_place = {}
        for transcript_id, rows in groupby(
            connection.execute(
                select(
                    Turn.number,
                    Turn.id,
                    Turn.transcript_id,
                    Turn.speaker_role,
                    Turn.speaker_label,
                    Turn.char_start,
                    Turn.char_end,
                    Turn.start_time,
                    Turn.end_time,
                    Turn.replayed,
                    # The stored JSON as text: nearly every turn has none, and decoding each costs more.
                    cast(Turn.nonverbal, Text).label("nonverbal"),
                )
                .order_by(Turn.transcript_id, Turn.number)
                # Fetched in batches, not a row at a time, and never all at once.
                .execution_options(yield_per=10_000)
            ),
            key=lambda row: row.transcript_id,
        ):
            lines = []
            for turn in rows:
                lines.append(_turn_line(turn))
                if turn.id in wanted:
                    self.turn_place[turn.id] = (transcript_id, turn)
            self.turn_lines[transcript_id] = "\n".join(lines)

        consensus_used = False
        codings = defaultdict(list)
        for row in connection.execute(
            select(
                Coding.id,
                Coding.coder_id,
                Coding.transcript_id,
                Coding.code_id,
                Coding.start_offset,
                Coding.end_offset,
                Coding.memo,
                Coding.phase,
                Coding.created_at,
                Coding.changed_at,
            )
            .where(Coding.deleted_at.is_(None))
            .order_by(Coding.transcript_id, Coding.start_offset, Coding.end_offset, Coding.id)
            .execution_options(yield_per=10_000)
        ):
            if row.code_id not in self.code_guid:
                self.lost.append(
                    f"a coding on a retired code (id {row.code_id}) in {self.transcript_key[row.transcript_id]!r}"
                )
                continue
            codings[row.transcript_id].append(row)
            consensus_used |= row.phase == "consensus"
        if consensus_used:
            users.append(ExportUser(guid=CONSENSUS_USER_GUID, name=CONSENSUS_USER_NAME))

        sources, source_refs = self._sources(transcripts, codings, memos)
        variables, cases, source_values = self._attributes_and_cases(sources, source_refs)
        sources = [replace(source, values=source_values.get(source.guid, ())) for source in sources]
        code_notes = self._code_notes(memos.get("code", []), codes)
        project_notes = tuple(self._memo_note(memo, "study", "study") for memo in memos.get("study", []))

        actor = self.workspace.actor
        coder_lines = "\n".join(
            f"{row.name}={row.role}" + ("" if row.active else " (inactive)")
            for row in sorted(coders.values(), key=lambda r: r.name)
        )
        description = concord_block(
            STUDY_MARKER,
            [
                ("Title", study.title),
                ("Language", study.language),
                ("Blind", _yes(study.blind)),
                ("Unblinded at", study.unblinded_at.isoformat() if study.unblinded_at else None),
                ("Unblinded by", study.unblinded_by),
                ("Anonymous consensus", _yes(study.anonymous_consensus)),
                ("Coders", "\n" + coder_lines if coder_lines else None),
                ("Consensus user", CONSENSUS_USER_GUID if consensus_used else None),
            ],
        )
        self._remarks(study, session, transcripts)
        return ExportProject(
            name=study.title,
            creating_user=_user_guid(actor.name) if actor else None,
            created=study.created_at,
            users=tuple(users),
            codebooks=tuple(self.specs),
            code_notes=code_notes,
            variables=tuple(variables),
            cases=tuple(cases),
            sources=tuple(sources),
            notes=tuple(self.notes),
            sets=tuple(self._sets(codes)),
            description=description,
            note_refs=project_notes,
        )

    # -- sources, selections, codings ---------------------------------------------------------------

    def _sources(self, transcripts, codings, memos) -> tuple[list[ExportSource], dict[int, list[str]]]:
        sessions = {row.id: row for row in self.session.scalars(select(TherapySession))}
        dyads = {row.id: row for row in self.session.scalars(select(Dyad))}
        transcript_memos = defaultdict(list)
        for memo in memos.get("transcript", []):
            transcript_memos[memo.target_id].append(memo)
        turn_memos = defaultdict(list)
        for memo in memos.get("turn", []):
            if memo.target_id in self.turn_place:
                transcript_id, turn = self.turn_place[memo.target_id]
                turn_memos[transcript_id].append((turn, memo))
            else:
                self.lost.append(f"a memo by {self.coder_names.get(memo.coder_id)} on a turn that no longer exists")
        coding_memos = defaultdict(list)
        for memo in memos.get("coding", []):
            coding_memos[memo.target_id].append(memo)

        exported_codings = {row.id for rows in codings.values() for row in rows}
        for coding_id, rows in coding_memos.items():
            if coding_id not in exported_codings:
                self.lost.append(f"{len(rows)} memo(s) on removed codings")

        sources = []
        session_sources: dict[int, list[str]] = defaultdict(list)
        for transcript in transcripts:
            guid = exchange_guid("transcript", transcript.key)
            place = None
            if transcript.session_id is not None and transcript.session_id in sessions:
                therapy = sessions[transcript.session_id]
                place = f"{dyads[therapy.dyad_id].key}:{therapy.number}"
                session_sources[therapy.id].append(guid)
            turn_lines = self.turn_lines.pop(transcript.id, "")
            description = concord_block(
                TRANSCRIPT_MARKER,
                [
                    ("Key", transcript.key),
                    ("Kind", transcript.kind),
                    ("Perspective", transcript.perspective),
                    ("Language", transcript.language),
                    ("Phase", transcript.phase),
                    ("Session", place),
                    ("Source name", transcript.source_name),
                    ("Source encoding", transcript.source_encoding),
                    ("Source sha256", transcript.source_sha256),
                    ("Turns", "\n" + turn_lines if turn_lines else None),
                ],
            )
            selections = self._selections(
                transcript, codings.get(transcript.id, []), coding_memos, turn_memos.get(transcript.id, [])
            )
            note_refs = tuple(
                self._memo_note(memo, "transcript", transcript.key) for memo in transcript_memos.get(transcript.id, [])
            )
            sources.append(
                ExportSource(
                    guid=guid,
                    name=transcript.key,
                    text=transcript.text,
                    description=description,
                    created=transcript.imported_at,
                    selections=selections,
                    note_refs=note_refs,
                )
            )
        self.session_sources = session_sources
        return sources, session_sources

    def _selections(self, transcript, rows, coding_memos, turn_memos) -> tuple[ExportSelection, ...]:
        groups: dict[tuple[int, int], dict] = {}
        ordinals: dict[tuple, int] = defaultdict(int)
        key = transcript.key
        for row in rows:
            span = (row.start_offset, row.end_offset)
            group = groups.setdefault(span, {"codings": [], "notes": [], "memo_texts": []})
            user = CONSENSUS_USER_GUID if row.phase == "consensus" else _user_guid(self.coder_names[row.coder_id])
            identity = (key, *span, self.code_guid[row.code_id], user)
            ordinals[identity] += 1
            guid = exchange_guid("coding", *identity, ordinals[identity])
            note_refs = []
            if row.memo:
                note = ExportNote(
                    guid=exchange_guid("coding memo", guid),
                    name=f"Coding memo by {self.coder_names[row.coder_id]}",
                    text=row.memo,
                    creating_user=_user_guid(self.coder_names[row.coder_id]),
                    created=row.created_at,
                    modified=row.changed_at,
                    description=concord_block(MEMO_MARKER, [("On", "coding"), ("Inline", "yes")]),
                )
                self.notes.append(note)
                note_refs.append(note.guid)
                group["memo_texts"].append(row.memo)
            for memo in coding_memos.get(row.id, []):
                note_refs.append(self._memo_note(memo, "coding", guid))
            group["codings"].append(
                (
                    row,
                    ExportCoding(
                        guid=guid,
                        code_guid=self.code_guid[row.code_id],
                        creating_user=user,
                        created=row.created_at,
                        note_refs=tuple(note_refs),
                    ),
                )
            )
            self.coding_count += 1
        for turn, memo in turn_memos:
            span = (turn.char_start, turn.char_end)
            group = groups.setdefault(span, {"codings": [], "notes": [], "memo_texts": []})
            group["notes"].append(self._memo_note(memo, "turn", f"{key}#{turn.number}"))
        selections = []
        for span in sorted(groups):
            group = groups[span]
            rows_here = [row for row, _ in group["codings"]]
            first = min(rows_here, key=lambda r: (r.created_at, r.id)) if rows_here else None
            creator = None
            if first is not None:
                creator = (
                    CONSENSUS_USER_GUID if first.phase == "consensus" else _user_guid(self.coder_names[first.coder_id])
                )
            selections.append(
                ExportSelection(
                    guid=exchange_guid("selection", key, *span),
                    start=span[0],
                    end=span[1],
                    name=selection_name(transcript.text[span[0] : span[1]]),
                    # The widest-supported place for a segment memo, when it is unambiguous.
                    description=group["memo_texts"][0]
                    if len(group["memo_texts"]) == 1 and len(rows_here) == 1
                    else None,
                    creating_user=creator,
                    created=first.created_at if first else None,
                    codings=tuple(coding for _, coding in group["codings"]),
                    note_refs=tuple(group["notes"]),
                )
            )
        return tuple(selections)

    def _memo_note(self, memo: Memo, on: str, target: str) -> str:
        coder = self.coder_names.get(memo.coder_id, "?")
        guid = exchange_guid("memo", coder, on, target, xml_datetime(memo.created_at))
        self.notes.append(
            ExportNote(
                guid=guid,
                name=f"Memo by {coder}",
                text=memo.text,
                creating_user=_user_guid(coder),
                created=memo.created_at,
                modified=memo.changed_at,
                description=concord_block(MEMO_MARKER, [("On", on), ("Made blind", _yes(memo.made_blind))]),
            )
        )
        self.memo_count += 1
        return guid

    def _code_notes(self, memos: list[Memo], codes: dict[int, Code]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = defaultdict(list)
        for memo in memos:
            guid = self.code_guid.get(memo.target_id)
            if guid is None:
                self.lost.append(f"a memo by {self.coder_names.get(memo.coder_id)} on a retired or removed code")
                continue
            found[guid].append(self._memo_note(memo, "code", guid))
        return {guid: tuple(notes) for guid, notes in found.items()}

    # -- attributes, dyads, sessions ---------------------------------------------------------------

    def _attributes_and_cases(self, sources, session_sources):
        session = self.session
        blind = self.workspace.blind_for_actor()
        attributes = [
            row for row in session.scalars(select(Attribute).order_by(Attribute.id)) if not (blind and row.blinded)
        ]
        by_variable: dict[tuple, list[Attribute]] = defaultdict(list)
        for row in attributes:
            by_variable[(row.target_kind, row.name, row.value_type, bool(row.blinded))].append(row)
        keys = sorted(by_variable)
        kinds_per_name = defaultdict(set)
        for kind, name, _type, _blinded in keys:
            kinds_per_name[name].add(kind)
        shown = unique_names(
            name if len(kinds_per_name[name]) == 1 else f"{name} ({kind})" for kind, name, _type, _blinded in keys
        )
        variables, variable_of = [], {}
        for (kind, name, value_type, blinded), display in zip(keys, shown):
            guid = exchange_guid("attribute", kind, name, value_type, blinded)
            refi_kind = _VARIABLE_KINDS.get(value_type, "Text")
            if refi_kind == "Float" and all(
                _is_integer(row.value) for row in by_variable[(kind, name, value_type, blinded)]
            ):
                refi_kind = "Integer"
            variables.append(
                ExportVariable(
                    guid=guid,
                    name=display,
                    kind=refi_kind,
                    description=concord_block(
                        ATTRIBUTE_MARKER,
                        [("Name", name), ("Applies to", kind), ("Type", value_type), ("Blinded", _yes(blinded))],
                    ),
                )
            )
            variable_of[(kind, name, value_type, blinded)] = (guid, refi_kind)

        values: dict[tuple[str, int], list[ExportValue]] = defaultdict(list)
        for row in attributes:
            guid, refi_kind = variable_of[(row.target_kind, row.name, row.value_type, bool(row.blinded))]
            values[(row.target_kind, row.target_id)].append(ExportValue(guid, refi_kind, row.value))

        participants = {row.id: row for row in session.scalars(select(Participant))}
        dyads = list(session.scalars(select(Dyad).order_by(Dyad.key)))
        therapy_sessions = defaultdict(list)
        for row in session.scalars(select(TherapySession).order_by(TherapySession.number)):
            therapy_sessions[row.dyad_id].append(row)
        cases = []
        for dyad in dyads:
            dyad_sources = [
                guid for therapy in therapy_sessions[dyad.id] for guid in session_sources.get(therapy.id, [])
            ]
            client = participants.get(dyad.client_id)
            therapist = participants.get(dyad.therapist_id)
            cases.append(
                ExportCase(
                    guid=exchange_guid("dyad", dyad.key),
                    name=f"Dyad {dyad.key}",
                    description=concord_block(
                        DYAD_MARKER,
                        [
                            ("Dyad", dyad.key),
                            ("Client", client.pseudonym if client else None),
                            ("Therapist", therapist.pseudonym if therapist else None),
                        ],
                    ),
                    values=tuple(values.get(("dyad", dyad.id), ())),
                    source_refs=tuple(dyad_sources),
                )
            )
            for therapy in therapy_sessions[dyad.id]:
                cases.append(
                    ExportCase(
                        guid=exchange_guid("session", dyad.key, therapy.number),
                        name=f"Dyad {dyad.key} session {therapy.number}",
                        description=concord_block(
                            SESSION_MARKER,
                            [
                                ("Dyad", dyad.key),
                                ("Session", str(therapy.number)),
                                ("Held on", therapy.held_on.isoformat() if therapy.held_on else None),
                                ("Modality", therapy.modality),
                            ],
                        ),
                        values=tuple(values.get(("session", therapy.id), ())),
                        source_refs=tuple(session_sources.get(therapy.id, ())),
                    )
                )
        guid_of_transcript = {exchange_guid("transcript", key): tid for tid, key in self.transcript_key.items()}
        source_values = {guid: tuple(values.get(("transcript", tid), ())) for guid, tid in guid_of_transcript.items()}
        return variables, cases, source_values

    def _sets(self, codes: dict[int, Code]) -> list[ExportSet]:
        session = self.session
        books = {row.key: row for row in session.scalars(select(Codebook))}
        sets = []
        for spec in self.specs:
            book = books[spec.id]
            sets.append(
                ExportSet(
                    guid=exchange_guid("codebook", spec.id),
                    name=spec.title,
                    description=concord_block(
                        CODEBOOK_MARKER,
                        [
                            ("Id", spec.id),
                            ("Version", spec.version),
                            ("Source", spec.source),
                            ("Description", spec.description),
                            ("Origin", book.origin),
                        ],
                    ),
                    member_codes=tuple(code.guid for _path, code in spec.walk()),
                )
            )
        exported = {code.guid for spec in self.specs for _path, code in spec.walk()}
        makers: dict[tuple[str | None, str], list[str]] = defaultdict(list)
        for row in sorted(codes.values(), key=lambda r: r.id):
            if row.guid not in exported or (row.creator_id is None and row.origin == "deductive"):
                continue
            makers[(self.coder_names.get(row.creator_id), row.origin)].append(row.guid)
        for (coder, origin), members in sorted(makers.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            label = f"{'Inductive codes' if origin == 'inductive' else 'Codes'}" + (f" of {coder}" if coder else "")
            sets.append(
                ExportSet(
                    guid=exchange_guid("code creator", coder or "", origin),
                    name=label,
                    description=concord_block(CODE_CREATOR_MARKER, [("Coder", coder), ("Origin", origin)]),
                    member_codes=tuple(members),
                )
            )
        return sets

    def _remarks(self, study: Study, session: Session, transcripts: list) -> None:
        scores = session.scalar(select(func.count()).select_from(QuestionnaireScore)) or 0
        if scores:
            self.lost.append(f"{scores} questionnaire score(s): REFI-QDA has no place for them")
        decisions = session.scalar(select(func.count()).select_from(ConsensusDecision)) or 0
        if decisions:
            self.lost.append(
                f"{decisions} consensus decision(s) and the links from consensus codings to the "
                "independent codings they came from"
            )
        self.lost.append(
            "each coding's last-changed time and blind flag, undo history, reading progress, code "
            "histories, codebook versions and the audit log (they stay in the study)"
        )
        astral = [t.key for t in transcripts if _ASTRAL.search(t.text)]
        if astral:
            self.remarks.append(
                f"transcripts with characters beyond U+FFFF (emoji): {', '.join(astral[:10])}; "
                "NVivo counts such characters twice and may place codings after them too late"
            )
        self.remarks.append(
            "turns, sessions, coder roles and codebook membership travel in Concord blocks inside "
            "Description elements: other tools show them as text, Concord reads them back"
        )


def _json_number(value: float | int | None) -> str:
    if value is None:
        return "null"
    return json.dumps(value) if isinstance(value, float) and not math.isfinite(value) else repr(value)


@lru_cache(maxsize=4096)
def _speaker_json(role: str, label: str) -> str:
    return f"{json.dumps(role, ensure_ascii=False)}, {json.dumps(label, ensure_ascii=False)}"


def _turn_line(turn) -> str:
    """One turn as the JSON list the importer reads back: the same text json.dumps gives for
    [number, role, label, start, end, start time, end time, replayed, non-verbal ranges], made without a
    json.dumps per turn (roles and labels repeat, numbers print as json prints them)."""
    number, _, _, role, label, start, end, start_time, end_time, replayed, nonverbal = turn
    ranges = "[]"
    if nonverbal not in (None, "", "[]", "null"):
        ranges = json.dumps([list(r) for r in json.loads(nonverbal)], ensure_ascii=False)
    times = (
        "null, null"
        if start_time is None and end_time is None
        else f"{_json_number(start_time)}, {_json_number(end_time)}"
    )
    return f"[{number}, {_speaker_json(role, label)}, {start}, {end}, {times}, {'true' if replayed else 'false'}, {ranges}]"


# Characters beyond the Basic Multilingual Plane (emoji): other tools count them twice.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _is_integer(value: str | None) -> bool:
    if value is None:
        return True
    try:
        return float(value).is_integer() and "." not in value and "e" not in value.lower()
    except ValueError:
        return False
