"""gateway presence: which devices are connected, shared by every node

Revision ID: e7a1c0d3f5b2
Revises: d7a1f0b2c3e4
Create Date: 2026-12-01 09:45:00
"""
from alembic import op
import sqlalchemy as sa
import faoyam.core.database


revision = 'e7a1c0d3f5b2'
down_revision = 'd7a1f0b2c3e4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_connections',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('conn', sa.String(length=64), nullable=True),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('seen_at', faoyam.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_connections_device_id_devices')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_connections'))
    )
    with op.batch_alter_table('device_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_connections_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_connections_seen_at'))
    op.drop_table('device_connections')
