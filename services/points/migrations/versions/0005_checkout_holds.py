"""The checkout: the program's redemption settings, holds, member.held, purchases paid partly with points

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-21 10:00:00

Written by hand. Every existing member holds nothing and every purchase was paid in money, so the new columns
start at zero; the settings start at the contract's defaults (a point is worth 0.01, a hold lives 15 minutes).
"""
from alembic import op
import sqlalchemy as sa

from shared.db.types import Money, UTCDateTime


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('program', sa.Column('point_value', sa.Numeric(18, 6), nullable=False, server_default='0.01'))
    op.add_column('program', sa.Column('min_points', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('program', sa.Column('max_share', sa.Numeric(5, 4), nullable=False, server_default='1'))
    op.add_column('program', sa.Column('hold_minutes', sa.Integer(), nullable=False, server_default='15'))
    op.add_column('program', sa.Column('earn_on_points_paid', sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.add_column('member', sa.Column('held', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('purchase', sa.Column('hold_id', sa.String(length=64), nullable=True))
    op.add_column('purchase', sa.Column('points_paid', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('purchase', sa.Column('points_paid_value', Money(), nullable=False, server_default='0'))
    op.add_column('purchase', sa.Column('points_returned', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('ledger_entry', sa.Column('hold_id', sa.String(length=64), nullable=True))
    op.create_table(
        'hold',
        sa.Column('hold_id', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('store_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('value', Money(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('order_total', Money(), nullable=True),
        sa.Column('captured_points', sa.BigInteger(), nullable=False),
        sa.Column('captured_value', Money(), nullable=False),
        sa.Column('lots', sa.JSON(), nullable=False),
        sa.Column('purchase_id', sa.String(length=64), nullable=True),
        sa.Column('actor', sa.String(length=64), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('settled_at', UTCDateTime(), nullable=True),
        sa.Column('answer', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['member.member_id'], name=op.f('fk_hold_member_id_member')),
        sa.PrimaryKeyConstraint('hold_id', name=op.f('pk_hold')),
    )
    op.create_index(op.f('ix_hold_member_id'), 'hold', ['member_id'])
    op.create_index('ix_hold_due', 'hold', ['expires_at'], postgresql_where=sa.text("status = 'held'"),
                    sqlite_where=sa.text("status = 'held'"))


def downgrade() -> None:
    op.drop_index('ix_hold_due', table_name='hold')
    op.drop_index(op.f('ix_hold_member_id'), table_name='hold')
    op.drop_table('hold')
    op.drop_column('ledger_entry', 'hold_id')
    for column in ('points_returned', 'points_paid_value', 'points_paid', 'hold_id'):
        op.drop_column('purchase', column)
    op.drop_column('member', 'held')
    with op.batch_alter_table('program') as batch:
        for column in ('earn_on_points_paid', 'hold_minutes', 'max_share', 'min_points', 'point_value'):
            batch.drop_column(column)
