"""segments: each member's segment, the last segmentation run, points balances known from events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00

Written by hand; new tables only, so it needs no batch mode on SQLite (its ALTERs would).
"""
from alembic import op
import sqlalchemy as sa

import shared.db.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'segment',
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('recency', sa.SmallInteger(), nullable=False),
        sa.Column('frequency', sa.SmallInteger(), nullable=False),
        sa.Column('monetary', sa.SmallInteger(), nullable=False),
        sa.Column('value_class', sa.String(length=1), nullable=False),
        sa.Column('lifecycle', sa.String(length=16), nullable=False),
        sa.Column('clv_estimate', shared.db.types.Money(precision=20, scale=4), nullable=False),
        sa.Column('revenue', shared.db.types.Money(precision=20, scale=4), nullable=False),
        sa.Column('purchases', sa.Integer(), nullable=False),
        sa.Column('last_purchase_at', shared.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('changed_at', shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_segment')),
    )
    op.create_table(
        'segment_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('computed_at', shared.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('window_days', sa.Integer(), nullable=False),
        sa.Column('recency_days', sa.Integer(), nullable=False),
        sa.Column('new_days', sa.Integer(), nullable=False),
        sa.Column('members', sa.Integer(), nullable=False),
        sa.Column('scored', sa.Integer(), nullable=False),
        sa.Column('revenue', shared.db.types.Money(precision=20, scale=4), nullable=False),
        sa.Column('top_20pct_revenue_share', sa.Numeric(precision=6, scale=5), nullable=True),
        sa.Column('retention_rate', sa.Numeric(precision=6, scale=5), nullable=True),
        sa.Column('expected_lifetime_years', sa.Numeric(precision=8, scale=4), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_run')),
    )
    op.create_table(
        'points_balance',
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('available', sa.BigInteger(), nullable=False),
        sa.Column('pending', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_points_balance')),
    )


def downgrade() -> None:
    op.drop_table('points_balance')
    op.drop_table('segment_run')
    op.drop_table('segment')
