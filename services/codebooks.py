"""Codebooks in a study: adding them, exporting them, and theme development.

Supervisors move, rename, redefine, merge and split codes as the analysis moves
from codes to themes. Codings keep pointing at their code through renames and
moves (the id never changes); a merge moves the codings to the surviving code.
Every structural change writes a new codebook version (a YAML snapshot) and each
changed field goes into the code's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from concord.codebooks.loader import bundled_ids, dump_codebook, load_bundled, load_codebook
from concord.codebooks.merge import suggest_merges
from concord.codebooks.qdc import export_qdc, read_qdc, stable_guid
from concord.codebooks.spec import CodebookSpec, CodeSpec
from concord.services.audit import record
from concord.services.codes import (
    code_infos,
    description_of,
    find_code,
    seen_under_blind,
    stored_applies_to,
    stored_scale,
)
from concord.services.dto import CodeInfo
from concord.services.rights import require_codebook_history_rights, require_setup_rights, require_theme_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, InputError, NotFound
from concord.storage.models import Code, Codebook, CodebookVersion, CodeChange, Coder, Coding

EDITABLE_FIELDS = (
    "name",
    "label",
    "definition",
    "inclusion",
    "exclusion",
    "example",
    "pole",
    "high_pole",
    "hotkey",
    "colour",
)


@dataclass(frozen=True)
class CodebookInfo:
    key: str
    title: str
    version: str
    source: str | None
    in_study: bool
    bundled: bool
    codes: int
    versions: int


@dataclass(frozen=True)
class CodeChangeInfo:
    code_id: int
    field: str
    old_value: str | None
    new_value: str | None
    changed_by: str | None
    changed_at: datetime


@dataclass(frozen=True)
class MergeSuggestion:
    code_ids: tuple[int, ...]
    names: tuple[str, ...]
    creators: tuple[str, ...]
    score: float


def _now() -> datetime:
    return datetime.now(UTC)


# -- reading ------------------------------------------------------------------------------------


def list_codebooks(workspace: Workspace) -> list[CodebookInfo]:
    """The bundled codebooks and the study's own, one row each.

    While blind, a coder's counts include only the codes they can see.
    """
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        rows = session.scalars(select(Codebook).order_by(Codebook.key)).all()
        counted = select(Code.codebook_id, func.count()).where(Code.live())
        if blind:
            counted = counted.where((Code.origin == "deductive") | (Code.creator_id == (actor.id if actor else -1)))
        counts = dict(session.execute(counted.group_by(Code.codebook_id)).all())
        versions = dict(
            session.execute(
                select(CodebookVersion.codebook_id, func.count()).group_by(CodebookVersion.codebook_id)
            ).all()
        )
    bundled = set(bundled_ids())
    found = [
        CodebookInfo(
            key=r.key,
            title=r.title,
            version=r.version,
            source=r.source,
            in_study=True,
            bundled=r.key in bundled,
            codes=counts.get(r.id, 0),
            versions=versions.get(r.id, 0),
        )
        for r in rows
    ]
    in_study = {r.key for r in rows}
    for key in sorted(bundled - in_study):
        spec = load_bundled(key)
        found.append(
            CodebookInfo(
                key=key,
                title=spec.title,
                version=spec.version,
                source=spec.source,
                in_study=False,
                bundled=True,
                codes=spec.code_count(),
                versions=0,
            )
        )
    return found


def _book(session: Session, key: str) -> Codebook:
    book = session.scalar(select(Codebook).where(Codebook.key == key))
    if book is None:
        raise NotFound(f"no codebook {key!r} in this study (see: concord codebook list)")
    return book


def _spec_from_rows(book: Codebook, rows: list[Code]) -> CodebookSpec:
    children: dict[int | None, list[Code]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)
    ids = {row.id for row in rows}

    def build(row: Code) -> CodeSpec:
        kids = sorted(children.get(row.id, []), key=lambda r: (r.position, r.id))
        return CodeSpec(
            name=row.name,
            **description_of(row),
            hotkey=row.hotkey,
            guid=row.guid,
            applies_to=stored_applies_to(row.applies_to),
            scale=stored_scale(row.scale),
            children=tuple(build(k) for k in kids),
        )

    roots = [r for r in rows if r.parent_id is None or r.parent_id not in ids]
    roots.sort(key=lambda r: (r.position, r.id))
    return CodebookSpec(
        id=book.key,
        title=book.title,
        version=book.version,
        source=book.source,
        description=book.description,
        codes=tuple(build(r) for r in roots),
    )


def _live_rows(session: Session, book: Codebook) -> list[Code]:
    return list(session.scalars(select(Code).where(Code.codebook_id == book.id, Code.live())))


def codebook_spec(workspace: Workspace, key: str) -> CodebookSpec:
    """The study's codebook as it stands now; others' inductive codes stay hidden while blind."""
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        book = _book(session, key)
        rows = _live_rows(session, book)
        if blind:
            rows = [r for r in rows if r.origin == "deductive" or (actor and r.creator_id == actor.id)]
        return _spec_from_rows(book, rows)


def codebook_tree(workspace: Workspace, key: str) -> list[CodeInfo]:
    blind = workspace.blind_for_actor()
    actor = workspace.actor
    with workspace.store.reader() as session:
        book = _book(session, key)
        rows = sorted(_live_rows(session, book), key=lambda r: (r.position, r.id))
        if blind:
            rows = [r for r in rows if r.origin == "deductive" or (actor and r.creator_id == actor.id)]
        return code_infos(session, rows)


# Changes whose value is the name of another code (or several, comma-separated).
_LINKS = frozenset({"merged_from", "merged_into", "split_from", "split_into"})


def _names_in(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def code_history(workspace: Workspace, code: str | int) -> list[CodeChangeInfo]:
    with workspace.store.reader() as session:
        # Under the blind another coder's code is looked up as if it did not exist: the same answer
        # for "not yours" as for "no such code", so the command cannot probe for their work.
        actor = workspace.actor
        among = seen_under_blind(actor.id if actor else None) if workspace.blind_for_actor() else None
        row = find_code(session, code, among=among)
        changes = list(session.scalars(select(CodeChange).where(CodeChange.code_id == row.id).order_by(CodeChange.id)))
        if among is not None:
            # A merge or split names the other code: when that code is another coder's, the change
            # would show its name, so it is left out, as if the merge had not happened.
            seen = set(session.scalars(select(Code.name).where(among)))
            changes = [c for c in changes if c.field not in _LINKS or _names_in(c.new_value or c.old_value) <= seen]
        return [
            CodeChangeInfo(
                code_id=c.code_id,
                field=c.field,
                old_value=c.old_value,
                new_value=c.new_value,
                changed_by=c.changed_by,
                changed_at=c.changed_at,
            )
            for c in changes
        ]


def codebook_versions(workspace: Workspace, key: str) -> list[tuple[int, datetime, str | None, str | None]]:
    """(number, when, by whom, why) of every kept version of a codebook."""
    require_codebook_history_rights(workspace)
    with workspace.store.reader() as session:
        book = _book(session, key)
        return [
            (v.number, v.created_at, v.created_by, v.reason)
            for v in session.scalars(
                select(CodebookVersion).where(CodebookVersion.codebook_id == book.id).order_by(CodebookVersion.number)
            )
        ]


def codebook_version_text(workspace: Workspace, key: str, number: int) -> str:
    require_codebook_history_rights(workspace)
    with workspace.store.reader() as session:
        book = _book(session, key)
        row = session.scalar(
            select(CodebookVersion).where(CodebookVersion.codebook_id == book.id, CodebookVersion.number == number)
        )
        if row is None:
            raise NotFound(f"codebook {key!r} has no version {number}")
        return row.snapshot


# -- adding and exporting ------------------------------------------------------------------------


def read_codebook_file(path: str | Path) -> tuple[CodebookSpec, tuple[str, ...]]:
    """A codebook from a .yaml/.yml or .qdc (or a .qdpx project's codebook), with import warnings."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", str(path))
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_codebook(path), ()
    if suffix in (".qdc", ".qdpx", ".qde"):
        result = read_qdc(path)
        return result.spec, tuple(result.warnings)
    raise InputError("a codebook file ends in .yaml, .yml or .qdc", str(path))


def _insert_tree(
    session: Session,
    book: Codebook,
    codes: tuple[CodeSpec, ...],
    parent_id: int | None,
    path: tuple[str, ...],
    origin: str,
    creator_id: int | None,
) -> int:
    count = 0
    for position, spec in enumerate(codes):
        node_path = (*path, spec.name)
        guid = spec.guid or stable_guid(book.key, node_path)
        if session.scalar(select(Code.id).where(Code.guid == guid)) is not None:
            # The same GUID already lives in another codebook of this study: keep both, apart.
            guid = stable_guid(f"{book.key}#{book.id}", node_path)
        row = Code(
            codebook_id=book.id,
            parent_id=parent_id,
            guid=guid,
            name=spec.name,
            **description_of(spec),
            hotkey=spec.hotkey,
            applies_to=",".join(spec.applies_to) if spec.applies_to else None,
            scale=spec.scale.to_document() if spec.scale else None,
            origin=origin,
            creator_id=creator_id,
            position=position,
        )
        session.add(row)
        session.flush()
        count += 1 + _insert_tree(session, book, spec.children, row.id, node_path, origin, creator_id)
    return count


def snapshot_codebook(session: Session, book: Codebook, actor: str, reason: str) -> None:
    spec = _spec_from_rows(book, _live_rows(session, book))
    number = (
        session.scalar(select(func.max(CodebookVersion.number)).where(CodebookVersion.codebook_id == book.id)) or 0
    ) + 1
    session.add(
        CodebookVersion(
            codebook_id=book.id, number=number, snapshot=dump_codebook(spec), reason=reason, created_by=actor
        )
    )


def new_codebook_row(session: Session, spec: CodebookSpec, origin: str) -> Codebook:
    """A codebook row for ``spec`` (without its codes), flushed so it has an id."""
    book = Codebook(
        key=spec.id,
        title=spec.title,
        version=spec.version,
        source=spec.source,
        description=spec.description,
        origin=origin,
    )
    session.add(book)
    session.flush()
    return book


def add_codebook_spec(workspace: Workspace, spec: CodebookSpec, *, origin: str = "file") -> CodebookInfo:
    require_setup_rights(workspace)
    with workspace.store.session() as session:
        if session.scalar(select(Codebook.id).where(Codebook.key == spec.id)) is not None:
            raise ConcordError(f"the study already has a codebook {spec.id!r}")
        book = new_codebook_row(session, spec, origin)
        count = _insert_tree(session, book, spec.codes, None, (), "deductive", None)
        snapshot_codebook(session, book, workspace.actor_label, f"added from {origin}")
        record(
            session, workspace.actor_label, "codebook.add", "codebook", book.id, key=spec.id, codes=count, origin=origin
        )
        return CodebookInfo(
            key=book.key,
            title=book.title,
            version=book.version,
            source=book.source,
            in_study=True,
            bundled=spec.id in bundled_ids(),
            codes=count,
            versions=1,
        )


def resolve_codebook(id_or_file: str) -> tuple[CodebookSpec, str]:
    """A bundled codebook by id, or one read from a .yaml / .qdc file; with its origin."""
    if id_or_file in bundled_ids():
        return load_bundled(id_or_file), "bundled"
    path = Path(id_or_file)
    if not path.exists():
        raise NotFound(f"{id_or_file!r} is neither a bundled codebook ({', '.join(bundled_ids())}) nor a file")
    spec, _warnings = read_codebook_file(path)
    return spec, path.suffix.lower().lstrip(".") or "file"


def add_codebook(workspace: Workspace, id_or_file: str) -> CodebookInfo:
    """Add a bundled codebook by id, or one from a .yaml / .qdc file."""
    spec, origin = resolve_codebook(id_or_file)
    return add_codebook_spec(workspace, spec, origin=origin)


def export_codebook(workspace: Workspace, key: str, out: str | Path) -> Path:
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".yaml", ".yml", ".qdc"):
        raise ConcordError(f"{out}: export a codebook to .yaml or .qdc")
    spec = codebook_spec(workspace, key)
    data = export_qdc(spec) if suffix == ".qdc" else dump_codebook(spec).encode("utf-8")
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


