"""Limits of earning rules: their budgets, each member's usage per period, and what a purchase's limited
rules gave

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-28 10:00:00

Written by hand. No rule had limits before, so the tables start empty and every purchase's record is null.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('purchase', sa.Column('limited', sa.JSON(), nullable=True))
    op.create_table(
        'rule_budget',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('used', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_rule_budget')),
    )
    op.create_table(
        'rule_member_usage',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('used', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', 'member_id', 'period', name=op.f('pk_rule_member_usage')),
    )


def downgrade() -> None:
    op.drop_table('rule_member_usage')
    op.drop_table('rule_budget')
    op.drop_column('purchase', 'limited')
