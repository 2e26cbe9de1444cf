"""Coder work files: a study file of a coder's own that holds only what they may see.

Anyone who can read a SQLite study can read all of it, blind or not. So a supervisor keeps the
main study to supervisors and hands each coder a file of their own (``handout``); the coder codes
in it with the same workbench; the supervisor brings the work back (``collect``) and can bring new
transcripts and codebook changes to the file without touching the coder's work (``refresh``).

What a work file holds, for coder C:

* the transcripts and their turns, without the therapy session they belong to or the file they
  came from; only transcript attributes that are not blinded; no sessions, dyads, participants
  or questionnaire scores;
* every codebook with a code C may see: the deductive codes and C's own inductive codes (another
  coder's inductive code, and the history that names it, stays out; a code merged into one C
  may not see is kept retired), with one codebook version each, written from what is in the file;
* C's own codings, memos, reading progress and undo steps (a coding of C's whose code C may no
  longer see, after a supervisor merged it into another coder's code, is held back);
* the settings, and two people: C, bound to an operating-system login (or ``--identity trusted``),
  and the supervisor who handed it out, deactivated: nobody can act as them, and since the file
  has a supervisor, C cannot set it up differently (add people, import, change settings);
* an audit log of its own, starting with the handout. The study records ``handout_of`` (the main
  study's ``study_uid``) and ``handout_for`` (C).

How rows are matched. Rows from the main study keep their primary keys in the work file, but the
rows C makes there get the work file's next free ids, which mean nothing in the main study; and
the main study's new rows take ids the work file may already use. So identity never rests on a
work file id alone:

* transcripts by key, turns by (transcript, number), codebooks by key, codes by guid (a new
  inductive code of C's is created in the main study with the guid it got in the work file);
* codings by (transcript, creation time): a coding keeps the time it was made, through handout and
  collect, and one coder makes one coding at a time. Should several share a time (imported
  codings), the one with the same id is taken first, then the others in id order;
* memos by (creation time, target kind); reading progress by transcript.

What collect does. The work file is C's authoritative copy of C's own layer: for each of C's
codings and memos in it, the main study is made to match (code, span, memo text, and whether it
is removed, so removing a coding in the work file removes it in the study); a coding with no
counterpart is added. A coding of C's that the work file does not hold (made in the main study
after the handout, or held back) is left alone, and nobody else's row is ever read for change.
Collecting the same file twice changes nothing the second time. Undo steps stay in the work file.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from concord.services import identity
from concord.services.audit import record
from concord.services.codebooks import snapshot_codebook
from concord.services.codes import inductive_codebook
from concord.services.rights import require_workfile_rights
from concord.services.workspace import Workspace
from concord.storage.audit_chain import chain_head, verify_chain
from concord.storage.db import StudyStore, open_study
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import (
    MEMO_TARGETS,
    Attribute,
    Code,
    Codebook,
    CodeChange,
    Coder,
    Coding,
    EditStep,
    Memo,
    Study,
    Transcript,
    TranscriptProgress,
    Turn,
    utcnow,
)
from concord.storage.workfiles import (
    Row,
    create_private_study,
    defer_foreign_keys,
    finish_work_file,
    highest_id,
    move_code_id,
    move_codebook_id,
    put_rows,
    read_snapshot,
    rows_of,
    table_of,
    utc,
)

WORKFILE_IDENTITIES = (identity.OS_LOGIN, identity.TRUSTED)
# Settings a refresh carries over from the main study (identity and the handout marks stay the file's own).
SHARED_SETTINGS = ("title", "language", "blind", "unblinded_at", "unblinded_by", "anonymous_consensus", "nlp_pipeline")
KINDS = ("codes", "codings", "memos", "progress")


class WorkFileRefused(ConcordError):
    """The file is not a work file of this study for this coder, or was changed outside Concord."""


@dataclass(frozen=True)
class HandoutReport:
    path: str
    coder: str
    identity_mode: str
    login: str | None
    study_uid: str
    work_uid: str
    transcripts: int
    codebooks: int
    codes: int
    codings: int
    memos: int
    held_back_codings: int


@dataclass(frozen=True)
class RefreshReport:
    path: str
    coder: str
    transcripts_added: int
    transcripts_updated: int
    codebooks_added: int
    codebooks_updated: int
    codes_added: int
    codes_updated: int
    codes_renumbered: int  # the coder's own codes moved aside to make room for the study's ids


@dataclass
class CollectReport:
    path: str
    coder: str
    work_uid: str
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: list[str] = field(default_factory=list)
    coding_ids: dict[str, list[int]] = field(default_factory=lambda: {"added": [], "updated": [], "removed": []})

    @property
    def changes(self) -> int:
        return sum(self.added.values()) + sum(self.updated.values()) + sum(self.removed.values())


# ------------------------------------------------------------------------------------ what a coder may see


def _cleared(row: Row, name: str, keep: set[int]) -> None:
    if row.get(name) is not None and row[name] not in keep:
        row[name] = None


def _visible_rows(src: Session, coder_id: int, people: set[int]) -> dict[str, list[Row]]:
    """The shared part of a work file for one coder, read from the main study: transcripts, turns,
    visible attributes, codebooks, codes and their history. ``people``: the coders the file holds."""
    transcripts = rows_of(src, Transcript)
    for row in transcripts:
        # The session and the source file name say which therapy a transcript is from: behind the blind.
        row.update(session_id=None, source_name=None, source_sha256=None)
    turns = rows_of(src, Turn)
    attributes = rows_of(src, Attribute, Attribute.target_kind == "transcript", Attribute.blinded.is_(False))

    all_codes = rows_of(src, Code)
    codes = [r for r in all_codes if r["origin"] == "deductive" or r["creator_id"] == coder_id]
    ids = {r["id"] for r in codes}
    hidden_names = {r["name"] for r in all_codes if r["id"] not in ids}
    now = utcnow()
    for row in codes:
        if row["merged_into_id"] is not None and row["merged_into_id"] not in ids:
            # Merged into a code the coder may not see: gone from their codebook, without naming where.
            row["merged_into_id"] = None
            row["retired_at"] = row["retired_at"] or now
        _cleared(row, "parent_id", ids)
        _cleared(row, "creator_id", people)
    used_books = {r["codebook_id"] for r in codes}
    any_books = {r["codebook_id"] for r in all_codes}
    codebooks = [r for r in rows_of(src, Codebook) if r["id"] in used_books or r["id"] not in any_books]

    def names_hidden(value: str | None) -> bool:
        # A merge or split writes code names into the history of the codes it touched.
        if not value:
            return False
        return value in hidden_names or any(part.strip() in hidden_names for part in value.split(","))

    changes = [
        r
        for r in rows_of(src, CodeChange)
        if r["code_id"] in ids and not names_hidden(r["old_value"]) and not names_hidden(r["new_value"])
    ]
    return {
        "transcripts": transcripts,
        "turns": turns,
        "attributes": attributes,
        "codebooks": codebooks,
        "codes": codes,
        "code_changes": changes,
    }


def _own_rows(src: Session, coder_id: int, code_ids: set[int]) -> tuple[dict[str, list[Row]], int]:
    """The coder's own layer, and how many of their codings are held back (their code is hidden now)."""
    codings = rows_of(src, Coding, Coding.coder_id == coder_id, Coding.phase == "independent")
    kept = [r for r in codings if r["code_id"] in code_ids]
    held_back = sum(1 for r in codings if r["code_id"] not in code_ids and r["deleted_at"] is None)
    coding_ids = {r["id"] for r in kept}

    def step_fits(row: Row) -> bool:
        # Undo must find the coding, and may set only codes the file has.
        payload = row["payload"] if isinstance(row["payload"], dict) else {}
        if payload.get("coding_id") not in coding_ids:
            return False
        return all(
            not isinstance(payload.get(side), dict) or payload[side].get("code_id") in code_ids
            for side in ("before", "after")
        )

    return {
        "codings": kept,
        "memos": rows_of(src, Memo, Memo.coder_id == coder_id),
        "transcript_progress": rows_of(src, TranscriptProgress, TranscriptProgress.coder_id == coder_id),
        "edit_steps": [r for r in rows_of(src, EditStep, EditStep.coder_id == coder_id) if step_fits(r)],
    }, held_back


