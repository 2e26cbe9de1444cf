"""The coding assistant: its per-study setting, codings accepted from it, and the suggestions a coder turned down.

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study") as batch:
        # {"on": bool, "min_codings": int, "learn_from": "own" | "consensus"}; NULL: never switched on (off).
        batch.add_column(sa.Column("assistant", sa.JSON(), nullable=True))
    with op.batch_alter_table("codings") as batch:
        # How the assistant had a hand in a coding: "suggestion" (accepted from a suggestion) or "similar"
        # (coded from a "more like this" list); NULL: the coder's own doing.
        batch.add_column(sa.Column("assisted_by", sa.String(length=16), nullable=True))
    op.create_table(
        "suggestion_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coder_id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["coder_id"], ["coders.id"], name=op.f("fk_suggestion_rejections_coder_id_coders")),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], name=op.f("fk_suggestion_rejections_transcript_id_transcripts")
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_suggestion_rejections_turn_id_turns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["code_id"], ["codes.id"], name=op.f("fk_suggestion_rejections_code_id_codes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_rejections")),
        sa.UniqueConstraint("coder_id", "turn_id", "code_id", name="uq_suggestion_rejections_coder_turn_code"),
    )
    op.create_index(
        "ix_suggestion_rejections_coder_transcript", "suggestion_rejections", ["coder_id", "transcript_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_suggestion_rejections_coder_transcript", table_name="suggestion_rejections")
    op.drop_table("suggestion_rejections")
    with op.batch_alter_table("codings") as batch:
        batch.drop_column("assisted_by")
    with op.batch_alter_table("study") as batch:
        batch.drop_column("assistant")
