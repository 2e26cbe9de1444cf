"""Creating a study, its people, and reporting its state."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from concord.services import backup as backup_service
from concord.services import identity
from concord.services.audit import record
from concord.services.dto import CoderInfo, StudySettings
from concord.services.rights import LAYER_WORDS, require_setup_rights
from concord.services.workspace import Workspace, settings_of
from concord.storage.db import create_study_store, discard_new_study
from concord.storage.errors import ConcordError, NotFound
from concord.storage.models import CODER_ROLES, Code, Coder, Coding, Study, Transcript, TranscriptProgress, Turn


def init_study(
    target: str,
    *,
    title: str | None = None,
    blind: bool = True,
    language: str = "en",
    actor: str | None = None,
    codebooks: tuple[str, ...] = (),
    identity_mode: str = identity.TRUSTED,
    admin: str | None = None,
) -> Workspace:
    """Create a new study, with the named codebooks, and return it opened.

    Codebooks are read and validated before anything is created, so a bad one
    leaves no half-made study behind. In "os-login" mode the person running this
    becomes the study's first admin, bound to their login (``admin`` names them,
    default: the login), so that from the first command on nobody else can act
    for them. Programmatic callers (the demo, tests) get a "trusted" study unless
    they ask; `concord init` asks for the backend's default (identity.default_mode).
    """
    from concord.services.codebooks import add_codebook_spec, resolve_codebook

    identity.check_mode(identity_mode, "postgresql" if "://" in str(target) else "sqlite")
    if admin is not None and identity_mode != identity.OS_LOGIN:
        raise ConcordError("--admin binds the first admin to your login: it needs --identity os-login")
    specs = [resolve_codebook(name) for name in codebooks]
    store = create_study_store(target)
    workspace = Workspace(store, actor)
    try:
        with store.session() as session:
            session.add(
                Study(
                    id=1,
                    title=title or Path(str(target)).stem or "Untitled study",
                    language=language,
                    blind=blind,
                    identity_mode=identity_mode,
                    # Work files name the study they came from (services/workfiles.py).
                    study_uid=str(uuid.uuid4()),
                )
            )
            first = None
            if identity_mode == identity.OS_LOGIN:
                login = identity.current_login()
                first = (admin or login).strip()
                if not first:
                    raise ConcordError("the first admin needs a name (--admin NAME)")
                if actor and actor != first:
                    raise identity.IdentityRefused(
                        f"you are logged in as {login}, and become the admin {first}; --as {actor} refused"
                    )
            label = first or actor or "(unnamed)"
            record(
                session,
                label,
                "study.init",
                "study",
                1,
                title=title,
                blind=blind,
                language=language,
                identity=identity_mode,
            )
            if first:
                coder = Coder(name=first, role="admin", os_login=login)
                session.add(coder)
                session.flush()
                record(session, label, "coder.add", "coder", coder.id, name=first, role="admin", login=login)
        for spec, origin in specs:
            add_codebook_spec(workspace, spec, origin=origin)
    except BaseException:
        store.close()
        discard_new_study(target)
        raise
    return workspace


def update_settings(workspace: Workspace, **changes) -> StudySettings:
    allowed = {"title", "language", "anonymous_consensus", "pseudonym_register", "nlp_pipeline"}
    unknown = set(changes) - allowed
    if unknown:
        raise ConcordError(f"unknown study setting(s): {', '.join(sorted(unknown))}")
    require_setup_rights(workspace)
    with workspace.store.session() as session:
        row = session.get(Study, 1)
        old = {name: getattr(row, name) for name in changes}
        for name, value in changes.items():
            setattr(row, name, value)
        record(
            session,
            workspace.actor_label,
            "study.settings",
            "study",
            1,
            old={k: str(v) for k, v in old.items()},
            new={k: str(v) for k, v in changes.items()},
        )
        return settings_of(row)


def add_coder(workspace: Workspace, name: str, role: str = "coder", *, login: str | None = None) -> CoderInfo:
    """Add a person; on a study file bind them to an OS login (identity.login_for_new_coder)."""
    name = name.strip()
    if not name:
        raise ConcordError("a coder needs a name")
    if name.casefold() in LAYER_WORDS:
        raise ConcordError(
            f"{name!r} cannot be a coder's name: {', '.join(LAYER_WORDS)} name layers of codings (--layer)"
        )
    if role not in CODER_ROLES:
        raise ConcordError(f"unknown role {role!r}; choose one of {', '.join(CODER_ROLES)}")
    require_setup_rights(workspace)
    with workspace.store.session() as session:
        if session.scalar(select(Coder).where(Coder.name == name)):
            raise ConcordError(f"a coder named {name!r} already exists")
        os_login = identity.login_for_new_coder(session, name, login)
        coder = Coder(name=name, role=role, os_login=os_login)
        session.add(coder)
        session.flush()
        details = {"login": os_login} if os_login else {}
        record(session, workspace.actor_label, "coder.add", "coder", coder.id, name=name, role=role, **details)
        return CoderInfo(id=coder.id, name=coder.name, role=coder.role, active=coder.active, os_login=coder.os_login)


def ensure_coder(session, name: str, actor_label: str, role: str = "coder") -> Coder:
    """The coder of that name, created (and audited) inside the caller's unit of work if new."""
    coder = session.scalar(select(Coder).where(Coder.name == name))
    if coder is not None:
        return coder
    try:
        # In a savepoint: should another import create the same coder between our look and our insert
        # (PostgreSQL, two writers at once), only this insert is undone, not the caller's work.
        with session.begin_nested():
            coder = Coder(name=name, role=role)
            session.add(coder)
            session.flush()
    except IntegrityError:
        winner = session.scalar(select(Coder).where(Coder.name == name))
        if winner is None:
            raise
        return winner
    record(session, actor_label, "coder.add", "coder", coder.id, name=name, role=role)
    return coder