# ------------------------------------------------------------------------------------ writing the shared part


@dataclass
class _SyncCounts:
    transcripts_added: int = 0
    transcripts_updated: int = 0
    codebooks_added: int = 0
    codebooks_updated: int = 0
    codes_added: int = 0
    codes_updated: int = 0
    codes_renumbered: int = 0
    touched_books: set[int] = field(default_factory=set)


def _align_ids(
    w: Session,
    model: type[Code] | type[Codebook],
    rows: list[Row],
    ident: str,
    move: Callable[[Session, int, int], None],
    fresh: int,
    counts: _SyncCounts,
) -> int:
    """Make the work file's row with each main row's key (``ident``: key or guid) sit on the main row's id.

    A row made in the work file (a coder's inductive code or the inductive codebook) may occupy an id
    the main study has since used: it moves to a fresh id first, with everything referring to it.
    Returns the next fresh id.
    """
    table = table_of(model)
    by_ident = {r[ident]: r["id"] for r in w.execute(select(table.c.id, table.c[ident])).mappings()}
    by_id = {v: k for k, v in by_ident.items()}
    for row in rows:
        want = row["id"]
        have = by_ident.get(row[ident])
        if have == want:
            continue
        occupant = by_id.get(want)
        if occupant is not None:
            move(w, want, fresh)
            by_ident[occupant] = fresh
            by_id[fresh] = occupant
            del by_id[want]
            fresh += 1
            counts.codes_renumbered += model is Code
        if have is not None:
            move(w, have, want)
            by_ident[row[ident]] = want
            by_id[want] = row[ident]
            del by_id[have]
    return fresh


