"""recording status: what the media worker's recorder last said about a channel

Revision ID: b7e2c4a9d031
Revises: b52874b6dc89
Create Date: 2026-12-01 16:10:00
"""
from alembic import op
import sqlalchemy as sa
import faoyam.core.database


revision = 'b7e2c4a9d031'
down_revision = "b52874b6dc89"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recording_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('status_at', faoyam.core.database.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recording_settings', schema=None) as batch_op:
        batch_op.drop_column('status_at')
        batch_op.drop_column('status')
