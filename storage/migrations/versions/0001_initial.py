"""The study store: settings, people, sessions, transcripts, codebooks, codings, audit log.

Revision ID: 0001
Revises: None
"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


# The audit log is append-only: the database itself refuses to change or remove an event.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
]
POSTGRES_TRIGGERS = [
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
]

def upgrade() -> None:
    op.create_table('attributes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('value_type', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('blinded', sa.Boolean(), nullable=False),
    sa.CheckConstraint("target_kind IN ('dyad', 'session', 'transcript')", name=op.f('ck_attributes_target_kind')),
    sa.CheckConstraint("value_type IN ('text', 'number', 'date', 'boolean')", name=op.f('ck_attributes_value_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attributes')),
    sa.UniqueConstraint('target_kind', 'target_id', 'name', name='uq_attributes_target_name')
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=True),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)
    op.create_table('codebooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebooks')),
    sa.UniqueConstraint('key', name=op.f('uq_codebooks_key'))
    )
    op.create_table('coders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('db_role', sa.String(length=63), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('coder', 'supervisor', 'admin')", name=op.f('ck_coders_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coders')),
    sa.UniqueConstraint('db_role', name=op.f('uq_coders_db_role')),
    sa.UniqueConstraint('name', name=op.f('uq_coders_name'))
    )
    op.create_table('participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pseudonym', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.CheckConstraint("role IN ('client', 'therapist')", name=op.f('ck_participants_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participants')),
    sa.UniqueConstraint('pseudonym', name=op.f('uq_participants_pseudonym'))
    )
    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('blind', sa.Boolean(), nullable=False),
    sa.Column('unblinded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unblinded_by', sa.String(length=120), nullable=True),
    sa.Column('anonymous_consensus', sa.Boolean(), nullable=False),
    sa.Column('pseudonym_register', sa.Text(), nullable=True),
    sa.Column('nlp_pipeline', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_study_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study'))
    )
    op.create_table('codebook_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('codebook_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['codebook_id'], ['codebooks.id'], name=op.f('fk_codebook_versions_codebook_id_codebooks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebook_versions')),
    sa.UniqueConstraint('codebook_id', 'number', name='uq_cbversions_codebook_number')
    )
    op.create_table('codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('codebook_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=True),
    sa.Column('definition', sa.Text(), nullable=True),
    sa.Column('inclusion', sa.Text(), nullable=True),
    sa.Column('exclusion', sa.Text(), nullable=True),
    sa.Column('example', sa.Text(), nullable=True),
    sa.Column('pole', sa.String(length=64), nullable=True),
    sa.Column('high_pole', sa.Boolean(), nullable=True),
    sa.Column('hotkey', sa.String(length=16), nullable=True),
    sa.Column('colour', sa.String(length=32), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("origin IN ('deductive', 'inductive')", name=op.f('ck_codes_origin')),
    sa.ForeignKeyConstraint(['codebook_id'], ['codebooks.id'], name=op.f('fk_codes_codebook_id_codebooks')),
    sa.ForeignKeyConstraint(['creator_id'], ['coders.id'], name=op.f('fk_codes_creator_id_coders')),
    sa.ForeignKeyConstraint(['merged_into_id'], ['codes.id'], name=op.f('fk_codes_merged_into_id_codes')),
    sa.ForeignKeyConstraint(['parent_id'], ['codes.id'], name=op.f('fk_codes_parent_id_codes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codes')),
    sa.UniqueConstraint('guid', name=op.f('uq_codes_guid'))
    )
    op.create_index('ix_codes_codebook_parent', 'codes', ['codebook_id', 'parent_id'], unique=False)
    op.create_table('dyads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('therapist_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['participants.id'], name=op.f('fk_dyads_client_id_participants')),
    sa.ForeignKeyConstraint(['therapist_id'], ['participants.id'], name=op.f('fk_dyads_therapist_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dyads')),
    sa.UniqueConstraint('key', name=op.f('uq_dyads_key'))
    )
    op.create_table('memos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coder_id', sa.Integer(), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('made_blind', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("target_kind IN ('study', 'transcript', 'turn', 'coding', 'code')", name=op.f('ck_memos_target_kind')),
    sa.ForeignKeyConstraint(['coder_id'], ['coders.id'], name=op.f('fk_memos_coder_id_coders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memos'))
    )
    op.create_index('ix_memos_target', 'memos', ['target_kind', 'target_id'], unique=False)
    op.create_table('code_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=64), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('changed_by', sa.String(length=120), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['code_id'], ['codes.id'], name=op.f('fk_code_changes_code_id_codes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_changes'))
    )
    op.create_index(op.f('ix_code_changes_code_id'), 'code_changes', ['code_id'], unique=False)
    op.create_table('sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dyad_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=True),
    sa.Column('modality', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['dyad_id'], ['dyads.id'], name=op.f('fk_sessions_dyad_id_dyads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    sa.UniqueConstraint('dyad_id', 'number', name='uq_sessions_dyad_number')
    )
    op.create_table('questionnaire_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('instrument', sa.String(length=64), nullable=False),
    sa.Column('respondent', sa.String(length=16), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('subscales', sa.JSON(), nullable=False),
    sa.Column('total', sa.Float(), nullable=True),
    sa.Column('band', sa.String(length=64), nullable=True),
    sa.Column('source_name', sa.Text(), nullable=True),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_questionnaire_scores_session_id_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_questionnaire_scores')),
    sa.UniqueConstraint('session_id', 'instrument', 'respondent', name='uq_scores_session_instrument_respondent')
    )
    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('perspective', sa.String(length=16), nullable=True),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('source_name', sa.Text(), nullable=True),
    sa.Column('source_sha256', sa.String(length=64), nullable=True),
    sa.Column('source_encoding', sa.String(length=32), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('session', 'ipr')", name=op.f('ck_transcripts_kind')),
    sa.CheckConstraint("perspective IS NULL OR perspective IN ('client', 'therapist')", name=op.f('ck_transcripts_perspective')),
    sa.CheckConstraint("phase IN ('independent', 'in_consensus', 'consensus_done')", name=op.f('ck_transcripts_phase')),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_transcripts_session_id_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transcripts')),
    sa.UniqueConstraint('key', name=op.f('uq_transcripts_key'))
    )
    # Not unique: one turn table holds many transcripts. The importer refuses a file seen before.
    op.create_index(op.f('ix_transcripts_source_sha256'), 'transcripts', ['source_sha256'], unique=False)
    op.create_table('codings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coder_id', sa.Integer(), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('start_offset', sa.Integer(), nullable=False),
    sa.Column('end_offset', sa.Integer(), nullable=False),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('made_blind', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("phase IN ('independent', 'consensus')", name=op.f('ck_codings_phase')),
    sa.CheckConstraint('start_offset < end_offset', name=op.f('ck_codings_span')),
    sa.ForeignKeyConstraint(['code_id'], ['codes.id'], name=op.f('fk_codings_code_id_codes')),
    sa.ForeignKeyConstraint(['coder_id'], ['coders.id'], name=op.f('fk_codings_coder_id_coders')),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_codings_transcript_id_transcripts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codings'))
    )
    op.create_index(op.f('ix_codings_code_id'), 'codings', ['code_id'], unique=False)
    op.create_index('ix_codings_transcript_coder', 'codings', ['transcript_id', 'coder_id'], unique=False)
    op.create_table('consensus_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=False),
    sa.Column('unit_start', sa.Integer(), nullable=False),
    sa.Column('unit_end', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=300), nullable=True),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=False),
    sa.Column('present', sa.JSON(), nullable=False),
    sa.Column('result_coding_ids', sa.JSON(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['coders.id'], name=op.f('fk_consensus_decisions_decided_by_id_coders')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['consensus_decisions.id'], name=op.f('fk_consensus_decisions_supersedes_id_consensus_decisions')),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_consensus_decisions_transcript_id_transcripts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consensus_decisions'))
    )
    op.create_index(op.f('ix_consensus_decisions_transcript_id'), 'consensus_decisions', ['transcript_id'], unique=False)
    op.create_table('turns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('speaker_role', sa.String(length=16), nullable=False),
    sa.Column('speaker_label', sa.String(length=120), nullable=False),
    sa.Column('start_time', sa.Float(), nullable=True),
    sa.Column('end_time', sa.Float(), nullable=True),
    sa.Column('char_start', sa.Integer(), nullable=False),
    sa.Column('char_end', sa.Integer(), nullable=False),
    sa.Column('replayed', sa.Boolean(), nullable=False),
    sa.Column('nonverbal', sa.JSON(), nullable=False),
    sa.CheckConstraint("speaker_role IN ('therapist', 'client', 'interviewer', 'other')", name=op.f('ck_turns_speaker_role')),
    sa.CheckConstraint('char_start <= char_end', name=op.f('ck_turns_range')),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_turns_transcript_id_transcripts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turns')),
    sa.UniqueConstraint('transcript_id', 'number', name='uq_turns_transcript_number')
    )
    op.create_table('consensus_sources',
    sa.Column('consensus_coding_id', sa.Integer(), nullable=False),
    sa.Column('independent_coding_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consensus_coding_id'], ['codings.id'], name=op.f('fk_consensus_sources_consensus_coding_id_codings')),
    sa.ForeignKeyConstraint(['independent_coding_id'], ['codings.id'], name=op.f('fk_consensus_sources_independent_coding_id_codings')),
    sa.PrimaryKeyConstraint('consensus_coding_id', 'independent_coding_id', name=op.f('pk_consensus_sources'))
    )
    statements = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table('consensus_sources')
    op.drop_table('turns')
    op.drop_table('consensus_decisions')
    op.drop_table('codings')
    op.drop_table('transcripts')
    op.drop_table('questionnaire_scores')
    op.drop_table('sessions')
    op.drop_table('code_changes')
    op.drop_table('memos')
    op.drop_table('dyads')
    op.drop_table('codes')
    op.drop_table('codebook_versions')
    op.drop_table('study')
    op.drop_table('participants')
    op.drop_table('coders')
    op.drop_table('codebooks')
    op.drop_table('audit_log')
    op.drop_table('attributes')