# -- theme development (supervisors) ---------------------------------------------------------------


def _change(session: Session, code: Code, field: str, old, new, actor: str) -> None:
    session.add(
        CodeChange(
            code_id=code.id,
            field=field,
            old_value=None if old is None else str(old),
            new_value=None if new is None else str(new),
            changed_by=actor,
            changed_at=_now(),
        )
    )


def _is_descendant(session: Session, maybe_child: int, ancestor: int) -> bool:
    current = maybe_child
    seen = set()
    while current is not None and current not in seen:
        if current == ancestor:
            return True
        seen.add(current)
        current = session.scalar(select(Code.parent_id).where(Code.id == current))
    return False


def edit_code(workspace: Workspace, code: str | int, **changes) -> CodeInfo:
    """Rename or redefine a code; each changed field goes into its history."""
    actor = require_theme_rights(workspace)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ConcordError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE_FIELDS)}")
    with workspace.store.session() as session:
        row = find_code(session, code)
        if "name" in changes and not (changes["name"] or "").strip():
            raise ConcordError("a code needs a name")
        if changes.get("hotkey"):
            # Hotkeys are unique within a codebook; the workbench uses the active codebook's keys.
            clash = session.scalar(
                select(Code.name).where(
                    Code.hotkey == changes["hotkey"],
                    Code.id != row.id,
                    Code.codebook_id == row.codebook_id,
                    Code.live(),
                )
            )
            if clash:
                raise ConcordError(f"hotkey {changes['hotkey']!r} is taken by {clash!r}")
        changed = []
        for field, value in changes.items():
            old = getattr(row, field)
            if old != value:
                setattr(row, field, value)
                _change(session, row, field, old, value, actor.name)
                changed.append(field)
        if changed:
            book = session.get(Codebook, row.codebook_id)
            snapshot_codebook(session, book, actor.name, f"edited {row.name!r}: {', '.join(changed)}")
            record(session, actor.name, "code.edit", "code", row.id, fields=changed)
        return code_infos(session, [row])[0]


