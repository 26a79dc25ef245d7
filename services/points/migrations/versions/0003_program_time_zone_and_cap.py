"""program.time_zone and program.max_points_per_purchase

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:00:00

Written by hand. Weekdays, birthdays and periods are read in the program's time zone (an IANA name), never
in the offset a client sent; existing programs keep UTC, which is how they were read until now. The cap on
the points one purchase may earn keeps every valid program inside the 64-bit columns; existing programs get
the default cap.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('program', sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))
    op.add_column('program', sa.Column('max_points_per_purchase', sa.BigInteger(), server_default='1000000000',
                                       nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('program') as batch:
        batch.drop_column('max_points_per_purchase')
        batch.drop_column('time_zone')