def _sync_shared(w: Session, shared: dict[str, list[Row]], *, main_highest: dict[str, int]) -> _SyncCounts:
    """Bring the shared rows into the work file by id, leaving the coder's own layer as it is."""
    counts = _SyncCounts()
    defer_foreign_keys(w)
    fresh = max(highest_id(w, Codebook), main_highest["codebooks"]) + 1
    _align_ids(w, Codebook, shared["codebooks"], "key", move_codebook_id, fresh, counts)
    fresh = max(highest_id(w, Code), main_highest["codes"]) + 1
    _align_ids(w, Code, shared["codes"], "guid", move_code_id, fresh, counts)

    added, changed = put_rows(w, Codebook, shared["codebooks"])
    counts.codebooks_added, counts.codebooks_updated = len(added), len(changed)
    counts.touched_books.update(key[0] for key in added + changed)
    added, changed = put_rows(w, Code, shared["codes"])
    counts.codes_added, counts.codes_updated = len(added), len(changed)
    book_of = {r["id"]: r["codebook_id"] for r in shared["codes"]}
    counts.touched_books.update(book_of[key[0]] for key in added + changed)

    work_keys: dict[int, str] = {r.id: r.key for r in w.execute(select(Transcript.id, Transcript.key))}
    for row in shared["transcripts"]:
        held = work_keys.get(row["id"])
        clash = next((i for i, k in work_keys.items() if k == row["key"] and i != row["id"]), None)
        if (held is not None and held != row["key"]) or clash is not None:
            raise WorkFileRefused(
                f"the work file's transcript {held or row['key']!r} does not match the study's"
                f" {row['key']!r} (id {row['id']}): the file was changed outside Concord"
            )
    added, changed = put_rows(w, Transcript, shared["transcripts"])
    counts.transcripts_added, counts.transcripts_updated = len(added), len(changed)
    # Turns and attributes are never the coder's: replaced whole, so a re-segmented transcript cannot clash.
    shared_ids = [r["id"] for r in shared["transcripts"]]
    w.execute(table_of(Turn).delete().where(table_of(Turn).c.transcript_id.in_(shared_ids)))
    if shared["turns"]:
        put_rows(w, Turn, shared["turns"])
    w.execute(table_of(Attribute).delete())
    if shared["attributes"]:
        put_rows(w, Attribute, shared["attributes"])
    w.execute(table_of(CodeChange).delete())
    if shared["code_changes"]:
        put_rows(w, CodeChange, shared["code_changes"])
    return counts


def _snapshot_books(w: Session, book_ids: set[int], actor: str, reason: str) -> None:
    w.flush()
    w.expire_all()
    for book_id in sorted(book_ids):
        book = w.get(Codebook, book_id)
        if book is not None:
            snapshot_codebook(w, book, actor, reason)


def _shared_settings(settings: Row) -> Row:
    return {name: utc(settings[name]) if name == "unblinded_at" else settings[name] for name in SHARED_SETTINGS}


def _main_highest(src: Session) -> dict[str, int]:
    return {"codebooks": highest_id(src, Codebook), "codes": highest_id(src, Code)}


# ------------------------------------------------------------------------------------ handout


def _study_row(session: Session) -> Study:
    row = session.get(Study, 1)
    if row is None:
        raise ConcordError("not a Concord study (no settings row)")
    return row


