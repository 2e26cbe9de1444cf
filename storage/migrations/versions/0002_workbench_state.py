"""The coding workbench's state: each coder's progress and persisted undo/redo steps.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('edit_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coder_id', sa.Integer(), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('undone', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['coder_id'], ['coders.id'], name=op.f('fk_edit_steps_coder_id_coders')),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_edit_steps_transcript_id_transcripts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edit_steps'))
    )
    op.create_index('ix_edit_steps_coder_transcript', 'edit_steps', ['coder_id', 'transcript_id', 'seq'], unique=False)
    op.create_table('transcript_progress',
    sa.Column('coder_id', sa.Integer(), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=False),
    sa.Column('turns_reviewed', sa.Integer(), nullable=False),
    sa.Column('last_offset', sa.Integer(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['coder_id'], ['coders.id'], name=op.f('fk_transcript_progress_coder_id_coders')),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_transcript_progress_transcript_id_transcripts')),
    sa.PrimaryKeyConstraint('coder_id', 'transcript_id', name=op.f('pk_transcript_progress'))
    )


def downgrade() -> None:
    op.drop_table('transcript_progress')
    op.drop_table('edit_steps')
