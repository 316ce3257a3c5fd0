"""blob lifecycle: tombstone retries

Revision ID: d7a1f0b2c3e4
Revises: c49bb6121e5a
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import faoyam.core.database


revision = 'd7a1f0b2c3e4'
down_revision = 'c49bb6121e5a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('blob_tombstones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('next_try_at', faoyam.core.database.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('blob_tombstones', schema=None) as batch_op:
        batch_op.drop_column('next_try_at')
        batch_op.drop_column('attempts')