def _main_study_uid(workspace: Workspace) -> str:
    """The main study's id; a study made before work files existed gets one now."""
    with workspace.store.session() as session:
        row = _study_row(session)
        if row.study_uid:
            return row.study_uid
        row.study_uid = str(uuid.uuid4())
        record(session, workspace.actor_label, "study.uid", "study", 1, study_uid=row.study_uid)
        return row.study_uid


def _coder_named(session: Session, name: str, *, active: bool = False) -> Coder:
    """The coder of that name; ``active``: refuse a deactivated one (a new work file; their past work
    can still be collected)."""
    row = session.scalar(select(Coder).where(Coder.name == name))
    if row is None:
        raise NotFound(f"no coder named {name!r} in this study (see: concord coder list)")
    if active and not row.active:
        raise ConcordError(f"coder {name!r} is deactivated")
    if row.role != "coder":
        raise ConcordError(
            f"{name} is a {row.role}: work files are for coders (a supervisor or admin works in the study itself)"
        )
    return row


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def handout(
    workspace: Workspace,
    coder: str,
    out: str | Path,
    *,
    login: str | None = None,
    identity_mode: str = identity.OS_LOGIN,
) -> HandoutReport:
    """Write a new work file for ``coder`` at ``out`` (mode 0600), holding only what they may see."""
    lead = require_workfile_rights(workspace)
    if identity_mode not in WORKFILE_IDENTITIES:
        raise ConcordError(
            f"a work file identifies its coder by {' or '.join(WORKFILE_IDENTITIES)}, not {identity_mode!r}"
        )
    out = Path(out)
    if workspace.store.backend == "sqlite" and _same_file(workspace.store.target, out):
        raise ConcordError(f"{out}: that is the study itself; choose a new file for the work file")
    with workspace.store.reader() as session:
        person = _coder_named(session, coder, active=True)
        bound = (login or "").strip() or person.os_login or person.name
    study_uid = _main_study_uid(workspace)
    with read_snapshot(workspace.store) as src:
        person_row = rows_of(src, Coder, Coder.id == person.id)[0]
        lead_row = rows_of(src, Coder, Coder.id == lead.id)[0]
        settings = rows_of(src, Study)[0]
        shared = _visible_rows(src, person.id, {person.id, lead.id})
        own, held_back = _own_rows(src, person.id, {r["id"] for r in shared["codes"]})
        highest = _main_highest(src)

    work_uid = str(uuid.uuid4())
    store = create_private_study(out)
    try:
        with store.session() as w:
            defer_foreign_keys(w)
            w.execute(
                insert(Study).values(
                    {
                        **_shared_settings(settings),
                        "id": 1,
                        "identity_mode": identity_mode,
                        "study_uid": work_uid,
                        "handout_for": person.name,
                        "handout_of": study_uid,
                        "pseudonym_register": None,
                        "created_at": utcnow(),
                    }
                )
            )
            put_rows(
                w,
                Coder,
                [
                    {**person_row, "os_login": bound, "db_role": None, "active": True},
                    # Named for what they wrote into the codebooks; no one can act as them here.
                    {**lead_row, "os_login": None, "db_role": None, "active": False},
                ],
            )
            record(
                w,
                lead.name,
                "workfile.handout",
                "study",
                1,
                note=f"handout from study {study_uid} for {person.name}",
                study=study_uid,
                coder=person.name,
                by=lead.name,
            )
            _sync_shared(w, shared, main_highest=highest)
            for model, name in (
                (Coding, "codings"),
                (Memo, "memos"),
                (TranscriptProgress, "transcript_progress"),
                (EditStep, "edit_steps"),
            ):
                put_rows(w, model, own[name])
            _snapshot_books(w, {r["id"] for r in shared["codebooks"]}, lead.name, f"as handed out for {person.name}")
        finish_work_file(store)
    except BaseException:
        store.close()
        _remove(out)
        raise
    store.close()
    report = HandoutReport(
        path=str(out),
        coder=person.name,
        identity_mode=identity_mode,
        login=bound if identity_mode == identity.OS_LOGIN else None,
        study_uid=study_uid,
        work_uid=work_uid,
        transcripts=len(shared["transcripts"]),
        codebooks=len(shared["codebooks"]),
        codes=len(shared["codes"]),
        codings=sum(1 for r in own["codings"] if r["deleted_at"] is None),
        memos=sum(1 for r in own["memos"] if r["deleted_at"] is None),
        held_back_codings=held_back,
    )
    try:
        with workspace.store.session() as session:
            record(
                session,
                lead.name,
                "workfile.handout",
                "workfile",
                None,
                coder=person.name,
                file=str(out),
                work=work_uid,
                identity=identity_mode,
                login=report.login,
                transcripts=report.transcripts,
                codings=report.codings,
                memos=report.memos,
                held_back=held_back,
            )
    except BaseException:
        _remove(out)
        raise
    return report


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