def move_code(workspace: Workspace, code: str | int, new_parent: str | int | None) -> CodeInfo:
    """Put a code under another (a category or theme), or at the top with None."""
    actor = require_theme_rights(workspace)
    with workspace.store.session() as session:
        row = find_code(session, code)
        parent = find_code(session, new_parent) if new_parent is not None else None
        if parent is not None:
            if _is_descendant(session, parent.id, row.id):
                raise ConcordError(f"cannot move {row.name!r} under its own descendant {parent.name!r}")
            if parent.codebook_id != row.codebook_id:
                # Moving across codebooks moves the whole subtree with it.
                _move_subtree_to_book(session, row, parent.codebook_id)
        old_parent = row.parent_id
        row.parent_id = parent.id if parent else None
        row.position = (
            session.scalar(
                select(func.max(Code.position)).where(
                    Code.parent_id == row.parent_id, Code.codebook_id == row.codebook_id
                )
            )
            or 0
        ) + 1
        _change(session, row, "parent", old_parent, row.parent_id, actor.name)
        book = session.get(Codebook, row.codebook_id)
        snapshot_codebook(session, book, actor.name, f"moved {row.name!r}")
        record(session, actor.name, "code.move", "code", row.id, old_parent=old_parent, new_parent=row.parent_id)
        return code_infos(session, [row])[0]


