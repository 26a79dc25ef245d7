"""Goals (each member's settled periods, and the periods done) and holdouts (the members a rule with a
control group took in); purchases indexed by when they happened, for the periods goals, reports and
simulations read

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-30 10:00:00

Written by hand. No rule had a holdout or was a goal before, so the tables start empty.
"""
from alembic import op
import sqlalchemy as sa

from shared.db.types import Money, UTCDateTime


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_purchase_occurred_at', 'purchase', ['occurred_at'])
    op.create_table(
        'rule_exposure',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('first_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', 'member_id', name=op.f('pk_rule_exposure')),
    )
    op.create_table(
        'goal_settlement',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=32), nullable=False),
        sa.Column('goal_id', sa.String(length=64), nullable=False),
        sa.Column('progress', Money(precision=20, scale=4), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('reward_id', sa.String(length=64), nullable=True),
        sa.Column('entry_id', sa.BigInteger(), nullable=True),
        sa.Column('settled_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', 'member_id', 'period', name=op.f('pk_goal_settlement')),
        sa.UniqueConstraint('goal_id', name=op.f('uq_goal_settlement_goal_id')),
    )
    op.create_table(
        'goal_period',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=32), nullable=False),
        sa.Column('settled_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', 'period', name=op.f('pk_goal_period')),
    )


def downgrade() -> None:
    op.drop_table('goal_period')
    op.drop_table('goal_settlement')
    op.drop_table('rule_exposure')
    op.drop_index('ix_purchase_occurred_at', table_name='purchase')
