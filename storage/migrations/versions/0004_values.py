"""Values on a scale: a coding may carry a number; a code may declare its rating scale and the speakers it applies to.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add columns to a table with some constraints in place otherwise.
    with op.batch_alter_table("codes") as batch:
        # The speaker roles a code (and its subtree) applies to, comma-separated; NULL: not declared.
        batch.add_column(sa.Column("applies_to", sa.String(length=120), nullable=True))
        # The rating scale as codebooks.spec.ScaleSpec.to_document() writes it; NULL: the code has no value.
        batch.add_column(sa.Column("scale", sa.JSON(), nullable=True))
    with op.batch_alter_table("codings") as batch:
        batch.add_column(sa.Column("value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("codings") as batch:
        batch.drop_column("value")
    with op.batch_alter_table("codes") as batch:
        batch.drop_column("scale")
        batch.drop_column("applies_to")