def _move_subtree_to_book(session: Session, row: Code, codebook_id: int) -> None:
    stack = [row]
    while stack:
        node = stack.pop()
        node.codebook_id = codebook_id
        stack.extend(session.scalars(select(Code).where(Code.parent_id == node.id)))


def create_category(
    workspace: Workspace, codebook_key: str, name: str, parent: str | int | None = None, definition: str | None = None
) -> CodeInfo:
    """A new theme, sub-theme or category to gather codes under."""
    actor = require_theme_rights(workspace)
    with workspace.store.session() as session:
        book = _book(session, codebook_key)
        parent_row = find_code(session, parent) if parent is not None else None
        path = (name,)
        row = Code(
            codebook_id=book.id,
            parent_id=parent_row.id if parent_row else None,
            guid=stable_guid(f"{book.key}#{_now().isoformat()}", path),
            name=name,
            definition=definition,
            origin="deductive",
            creator_id=actor.id,
            position=(session.scalar(select(func.max(Code.position)).where(Code.codebook_id == book.id)) or 0) + 1,
        )
        session.add(row)
        session.flush()
        _change(session, row, "created", None, name, actor.name)
        snapshot_codebook(session, book, actor.name, f"new category {name!r}")
        record(session, actor.name, "code.create", "code", row.id, name=name, origin="deductive")
        return code_infos(session, [row])[0]