def list_coders(workspace: Workspace) -> list[CoderInfo]:
    with workspace.store.reader() as session:
        rows = session.scalars(select(Coder).order_by(Coder.id)).all()
        return [CoderInfo(id=r.id, name=r.name, role=r.role, active=r.active) for r in rows]


def set_coder_role(workspace: Workspace, name: str, role: str) -> CoderInfo:
    if role not in CODER_ROLES:
        raise ConcordError(f"unknown role {role!r}; choose one of {', '.join(CODER_ROLES)}")
    require_setup_rights(workspace)
    with workspace.store.session() as session:
        coder = session.scalar(select(Coder).where(Coder.name == name))
        if coder is None:
            raise NotFound(f"no coder named {name!r}")
        old = coder.role
        coder.role = role
        record(session, workspace.actor_label, "coder.role", "coder", coder.id, name=name, old=old, new=role)
        return CoderInfo(id=coder.id, name=coder.name, role=coder.role, active=coder.active)


def study_status(workspace: Workspace) -> dict:
    """Counts of transcripts, turns, codes and codings per coder, the phase, blind or not.

    While the study is blind a coder sees only their own coding count, and a caller
    bound to no coder sees none; the counts of others are their progress, which the
    blind hides, and so is the size of the consensus.
    """
    settings = workspace.settings()
    blind = workspace.blind_for_actor(settings)
    actor = workspace.actor
    with workspace.store.reader() as session:
        transcripts = session.scalar(select(func.count()).select_from(Transcript)) or 0
        turns = session.scalar(select(func.count()).select_from(Turn)) or 0
        code_count = select(func.count()).select_from(Code).where(Code.live())
        if blind:
            # Other coders' inductive codes are their work: a coder counts only what they can see.
            code_count = code_count.where(
                (Code.origin == "deductive") | (Code.creator_id == (actor.id if actor else -1))
            )
        codes = session.scalar(code_count) or 0
        per_coder = dict(
            session.execute(
                select(Coder.name, func.count(Coding.id))
                .join(
                    Coding,
                    (Coding.coder_id == Coder.id) & Coding.deleted_at.is_(None) & (Coding.phase == "independent"),
                    isouter=True,
                )
                .group_by(Coder.name)
                .order_by(Coder.name)
            ).all()
        )
        consensus = (
            session.scalar(
                select(func.count()).select_from(Coding).where(Coding.phase == "consensus", Coding.deleted_at.is_(None))
            )
            or 0
        )
        phases = dict(session.execute(select(Transcript.phase, func.count()).group_by(Transcript.phase)).all())
        done_query = select(func.count()).select_from(TranscriptProgress).where(TranscriptProgress.done_at.is_not(None))
        if blind and actor is not None:
            done_query = done_query.where(TranscriptProgress.coder_id == actor.id)
        done = session.scalar(done_query) or 0
    if blind:
        # Nobody-in-particular sees no one's count: how far others are is their work.
        per_coder = {name: count for name, count in per_coder.items() if actor is not None and name == actor.name}
    if phases.get("consensus_done", 0) == transcripts and transcripts:
        phase = "consensus done"
    elif phases.get("in_consensus") or phases.get("consensus_done"):
        phase = "consensus"
    else:
        phase = "independent coding"
    return {
        "study": workspace.store.display_name,
        "title": settings.title,
        "backend": workspace.store.backend,
        "blind": settings.blind,
        "blind_now": settings.blind_now,
        "unblinded_at": settings.unblinded_at.isoformat() if settings.unblinded_at else None,
        "phase": phase,
        "transcripts": transcripts,
        "turns": turns,
        "codes": codes,
        "codings": per_coder,
        # The consensus is made of every coder's codings: behind the blind, like agreement.
        "consensus_codings": None if blind else consensus,
        "transcript_phases": {name: phases.get(name, 0) for name in ("independent", "in_consensus", "consensus_done")},
        "transcripts_done": None if blind and actor is None else done,
        "schema": workspace.store.revision(),
    }


def backup(workspace: Workspace, dest: str) -> Path:
    """A consistent, verified copy of the study; services.backup holds the rule and records the checkpoint."""
    return Path(backup_service.backup(workspace, dest).path)