# ------------------------------------------------------------------------------------ opening a work file


@dataclass(frozen=True)
class _WorkFile:
    store: StudyStore
    work_uid: str
    coder: str
    coder_id: int


def _open_work_file(workspace: Workspace, path: str | Path, claimed: str | None) -> _WorkFile:
    """Open ``path`` as a work file handed out from this study, for ``claimed`` (when given)."""
    path = Path(path)
    if workspace.store.backend == "sqlite" and _same_file(workspace.store.target, path):
        raise WorkFileRefused(f"{path}: that is the study itself, not a work file")
    with workspace.store.reader() as session:
        main_uid = session.scalar(select(Study.study_uid))
    store = open_study(str(path), migrate=False)
    try:
        with store.reader() as w:
            row = _study_row(w)
            handout_of, handout_for, work_uid = row.handout_of, row.handout_for, row.study_uid
            coder_id = w.scalar(select(Coder.id).where(Coder.name == handout_for)) if handout_for else None
        if not handout_of or not handout_for or coder_id is None:
            raise WorkFileRefused(f"{path}: not a work file (concord handout writes them)")
        if handout_of != main_uid:
            raise WorkFileRefused(
                f"{path}: handed out from another study ({handout_of}), not from {workspace.store.display_name}"
                f" ({main_uid or 'no study id'})"
            )
        if claimed and claimed != handout_for:
            raise WorkFileRefused(f"{path}: handed out for {handout_for}, not for {claimed}")
        with workspace.store.reader() as session:
            person = _coder_named(session, handout_for)
        if person.id != coder_id:
            raise WorkFileRefused(
                f"{path}: its coder {handout_for} is not the study's {handout_for} (id {coder_id}, not {person.id})"
            )
    except BaseException:
        store.close()
        raise
    return _WorkFile(store, work_uid or "", handout_for, coder_id)


# ------------------------------------------------------------------------------------ refresh


def refresh(workspace: Workspace, path: str | Path, *, coder: str | None = None) -> RefreshReport:
    """Bring the study's new transcripts and codebook changes into a work file; the coder's codings,
    memos, progress and undo steps stay exactly as they are."""
    lead = require_workfile_rights(workspace)
    work = _open_work_file(workspace, path, coder)
    try:
        with work.store.reader() as w:
            people = set(w.scalars(select(Coder.id)))
        with read_snapshot(workspace.store) as src:
            settings = rows_of(src, Study)[0]
            shared = _visible_rows(src, work.coder_id, people)
            highest = _main_highest(src)
        with work.store.session() as w:
            counts = _sync_shared(w, shared, main_highest=highest)
            w.execute(update(Study).where(Study.id == 1).values(_shared_settings(settings)))
            _snapshot_books(w, counts.touched_books, lead.name, "refreshed from the study")
            record(
                w,
                lead.name,
                "workfile.refresh",
                "study",
                1,
                by=lead.name,
                transcripts_added=counts.transcripts_added,
                codes_added=counts.codes_added,
                codes_updated=counts.codes_updated,
            )
        finish_work_file(work.store)
    finally:
        work.store.close()
    report = RefreshReport(
        path=str(path),
        coder=work.coder,
        transcripts_added=counts.transcripts_added,
        transcripts_updated=counts.transcripts_updated,
        codebooks_added=counts.codebooks_added,
        codebooks_updated=counts.codebooks_updated,
        codes_added=counts.codes_added,
        codes_updated=counts.codes_updated,
        codes_renumbered=counts.codes_renumbered,
    )
    with workspace.store.session() as session:
        record(
            session,
            lead.name,
            "workfile.refresh",
            "workfile",
            None,
            coder=work.coder,
            file=str(path),
            work=work.work_uid,
            transcripts_added=report.transcripts_added,
            codes_added=report.codes_added,
            codes_updated=report.codes_updated,
        )
    return report


# ------------------------------------------------------------------------------------ collect


