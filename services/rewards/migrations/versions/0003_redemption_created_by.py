"""redemption.created_by: the name of the API key that asked for the redemption

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:00:00

Written by hand. A key lent to a till sees voucher codes only of the redemptions it asked for itself (or with
vouchers:use); rows from before this revision have no creator and show their codes only to such keys.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('redemption', sa.Column('created_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('redemption') as batch:
        batch.drop_column('created_by')
