"""IPR turn links: each replayed turn of an interview linked to the session turn(s) it replays.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turn_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interview_turn_id", sa.Integer(), nullable=False),
        sa.Column("session_turn_id", sa.Integer(), nullable=False),
        # How the link was found: "time" (the replayed turn's time falls in the session turn) or "text".
        sa.Column("method", sa.String(length=8), nullable=False),
        # Text similarity 0-100 (rapidfuzz ratio) for a link by text; NULL for a link by time.
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["interview_turn_id"],
            ["turns.id"],
            name=op.f("fk_turn_links_interview_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_turn_id"], ["turns.id"], name=op.f("fk_turn_links_session_turn_id_turns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_links")),
        sa.UniqueConstraint("interview_turn_id", "session_turn_id", name="uq_turn_links_interview_turn_id"),
        sa.CheckConstraint("method IN ('time', 'text')", name=op.f("ck_turn_links_method")),
    )
    op.create_index("ix_turn_links_session_turn_id", "turn_links", ["session_turn_id"])


def downgrade() -> None:
    op.drop_index("ix_turn_links_session_turn_id", table_name="turn_links")
    op.drop_table("turn_links")