def _pair(candidates: list[Row], used: set[int], work_id: int) -> Row | None:
    """The main row a work row stands for, among those with its stable key: same id first, then in id order."""
    free = [r for r in candidates if r["id"] not in used]
    for row in free:
        if row["id"] == work_id:
            return row
    return free[0] if free else None


class _MainCodes:
    """The main study's codes, and which of them the coder may code with (following merges)."""

    def __init__(self, session: Session, coder_id: int):
        self.coder_id = coder_id
        self.rows = {r["id"]: r for r in rows_of(session, Code)}
        self.by_guid = {r["guid"]: r["id"] for r in self.rows.values()}

    def usable(self, code_id: int | None) -> int | None:
        seen: set[int] = set()
        while code_id is not None and code_id not in seen:
            seen.add(code_id)
            row = self.rows.get(code_id)
            if row is None:
                return None
            if row["merged_into_id"] is None:
                visible = row["origin"] == "deductive" or row["creator_id"] == self.coder_id
                return code_id if visible else None
            code_id = row["merged_into_id"]
        return None


def _read_work(work: _WorkFile) -> dict[str, Any]:
    with work.store.reader() as w:
        chain = verify_chain(w)
        if not chain.intact:
            raise WorkFileRefused(f"{work.store.target}: its audit log is broken ({chain.problem}); not collected")
        return {
            "head": chain_head(w),
            "transcripts": {r.id: r.key for r in w.execute(select(Transcript.id, Transcript.key))},
            "turns": {
                r.id: (r.transcript_id, r.number) for r in w.execute(select(Turn.id, Turn.transcript_id, Turn.number))
            },
            "codes": rows_of(w, Code),
            "codings": rows_of(w, Coding, Coding.coder_id == work.coder_id, Coding.phase == "independent"),
            "memos": rows_of(w, Memo, Memo.coder_id == work.coder_id),
            "progress": rows_of(w, TranscriptProgress, TranscriptProgress.coder_id == work.coder_id),
        }


def collect(workspace: Workspace, path: str | Path, *, coder: str | None = None) -> CollectReport:
    """Bring a coder's work back from their work file into the study: see the module's notes."""
    lead = require_workfile_rights(workspace)
    work = _open_work_file(workspace, path, coder)
    try:
        found = _read_work(work)
    finally:
        work.store.close()
    report = CollectReport(path=str(path), coder=work.coder, work_uid=work.work_uid)
    with workspace.store.session() as m:
        # On PostgreSQL the lock on the coder's row makes two collects for one coder wait for each other.
        person = m.scalar(select(Coder).where(Coder.id == work.coder_id).with_for_update())
        if person is None:
            raise WorkFileRefused(f"{path}: its coder {work.coder} is no longer in the study")
        tx_ids: dict[str, int] = {r.key: r.id for r in m.execute(select(Transcript.key, Transcript.id))}
        tx_length: dict[int, int] = {
            r.id: r.length for r in m.execute(select(Transcript.id, func.length(Transcript.text).label("length")))
        }
        tx_map = {wid: tx_ids[key] for wid, key in found["transcripts"].items() if key in tx_ids}
        turn_ids = {
            (r.transcript_id, r.number): r.id for r in m.execute(select(Turn.id, Turn.transcript_id, Turn.number))
        }
        codes = _MainCodes(m, person.id)
        code_map = _collect_codes(m, codes, found, person, report)
        coding_map = _collect_codings(m, codes, code_map, tx_map, tx_length, found, person, report)
        _collect_memos(m, found, person, tx_map, turn_ids, code_map, coding_map, report)
        _collect_progress(m, found, person, tx_map, report)
        record(
            m,
            lead.name,
            "collect.summary",
            "workfile",
            None,
            coder=person.name,
            file=str(path),
            work=work.work_uid,
            work_head=found["head"].hash,
            work_events=found["head"].count,
            added=report.added,
            updated=report.updated,
            removed=report.removed,
            skipped=len(report.skipped),
            codings=report.coding_ids,
        )
    return report


