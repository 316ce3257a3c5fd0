"""detection settings (server-side motion detection per channel)

Revision ID: b6d2e8f41a07
Revises: a3c0d1e95f71
Create Date: 2026-12-01 16:05:00
"""
from alembic import op
import sqlalchemy as sa
import faoyam.core.database


revision = 'b6d2e8f41a07'
down_revision = 'a3c0d1e95f71'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('detection_settings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('sensitivity', sa.Integer(), nullable=False),
    sa.Column('zones', sa.JSON(), nullable=True),
    sa.Column('stream', sa.String(length=8), nullable=False),
    sa.Column('updated_at', faoyam.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_detection_settings_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detection_settings')),
    sa.UniqueConstraint('device_id', 'channel', name=op.f('uq_detection_settings_device_id'))
    )
    with op.batch_alter_table('detection_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_detection_settings_device_id'), ['device_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('detection_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_detection_settings_device_id'))
    op.drop_table('detection_settings')
