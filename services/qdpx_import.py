"""Importing a REFI-QDA project (.qdpx) into a study, all or nothing.

A project Concord exported (services/qdpx_export.py) comes back complete from the Concord blocks in its
Description elements. A foreign project comes in as it can: text sources become session transcripts
whose turns are rebuilt from speaker prefixes, users become coders, codings go to the independent
phase, notes become memos; everything else is listed in the data-loss report.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord.codebooks.qdc import read_qdc, stable_guid
from concord.codebooks.spec import CodebookSpec, CodeSpec
from concord.exporters.qdpx import (
    ATTRIBUTE_MARKER,
    CODE_CREATOR_MARKER,
    CODEBOOK_MARKER,
    DYAD_MARKER,
    MEMO_MARKER,
    SESSION_MARKER,
    STUDY_MARKER,
    TRANSCRIPT_MARKER,
)
from concord.importers.qdpx import (
    ATLAS_TI_SYSTEM_USER,
    ParsedCoding,
    ParsedProject,
    ParsedSelection,
    ParsedSource,
    ParsedValue,
    canonical_guid,
    concord_fields,
    read_qdpx,
    turns_from_text,
    unique_names,
)
from concord.services.audit import record
from concord.services.codebooks import new_codebook_row, snapshot_codebook
from concord.services.codes import description_of
from concord.services.dto import DataLossReport
from concord.services.rights import require_setup_rights
from concord.services.study import ensure_coder
from concord.services.workspace import Workspace
from concord.storage.errors import InputError
from concord.storage.models import (
    ATTRIBUTE_TYPES,
    SPEAKER_ROLES,
    TRANSCRIPT_KINDS,
    TRANSCRIPT_PHASES,
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    Memo,
    Participant,
    Study,
    TherapySession,
    Transcript,
    Turn,
)

IMPORTED_CODER = "(imported)"
_VALUE_TYPES = {
    "text": "text",
    "boolean": "boolean",
    "integer": "number",
    "float": "number",
    "date": "date",
    "datetime": "text",
}
_ATLAS_VARIABLE_SET = re.compile(r"^\s*([^:]+?)\s*:\s*(.+?)\s*$")


@dataclass(frozen=True)
class QdpxImportResult:
    source: str
    origin: str | None
    offset_model: str
    concord_file: bool
    transcripts: tuple[str, ...]
    turns: int
    codebooks: tuple[str, ...]
    codes_created: int
    codes_matched: int
    codings: int
    memos: int
    attributes: int
    coders_created: tuple[str, ...]
    dry_run: bool
    report: DataLossReport


def import_qdpx(
    workspace: Workspace,
    path: str | Path,
    *,
    dry_run: bool = False,
    pseudonymize: bool = True,
    register_path: str | None = None,
    nlp_name: str | None = None,
    speaker_map: str | None = None,
) -> QdpxImportResult:
    """Bring a .qdpx project into the study in one unit of work: everything, or nothing on any error.

    Pseudonymised like any import (services/pseudonyms.py): the texts, with every selection moved
    along, and the names, labels, values and notes a coder would see. `speaker_map` gives the speaker
    labels of the texts their roles (T=therapist,Anna=client); labels are matched before and after
    pseudonymising, so the names as they are in the file work.
    """
    from concord.importers.speakers import parse_speaker_map

    require_setup_rights(workspace)
    roles = parse_speaker_map(speaker_map)
    project = read_qdpx(path)
    if not pseudonymize:
        return _import_project(workspace, project, str(path), dry_run, None, roles)
    from concord.importers.name_register import NameRegister
    from concord.services.pseudonyms import pseudonymize_project, register_path_for

    with NameRegister.locked(register_path_for(workspace, register_path), create=True) as register:
        pseudonyms = pseudonymize_project(workspace, project, register, nlp_name)
        return _import_project(workspace, project, str(path), dry_run, pseudonyms, roles)


def _import_project(
    workspace: Workspace, project, path: str, dry_run: bool, pseudonyms, roles: dict | None = None
) -> QdpxImportResult:
    with workspace.store.session() as session:
        importer = _Importer(session, workspace, project, path, pseudonyms, roles or {})
        result = importer.run(dry_run)
        if dry_run:
            session.rollback()
        elif pseudonyms is not None:
            # Saved before the study commits, as with transcripts: the register may hold a name
            # the study never got, never the other way round.
            pseudonyms.register.save()
            study = session.get(Study, 1)
            if study.pseudonym_register != str(pseudonyms.register.path):
                study.pseudonym_register = str(pseudonyms.register.path)
    return result


@dataclass
class _Counts:
    codes_created: int = 0
    codes_matched: int = 0
    codings: int = 0
    memos: int = 0
    attributes: int = 0
    turns: int = 0
    transcripts: list[str] = field(default_factory=list)
    codebooks: list[str] = field(default_factory=list)
    coders_created: list[str] = field(default_factory=list)


class _Importer:
    def __init__(
        self,
        session: Session,
        workspace: Workspace,
        project: ParsedProject,
        path: str,
        pseudonyms=None,
        roles: dict | None = None,
    ):
        self.session = session
        # The speaker map by the labels as stored: pseudonymised like the text they come from.
        self.roles: dict[str, str] = {}
        self.map_labels: dict[str, set[str]] = {}  # the label as given -> the forms it may have in the texts
        for label, role in (roles or {}).items():
            forms = {label} | ({pseudonyms.label(label) or label} if pseudonyms is not None else set())
            self.map_labels[label] = {" ".join(f.split()).casefold() for f in forms}
            for form in forms:
                self.roles.setdefault(form, role)
        self.used_labels: set[str] = set()
        self.pseudonyms = pseudonyms  # services.pseudonyms.ProjectPseudonyms, or None
        self.workspace = workspace
        self.project = project
        self.path = path
        self.actor = workspace.actor_label
        self.study_block = concord_fields(project.description, STUDY_MARKER)
        self.ours = self.study_block is not None
        self.lost = list(project.lost)
        self.adjusted = (
            list(project.adjusted)
            if not self.ours
            else [line for line in project.adjusted if line not in project.codebook_warnings]
        )
        self.remarks = list(project.remarks)
        self.counts = _Counts()
        self.memos_kept = 0  # memos of the file the study already had
        self.note_uses: dict[str, int] = defaultdict(int)
        self.consensus_user = canonical_guid(self.study_block[1].get("Consensus user")) if self.ours else None

    def run(self, dry_run: bool) -> QdpxImportResult:
        self._coders()
        self._codebooks()
        self._structure()
        self._transcripts()
        unused = [label for label, forms in self.map_labels.items() if not forms & self.used_labels]
        if unused:
            raise InputError(
                f"--speaker-map: no speaker {unused[0]!r} in the project's texts"
                + (f" (nor {', '.join(repr(u) for u in unused[1:4])})" if len(unused) > 1 else ""),
                self.path,
            )
        self._attributes()
        self._codings()
        self._notes()
        self._sets_and_links()
        counts = self.counts
        record(
            self.session,
            self.actor,
            "qdpx.import",
            "study",
            1,
            file=Path(self.path).name,
            origin=self.project.origin,
            offset_model=self.project.offset_model,
            transcripts=len(counts.transcripts),
            codes_created=counts.codes_created,
            codings=counts.codings,
            memos=counts.memos,
            attributes=counts.attributes,
            coders_created=counts.coders_created,
            lost=len(self.lost),
        )
        if self.ours:
            self.remarks.append("a Concord export: transcripts, turns, sessions and codebooks restored as they were")
        return QdpxImportResult(
            source=self.path,
            origin=self.project.origin,
            offset_model=self.project.offset_model,
            concord_file=self.ours,
            transcripts=tuple(counts.transcripts),
            turns=counts.turns,
            codebooks=tuple(counts.codebooks),
            codes_created=counts.codes_created,
            codes_matched=counts.codes_matched,
            codings=counts.codings,
            memos=counts.memos,
            attributes=counts.attributes,
            coders_created=tuple(counts.coders_created),
            dry_run=dry_run,
            report=DataLossReport(lost=tuple(self.lost), adjusted=tuple(self.adjusted), remarks=tuple(self.remarks)),
        )

    # -- people ------------------------------------------------------------------------------------

    def _coders(self) -> None:
        session = self.session
        project = self.project
        roles = {}
        if self.ours:
            for line in (self.study_block[1].get("Coders") or "").split("\n"):
                name, sep, role = line.partition("=")
                role = role.replace("(inactive)", "").strip()
                if sep and role in ("coder", "supervisor", "admin"):
                    roles[name.strip()] = role
        existing = set(session.scalars(select(Coder.name)))
        used_users = self._referenced_users()
        self.coder_of: dict[str, Coder] = {}
        skipped = []
        for key, user in project.users.items():
            if key == self.consensus_user:
                continue
            if key == ATLAS_TI_SYSTEM_USER and key not in used_users:
                skipped.append(user.name or "ATLAS.ti")
                continue
            name = (user.name or user.id or f"user {user.guid.strip('{}')[:8]}").strip()[:120]
            coder = ensure_coder(
                session, name, self.actor, roles.get(name, "coder") if name not in existing else "coder"
            )
            if name not in existing and name not in self.counts.coders_created:
                self.counts.coders_created.append(name)
                existing.add(name)
            self.coder_of[key] = coder
        if skipped:
            self.remarks.append(
                f"ATLAS.ti's built-in user ({', '.join(skipped)}) coded nothing and was not added as a coder"
            )
        unknown = sorted(used_users - set(project.users) - {self.consensus_user})
        if unknown:
            self.adjusted.append(
                f"{len(unknown)} creating user(s) missing from <Users>; their work was attributed "
                "to the project's creator or to the person importing"
            )
        self._fallback: Coder | None = None

    def _referenced_users(self) -> set[str]:
        used = set()
        for source in self.project.sources:
            for selection in source.selections:
                used.update(c.creating_user for c in selection.codings if c.creating_user)
                if selection.creating_user and selection.codings:
                    used.add(selection.creating_user)
        used.update(note.creating_user for note in self.project.notes.values() if note.creating_user)
        return used

    def fallback_coder(self) -> Coder:
        """Who gets work the file attributes to nobody: the project's creator, else the importer."""
        if self._fallback is None:
            creator = self.coder_of.get(self.project.creating_user or "")
            if creator is not None:
                self._fallback = creator
            else:
                name = self.workspace.actor.name if self.workspace.actor else IMPORTED_CODER
                self._fallback = ensure_coder(self.session, name, self.actor)
                if name == IMPORTED_CODER and name not in self.counts.coders_created:
                    self.counts.coders_created.append(name)
        return self._fallback

    def coder_for(self, *user_keys: str | None) -> Coder:
        for key in user_keys:
            if key and key in self.coder_of:
                return self.coder_of[key]
        return self.fallback_coder()

    # -- codebooks ---------------------------------------------------------------------------------

    def _codebooks(self) -> None:
        session = self.session
        project = self.project
        self.code_ids: dict[str, int] = {}
        self.existing_codes = {canonical_guid(guid): cid for cid, guid in session.execute(select(Code.id, Code.guid))}
        self.existing_codes.pop(None, None)
        creators = {}
        parts: list[tuple[CodebookSpec, dict[str, str]]] = []
        placed: set[str] = set()
        if self.ours:
            for code_set in project.sets:
                block = concord_fields(code_set.description, CODE_CREATOR_MARKER)
                if block is not None:
                    for member in code_set.member_codes:
                        creators[member] = (block[1].get("Coder"), block[1].get("Origin") or "deductive")
            for code_set in project.sets:
                block = concord_fields(code_set.description, CODEBOOK_MARKER)
                if block is None:
                    continue
                fields = block[1]
                members = set(code_set.member_codes)
                tops = [key for key, _element in project.top_codes if key in members]
                placed.update(tops)
                part = self._read_part(tops, code_set.name or fields.get("Id") or "codebook")
                spec = CodebookSpec(
                    id=fields.get("Id") or _slug(code_set.name),
                    title=code_set.name or fields.get("Id"),
                    version=fields.get("Version") or "1",
                    source=fields.get("Source"),
                    description=fields.get("Description"),
                    codes=part.codes,
                )
                parts.append((spec, fields))
        rest = [key for key, _element in project.top_codes if key not in placed]
        if rest or (not self.ours and project.codebook.codes):
            if self.ours:
                codes = self._read_part(rest, project.name).codes
            else:
                codes = tuple(code for code in project.codebook.codes)
            taken = set(session.scalars(select(Codebook.key)))
            base = _slug(project.name)
            key, number = base, 1
            while key in taken:
                number += 1
                key = f"{base}-{number}"
            spec = CodebookSpec(
                id=key,
                title=project.name,
                version="1",
                source=f"REFI-QDA project from {project.origin or 'an unknown tool'}",
                description=None,
                codes=codes,
            )
            parts.append((spec, {"Origin": "qdpx"}))
        for spec, fields in parts:
            self._add_codebook(spec, fields.get("Origin") or "qdpx", creators)

    def _read_part(self, top_keys: list[str], title: str) -> CodebookSpec:
        """Read some top-level codes on their own, so hotkeys are checked per codebook, not across all."""
        elements = dict(self.project.top_codes)
        root = etree.Element("Project", name=title)
        codes = etree.SubElement(etree.SubElement(root, "CodeBook"), "Codes")
        for key in top_keys:
            codes.append(_copy(elements[key]))
        result = read_qdc(etree.tostring(root), self.project.where)
        self.adjusted.extend(result.warnings)
        return result.spec

    def _add_codebook(self, spec: CodebookSpec, origin: str, creators: dict) -> None:
        session = self.session
        book = session.scalar(select(Codebook).where(Codebook.key == spec.id))
        created_book = book is None
        if created_book:
            book = new_codebook_row(session, spec, origin)
        hotkeys = set(session.scalars(select(Code.hotkey).where(Code.codebook_id == book.id, Code.hotkey.is_not(None))))
        before = self.counts.codes_created
        next_position = (session.scalar(select(func.max(Code.position)).where(Code.codebook_id == book.id)) or 0) + 1
        self._insert(book, spec.codes, None, (), creators, hotkeys, 0 if created_book else next_position)
        if created_book or self.counts.codes_created > before:
            snapshot_codebook(session, book, self.actor, f"imported from {Path(self.path).name}")
            self.counts.codebooks.append(book.key)

    def _insert(
        self,
        book: Codebook,
        codes: tuple[CodeSpec, ...],
        parent_id: int | None,
        path: tuple[str, ...],
        creators: dict,
        hotkeys: set[str],
        first_position: int,
    ) -> None:
        for position, spec in enumerate(codes, first_position):
            node_path = (*path, spec.name)
            key = canonical_guid(spec.guid)
            if key is not None and key in self.existing_codes:
                code_id = self.existing_codes[key]
                self.counts.codes_matched += 1
            else:
                guid = spec.guid.strip() if key is not None else stable_guid(book.key, node_path)
                if key is None:
                    key = canonical_guid(guid)
                    if key in self.existing_codes:
                        guid = stable_guid(f"{book.key}#{book.id}", node_path)
                        key = canonical_guid(guid)
                hotkey = spec.hotkey
                if hotkey and hotkey in hotkeys:
                    self.adjusted.append(
                        f"code {spec.name!r} lost its hotkey {hotkey!r}: codebook {book.key!r} already uses it"
                    )
                    hotkey = None
                if hotkey:
                    hotkeys.add(hotkey)
                coder_name, origin = creators.get(key, (None, "deductive"))
                creator = self.coder_of_name(coder_name) if coder_name else None
                name = spec.name if len(spec.name) <= 300 else spec.name[:299] + "…"
                if name != spec.name:
                    self.adjusted.append(f"a code name longer than 300 characters was shortened: {name!r}")
                row = Code(
                    codebook_id=book.id,
                    parent_id=parent_id,
                    guid=guid,
                    name=name,
                    **description_of(spec),
                    hotkey=hotkey,
                    origin=origin if origin in ("deductive", "inductive") else "deductive",
                    creator_id=creator.id if creator else None,
                    position=position,
                )
                self.session.add(row)
                self.session.flush()
                code_id = row.id
                self.existing_codes[key] = code_id
                self.counts.codes_created += 1
            # Codings refer to codes by the GUID the file gave them.
            original = canonical_guid(spec.guid)
            if original is not None:
                self.code_ids[original] = code_id
            self._insert(book, spec.children, code_id, node_path, creators, hotkeys, 0)

    def coder_of_name(self, name: str) -> Coder:
        for coder in self.coder_of.values():
            if coder.name == name:
                return coder
        return ensure_coder(self.session, name, self.actor)

    # -- dyads and sessions (Concord files) ----------------------------------------------------------

    def _structure(self) -> None:
        self.case_target: dict[str, tuple[str, int]] = {}
        self.sessions_by_place: dict[tuple[str, int], TherapySession] = {}
        if not self.ours:
            return
        for case in self.project.cases:
            dyad_block = concord_fields(case.description, DYAD_MARKER)
            if dyad_block is not None and dyad_block[1].get("Dyad"):
                fields = dyad_block[1]
                dyad = self._dyad(fields["Dyad"])
                if dyad.client_id is None and fields.get("Client"):
                    dyad.client_id = self._participant(fields["Client"], "client").id
                if dyad.therapist_id is None and fields.get("Therapist"):
                    dyad.therapist_id = self._participant(fields["Therapist"], "therapist").id
                self.case_target[case.key] = ("dyad", dyad.id)
                continue
            session_block = concord_fields(case.description, SESSION_MARKER)
            if session_block is not None:
                fields = session_block[1]
                try:
                    number = int(fields.get("Session", ""))
                except ValueError:
                    self.adjusted.append(f"case {case.name!r} names no usable session number; read as a plain case")
                    continue
                therapy = self._therapy(fields.get("Dyad") or "", number)
                if therapy.held_on is None and fields.get("Held on"):
                    try:
                        therapy.held_on = date.fromisoformat(fields["Held on"])
                    except ValueError:
                        self.adjusted.append(
                            f"session {fields.get('Dyad')}:{number}: unreadable date {fields['Held on']!r}"
                        )
                if therapy.modality is None and fields.get("Modality"):
                    therapy.modality = fields["Modality"][:32]
                self.case_target[case.key] = ("session", therapy.id)

    def _participant(self, pseudonym: str, role: str) -> Participant:
        row = self.session.scalar(select(Participant).where(Participant.pseudonym == pseudonym))
        if row is None:
            row = Participant(pseudonym=pseudonym, role=role)
            self.session.add(row)
            self.session.flush()
        return row

    def _dyad(self, key: str) -> Dyad:
        row = self.session.scalar(select(Dyad).where(Dyad.key == key))
        if row is None:
            row = Dyad(key=key)
            self.session.add(row)
            self.session.flush()
        return row

    def _therapy(self, dyad_key: str, number: int) -> TherapySession:
        place = (dyad_key, number)
        if place not in self.sessions_by_place:
            dyad = self._dyad(dyad_key)
            row = self.session.scalar(
                select(TherapySession).where(TherapySession.dyad_id == dyad.id, TherapySession.number == number)
            )
            if row is None:
                row = TherapySession(dyad_id=dyad.id, number=number)
                self.session.add(row)
                self.session.flush()
            self.sessions_by_place[place] = row
        return self.sessions_by_place[place]

    # -- transcripts and turns ---------------------------------------------------------------------

    def _transcripts(self) -> None:
        session = self.session
        project = self.project
        language = session.get(Study, 1).language
        blocks = {source.key: concord_fields(source.description, TRANSCRIPT_MARKER) for source in project.sources}
        wanted = [((blocks[s.key] or (None, {}))[1].get("Key") or s.label) for s in project.sources]
        if self.pseudonyms is not None:  # the source names were pseudonymised; a Concord key was not yet
            wanted = [self.pseudonyms.label(key, file_name=True) for key in wanted]
        wanted = [key[:200] for key in wanted]
        keys = unique_names(wanted)
        renamed = [f"{old!r} -> {new!r}" for old, new in zip(wanted, keys) if old != new]
        if renamed:
            self.adjusted.append(f"sources with repeated names were renamed: {', '.join(renamed[:10])}")
        taken = set(session.scalars(select(Transcript.key).where(Transcript.key.in_(keys))))
        if taken:
            raise InputError(
                f"the study already has transcript(s) {', '.join(sorted(taken))}; nothing was imported", self.path
            )
        hashes_taken = set(
            session.scalars(select(Transcript.source_sha256).where(Transcript.source_sha256.is_not(None)))
        )
        self.transcript_of: dict[str, Transcript] = {}
        self.turns_of: dict[str, list[Turn]] = {}
        file_name = Path(self.path).name
        for source, key in zip(project.sources, keys):
            fields = (blocks[source.key] or (None, {}))[1]
            kind = fields.get("Kind") if fields.get("Kind") in TRANSCRIPT_KINDS else "session"
            perspective = fields.get("Perspective") if fields.get("Perspective") in ("client", "therapist") else None
            phase = fields.get("Phase") if fields.get("Phase") in TRANSCRIPT_PHASES else "independent"
            session_id = None
            if fields.get("Session"):
                dyad_key, _sep, number = fields["Session"].rpartition(":")
                if dyad_key and number.isdigit():
                    session_id = self._therapy(dyad_key, int(number)).id
            sha = fields.get("Source sha256")
            if sha in hashes_taken or not sha:
                sha = None
            else:
                hashes_taken.add(sha)
            row = Transcript(
                key=key,
                kind=kind,
                perspective=perspective,
                session_id=session_id,
                language=(fields.get("Language") or language)[:16],
                phase=phase,
                source_name=self._label(fields.get("Source name"), True)
                if self.ours
                else f"{file_name}!{source.label}",
                source_sha256=sha,
                source_encoding=(fields.get("Source encoding") if self.ours else source.encoding),
                text=source.text,
            )
            if self.ours and source.created is not None:
                row.imported_at = source.created
            session.add(row)
            session.flush()
            turns = self._turns(source, fields, row)
            session.add_all(turns)
            session.flush()
            self.transcript_of[source.key] = row
            self.turns_of[source.key] = sorted(turns, key=lambda t: t.char_start)
            self.counts.transcripts.append(key)
            self.counts.turns += len(turns)
            record(
                session,
                self.actor,
                "transcript.import",
                "transcript",
                row.id,
                key=key,
                source=row.source_name,
                turns=len(turns),
                format="qdpx",
            )

    def _label(self, text: str | None, file_name: bool = False) -> str | None:
        return text if self.pseudonyms is None else self.pseudonyms.label(text, file_name)

    def _turns(self, source: ParsedSource, fields: dict[str, str], transcript: Transcript) -> list[Turn]:
        pseudonyms = self.pseudonyms
        # A Concord turn list points into the text as exported, before pseudonymising moved it.
        length = len(source.text) if pseudonyms is None else pseudonyms.original_lengths[source.key]

        def moved(offset: int) -> int:
            return offset if pseudonyms is None else pseudonyms.moved(source.key, offset)

        if fields.get("Turns"):
            try:
                turns = []
                for line in fields["Turns"].split("\n"):
                    if not line.strip():
                        continue
                    number, role, label, start, end, start_time, end_time, replayed, nonverbal = json.loads(line)
                    if role not in SPEAKER_ROLES or not 0 <= start <= end <= length:
                        raise ValueError(f"turn {number} does not fit the text")
                    role = self._mapped_role(str(self._label(str(label))), role)
                    turns.append(
                        Turn(
                            transcript_id=transcript.id,
                            number=int(number),
                            speaker_role=role,
                            speaker_label=str(self._label(str(label)))[:120],
                            start_time=start_time,
                            end_time=end_time,
                            char_start=moved(start),
                            char_end=moved(end),
                            replayed=bool(replayed),
                            nonverbal=[[moved(a), moved(b)] for a, b in nonverbal],
                        )
                    )
                return turns
            except (ValueError, TypeError) as error:
                self.adjusted.append(
                    f"transcript {transcript.key!r}: its Concord turn list was unreadable ({error}); "
                    "turns were rebuilt from the text"
                )
        rebuilt = turns_from_text(source.text, self.roles or None)
        self.used_labels.update(" ".join(t.speaker_label.split()).casefold() for t in rebuilt)
        others = sorted({t.speaker_label for t in rebuilt if t.speaker_role == "other" and t.speaker_label})
        if others:
            count = sum(1 for t in rebuilt if t.speaker_role == "other" and t.speaker_label)
            self.adjusted.append(
                f"transcript {transcript.key!r}: {count} turn(s) of {', '.join(repr(o) for o in others[:8])} have no"
                f" role ('other'); give them one with --speaker-map {others[0]}=client (or therapist, interviewer),"
                f" or afterwards: concord speakers STUDY {transcript.key} --map {others[0]}=client"
            )
        return [
            Turn(
                transcript_id=transcript.id,
                number=t.number,
                speaker_role=t.speaker_role,
                speaker_label=t.speaker_label,
                char_start=t.char_start,
                char_end=t.char_end,
                nonverbal=[],
            )
            for t in rebuilt
        ]

    def _mapped_role(self, label: str, role: str) -> str:
        folded = " ".join(label.split()).casefold()
        self.used_labels.add(folded)
        for wanted, mapped in self.roles.items():
            if " ".join(wanted.split()).casefold() == folded:
                return mapped
        return role

    def turn_at(self, source_key: str, offset: int) -> Turn | None:
        """The turn that starts at or before the offset (the last such one), None before the first turn."""
        turns = self.turns_of.get(source_key, [])
        at = bisect.bisect_right([turn.char_start for turn in turns], offset) - 1
        return turns[at] if at >= 0 else None

    # -- attributes ----------------------------------------------------------------------------------

    def _attributes(self) -> None:
        project = self.project
        self.attribute_seen: set[tuple[str, int, str]] = set()
        for source in project.sources:
            transcript = self.transcript_of[source.key]
            for value in source.values:
                self._attribute(value, "transcript", transcript.id, transcript.key)
        for case in project.cases:
            target = self.case_target.get(case.key)
            if case.selection_refs or case.code_refs:
                self.lost.append(
                    f"case {case.name or case.guid!r}: {case.selection_refs} text-range and "
                    f"{case.code_refs} code reference(s); Concord attributes apply to whole transcripts"
                )
            if target is not None:
                for value in case.values:
                    self._attribute(value, target[0], target[1], case.name or case.guid)
                continue
            transcripts = [self.transcript_of[key] for key in case.source_refs if key in self.transcript_of]
            if not transcripts:
                if case.values:
                    self.lost.append(
                        f"case {case.name or case.guid!r} with {len(case.values)} variable value(s) "
                        "but no text source Concord imported"
                    )
                continue
            if case.values:
                self.adjusted.append(
                    f"case {case.name or case.guid!r}: its variables became attributes of "
                    f"{len(transcripts)} transcript(s)"
                )
            for transcript in transcripts:
                for value in case.values:
                    self._attribute(value, "transcript", transcript.id, transcript.key)

    def _attribute(self, value: ParsedValue, target_kind: str, target_id: int, owner: str) -> None:
        variable = self.project.variables.get(value.variable_key or "")
        if variable is None:
            self.lost.append(f"a value for an undeclared variable on {owner!r}")
            return
        block = concord_fields(variable.description, ATTRIBUTE_MARKER) if self.ours else None
        if block is not None:
            fields = block[1]
            name = fields.get("Name") or variable.name
            value_type = fields.get("Type") if fields.get("Type") in ATTRIBUTE_TYPES else "text"
            blinded = fields.get("Blinded") == "yes"
        else:
            name = variable.name
            value_type = _VALUE_TYPES.get(variable.kind.lower(), "text")
            blinded = False
            if variable.kind.lower() == "datetime":
                self.adjusted.append(f"variable {name!r} (date and time) was kept as text")
        text = value.value
        if value.kind == "Boolean" and text is not None:
            text = "true" if text.strip().lower() in ("true", "1") else "false"
        self._store_attribute(target_kind, target_id, name[:120], value_type, text, blinded, owner)

    def _store_attribute(
        self, target_kind: str, target_id: int, name: str, value_type: str, value: str | None, blinded: bool, owner: str
    ) -> None:
        identity = (target_kind, target_id, name)
        existing = self.session.scalar(
            select(Attribute).where(
                Attribute.target_kind == target_kind, Attribute.target_id == target_id, Attribute.name == name
            )
        )
        if identity in self.attribute_seen or existing is not None:
            if existing is not None and existing.value != value:
                self.adjusted.append(
                    f"{target_kind} {owner!r} already has {name!r} = {existing.value!r}; "
                    f"the file's {value!r} was not used"
                )
            return
        self.attribute_seen.add(identity)
        self.session.add(
            Attribute(
                target_kind=target_kind,
                target_id=target_id,
                name=name,
                value_type=value_type,
                value=value,
                blinded=blinded,
            )
        )
        self.counts.attributes += 1

    # -- codings and their memos ---------------------------------------------------------------------

    def _note_block(self, note_key: str) -> dict[str, str]:
        note = self.project.notes.get(note_key)
        block = concord_fields(note.description, MEMO_MARKER) if note is not None and self.ours else None
        return block[1] if block else {}

    def _codings(self) -> None:
        seen: set[tuple] = set()
        problems = defaultdict(int)
        self.pending_memos: list[tuple[str, str, int, Coder | None]] = []  # (note key, kind, target id, default coder)
        for source in self.project.sources:
            transcript = self.transcript_of[source.key]
            length = len(source.text)
            for coding in source.whole_codings:
                self._coding(source, transcript, None, coding, 0, length, seen, problems)
            if source.whole_codings:
                self.adjusted.append(
                    f"{len(source.whole_codings)} coding(s) of the whole source "
                    f"{transcript.key!r} became codings of its whole text"
                )
            for selection in source.selections:
                if selection.start is None:
                    problems["selections that lie outside their source's text"] += 1
                    continue
                if selection.clamped:
                    problems["selections that ran past the end of their text (cut at the end)"] += 1
                made = [
                    self._coding(source, transcript, selection, coding, selection.start, selection.end, seen, problems)
                    for coding in selection.codings
                ]
                made = [row for row in made if row is not None]
                self._selection_notes(source, transcript, selection, made)
        messages = {
            "zero": "zero-length selections with codings (Concord codings span at least one character)",
            "code": "codings of codes the project does not define",
            "duplicate": "codings repeated exactly (same coder, code and span), kept once",
        }
        for problem, count in problems.items():
            text = f"{count} {messages.get(problem, problem)}"
            (self.adjusted if problem in ("duplicate",) or "cut at the end" in problem else self.lost).append(text)

    def _coding(
        self,
        source,
        transcript,
        selection: ParsedSelection | None,
        coding: ParsedCoding,
        start: int,
        end: int,
        seen: set,
        problems: dict,
    ) -> Coding | None:
        code_id = self.code_ids.get(coding.code_key or "")
        if code_id is None:
            problems["code"] += 1
            return None
        if end <= start:
            problems["zero"] += 1
            return None
        selection_user = selection.creating_user if selection is not None else None
        phase = "independent"
        if self.consensus_user and coding.creating_user == self.consensus_user:
            phase = "consensus"
            coder = (
                self.fallback_coder() if self.workspace.actor is None else self.coder_of_name(self.workspace.actor.name)
            )
        else:
            coder = self.coder_for(coding.creating_user, selection_user, self.project.creating_user)
        identity = (coder.id, code_id, start, end, phase)
        if identity in seen:
            problems["duplicate"] += 1
            return None
        seen.add(identity)
        created = coding.created or (selection.created if selection is not None else None) or datetime.now(UTC)
        inline = None
        other_notes = []
        for note_key in coding.note_refs:
            fields = self._note_block(note_key)
            note = self.project.notes.get(note_key)
            if fields.get("Inline") == "yes" and inline is None and note is not None:
                inline = note.text
                self.note_uses[note_key] += 1
            else:
                other_notes.append(note_key)
        if inline is None and not self.ours and selection is not None and selection.description:
            inline = selection.description
        row = Coding(
            coder_id=coder.id,
            transcript_id=transcript.id,
            code_id=code_id,
            start_offset=start,
            end_offset=end,
            memo=inline or None,
            phase=phase,
            made_blind=False,
            created_at=created,
            changed_at=created,
        )
        self.session.add(row)
        self.session.flush()
        self.counts.codings += 1
        for note_key in other_notes:
            self.pending_memos.append((note_key, "coding", row.id, coder))
        return row

    def _selection_notes(
        self, source: ParsedSource, transcript: Transcript, selection: ParsedSelection, made: list[Coding]
    ) -> None:
        notes = list(selection.note_refs)
        notes.extend(
            link.origin
            for link in self.project.links
            if link.target == selection.key and link.origin in self.project.notes
        )
        if not made and selection.description and not self.ours:
            turn = self.turn_at(source.key, selection.start)
            coder = self.coder_for(selection.creating_user)
            self._add_memo(
                coder,
                "turn" if turn else "transcript",
                turn.id if turn else transcript.id,
                selection.description,
                selection.created,
                None,
                False,
            )
            self.adjusted.append(
                f"a memo on uncoded text in {transcript.key!r} was attached to "
                + (f"turn {turn.number}" if turn else "the transcript")
            )
        for note_key in notes:
            if made and self._note_block(note_key).get("On") != "turn":
                note = self.project.notes.get(note_key)
                author = self.coder_of.get(note.creating_user or "") if note else None
                targets = [row for row in made if author is not None and row.coder_id == author.id] or made[:1]
                for row in targets:
                    self.pending_memos.append((note_key, "coding", row.id, None))
                continue
            turn = self.turn_at(source.key, selection.start)
            if self.ours and turn is not None and (turn.char_start, turn.char_end) != (selection.start, selection.end):
                turn = next(
                    (
                        t
                        for t in self.turns_of[source.key]
                        if (t.char_start, t.char_end) == (selection.start, selection.end)
                    ),
                    turn,
                )
            if turn is not None:
                self.pending_memos.append((note_key, "turn", turn.id, None))
            else:
                self.pending_memos.append((note_key, "transcript", transcript.id, None))

    # -- notes ---------------------------------------------------------------------------------------

    def _notes(self) -> None:
        project = self.project
        for note_key in project.note_refs:
            self.pending_memos.append((note_key, "study", None, None))
        for source in project.sources:
            for note_key in source.note_refs:
                self.pending_memos.append((note_key, "transcript", self.transcript_of[source.key].id, None))
        for code_key, note_keys in project.code_notes.items():
            code_id = self.code_ids.get(code_key)
            for note_key in note_keys:
                self.pending_memos.append(
                    (note_key, "code", code_id, None) if code_id else (note_key, "study", None, None)
                )
        transcripts_by_key = {key: self.transcript_of[key] for key in self.transcript_of}
        for link in project.links:
            if link.origin in project.notes and link.target in transcripts_by_key:
                self.pending_memos.append((link.origin, "transcript", transcripts_by_key[link.target].id, None))
            elif link.origin in project.notes and link.target in self.code_ids:
                self.pending_memos.append((link.origin, "code", self.code_ids[link.target], None))
        missing = 0
        placed: set[tuple[str, str, int | None]] = set()
        for note_key, kind, target_id, coder in self.pending_memos:
            note = project.notes.get(note_key)
            if note is None:
                missing += 1
                continue
            # A note the file refers to twice (a NoteRef and a link to the same source, as ATLAS.ti
            # writes them) is one memo there, not two.
            if (note_key, kind, target_id) in placed:
                self.note_uses[note_key] += 1
                continue
            placed.add((note_key, kind, target_id))
            self.note_uses[note_key] += 1
            author = self.coder_for(note.creating_user) if note.creating_user or coder is None else coder
            fields = self._note_block(note_key)
            text = note.text if fields else (note.text.strip() or (note.description or "").strip())
            if not text:
                self.lost.append(f"note {note.name or note.guid!r} is empty")
                continue
            self._add_memo(
                author, kind, target_id, text, note.created, note.modified, fields.get("Made blind") == "yes"
            )
        if missing:
            self.adjusted.append(f"{missing} reference(s) to notes the project does not contain were ignored")
        orphans = [note for key, note in project.notes.items() if not self.note_uses.get(key)]
        for note in orphans:
            if note.text.strip():
                self._add_memo(
                    self.coder_for(note.creating_user), "study", None, note.text, note.created, note.modified, False
                )
        if orphans:
            self.adjusted.append(f"{len(orphans)} note(s) attached to nothing became study memos")
        if self.memos_kept:
            self.adjusted.append(f"{self.memos_kept} memo(s) the study already had were not added again")

    def _add_memo(
        self,
        coder: Coder,
        kind: str,
        target_id: int | None,
        text: str,
        created: datetime | None,
        modified: datetime | None,
        made_blind: bool,
    ) -> None:
        # The same memo already in the study (the project imported before): kept once.
        already = self.session.scalar(
            select(Memo.id).where(
                Memo.coder_id == coder.id,
                Memo.target_kind == kind,
                Memo.target_id.is_(None) if target_id is None else Memo.target_id == target_id,
                Memo.text == text,
            )
        )
        if already is not None:
            self.memos_kept += 1
            return
        created = created or datetime.now(UTC)
        self.session.add(
            Memo(
                coder_id=coder.id,
                target_kind=kind,
                target_id=target_id,
                text=text,
                made_blind=made_blind,
                created_at=created,
                changed_at=modified or created,
            )
        )
        self.counts.memos += 1

    # -- sets and links Concord has no place for -------------------------------------------------------

    def _sets_and_links(self) -> None:
        project = self.project
        code_sets: list = []  # ATLAS.ti code groups and the like: categories gathering codes
        source_sets: list = []  # MAXQDA document groups, ATLAS.ti document groups: transcript attributes
        for code_set in project.sets:
            if self.ours and (
                concord_fields(code_set.description, CODEBOOK_MARKER)
                or concord_fields(code_set.description, CODE_CREATOR_MARKER)
            ):
                continue
            match = _ATLAS_VARIABLE_SET.match(code_set.name)
            if (
                match
                and code_set.member_sources
                and not code_set.member_codes
                and not code_set.member_notes
                and all(key in self.transcript_of for key in code_set.member_sources)
            ):
                name, value = match.group(1), match.group(2)
                for key in code_set.member_sources:
                    transcript = self.transcript_of[key]
                    self._store_attribute("transcript", transcript.id, name[:120], "text", value, False, transcript.key)
                self.adjusted.append(
                    f"set {code_set.name!r} was read as the attribute {name!r} = {value!r} of its "
                    f"{len(code_set.member_sources)} transcript(s)"
                )
                continue
            if code_set.member_codes and not code_set.member_sources and not code_set.member_notes:
                code_sets.append(code_set)
                continue
            if (
                code_set.member_sources
                and not code_set.member_codes
                and not code_set.member_notes
                and all(key in self.transcript_of for key in code_set.member_sources)
            ):
                source_sets.append(code_set)
                continue
            members = []
            for count, what in (
                (len(code_set.member_codes), "code"),
                (len(code_set.member_sources), "source"),
                (len(code_set.member_notes), "note"),
            ):
                if count:
                    members.append(f"{count} {what}(s)")
            self.lost.append(f"set {code_set.name!r} ({', '.join(members) or 'empty'}): Concord has no sets")
        self._code_categories(code_sets)
        self._source_groups(source_sets)
        kept_links = sum(1 for link in project.links if link.origin in project.notes)
        other_links = len(project.links) - kept_links
        if other_links:
            self.lost.append(f"{other_links} link(s) between codes, sources or selections: Concord has no links")

    def _code_categories(self, code_sets: list) -> None:
        """A set of codes becomes a category above them, where Concord's tree can hold it: each member
        a top-level code of one codebook, in no other set (a code has one place in the tree)."""
        import uuid

        membership: dict[str, int] = defaultdict(int)
        for code_set in code_sets:
            for member in code_set.member_codes:
                membership[member] += 1
        for code_set in code_sets:
            ids = [self.code_ids.get(canonical_guid(member) or member) for member in code_set.member_codes]
            codes = [self.session.get(Code, code_id) for code_id in ids if code_id is not None]
            name = (self._label(code_set.name) or "set")[:300]
            shared = [m for m in code_set.member_codes if membership[m] > 1]
            books = {code.codebook_id for code in codes}
            if len(codes) != len(ids) or shared or len(books) != 1 or any(code.parent_id for code in codes):
                why = (
                    "some members are in other sets too"
                    if shared
                    else "its codes are not all top-level codes of one codebook"
                )
                self.lost.append(f"set {code_set.name!r} ({len(ids)} code(s)): not a category, as {why}")
                continue
            siblings = self.session.scalars(
                select(Code.position).where(Code.codebook_id == codes[0].codebook_id, Code.parent_id.is_(None))
            ).all()
            category = Code(
                codebook_id=codes[0].codebook_id,
                parent_id=None,
                guid=str(uuid.uuid4()),
                name=name,
                definition=self._label(code_set.description) if code_set.description else None,
                origin="deductive",
                position=max(siblings, default=-1) + 1,
            )
            self.session.add(category)
            self.session.flush()
            for position, code in enumerate(codes):
                code.parent_id = category.id
                code.position = position
            self.counts.codes_created += 1
            self.adjusted.append(f"set {code_set.name!r} became the category {name!r} above its {len(codes)} code(s)")
        self.session.flush()

    def _source_groups(self, source_sets: list) -> None:
        """Sets of sources become transcript attributes: 'document group' = the set's name where each
        transcript is in one set, else one yes-attribute per set (a transcript may then be in several)."""
        if not source_sets:
            return
        counts: dict[str, int] = defaultdict(int)
        for code_set in source_sets:
            for key in code_set.member_sources:
                counts[key] += 1
        exclusive = all(count == 1 for count in counts.values())
        for code_set in source_sets:
            value = (self._label(code_set.name) or "set")[:300]
            for key in code_set.member_sources:
                transcript = self.transcript_of[key]
                if exclusive:
                    self._store_attribute(
                        "transcript", transcript.id, "document group", "text", value, False, transcript.key
                    )
                else:
                    self._store_attribute(
                        "transcript", transcript.id, value[:120], "text", "yes", False, transcript.key
                    )
            shown = f"'document group' = {value!r}" if exclusive else f"{value[:120]!r} = 'yes'"
            self.adjusted.append(
                f"set {code_set.name!r} was read as the attribute {shown} of its "
                f"{len(code_set.member_sources)} transcript(s)"
            )


def _copy(element: etree._Element) -> etree._Element:
    from copy import deepcopy

    return deepcopy(element)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:100] or "imported-project"