def _collect_codes(
    m: Session, codes: _MainCodes, found: dict[str, Any], person: Coder, report: CollectReport
) -> dict[int, int]:
    """Work code id -> main code id: by guid; the coder's new inductive codes are created (parents first)."""
    code_map: dict[int, int] = {}
    mine_new: list[Row] = []
    for row in found["codes"]:
        main_id = codes.by_guid.get(row["guid"])
        if main_id is not None:
            code_map[row["id"]] = main_id
        elif row["origin"] == "inductive" and row["creator_id"] == person.id:
            mine_new.append(row)
    pending = {r["id"]: r for r in mine_new}
    while pending:
        ready = [r for r in pending.values() if r["parent_id"] not in pending]
        if not ready:  # a cycle of parents: only a file changed outside Concord has one
            ready = list(pending.values())
        for row in ready:
            del pending[row["id"]]
            name = " ".join(str(row["name"] or "").split())
            if not name or len(name) > 300:
                report.skipped.append(f"code {row['id']}: no usable name")
                continue
            book = inductive_codebook(m)
            same = m.scalar(
                select(Code.id).where(
                    Code.codebook_id == book.id, Code.name == name, Code.creator_id == person.id, Code.live()
                )
            )
            if same is not None:
                # Made under the same name in the study meanwhile: one code, not two.
                code_map[row["id"]] = same
                continue
            parent = codes.usable(code_map.get(row["parent_id"])) if row["parent_id"] is not None else None
            position = m.scalar(select(func.count()).select_from(Code).where(Code.codebook_id == book.id)) or 0
            new = Code(
                codebook_id=book.id,
                parent_id=parent,
                guid=row["guid"],
                name=name,
                definition=row["definition"] or None,
                origin="inductive",
                creator_id=person.id,
                position=position,
                created_at=utc(row["created_at"]) or utcnow(),
            )
            m.add(new)
            m.flush()
            codes.rows[new.id] = {
                "id": new.id,
                "origin": "inductive",
                "creator_id": person.id,
                "merged_into_id": None,
                "guid": new.guid,
            }
            codes.by_guid[new.guid] = new.id
            code_map[row["id"]] = new.id
            report.added["codes"] += 1
    return code_map


def _collect_codings(
    m: Session,
    codes: _MainCodes,
    code_map: dict[int, int],
    tx_map: dict[int, int],
    tx_length: dict[int, int],
    found: dict[str, Any],
    person: Coder,
    report: CollectReport,
) -> dict[int, int]:
    """Make the coder's codings in the study match the work file's; returns work coding id -> main id."""
    main_rows = rows_of(m, Coding, Coding.coder_id == person.id, Coding.phase == "independent")
    by_key: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in main_rows:
        by_key[(row["transcript_id"], utc(row["created_at"]))].append(row)
    used: set[int] = set()
    coding_map: dict[int, int] = {}
    table = table_of(Coding)
    for row in found["codings"]:
        transcript = tx_map.get(row["transcript_id"])
        if transcript is None:
            report.skipped.append(f"coding {row['id']}: its transcript is not in the study")
            continue
        match = _pair(by_key.get((transcript, utc(row["created_at"])), []), used, row["id"])
        code = codes.usable(code_map.get(row["code_id"]))
        span_ok = 0 <= row["start_offset"] < row["end_offset"] <= (tx_length.get(transcript) or 0)
        removed = row["deleted_at"] is not None
        if match is None:
            if removed:
                continue  # made and removed in the work file: nothing to bring back
            if code is None or not span_ok:
                why = "its code is not one the coder may use" if code is None else "its span is outside the transcript"
                report.skipped.append(f"coding {row['id']}: {why}")
                continue
            new = Coding(
                coder_id=person.id,
                transcript_id=transcript,
                code_id=code,
                start_offset=row["start_offset"],
                end_offset=row["end_offset"],
                memo=row["memo"] or None,
                phase="independent",
                made_blind=bool(row["made_blind"]),
                created_at=utc(row["created_at"]),
                changed_at=utc(row["changed_at"]) or utcnow(),
            )
            m.add(new)
            m.flush()
            new_id = new.id
            coding_map[row["id"]] = new_id
            report.added["codings"] += 1
            report.coding_ids["added"].append(new_id)
            continue
        used.add(match["id"])
        coding_map[row["id"]] = match["id"]
        # A code the coder may not use (not in the study, or merged into another coder's code since the
        # handout) leaves the study's code in place; the rest of the coding still follows the work file.
        want = {
            "code_id": code if code is not None else match["code_id"],
            "start_offset": row["start_offset"] if span_ok else match["start_offset"],
            "end_offset": row["end_offset"] if span_ok else match["end_offset"],
            "memo": row["memo"] or None,
        }
        was_removed = match["deleted_at"] is not None
        same = all(match[k] == v for k, v in want.items()) and was_removed == removed
        if same:
            continue
        values = dict(want, changed_at=utc(row["changed_at"]) or utcnow())
        values["deleted_at"] = (utc(row["deleted_at"]) or utcnow()) if removed else None
        m.execute(update(table).where(table.c.id == match["id"]).values(values))
        kind = "removed" if removed and not was_removed else "updated"
        getattr(report, kind)["codings"] += 1
        report.coding_ids[kind].append(match["id"])
    return coding_map


