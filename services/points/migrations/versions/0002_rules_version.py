"""program.rules_version: a token that changes with every change of the earning rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:30:00

Written by hand. Each purchase reads the program row anyway; with this token beside it, a process keeps
the rules it parsed for as long as the token stays the same, instead of reading them for every purchase.
An empty token (rows from before this revision) means "not cacheable": the rules are read every time until
the next change of a rule.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('program', sa.Column('rules_version', sa.String(length=36), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('program') as batch:
        batch.drop_column('rules_version')
