"""Unblinding a study: the step after consensus that reveals groups and scores to everyone.

Only a supervisor or admin may unblind. While any transcript lacks a finished consensus
(``Transcript.phase != "consensus_done"``) it is refused, unless forced with a stated reason; the audit log
keeps who did it, why, and which transcripts were still open. From then on ``StudySettings.blind_now`` is
False: the services show group attributes and scores to coders, and new codings are recorded as made
unblinded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from concord.services.audit import record
from concord.services.rights import require_unblinding_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError
from concord.storage.models import Study, Transcript


@dataclass(frozen=True)
class UnblindResult:
    unblinded_at: datetime
    unblinded_by: str
    forced: bool
    unfinished: tuple[str, ...]


def unfinished_transcripts(workspace: Workspace) -> list[str]:
    """Keys of the transcripts whose consensus is not finished."""
    with workspace.store.reader() as session:
        return list(
            session.scalars(select(Transcript.key).where(Transcript.phase != "consensus_done").order_by(Transcript.key))
        )


def unblind(workspace: Workspace, *, reason: str | None = None, force: bool = False) -> UnblindResult:
    actor = require_unblinding_rights(workspace)
    reason = (reason or "").strip() or None
    with workspace.store.session() as session:
        study = session.get(Study, 1)
        if not study.blind:
            raise ConcordError("this study is open (not blind): there is nothing to unblind")
        if study.unblinded_at is not None:
            raise ConcordError(
                f"the study was already unblinded by {study.unblinded_by} on {study.unblinded_at:%Y-%m-%d %H:%M} UTC"
            )
        unfinished = tuple(
            session.scalars(select(Transcript.key).where(Transcript.phase != "consensus_done").order_by(Transcript.key))
        )
        if unfinished:
            shown = ", ".join(unfinished[:10]) + (f" and {len(unfinished) - 10} more" if len(unfinished) > 10 else "")
            if not force:
                raise ConcordError(
                    f"{len(unfinished)} transcript(s) lack a finished consensus ({shown});"
                    " finish it, or unblind anyway with --force --reason TEXT"
                )
            if reason is None:
                raise ConcordError("unblinding before consensus is finished needs a reason (--reason TEXT)")
        now = datetime.now(UTC)
        study.unblinded_at = now
        study.unblinded_by = actor.name
        record(
            session,
            actor.name,
            "study.unblind",
            "study",
            1,
            reason=reason,
            forced=bool(unfinished),
            unfinished=list(unfinished),
        )
        return UnblindResult(unblinded_at=now, unblinded_by=actor.name, forced=bool(unfinished), unfinished=unfinished)