def _collect_memos(
    m: Session,
    found: dict[str, Any],
    person: Coder,
    tx_map: dict[int, int],
    turn_ids: dict[tuple[int, int], int],
    code_map: dict[int, int],
    coding_map: dict[int, int],
    report: CollectReport,
) -> None:
    main_rows = rows_of(m, Memo, Memo.coder_id == person.id)
    by_key: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in main_rows:
        by_key[(utc(row["created_at"]), row["target_kind"])].append(row)
    used: set[int] = set()
    table = table_of(Memo)

    def target(row: Row) -> tuple[bool, int | None]:
        kind, target_id = row["target_kind"], row["target_id"]
        if kind == "study":
            return True, None
        if kind == "transcript":
            found_id = tx_map.get(target_id)
        elif kind == "turn":
            place = found["turns"].get(target_id)
            main_transcript = tx_map.get(place[0]) if place else None
            found_id = turn_ids.get((main_transcript, place[1])) if place and main_transcript else None
        elif kind == "coding":
            found_id = coding_map.get(target_id)
        else:
            found_id = code_map.get(target_id)
        return found_id is not None, found_id

    for row in found["memos"]:
        removed = row["deleted_at"] is not None
        text = (row["text"] or "").strip()
        match = _pair(by_key.get((utc(row["created_at"]), row["target_kind"]), []), used, row["id"])
        if match is None:
            if removed:
                continue
            ok, target_id = target(row) if row["target_kind"] in MEMO_TARGETS else (False, None)
            if not ok or not text:
                report.skipped.append(f"memo {row['id']}: its {row['target_kind']} is not in the study")
                continue
            m.add(
                Memo(
                    coder_id=person.id,
                    target_kind=row["target_kind"],
                    target_id=target_id,
                    text=text,
                    made_blind=bool(row["made_blind"]),
                    created_at=utc(row["created_at"]),
                    changed_at=utc(row["changed_at"]) or utcnow(),
                )
            )
            m.flush()
            report.added["memos"] += 1
            continue
        used.add(match["id"])
        was_removed = match["deleted_at"] is not None
        if (match["text"] == text or not text) and was_removed == removed:
            continue
        values: dict[str, Any] = {"changed_at": utc(row["changed_at"]) or utcnow()}
        if text:
            values["text"] = text
        values["deleted_at"] = (utc(row["deleted_at"]) or utcnow()) if removed else None
        m.execute(update(table).where(table.c.id == match["id"]).values(values))
        getattr(report, "removed" if removed and not was_removed else "updated")["memos"] += 1


def _collect_progress(
    m: Session, found: dict[str, Any], person: Coder, tx_map: dict[int, int], report: CollectReport
) -> None:
    table = table_of(TranscriptProgress)
    main_rows = {
        r["transcript_id"]: r for r in rows_of(m, TranscriptProgress, TranscriptProgress.coder_id == person.id)
    }
    for row in found["progress"]:
        transcript = tx_map.get(row["transcript_id"])
        if transcript is None:
            continue
        # The columns of a TranscriptProgress row, for insert().values() and update().values().
        want: dict[str, Any] = {
            "turns_reviewed": max(0, int(row["turns_reviewed"] or 0)),
            "last_offset": max(0, int(row["last_offset"] or 0)),
            "done_at": utc(row["done_at"]),
        }
        have = main_rows.get(transcript)
        if have is not None:
            # How far the coder has read only moves forward (as services.transcripts keeps it), wherever they read.
            want["turns_reviewed"] = max(want["turns_reviewed"], int(have["turns_reviewed"] or 0))
        if have is None:
            m.execute(insert(table).values(coder_id=person.id, transcript_id=transcript, **want))
            report.added["progress"] += 1
            continue
        if all((utc(have[k]) if k == "done_at" else have[k]) == v for k, v in want.items()):
            continue
        m.execute(update(table).where(table.c.coder_id == person.id, table.c.transcript_id == transcript).values(want))
        report.updated["progress"] += 1
