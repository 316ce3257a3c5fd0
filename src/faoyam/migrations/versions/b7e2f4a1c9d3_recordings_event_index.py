"""recordings: partial covering index of event segments (the playback timeline's markers)

Revision ID: b7e2f4a1c9d3
Revises: b7e2c4a9d031
Create Date: 2026-12-01 16:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'b7e2f4a1c9d3'
down_revision = "b7e2c4a9d031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_recording_segments_events', 'recording_segments',
                    ['device_id', 'channel', 'stream', 'start', 'end', 'events'], unique=False,
                    sqlite_where=sa.text('events != 0'), postgresql_where=sa.text('events != 0'))


def downgrade() -> None:
    op.drop_index('ix_recording_segments_events', table_name='recording_segments',
                  sqlite_where=sa.text('events != 0'), postgresql_where=sa.text('events != 0'))
