"""Expiry reminders: the program's ``expiry_reminder_days`` and, on each lot, when ``points.expiring`` was sent
about it

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-11 10:00:00

Written by hand. The setting starts at 0 (no reminders), so no lot is reminded of until a program sets it; then
every lot inside the window is, the ones already there included. The partial index holds only the lots a
reminder may still be sent about, so the minute job reads the few due and not every live lot.
"""
from alembic import op
import sqlalchemy as sa

from shared.db.types import UTCDateTime


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

REMINDER_DUE = "remaining > 0 AND reminded_at IS NULL AND NOT pending"


def upgrade() -> None:
    op.add_column('program', sa.Column('expiry_reminder_days', sa.Integer(), server_default='0', nullable=False))
    op.add_column('lot', sa.Column('reminded_at', UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_lot_due_reminder', 'lot', ['expires_at'], unique=False,
                    postgresql_where=sa.text(REMINDER_DUE), sqlite_where=sa.text(REMINDER_DUE))


def downgrade() -> None:
    op.drop_index('ix_lot_due_reminder', table_name='lot')
    with op.batch_alter_table('lot') as batch:
        batch.drop_column('reminded_at')
    with op.batch_alter_table('program') as batch:
        batch.drop_column('expiry_reminder_days')
