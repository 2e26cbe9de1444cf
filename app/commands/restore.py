"""concord restore: a backup back into a study of its own."""

from __future__ import annotations

import click

from concord.services import backup as backup_service


@click.command()
@click.argument("backup_file", metavar="BACKUP", type=click.Path(dir_okay=False))
@click.argument("target", metavar="TARGET")
def restore(backup_file, target):
    """Load BACKUP (a file from concord backup) into TARGET: a new .concord file or an empty PostgreSQL database.

    The rows are checked against the backup (count and checksum per table).
    A backup made by an older Concord is migrated on the way in; the backup
    file itself is only read. TARGET must not exist yet (a file) or hold no
    tables (a database; it is created if the login may).

    \b
    Examples:
      concord restore backups/study-2025-06-01.concord restored.concord
      concord restore backups/study-2025-06-01.concord postgresql+psycopg://owner@db.example.org/pilot_restored
    """
    result = backup_service.restore(backup_file, target)
    rows = sum(check.rows for check in result.tables.values())
    click.echo(f"Restored {backup_file} into {result.path}: {len(result.tables)} tables, {rows} rows, checked.")
    if result.head is not None and result.head.event_id is not None:
        click.echo(f"Audit chain head: event {result.head.event_id}, {result.head.hash}.")
