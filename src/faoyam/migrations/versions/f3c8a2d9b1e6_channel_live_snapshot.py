"""channel live snapshot: the latest keyframe of a channel's stream, for its card on Home

Revision ID: f3c8a2d9b1e6
Revises: e7a1c0d3f5b2
Create Date: 2026-12-01 13:00:00
"""
from alembic import op
import sqlalchemy as sa
import faoyam.core.database


revision = 'f3c8a2d9b1e6'
down_revision = 'e7a1c0d3f5b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('snapshot_at', faoyam.core.database.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('device_channels', schema=None) as batch_op:
        batch_op.drop_column('snapshot_at')
        batch_op.drop_column('snapshot_key')
