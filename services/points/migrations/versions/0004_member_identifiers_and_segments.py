"""member_identifier, member.value_class and member.lifecycle, the search's indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-14 10:00:00

Written by hand. Identifiers (cards, phones, e-mails, external ids) keyed by their kind and normalised value,
so no two members hold one; the members' profile e-mails and phones are copied in as identifiers
``from_profile`` (when two members share one, the first by member id keeps it, the other stays findable by
search). The segment tiers last told (value class, lifecycle), and the indexes of the operator's search:
pattern-ops btrees on PostgreSQL, so a prefix LIKE is a range scan whatever the collation.
"""
from alembic import op
import sqlalchemy as sa

from services.points.domain import normalize_identifier
from shared.db.types import UTCDateTime


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _lower(column: str) -> sa.TextClause:
    """lower(column), with the operator class that lets PostgreSQL use it for LIKE 'abc%'."""
    ops = ' text_pattern_ops' if op.get_bind().dialect.name == 'postgresql' else ''
    return sa.text(f'lower({column}){ops}')


def upgrade() -> None:
    op.add_column('member', sa.Column('value_class', sa.String(length=1), nullable=True))
    op.add_column('member', sa.Column('lifecycle', sa.String(length=16), nullable=True))
    op.create_index('ix_member_member_id_prefix', 'member', [_lower('member_id')])
    op.create_index('ix_member_name_prefix', 'member', [_lower('name')])
    op.create_index('ix_member_tier_member', 'member', ['tier_id', 'member_id'])
    op.create_index('ix_member_value_class_member', 'member', ['value_class', 'member_id'])
    op.create_index('ix_member_lifecycle_member', 'member', ['lifecycle', 'member_id'])
    identifier = op.create_table(
        'member_identifier',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('normalized', sa.String(length=254), nullable=False),
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=254), nullable=False),
        sa.Column('from_profile', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['member.member_id'],
                                name=op.f('fk_member_identifier_member_id_member')),
        sa.PrimaryKeyConstraint('kind', 'normalized', name=op.f('pk_member_identifier')),
    )
    op.create_index(op.f('ix_member_identifier_member_id'), 'member_identifier', ['member_id'])
    op.create_index('ix_member_identifier_prefix', 'member_identifier', [_lower('normalized')])
    _profiles_as_identifiers(identifier)


def _profiles_as_identifiers(identifier: sa.Table) -> None:
    bind = op.get_bind()
    member = sa.table('member', sa.column('member_id'), sa.column('email'), sa.column('phone'),
                      sa.column('enrolled_at', UTCDateTime()))
    taken: set[tuple[str, str]] = set()
    rows = []
    query = sa.select(member.c.member_id, member.c.email, member.c.phone, member.c.enrolled_at).where(
        sa.or_(member.c.email.is_not(None), member.c.phone.is_not(None))).order_by(member.c.member_id)
    for member_id, email, phone, enrolled_at in bind.execute(query).all():
        for kind, value in (('email', email), ('phone', phone)):
            key = normalize_identifier(kind, value) if value is not None else ''
            if key and (kind, key) not in taken:
                taken.add((kind, key))
                rows.append({'kind': kind, 'normalized': key, 'member_id': member_id, 'value': value.strip(),
                             'from_profile': True, 'created_at': enrolled_at})
        if len(rows) >= 5000:
            op.bulk_insert(identifier, rows)
            rows = []
    if rows:
        op.bulk_insert(identifier, rows)


def downgrade() -> None:
    op.drop_index('ix_member_identifier_prefix', table_name='member_identifier')
    op.drop_index(op.f('ix_member_identifier_member_id'), table_name='member_identifier')
    op.drop_table('member_identifier')
    op.drop_index('ix_member_lifecycle_member', table_name='member')
    op.drop_index('ix_member_value_class_member', table_name='member')
    op.drop_index('ix_member_tier_member', table_name='member')
    op.drop_index('ix_member_name_prefix', table_name='member')
    op.drop_index('ix_member_member_id_prefix', table_name='member')
    with op.batch_alter_table('member') as batch:
        batch.drop_column('lifecycle')
        batch.drop_column('value_class')
