"""The audit trail: who changed what in rewards, before and after (``shared.audit``)

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-12 10:00:00

Written by hand. The trail starts empty: changes made before it were not recorded.
"""
from alembic import op
import sqlalchemy as sa

from shared.db.types import UTCDateTime


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_entry',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('resource', sa.String(length=200), nullable=False),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    )
    op.create_index('ix_audit_entry_resource', 'audit_entry', ['resource', 'id'], unique=False)
    op.create_index('ix_audit_entry_actor', 'audit_entry', ['actor', 'id'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_entry')
