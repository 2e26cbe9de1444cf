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


def downgrade() -> None:
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
