"""Referrals: each member's referral code (drawn for the members there are), the program's referral setting,
and the referral each referee's qualifying purchase settled

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-04 10:00:00

Written by hand. Every member gets a code drawn as enrolment draws one (``secrets``, 12 characters of
``domain.REFERRAL_ALPHABET``), in batches, before the column becomes NOT NULL and unique. No program had the
setting, so it starts null (no referral pays but the earning rules with the ``referral`` trigger), and the
referral table starts empty: members enrolled before it with a ``referred_by`` are settled by their next
purchase of at least ``min_spend`` once the setting is on.
"""
import secrets
from collections.abc import Callable

from alembic import op
from alembic.operations import BatchOperations
import sqlalchemy as sa

from services.points.domain import REFERRAL_ALPHABET, REFERRAL_CODE_LENGTH
from shared.db.types import UTCDateTime


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 5000
# The search's expression indexes on member (0004): SQLite's batch mode copies the table without them (it
# cannot reflect them), so they are made again after it there.
EXPRESSION_INDEXES = (('ix_member_member_id_prefix', 'member_id'), ('ix_member_name_prefix', 'name'))


def _alter_member(change: Callable[[BatchOperations], None]) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        for name, _ in EXPRESSION_INDEXES:
            op.drop_index(name, table_name='member')
    with op.batch_alter_table('member') as batch:
        change(batch)
    if sqlite:
        for name, column in EXPRESSION_INDEXES:
            op.create_index(name, 'member', [sa.text(f'lower({column})')])


def _code() -> str:
    return ''.join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


def _draw_codes() -> None:
    bind = op.get_bind()
    member = sa.table('member', sa.column('member_id', sa.String()), sa.column('referral_code', sa.String()))
    fill = sa.update(member).where(member.c.member_id == sa.bindparam('id')).values(
        referral_code=sa.bindparam('code'))
    drawn: set[str] = set()
    after = ''
    while True:
        ids = bind.execute(sa.select(member.c.member_id).where(member.c.member_id > after)
                           .order_by(member.c.member_id).limit(BATCH)).scalars().all()
        if not ids:
            return
        rows = []
        for member_id in ids:
            code = _code()
            while code in drawn:  # about 59 bits: a repeat is all but impossible, and never kept
                code = _code()
            drawn.add(code)
            rows.append({'id': member_id, 'code': code})
        bind.execute(fill, rows)
        after = ids[-1]


def upgrade() -> None:
    op.add_column('program', sa.Column('referral', sa.JSON(), nullable=True))
    op.add_column('member', sa.Column('referral_code', sa.String(length=32), nullable=True))
    _draw_codes()
    _alter_member(lambda batch: batch.alter_column('referral_code', existing_type=sa.String(length=32),
                                                   nullable=False))
    op.create_index('ix_member_referral_code', 'member', ['referral_code'], unique=True)
    op.create_table(
        'referral',
        sa.Column('referee_id', sa.String(length=64), nullable=False),
        sa.Column('referrer_id', sa.String(length=64), nullable=False),
        sa.Column('purchase_id', sa.String(length=64), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('referrer_points', sa.BigInteger(), nullable=False),
        sa.Column('referee_points', sa.BigInteger(), nullable=False),
        sa.Column('referee_entry_id', sa.BigInteger(), nullable=True),
        sa.Column('referrer_entry_id', sa.BigInteger(), nullable=True),
        sa.Column('settled_at', UTCDateTime(), nullable=False),
        sa.Column('refund_id', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['referee_id'], ['member.member_id'], name=op.f('fk_referral_referee_id_member')),
        sa.PrimaryKeyConstraint('referee_id', name=op.f('pk_referral')),
    )
    op.create_index('ix_referral_referrer_year', 'referral', ['referrer_id', 'year'])


def downgrade() -> None:
    op.drop_index('ix_referral_referrer_year', table_name='referral')
    op.drop_table('referral')
    op.drop_index('ix_member_referral_code', table_name='member')
    _alter_member(lambda batch: batch.drop_column('referral_code'))
    with op.batch_alter_table('program') as batch:
        batch.drop_column('referral')
