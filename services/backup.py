"""Backups and restore: the only way the CLI and the TUI copy a study, so the rules cannot be skipped.

A backup holds everything (blinded groups, scores, every coder's work): it is taken by a supervisor or
admin, or by anyone while the study has neither (one researcher on their own). Each backup records the
head of the audit chain as a checkpoint in the study, and carries the same head in the copy.

A restore needs no person: whoever holds the backup file holds its contents already.
"""

from __future__ import annotations

from pathlib import Path

from concord.services.audit import record, require_audit_housekeeping
from concord.services.workspace import Workspace
from concord.storage.audit_chain import add_checkpoint
from concord.storage.db import CopyResult, backup_study, restore_study


def backup(workspace: Workspace, dest: str | Path) -> CopyResult:
    require_audit_housekeeping(workspace)
    result = backup_study(workspace.store, dest)
    rows = sum(check.rows for check in result.tables.values())
    with workspace.store.session() as session:
        if result.head is not None:
            add_checkpoint(session, result.head, f"backup to {result.path}")
        record(
            session,
            workspace.actor_label,
            "study.backup",
            "study",
            1,
            dest=result.path,
            rows=rows,
            head_event=result.head.event_id if result.head else None,
            head_hash=result.head.hash if result.head else None,
        )
    return result


def restore(backup_file: str | Path, target: str) -> CopyResult:
    """Load a backup into a new SQLite file or an empty PostgreSQL database (migrated to this Concord)."""
    return restore_study(backup_file, target)
