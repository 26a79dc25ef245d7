"""redemption.source: member (redeemed for points) or goal (a goal's reward, given for free)

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-11 10:00:00

Written by hand. Every redemption before this revision was a member's, which the server default says.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('redemption', sa.Column('source', sa.String(length=16), server_default='member', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('redemption') as batch:
        batch.drop_column('source')
