"""redemption asks: when points was last asked for a pending redemption, and how many times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00

Existing redemptions were asked once, when they were created. The columns are added nullable, filled, then
made NOT NULL; on SQLite the last step (and the partial index) goes through a batch table copy.
"""
from alembic import op
import sqlalchemy as sa
import shared.db.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_requested_at', shared.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('asks', sa.Integer(), nullable=True))
    op.execute("UPDATE redemption SET last_requested_at = created_at, asks = 1")
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.alter_column('last_requested_at', existing_type=shared.db.types.UTCDateTime(timezone=True),
                              nullable=False)
        batch_op.alter_column('asks', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('ix_redemption_pending_asked', ['last_requested_at'], unique=False,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.drop_index('ix_redemption_pending_asked', postgresql_where=sa.text("status = 'pending'"),
                            sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_column('asks')
        batch_op.drop_column('last_requested_at')
