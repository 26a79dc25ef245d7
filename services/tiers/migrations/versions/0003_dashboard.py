"""dashboard: points per ISO week by kind, redemptions per reward

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:00:00

Written by hand; new tables only, so it needs no batch mode on SQLite (its ALTERs would).
"""
from alembic import op
import sqlalchemy as sa

import shared.db.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'points_week',
        sa.Column('week', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('week', 'kind', 'member_id', name=op.f('pk_points_week')),
    )
    op.create_table(
        'redemption',
        sa.Column('redemption_id', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('reward_id', sa.String(length=64), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('points_cost', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('updated_at', shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('redemption_id', name=op.f('pk_redemption')),
    )
    op.create_index(op.f('ix_redemption_reward_id'), 'redemption', ['reward_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_redemption_reward_id'), table_name='redemption')
    op.drop_table('redemption')
    op.drop_table('points_week')