def merge_codes(workspace: Workspace, source: str | int, target: str | int) -> CodeInfo:
    """Merge ``source`` into ``target``: its codings and children follow; the source is kept, marked merged."""
    actor = require_theme_rights(workspace)
    with workspace.store.session() as session:
        src = find_code(session, source)
        dst = find_code(session, target)
        if src.id == dst.id:
            raise ConcordError("a code cannot be merged into itself")
        if _is_descendant(session, dst.id, src.id):
            raise ConcordError(f"cannot merge {src.name!r} into its own descendant {dst.name!r}")
        moved = session.execute(update(Coding).where(Coding.code_id == src.id).values(code_id=dst.id)).rowcount
        for child in session.scalars(select(Code).where(Code.parent_id == src.id)):
            child.parent_id = dst.id
        src.merged_into_id = dst.id
        src.hotkey = None
        _change(session, src, "merged_into", None, dst.name, actor.name)
        _change(session, dst, "merged_from", None, src.name, actor.name)
        snapshot_codebook(
            session, session.get(Codebook, dst.codebook_id), actor.name, f"merged {src.name!r} into {dst.name!r}"
        )
        record(
            session,
            actor.name,
            "code.merge",
            "code",
            dst.id,
            source_id=src.id,
            source=src.name,
            target=dst.name,
            codings_moved=moved,
        )
        return code_infos(session, [dst])[0]


def split_code(workspace: Workspace, code: str | int, into: list[str]) -> list[CodeInfo]:
    """Split a code into new sibling codes; its codings stay with it until recoded, so nothing is lost."""
    actor = require_theme_rights(workspace)
    names = [n.strip() for n in into if n.strip()]
    if len(names) < 2:
        raise ConcordError("split a code into at least two new codes")
    with workspace.store.session() as session:
        row = find_code(session, code)
        book = session.get(Codebook, row.codebook_id)
        made = []
        for offset, name in enumerate(names, 1):
            new = Code(
                codebook_id=row.codebook_id,
                parent_id=row.parent_id,
                guid=stable_guid(f"{book.key}#split#{row.id}", (name,)),
                name=name,
                definition=row.definition,
                inclusion=row.inclusion,
                exclusion=row.exclusion,
                origin=row.origin,
                creator_id=row.creator_id,
                position=row.position + offset,
            )
            session.add(new)
            session.flush()
            _change(session, new, "split_from", None, row.name, actor.name)
            made.append(new)
        _change(session, row, "split_into", None, ", ".join(names), actor.name)
        snapshot_codebook(session, book, actor.name, f"split {row.name!r} into {', '.join(names)}")
        record(session, actor.name, "code.split", "code", row.id, into=names)
        return code_infos(session, made)


def merge_suggestions(workspace: Workspace, threshold: float | None = None) -> list[MergeSuggestion]:
    """Groups of near-identical inductive code names across coders, to accept or reject one by one."""
    require_theme_rights(workspace)
    with workspace.store.reader() as session:
        rows = session.execute(
            select(Code.id, Code.name, Coder.name)
            .join(Coder, Coder.id == Code.creator_id, isouter=True)
            .where(Code.origin == "inductive", Code.live())
            .order_by(Code.id)
        ).all()
    kwargs = {} if threshold is None else {"threshold": threshold}
    groups = suggest_merges([(cid, name, creator or "") for cid, name, creator in rows], **kwargs)
    return [
        MergeSuggestion(code_ids=tuple(g.code_ids), names=g.names, creators=g.creators, score=g.score) for g in groups
    ]
