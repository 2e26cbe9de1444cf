"""Trust: how people are identified, the audit log's hash chain and its checkpoints, work files.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# PostgreSQL: more than the row triggers of 0001. TRUNCATE fires no row trigger, so it gets its own; and
# ENABLE ALWAYS keeps the triggers firing under session_replication_role = replica, which otherwise skips
# them. The owner or a superuser can still drop or disable them: that is what the hash chain shows.
POSTGRES_PROTECTIONS = [
    """CREATE FUNCTION audit_log_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'the audit log is append-only: % cannot be truncated', TG_TABLE_NAME; END $$""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate()""",
    "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_change",
    "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate",
    """CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate()""",
    "ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_change",
    "ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate",
    # Appending needs the head of the whole chain, also for a login that row-level security lets see
    # only its own events: this returns the largest id and the latest hash, nothing else.
    """CREATE FUNCTION concord_audit_head(OUT max_id integer, OUT last_hash varchar)
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
       SELECT (SELECT max(id) FROM public.audit_log),
              (SELECT hash FROM public.audit_log WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1) $$""",
]
# SQLite: the checkpoints are as append-only as the log they vouch for.
SQLITE_PROTECTIONS = [
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
]


def upgrade() -> None:
    with op.batch_alter_table("study") as batch:
        # Studies made before identities were checked keep working as they did: "trusted".
        batch.add_column(sa.Column("identity_mode", sa.String(16), nullable=False, server_default="trusted"))
        batch.add_column(sa.Column("study_uid", sa.String(36), nullable=True))
        batch.add_column(sa.Column("handout_for", sa.String(120), nullable=True))
        batch.add_column(sa.Column("handout_of", sa.String(36), nullable=True))
    op.execute(sa.text("UPDATE study SET study_uid = :uid").bindparams(uid=str(uuid.uuid4())))
    with op.batch_alter_table("coders") as batch:
        batch.add_column(sa.Column("os_login", sa.String(120), nullable=True))
        batch.create_unique_constraint("uq_coders_os_login", ["os_login"])
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_PROTECTIONS if postgres else SQLITE_PROTECTIONS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS concord_audit_head()")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_no_truncate() CASCADE")
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    with op.batch_alter_table("coders") as batch:
        batch.drop_constraint("uq_coders_os_login", type_="unique")
        batch.drop_column("os_login")
    with op.batch_alter_table("study") as batch:
        for column in ("handout_of", "handout_for", "study_uid", "identity_mode"):
            batch.drop_column(column)
