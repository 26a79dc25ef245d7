"""points_balance.held: the points of a member's checkout holds, still owed until captured

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-21 10:00:00

Written by hand. Balances from before this revision were told before holds existed, so none of them is held.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('points_balance', sa.Column('held', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('points_balance') as batch:
        batch.drop_column('held')
